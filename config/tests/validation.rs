//! Validation: each rule names its field and location, and all violations are reported.

use mqgate_config::{Config, ConfigError, Location, ValidationError};

fn errors(text: &str) -> Vec<ValidationError> {
    match Config::from_toml_str(text, "test.toml") {
        Err(ConfigError::Invalid { errors, .. }) => errors,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// Asserts that exactly one error concerns `field` and that its message contains `needle`.
fn expect(text: &str, field: &str, needle: &str) -> ValidationError {
    let all = errors(text);
    let matching: Vec<_> = all.iter().filter(|e| e.field == field).collect();
    assert_eq!(
        matching.len(),
        1,
        "one error for {field} expected in {all:#?}"
    );
    assert!(
        matching[0].message.contains(needle),
        "{field}: `{}` should contain `{needle}`",
        matching[0].message
    );
    matching[0].clone()
}

const BRIDGE_HEAD: &str =
    "[[bridge]]\nname = \"cloud\"\naddresses = [\"broker.example.com:1883\"]\n";

#[test]
fn duplicate_listener_address_points_at_the_second_bind() {
    let text = "[[listener]]\nkind = \"tcp\"\nbind = \"0.0.0.0:1883\"\n\n[[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:1883\"\n";
    let error = expect(text, "listener[1].bind", "already used by listener[0].bind");
    assert_eq!(error.location, Some(Location { line: 7, column: 8 }));
}

#[test]
fn port_zero_never_conflicts() {
    let text = "[[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:0\"\n[[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:0\"\n";
    Config::from_toml_str(text, "t").unwrap();
}

#[test]
fn tls_listener_without_certificate_or_key() {
    let text = "[[listener]]\nkind = \"tls\"\nbind = \"0.0.0.0:8883\"\n[listener.tls]\nclient_cert = \"required\"\n";
    let all = errors(text);
    let fields: Vec<_> = all.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "listener[0].tls.cert",
            "listener[0].tls.key",
            "listener[0].tls.client_ca",
            // Required certificates without use_identity_as_username: the CONNECT
            // username is still the identity, and nothing verifies it.
            "listener[0].bind"
        ]
    );
    assert!(all[0].message.contains("needs a certificate"));
    // The field is absent: the location is its table header.
    assert_eq!(all[0].location, Some(Location { line: 4, column: 1 }));

    expect(
        "[[listener]]\nkind = \"wss\"\nbind = \"0.0.0.0:443\"\n",
        "listener[0].tls",
        "needs a [listener.tls] table",
    );
}

#[test]
fn tls_and_ssh_tables_only_on_their_kinds() {
    let text = "[[listener]]\nkind = \"tcp\"\nbind = \"0.0.0.0:1883\"\npath = \"/mqtt\"\n[listener.tls]\ncert = \"c\"\nkey = \"k\"\n[listener.ssh]\nhost_key = \"h\"\n";
    expect(text, "listener[0].tls", "does not use TLS");
    expect(text, "listener[0].ssh", "does not use SSH");
    expect(text, "listener[0].path", "only ws and wss");
    expect(
        "[[listener]]\nkind = \"ws\"\nbind = \"0.0.0.0:80\"\npath = \"mqtt\"\n",
        "listener[0].path",
        "must start with `/`",
    );
}

#[test]
fn identity_needs_use_identity_as_username() {
    let text = "[[listener]]\nkind = \"tls\"\nbind = \"127.0.0.1:8883\"\n[listener.tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"\nclient_cert = \"required\"\nidentity = \"san-dns\"\n";
    let error = expect(
        text,
        "listener[0].tls.identity",
        "only used with use_identity_as_username",
    );
    assert_eq!(
        error.location,
        Some(Location {
            line: 9,
            column: 12
        })
    );
}

#[test]
fn wss_alpn_must_allow_http() {
    let head = "[[listener]]\nkind = \"wss\"\nbind = \"127.0.0.1:443\"\n[listener.tls]\ncert = \"c\"\nkey = \"k\"\n";
    expect(
        &format!("{head}alpn = [\"mqtt\"]\n"),
        "listener[0].tls.alpn",
        "offer \"http/1.1\"",
    );
    Config::from_toml_str(&format!("{head}alpn = [\"http/1.1\"]\n"), "t").unwrap();
    Config::from_toml_str(head, "t").unwrap();
}

