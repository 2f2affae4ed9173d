//! Parsing: the default file, the examples, and syntax/schema errors with line:column.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mqgate_config::{
    BridgeTransport, Config, ConfigError, Direction, Durability, ListenerKind, Location,
    ProtocolVersion, DEFAULT_CONFIG_TOML,
};

fn parse_error(text: &str) -> (Option<Location>, String, String) {
    match Config::from_toml_str(text, "test.toml") {
        Err(error @ ConfigError::Parse { .. }) => {
            let display = error.to_string();
            let ConfigError::Parse {
                location, message, ..
            } = error
            else {
                unreachable!()
            };
            (location, message, display)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

#[test]
fn default_toml_parses_to_default_config() {
    let parsed = Config::from_toml_str(DEFAULT_CONFIG_TOML, "default.toml").unwrap();
    assert_eq!(parsed, Config::default());
    assert_eq!(
        Config::default().validate().map_err(|e| e.to_string()),
        Ok(())
    );
}

#[test]
fn default_config_is_one_loopback_tcp_listener_with_sync_persistence() {
    let config = Config::default();
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].kind, ListenerKind::Tcp);
    assert_eq!(
        config.listeners[0].bind,
        "127.0.0.1:1883".parse::<SocketAddr>().unwrap()
    );
    assert!(config.persistence.enabled);
    assert_eq!(config.persistence.data_dir, Path::new("./mqgate-data"));
    assert_eq!(config.persistence.durability, Durability::Sync);
    assert_eq!(config.broker.max_inflight, 20);
    assert_eq!(config.broker.max_queued_messages, 1000);
}

#[test]
fn an_empty_file_is_the_default_configuration() {
    assert_eq!(
        Config::from_toml_str("", "empty.toml").unwrap(),
        Config::default()
    );
}

#[test]
fn raspberry_pi_example_is_valid() {
    let config = Config::load(&example("raspberry-pi-gateway.toml")).unwrap();
    let kinds: Vec<_> = config.listeners.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [ListenerKind::Tcp, ListenerKind::Tls, ListenerKind::Ssh]
    );
    let bridge = &config.bridges[0];
    assert_eq!(bridge.transport, BridgeTransport::Tls);
    assert_eq!(bridge.protocol, ProtocolVersion::V5);
    assert!(bridge.tls.as_ref().unwrap().cert.is_some());
    assert_eq!(bridge.queue.max_age, Duration::from_secs(14 * 86_400));
    let directions: Vec<_> = bridge.topics.iter().map(|t| t.direction).collect();
    assert!(directions.contains(&Direction::Out));
    assert!(directions.contains(&Direction::In));
    assert!(directions.contains(&Direction::Both));
    assert!(config.proxy.is_none());
}

#[test]
fn standalone_proxy_example_is_valid() {
    let config = Config::load(&example("standalone-proxy.toml")).unwrap();
    assert_eq!(config.proxy.unwrap().upstream, "127.0.0.1:1883");
    assert!(!config.auth.anonymous_allowed());
    assert!(config.acl.file.is_some());
    assert!(config.listeners.iter().all(|l| l.kind.uses_tls()));
}

#[test]
fn syntax_error_reports_line_and_column() {
    let text = "[broker]\nmax_inflight = 20\nmax_connections = = 5\n";
    let (location, _message, display) = parse_error(text);
    assert_eq!(
        location,
        Some(Location {
            line: 3,
            column: 19
        })
    );
    assert!(display.starts_with("test.toml:3:19: "), "{display}");
}

#[test]
fn unknown_field_reports_line_column_and_the_expected_fields() {
    let text =
        "[[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:1883\"\n\n[broker]\nmax_inflihgt = 10\n";
    let (location, message, display) = parse_error(text);
    assert_eq!(location, Some(Location { line: 6, column: 1 }));
    assert!(
        message.contains("unknown field `max_inflihgt`"),
        "{message}"
    );
    assert!(
        message.contains("`max_inflight`"),
        "lists what was expected: {message}"
    );
    assert!(
        display.starts_with("test.toml:6:1: unknown field"),
        "{display}"
    );
}

#[test]
fn unknown_top_level_section_is_rejected() {
    let (location, message, _) = parse_error("[lisener]\n");
    assert_eq!(location.map(|l| l.line), Some(1));
    assert!(message.contains("unknown field `lisener`"), "{message}");
    assert!(message.contains("`listener`"), "{message}");
}