#[test]
fn ssh_listener_rules() {
    expect(
        "[[listener]]\nkind = \"ssh\"\nbind = \"0.0.0.0:2222\"\n",
        "listener[0].ssh",
        "needs a [listener.ssh] table",
    );
    let text = "[[listener]]\nkind = \"ssh\"\nbind = \"0.0.0.0:2222\"\n[listener.ssh]\nallow_password = true\nmax_auth_attempts = 0\n";
    expect(text, "listener[0].ssh.host_key", "needs a host key");
    expect(text, "listener[0].ssh.allow_password", "auth.password_file");
    expect(text, "listener[0].ssh.max_auth_attempts", "at least 1");
    expect(
        "[[listener]]\nkind = \"ssh\"\nbind = \"0.0.0.0:2222\"\n[listener.ssh]\nhost_key = \"k\"\n",
        "listener[0].ssh",
        "no client could log in",
    );
}

#[test]
fn broker_limits() {
    for (value, ok) in [
        ("1", false),
        ("2", true),
        ("268435455", true),
        ("268435456", false),
    ] {
        let text = format!("[broker]\nmax_packet_size = {value}\n");
        let result = Config::from_toml_str(&text, "t");
        assert_eq!(result.is_ok(), ok, "max_packet_size = {value}: {result:?}");
    }
    let error = expect(
        "[broker]\nmax_packet_size = 1\n",
        "broker.max_packet_size",
        "outside 2..=268435455",
    );
    assert_eq!(
        error.location,
        Some(Location {
            line: 2,
            column: 19
        })
    );
    let text = "[broker]\nmax_connections = 0\nmax_inflight = 0\nmax_queued_messages = 0\nmax_queued_bytes = 0\nconnect_timeout = \"0s\"\n";
    for field in [
        "broker.max_connections",
        "broker.max_inflight",
        "broker.max_queued_messages",
        "broker.max_queued_bytes",
    ] {
        expect(text, field, "must be at least 1");
    }
    expect(text, "broker.connect_timeout", "longer than 0s");
}

#[test]
fn persistence_and_auth_rules() {
    expect(
        "[persistence]\ndurability = \"batch\"\nflush_interval = \"0s\"\n",
        "persistence.flush_interval",
        "longer than 0s",
    );
    expect(
        "[auth.argon2]\nmemory_kib = 7\n",
        "auth.argon2.memory_kib",
        "at least 8 KiB per lane",
    );
    expect(
        "[auth]\nallow_anonymous = false\n",
        "auth.allow_anonymous",
        "no client could ever connect",
    );
}

#[test]
fn bridge_without_addresses_or_topics() {
    let text = "[[bridge]]\nname = \"cloud\"\n";
    let address = expect(text, "bridge[0].addresses", "at least one remote address");
    expect(text, "bridge[0].topic", "at least one [[bridge.topic]]");
    assert_eq!(address.location, Some(Location { line: 1, column: 1 }));
}

#[test]
fn invalid_topic_filters_and_rule_values() {
    let text = format!(
        "{BRIDGE_HEAD}[[bridge.topic]]\ntopic = \"a/#/b\"\n[[bridge.topic]]\ntopic = \"a+/b\"\nqos = 3\nremote_prefix = \"x/#/\"\n[[bridge.topic]]\ntopic = \"\"\n"
    );
    let error = expect(
        &text,
        "bridge[0].topic[0].topic",
        "`#` must be a whole level and the last one",
    );
    assert_eq!(error.location, Some(Location { line: 5, column: 9 }));
    expect(
        &text,
        "bridge[0].topic[1].topic",
        "`+` must be a whole level",
    );
    expect(&text, "bridge[0].topic[1].qos", "not 0, 1 or 2");
    expect(
        &text,
        "bridge[0].topic[1].remote_prefix",
        "must not contain wildcards",
    );
    expect(&text, "bridge[0].topic[2].topic", "cannot be empty");
}

#[test]
fn ssh_bridge_needs_an_existing_tunnel() {
    let text = "[[bridge]]\nname = \"cloud\"\ntransport = \"ssh\"\ntunnel = \"uplnk\"\n[[bridge.topic]]\ntopic = \"a\"\n\n[[tunnel]]\nname = \"uplink\"\nserver = \"jump.example.com:22\"\nuser = \"gw\"\nkey_file = \"id\"\nknown_hosts = \"kh\"\nremote = \"10.0.0.5:1883\"\n";
    let error = expect(
        text,
        "bridge[0].tunnel",
        "there is no [[tunnel]] named `uplnk`",
    );
    assert_eq!(
        error.location,
        Some(Location {
            line: 4,
            column: 10
        })
    );
    let fixed = text.replace("uplnk", "uplink");
    Config::from_toml_str(&fixed, "t").unwrap();
}

#[test]
fn duplicate_bridge_and_tunnel_names() {
    let tunnel = "[[tunnel]]\nname = \"t\"\nserver = \"s.example.com:22\"\nuser = \"u\"\nkey_file = \"k\"\nhost_key_fingerprint = \"SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8\"\nremote = \"r.example.com:1883\"\n";
    let text = format!("{BRIDGE_HEAD}[[bridge.topic]]\ntopic = \"a\"\n{BRIDGE_HEAD}[[bridge.topic]]\ntopic = \"b\"\n{tunnel}{tunnel}");
    expect(&text, "bridge[1].name", "already used by bridge[0]");
    expect(&text, "tunnel[1].name", "already used by tunnel[0]");
}

#[test]
fn bridge_field_rules() {
    let text = "[[bridge]]\nname = \"bad name\"\naddresses = [\"broker\"]\npassword = \"p\"\nkeepalive = \"0s\"\n[bridge.tls]\ncert = \"c\"\n[[bridge.topic]]\ntopic = \"a\"\n";
    expect(text, "bridge[0].name", "invalid bridge name");
    expect(text, "bridge[0].addresses[0]", "expected host:port");
    expect(text, "bridge[0].password", "without a username");
    expect(text, "bridge[0].keepalive", "whole seconds");
    expect(text, "bridge[0].tls", "only used with transport = \"tls\"");
    expect(text, "bridge[0].tls.key", "both cert and key");
}

#[test]
fn tunnel_rules() {
    let text = "[[tunnel]]\nname = \"t\"\nlisten = \"127.0.0.1:1883\"\nserver = \"jump\"\nuser = \"\"\nkey_file = \"k\"\nremote = \"r:1883\"\n[tunnel.reconnect]\ninitial = \"10s\"\nmax = \"1s\"\n";
    expect(text, "tunnel[0].listen", "already used by listener[0].bind");
    expect(text, "tunnel[0].server", "expected host:port");
    expect(text, "tunnel[0].user", "empty");
    expect(text, "tunnel[0]", "would not be verified");
    expect(text, "tunnel[0].reconnect.max", "shorter than initial");
}

#[test]
fn proxy_rules() {
    let text = format!(
        "[proxy]\nupstream = \"127.0.0.1:1883\"\n{BRIDGE_HEAD}[[bridge.topic]]\ntopic = \"a\"\n"
    );
    expect(&text, "proxy.upstream", "connect to itself");
    expect(&text, "proxy", "bridges are clients of the local broker");
}

#[test]
fn all_errors_are_collected_and_displayed_one_per_line() {
    let text = "[broker]\nmax_inflight = 0\nmax_packet_size = 1\n\n[[bridge]]\nname = \"cloud\"\n";
    let error = Config::from_toml_str(text, "gw.toml").unwrap_err();
    let display = error.to_string();
    let lines: Vec<_> = display.lines().collect();
    assert_eq!(lines.len(), 4, "{display}");
    assert!(lines.contains(&"gw.toml:2:16: broker.max_inflight: must be at least 1: no QoS 1/2 message could be delivered (MQTT 5 forbids Receive Maximum 0)"), "{display}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("gw.toml:3:19: broker.max_packet_size: ")),
        "{display}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("gw.toml:5:1: bridge[0].addresses: ")),
        "{display}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("gw.toml:5:1: bridge[0].topic: ")),
        "{display}"
    );
}