#[test]
fn wrong_type_and_bad_values_point_at_the_value() {
    let (location, message, _) = parse_error("[broker]\nconnect_timeout = \"10 seconds\"\n");
    assert_eq!(
        location,
        Some(Location {
            line: 2,
            column: 19
        })
    );
    assert!(message.contains("invalid duration"), "{message}");

    let (location, message, _) =
        parse_error("[[listener]]\nkind = \"tcp\"\nbind = \"localhost:1883\"\n");
    assert_eq!(location, Some(Location { line: 3, column: 8 }));
    assert!(message.contains("expected ip:port"), "{message}");

    let (location, message, _) =
        parse_error("[[listener]]\nkind = \"quic\"\nbind = \"127.0.0.1:1\"\n");
    assert_eq!(location, Some(Location { line: 2, column: 8 }));
    assert!(message.contains("unknown variant `quic`"), "{message}");

    let (_, message, _) = parse_error("[persistence]\ndurability = \"sometimes\"\n");
    assert!(
        message.contains("`sync`") && message.contains("`batch`"),
        "{message}"
    );
}

#[test]
fn async_is_an_alias_of_batch() {
    let config = Config::from_toml_str("[persistence]\ndurability = \"async\"\n", "t").unwrap();
    assert_eq!(config.persistence.durability, Durability::Batch);
}

#[test]
fn missing_file_is_a_read_error_with_the_path() {
    let path = Path::new("/nonexistent/mqgate.toml");
    let error = Config::load(path).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Read { path: p, .. } if p == path),
        "{error:?}"
    );
    assert!(error
        .to_string()
        .starts_with("/nonexistent/mqgate.toml: cannot read"));
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn bridge_password_is_not_in_debug_output() {
    let text = r#"
[[bridge]]
name = "cloud"
addresses = ["broker.example.com:1883"]
username = "site"
password = "hunter2-very-secret"
[[bridge.topic]]
topic = "a/#"
"#;
    let config = Config::from_toml_str(text, "t").unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("Secret(***)"));
    assert_eq!(
        config.bridges[0].password.as_ref().unwrap().expose(),
        "hunter2-very-secret"
    );
}

#[test]
fn acl_rules_in_toml() {
    use mqgate_config::{AclAccess, AclRule};
    let text = "[acl]\ndisconnect_on_denied_publish = true\n\n[[acl.rule]]\ntopic = \"public/#\"\naccess = \"read\"\n\n[[acl.rule]]\nuser = \"alice\"\ntopic = \"alice/#\"\n\n[[acl.rule]]\npattern = true\ntopic = \"devices/%c/#\"\naccess = \"deny\"\n";
    let config = Config::from_toml_str(text, "t.toml").unwrap();
    assert!(config.acl.disconnect_on_denied_publish);
    assert_eq!(
        config.acl.rules,
        [
            AclRule {
                user: None,
                pattern: false,
                topic: "public/#".into(),
                access: AclAccess::Read
            },
            AclRule {
                user: Some("alice".into()),
                pattern: false,
                topic: "alice/#".into(),
                access: AclAccess::ReadWrite
            },
            AclRule {
                user: None,
                pattern: true,
                topic: "devices/%c/#".into(),
                access: AclAccess::Deny
            },
        ]
    );
}

#[test]
fn wss_listener_with_san_identity() {
    use mqgate_config::{CertIdentity, ClientCertMode};
    let text = "[[listener]]\nkind = \"wss\"\nbind = \"0.0.0.0:443\"\npath = \"/ws\"\n[listener.tls]\ncert = \"s.pem\"\nkey = \"s.key\"\nclient_ca = \"ca.pem\"\nclient_cert = \"required\"\nuse_identity_as_username = true\nidentity = \"san-uri\"\n\n[auth]\nallow_anonymous = false\n";
    let config = Config::from_toml_str(text, "t.toml").unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.kind, ListenerKind::Wss);
    assert_eq!(listener.ws_path(), "/ws");
    let tls = listener.tls.as_ref().unwrap();
    assert_eq!(tls.client_cert, ClientCertMode::Required);
    assert_eq!(tls.identity, CertIdentity::SanUri);
    for (value, expected) in [
        ("cn", CertIdentity::Cn),
        ("san-dns", CertIdentity::SanDns),
        ("san-email", CertIdentity::SanEmail),
    ] {
        let text = text.replace("\"san-uri\"", &format!("\"{value}\""));
        let config = Config::from_toml_str(&text, "t.toml").unwrap();
        assert_eq!(config.listeners[0].tls.as_ref().unwrap().identity, expected);
    }
    assert_eq!(tls.crl_next_update, mqgate_config::CrlNextUpdate::Enforce);
    let ignore = text.replace("identity = ", "crl_next_update = \"ignore\"\nidentity = ");
    let config = Config::from_toml_str(&ignore, "t.toml").unwrap();
    let tls = config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.crl_next_update, mqgate_config::CrlNextUpdate::Ignore);
    let (location, _, message) = parse_error(&text.replace("\"san-uri\"", "\"san-ip\""));
    assert_eq!(location.map(|l| l.line), Some(11), "{message}");
    assert!(message.contains("san-email"), "{message}");
}