#[test]
fn validate_on_a_built_config_names_fields_without_locations() {
    let mut config = Config::default();
    config.broker.max_connections = 0;
    config.listeners.push(config.listeners[0].clone());
    let error = config.validate().unwrap_err();
    let ConfigError::Invalid { errors, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.location.is_none()));
    assert_eq!(
        error.to_string(),
        "<config>: listener[1].bind: address 127.0.0.1:1883 is already used by listener[0].bind (127.0.0.1:1883)\n\
         <config>: broker.max_connections: must be at least 1: no client could connect"
    );
}

#[test]
fn a_network_listener_without_passwords_is_refused_even_with_anonymous_access_on() {
    let open = "[[listener]]\nkind = \"tcp\"\nbind = \"0.0.0.0:1883\"\n";
    let err = Config::from_toml_str(open, "lan.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("lan.toml:3:8: listener[0].bind: "), "{err}");
    assert!(err.contains("outside loopback"), "{err}");
    // Anonymous means "no username"; a username is always verified, so saying
    // allow_anonymous = true does not excuse a network listener without passwords.
    let opted_in = format!("{open}[auth]\nallow_anonymous = true\n");
    expect(&opted_in, "listener[0].bind", "no [auth] password_file");
    let loopback = "[[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\n";
    assert!(Config::from_toml_str(loopback, "lo.toml")
        .unwrap()
        .auth
        .anonymous_allowed());
    let with_passwords = format!("{open}[auth]\npassword_file = \"passwords\"\n");
    let config = Config::from_toml_str(&with_passwords, "pw.toml").unwrap();
    assert!(
        !config.auth.anonymous_allowed(),
        "a password file turns anonymous access off"
    );
    // An open LAN broker: usernames are verified, clients without one are let in.
    let open_lan = format!("{with_passwords}allow_anonymous = true\n");
    assert!(Config::from_toml_str(&open_lan, "lan.toml")
        .unwrap()
        .auth
        .anonymous_allowed());
}

const SSH_LISTENER: &str = "[[listener]]\nkind = \"ssh\"\nbind = \"0.0.0.0:2222\"\n[listener.ssh]\nhost_key = \"host_key\"\nauthorized_keys = \"authorized_keys\"\n";

fn tls_listener(bind: &str, client_cert: &str, identity: bool) -> String {
    format!(
        "[[listener]]\nkind = \"tls\"\nbind = \"{bind}\"\n[listener.tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"\nclient_cert = \"{client_cert}\"\nuse_identity_as_username = {identity}\n"
    )
}

#[test]
fn an_ssh_listener_does_not_vouch_for_a_tcp_listener_next_to_it() {
    let text = format!("{SSH_LISTENER}\n[[listener]]\nkind = \"tcp\"\nbind = \"0.0.0.0:1883\"\n");
    let all = errors(&text);
    assert_eq!(all.len(), 1, "{all:#?}");
    let error = &all[0];
    assert_eq!(error.field, "listener[1].bind");
    assert_eq!(
        error.location,
        Some(Location {
            line: 10,
            column: 8
        })
    );
    assert!(
        error
            .message
            .starts_with("tcp listener 0.0.0.0:1883 is outside loopback"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("CONNECT username"),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("Set [auth] password_file, bind to loopback"),
        "{}",
        error.message
    );
    let display = Config::from_toml_str(&text, "gw.toml")
        .unwrap_err()
        .to_string();
    assert!(
        display.starts_with("gw.toml:10:8: listener[1].bind: tcp listener 0.0.0.0:1883"),
        "{display}"
    );

    // Either fix makes the configuration valid.
    Config::from_toml_str(
        &format!("{text}[auth]\npassword_file = \"passwords\"\n"),
        "t",
    )
    .unwrap();
    Config::from_toml_str(&text.replace("0.0.0.0:1883", "127.0.0.1:1883"), "t").unwrap();
    // The SSH listener alone verifies every client by its login.
    Config::from_toml_str(SSH_LISTENER, "t").unwrap();
}

#[test]
fn optional_client_certificates_leave_a_username_path_open() {
    let text = tls_listener("0.0.0.0:8883", "optional", true);
    let error = expect(&text, "listener[0].bind", "tls listener 0.0.0.0:8883");
    assert!(
        error.message.contains("without a certificate"),
        "{}",
        error.message
    );
    assert_eq!(error.location, Some(Location { line: 3, column: 8 }));
    // Explicit anonymous access changes nothing: the username is still unverified.
    expect(
        &format!("{text}[auth]\nallow_anonymous = true\n"),
        "listener[0].bind",
        "without a certificate",
    );
    // With a password file the clients without a certificate are verified by it.
    Config::from_toml_str(
        &format!("{text}[auth]\npassword_file = \"passwords\"\n"),
        "t",
    )
    .unwrap();
    Config::from_toml_str(
        &format!("{text}[auth]\npassword_file = \"passwords\"\nallow_anonymous = true\n"),
        "t",
    )
    .unwrap();
}

#[test]
fn required_client_certificates_as_identity_need_no_password_file() {
    Config::from_toml_str(&tls_listener("0.0.0.0:8883", "required", true), "t").unwrap();
    let wss = tls_listener("[::]:443", "required", true).replace("\"tls\"", "\"wss\"");
    Config::from_toml_str(&wss, "t").unwrap();
    // Required certificates that are not the identity verify nobody's username.
    expect(
        &tls_listener("0.0.0.0:8883", "required", false),
        "listener[0].bind",
        "does not take client certificates as identity",
    );
}

#[test]
fn a_loopback_listener_needs_no_authentication() {
    let text = "[[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\n[[listener]]\nkind = \"ws\"\nbind = \"[::1]:8080\"\n";
    let config = Config::from_toml_str(text, "t").unwrap();
    assert!(config.auth.anonymous_allowed());
    Config::from_toml_str(&format!("{text}[auth]\nallow_anonymous = true\n"), "t").unwrap();
    Config::from_toml_str(&tls_listener("127.0.0.1:8883", "optional", true), "t").unwrap();
}

#[test]
fn one_error_per_listener_whose_usernames_nothing_verifies() {
    let text = format!(
        "[[listener]]\nkind = \"ws\"\nbind = \"[::]:8080\"\n{}{SSH_LISTENER}[[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\n{}",
        tls_listener("0.0.0.0:8883", "optional", true),
        tls_listener("0.0.0.0:8884", "required", true),
    );
    let all = errors(&text);
    let fields: Vec<_> = all.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["listener[0].bind", "listener[1].bind"], "{all:#?}");
    assert!(all[0].message.starts_with("ws listener [::]:8080 "));
    assert!(all[1].message.starts_with("tls listener 0.0.0.0:8883 "));
    // No listener lets anyone in without credentials: "no client could ever connect"
    // is not raised, because the SSH and certificate listeners still admit clients.
    Config::from_toml_str(&format!("{text}[auth]\nallow_anonymous = false\n"), "t").unwrap();
}

#[test]
fn acl_rule_user_and_pattern_exclude_each_other() {
    let text = "[acl]\n[[acl.rule]]\nuser = \"alice\"\npattern = true\ntopic = \"a/%c\"\n";
    let error = expect(text, "acl.rule[0].pattern", "exclude each other");
    assert_eq!(
        error.location,
        Some(Location {
            line: 4,
            column: 11
        })
    );
}

#[test]
fn acl_rule_topic_must_be_a_valid_filter() {
    let text = "[[acl.rule]]\ntopic = \"a/#/b\"\naccess = \"read\"\n[[acl.rule]]\nuser = \"\"\ntopic = \"x\"\n";
    let all = errors(text);
    let fields: Vec<_> = all.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["acl.rule[0].topic", "acl.rule[1].user"]);
    assert!(all[0].message.contains("`#` must be a whole level"));
}

#[test]
fn acl_rule_access_must_be_known() {
    let text = "[[acl.rule]]\ntopic = \"a\"\naccess = \"publish\"\n";
    match Config::from_toml_str(text, "test.toml") {
        Err(e) => assert!(e.to_string().contains("readwrite"), "{e}"),
        Ok(c) => panic!("accepted {c:?}"),
    }
}
