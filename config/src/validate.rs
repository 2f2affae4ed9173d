//! Rules serde cannot express: cross-field and cross-section checks, collected all at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::addr::check_host_port;
use crate::bridge::{Backoff, BridgeConfig, BridgeTransport, TopicRule};
use crate::broker::MQTT_MAX_PACKET_SIZE;
use crate::listener::{
    CertIdentity, ClientCertMode, ListenerConfig, ListenerKind, SshListenerConfig,
};
use crate::path::FieldPath;
use crate::persistence::Durability;
use crate::tunnel::TunnelConfig;
use crate::Config;

/// A problem found, before it is given a location.
#[derive(Debug)]
pub(crate) struct Issue {
    pub(crate) path: FieldPath,
    pub(crate) message: String,
}

/// Runs every rule over `config` and returns all problems found.
pub(crate) fn check(config: &Config) -> Vec<Issue> {
    let mut checker = Checker::default();
    checker.listeners(config);
    checker.broker(config);
    checker.persistence(config);
    checker.auth(config);
    checker.acl(config);
    checker.proxy(config);
    checker.bridges(config);
    checker.tunnels(config);
    if config.log.level.trim().is_empty() {
        checker.fail(
            FieldPath::root("log").key("level"),
            "log level is empty; expected e.g. \"info\"",
        );
    }
    checker.issues
}

#[derive(Default)]
struct Checker {
    issues: Vec<Issue>,
}

impl Checker {
    fn fail(&mut self, path: FieldPath, message: impl Into<String>) {
        self.issues.push(Issue {
            path,
            message: message.into(),
        });
    }

    fn nonzero(&mut self, path: FieldPath, value: u64, why: &str) {
        if value == 0 {
            self.fail(path, format!("must be at least 1: {why}"));
        }
    }

    fn nonzero_duration(&mut self, path: FieldPath, value: Duration, why: &str) {
        if value.is_zero() {
            self.fail(path, format!("must be longer than 0s: {why}"));
        }
    }

    fn listeners(&mut self, config: &Config) {
        if config.listeners.is_empty() {
            self.fail(
                FieldPath::root("listener"),
                "no listeners: add at least one [[listener]] table",
            );
        }
        // Every socket the process binds, to find two on the same address.
        let mut bound: Vec<(SocketAddr, FieldPath)> = Vec::new();
        for (i, listener) in config.listeners.iter().enumerate() {
            let path = FieldPath::root("listener").index(i);
            self.listener(config, listener, &path);
            self.bind(&mut bound, listener.bind, path.key("bind"));
        }
        for (i, tunnel) in config.tunnels.iter().enumerate() {
            if let Some(listen) = tunnel.listen {
                self.bind(
                    &mut bound,
                    listen,
                    FieldPath::root("tunnel").index(i).key("listen"),
                );
            }
        }
    }

    fn bind(
        &mut self,
        bound: &mut Vec<(SocketAddr, FieldPath)>,
        addr: SocketAddr,
        path: FieldPath,
    ) {
        // Port 0 asks the system for a fresh port each time, so it never conflicts.
        if addr.port() != 0 {
            let clash = bound.iter().find(|(other, _)| {
                other.port() == addr.port()
                    && (other.ip() == addr.ip()
                        || other.ip().is_unspecified()
                        || addr.ip().is_unspecified())
            });
            if let Some((other, other_path)) = clash {
                let message = format!("address {addr} is already used by {other_path} ({other})");
                self.fail(path.clone(), message);
            }
        }
        bound.push((addr, path));
    }

    fn listener(&mut self, config: &Config, listener: &ListenerConfig, path: &FieldPath) {
        let kind = kind_name(listener.kind);
        match (&listener.tls, listener.kind.uses_tls()) {
            (None, true) => self.fail(
                path.key("tls"),
                format!("a {kind} listener needs a [listener.tls] table with cert and key"),
            ),
            (Some(_), false) => self.fail(
                path.key("tls"),
                format!("a {kind} listener does not use TLS; only tls and wss listeners take [listener.tls]"),
            ),
            (Some(tls), true) => {
                let tls_path = path.key("tls");
                if tls.cert.is_none() {
                    self.fail(
                        tls_path.key("cert"),
                        format!("a {kind} listener needs a certificate: set cert = \"server.pem\""),
                    );
                }
                if tls.key.is_none() {
                    self.fail(
                        tls_path.key("key"),
                        format!("a {kind} listener needs a private key: set key = \"server.key\""),
                    );
                }
                if tls.client_cert != ClientCertMode::None && tls.client_ca.is_none() {
                    self.fail(
                        tls_path.key("client_ca"),
                        "client certificates are requested (client_cert) but no client_ca is set to verify them",
                    );
                }
                if tls.use_identity_as_username && tls.client_cert == ClientCertMode::None {
                    self.fail(
                        tls_path.key("use_identity_as_username"),
                        "needs client_cert = \"optional\" or \"required\"",
                    );
                }
                if tls.identity != CertIdentity::Cn && !tls.use_identity_as_username {
                    self.fail(
                        tls_path.key("identity"),
                        "only used with use_identity_as_username = true",
                    );
                }
                self.alpn(&tls.alpn, tls_path.key("alpn"));
                if listener.kind == ListenerKind::Wss
                    && !tls.alpn.is_empty()
                    && !tls.alpn.iter().any(|p| p == "http/1.1")
                {
                    self.fail(
                        tls_path.key("alpn"),
                        "a wss listener speaks HTTP first: offer \"http/1.1\" (or no ALPN), or WebSocket clients fail the handshake",
                    );
                }
            }
            (None, false) => {}
        }
        match (&listener.ssh, listener.kind) {
            (None, ListenerKind::Ssh) => self.fail(
                path.key("ssh"),
                "an ssh listener needs a [listener.ssh] table with host_key",
            ),
            (Some(ssh), ListenerKind::Ssh) => self.ssh_listener(config, ssh, &path.key("ssh")),
            (Some(_), _) => self.fail(
                path.key("ssh"),
                format!(
                    "a {kind} listener does not use SSH; only ssh listeners take [listener.ssh]"
                ),
            ),
            (None, _) => {}
        }
        if let Some(ws_path) = &listener.path {
            if !listener.kind.uses_websocket() {
                self.fail(
                    path.key("path"),
                    format!(
                        "a {kind} listener has no HTTP path; only ws and wss listeners take path"
                    ),
                );
            } else if !ws_path.starts_with('/') {
                self.fail(
                    path.key("path"),
                    format!("path `{ws_path}` must start with `/`"),
                );
            }
        }
    }

    fn ssh_listener(&mut self, config: &Config, ssh: &SshListenerConfig, path: &FieldPath) {
        if ssh.host_key.is_none() {
            self.fail(
                path.key("host_key"),
                "an ssh listener needs a host key: set host_key = \"ssh_host_ed25519_key\"",
            );
        }
        if ssh.authorized_keys.is_none() && !ssh.allow_password {
            self.fail(
                path.clone(),
                "no client could log in: set authorized_keys or allow_password = true",
            );
        }
        if ssh.allow_password && config.auth.password_file.is_none() {
            self.fail(
                path.key("allow_password"),
                "SSH password logins are checked against auth.password_file, which is not set",
            );
        }
        self.nonzero(
            path.key("max_channels_per_connection"),
            ssh.max_channels_per_connection.into(),
            "a connection without channels carries no MQTT",
        );
        self.nonzero_duration(
            path.key("auth_timeout"),
            ssh.auth_timeout,
            "nobody could authenticate in time",
        );
        self.nonzero(
            path.key("max_auth_attempts"),
            ssh.max_auth_attempts.into(),
            "nobody could try to authenticate",
        );
    }

    fn alpn(&mut self, alpn: &[String], path: FieldPath) {
        if alpn
            .iter()
            .any(|protocol| protocol.is_empty() || protocol.len() > 255)
        {
            self.fail(path, "ALPN protocol names must be 1 to 255 bytes long");
        }
    }

    fn broker(&mut self, config: &Config) {
        let broker = &config.broker;
        let path = FieldPath::root("broker");
        self.nonzero(
            path.key("max_connections"),
            broker.max_connections.into(),
            "no client could connect",
        );
        if !(2..=MQTT_MAX_PACKET_SIZE).contains(&broker.max_packet_size) {
            self.fail(
                path.key("max_packet_size"),
                format!(
                    "{} is outside 2..={MQTT_MAX_PACKET_SIZE} (the sizes an MQTT packet can have)",
                    broker.max_packet_size
                ),
            );
        }
        self.nonzero(
            path.key("max_inflight"),
            broker.max_inflight.into(),
            "no QoS 1/2 message could be delivered (MQTT 5 forbids Receive Maximum 0)",
        );
        self.nonzero(
            path.key("receive_maximum"),
            broker.receive_maximum.into(),
            "MQTT 5 forbids Receive Maximum 0",
        );
        self.nonzero(
            path.key("max_keep_alive"),
            broker.max_keep_alive.into(),
            "every MQTT 5 client would be told to send no keep-alive at all",
        );
        self.nonzero(
            path.key("max_queued_messages"),
            broker.max_queued_messages.into(),
            "nothing could be queued for a busy or offline client",
        );
        self.nonzero(
            path.key("max_queued_bytes"),
            broker.max_queued_bytes,
            "nothing could be queued for a busy or offline client",
        );
        self.nonzero_duration(
            path.key("connect_timeout"),
            broker.connect_timeout,
            "every connection would time out before CONNECT",
        );
        let no_retained =
            "no retained message could be stored (set retain_available = false for that)";
        self.nonzero(
            path.key("max_retained_messages"),
            broker.max_retained_messages.into(),
            no_retained,
        );
        self.nonzero(
            path.key("max_retained_bytes"),
            broker.max_retained_bytes,
            no_retained,
        );
        self.nonzero(
            path.key("max_subscriptions_per_client"),
            broker.max_subscriptions_per_client.into(),
            "no client could subscribe",
        );
    }

    fn persistence(&mut self, config: &Config) {
        let persistence = &config.persistence;
        let path = FieldPath::root("persistence");
        if !persistence.enabled {
            return;
        }
        if persistence.data_dir.as_os_str().is_empty() {
            self.fail(
                path.key("data_dir"),
                "data_dir is empty; expected a directory path",
            );
        }
        if persistence.durability == Durability::Batch {
            self.nonzero_duration(
                path.key("flush_interval"),
                persistence.flush_interval,
                "durability = \"batch\" fsyncs once per flush_interval",
            );
        }
        self.nonzero(
            path.key("compaction_threshold_bytes"),
            persistence.compaction_threshold_bytes,
            "the store would be rewritten after every write",
        );
    }

    fn auth(&mut self, config: &Config) {
        let auth = &config.auth;
        let path = FieldPath::root("auth");
        let argon2 = &auth.argon2;
        let argon2_path = path.key("argon2");
        self.nonzero(
            argon2_path.key("iterations"),
            argon2.iterations.into(),
            "argon2 needs a pass",
        );
        if !(1..=0x00ff_ffff).contains(&argon2.parallelism) {
            self.fail(
                argon2_path.key("parallelism"),
                format!("{} is outside 1..=16777215", argon2.parallelism),
            );
        }
        if u64::from(argon2.memory_kib) < 8 * u64::from(argon2.parallelism) {
            self.fail(
                argon2_path.key("memory_kib"),
                format!(
                    "argon2 needs at least 8 KiB per lane: {} KiB < 8 × parallelism ({})",
                    argon2.memory_kib, argon2.parallelism
                ),
            );
        }
        self.nonzero(
            path.key("max_concurrent_verifications"),
            auth.max_concurrent_verifications.into(),
            "no password could be checked",
        );
        self.nonzero(
            path.key("max_username_bytes"),
            auth.max_username_bytes.into(),
            "no user name could log in",
        );
        // Per listener, not for the whole config: one SSH or certificate listener does not
        // vouch for the clients of another. A CONNECT username is taken as given when there
        // is no password file and anonymous access is allowed, so a listener outside
        // loopback whose clients are who their username says would let anyone claim any
        // user (and that user's ACL).
        if auth.password_file.is_none() && auth.anonymous_allowed() {
            for (i, listener) in config.listeners.iter().enumerate() {
                if listener.bind.ip().is_loopback() {
                    continue;
                }
                let Some(who) = claimed_by_username(listener) else {
                    continue;
                };
                self.fail(
                    FieldPath::root("listener").index(i).key("bind"),
                    format!(
                        "{kind} listener {bind} is outside loopback and {who}, which nothing \
                         verifies here (no [auth] password_file, anonymous access allowed): any \
                         client could claim any user and that user's ACL. Set [auth] \
                         password_file, bind to loopback, or take required client certificates \
                         as identity (tls/wss: client_cert = \"required\", \
                         use_identity_as_username = true)",
                        kind = kind_name(listener.kind),
                        bind = listener.bind,
                    ),
                );
            }
        }
        let identity_without_password = config.listeners.iter().any(|listener| {
            listener.kind == ListenerKind::Ssh
                || listener.tls.as_ref().is_some_and(|tls| {
                    tls.use_identity_as_username && tls.client_cert != ClientCertMode::None
                })
        });
        if !auth.anonymous_allowed()
            && auth.password_file.is_none()
            && !identity_without_password
            && !config.listeners.is_empty()
        {
            self.fail(
                path.key("allow_anonymous"),
                "no client could ever connect: anonymous access is off, no password_file is set \
                 and no listener takes client certificates as identity",
            );
        }
    }

    fn acl(&mut self, config: &Config) {
        for (i, rule) in config.acl.rules.iter().enumerate() {
            let path = FieldPath::root("acl").key("rule").index(i);
            if let Err(message) = check_filter(&rule.topic) {
                self.fail(path.key("topic"), message);
            }
            match &rule.user {
                Some(_) if rule.pattern => self.fail(
                    path.key("pattern"),
                    "`pattern = true` and `user` exclude each other: a pattern applies to \
                     every client (use %u and %c in its topic)",
                ),
                Some(user) if user.trim().is_empty() => {
                    self.fail(path.key("user"), "the user name is empty")
                }
                _ => {}
            }
        }
    }

    fn proxy(&mut self, config: &Config) {
        let Some(proxy) = &config.proxy else {
            return;
        };
        let path = FieldPath::root("proxy");
        if let Err(message) = check_host_port(&proxy.upstream) {
            self.fail(path.key("upstream"), message);
        } else if let Ok(upstream) = proxy.upstream.parse::<SocketAddr>() {
            if let Some(i) = config.listeners.iter().position(|l| l.bind == upstream) {
                self.fail(
                    path.key("upstream"),
                    format!("upstream {upstream} is listener[{i}] itself: the proxy would connect to itself"),
                );
            }
        }
        if !config.bridges.is_empty() {
            self.fail(
                path,
                "bridges are clients of the local broker, which does not run in proxy mode: \
                 remove [proxy] or the [[bridge]] tables",
            );
        }
    }

    fn bridges(&mut self, config: &Config) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, bridge) in config.bridges.iter().enumerate() {
            let path = FieldPath::root("bridge").index(i);
            self.name(&mut names, &bridge.name, i, path.key("name"), "bridge");
            self.bridge(config, bridge, &path);
        }
    }

    fn name<'a>(
        &mut self,
        seen: &mut HashMap<&'a str, usize>,
        name: &'a str,
        index: usize,
        path: FieldPath,
        table: &str,
    ) {
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            self.fail(
                path.clone(),
                format!(
                    "invalid {table} name `{name}`: expected 1 to 64 letters, digits, `-`, `_` or `.` \
                     (not starting with `.`)"
                ),
            );
        }
        if let Some(first) = seen.get(name) {
            self.fail(
                path,
                format!("{table} name `{name}` is already used by {table}[{first}]"),
            );
        } else {
            seen.insert(name, index);
        }
    }

    fn bridge(&mut self, config: &Config, bridge: &BridgeConfig, path: &FieldPath) {
        match bridge.transport {
            BridgeTransport::Tcp | BridgeTransport::Tls => {
                if bridge.addresses.is_empty() {
                    self.fail(
                        path.key("addresses"),
                        "a bridge needs at least one remote address, e.g. addresses = [\"broker.example.com:8883\"]",
                    );
                }
                if bridge.tunnel.is_some() {
                    self.fail(
                        path.key("tunnel"),
                        "tunnel is only used with transport = \"ssh\"",
                    );
                }
            }
            BridgeTransport::Ssh => {
                if !bridge.addresses.is_empty() {
                    self.fail(
                        path.key("addresses"),
                        "with transport = \"ssh\" the tunnel's remote is dialled; remove addresses",
                    );
                }
                match &bridge.tunnel {
                    None => self.fail(
                        path.key("tunnel"),
                        "transport = \"ssh\" needs tunnel = \"<name of a [[tunnel]]>\"",
                    ),
                    Some(name) if !config.tunnels.iter().any(|t| &t.name == name) => self.fail(
                        path.key("tunnel"),
                        format!("there is no [[tunnel]] named `{name}`"),
                    ),
                    Some(_) => {}
                }
            }
        }
        for (j, address) in bridge.addresses.iter().enumerate() {
            if let Err(message) = check_host_port(address) {
                self.fail(path.key("addresses").index(j), message);
            }
        }
        if let Some(tls) = &bridge.tls {
            let tls_path = path.key("tls");
            if bridge.transport != BridgeTransport::Tls {
                self.fail(
                    tls_path.clone(),
                    "[bridge.tls] is only used with transport = \"tls\"",
                );
            }
            if tls.cert.is_some() != tls.key.is_some() {
                let missing = if tls.cert.is_none() { "cert" } else { "key" };
                self.fail(
                    tls_path.key(missing),
                    "a client certificate needs both cert and key",
                );
            }
            if tls.sni.as_deref().is_some_and(str::is_empty) {
                self.fail(
                    tls_path.key("sni"),
                    "sni is empty; remove it to use the address's host",
                );
            }
            self.alpn(&tls.alpn, tls_path.key("alpn"));
        }
        if bridge.client_id.as_deref().is_some_and(str::is_empty) {
            self.fail(
                path.key("client_id"),
                "client_id is empty; remove it for the default",
            );
        }
        if bridge.password.is_some() && bridge.username.is_none() {
            self.fail(
                path.key("password"),
                "MQTT does not allow a password without a username",
            );
        }
        let keepalive = bridge.keepalive;
        if keepalive.is_zero()
            || keepalive.subsec_nanos() != 0
            || keepalive.as_secs() > u64::from(u16::MAX)
        {
            self.fail(
                path.key("keepalive"),
                "keepalive must be whole seconds from 1s to 65535s (0 would disable dead-link detection)",
            );
        }
        self.nonzero(
            path.key("max_inflight"),
            bridge.max_inflight.into(),
            "no QoS 1/2 message could be sent",
        );
        if let Some(topic) = &bridge.will_topic {
            if topic.is_empty() || topic.contains(['+', '#']) {
                self.fail(
                    path.key("will_topic"),
                    format!("will_topic `{topic}` must be a non-empty topic without wildcards"),
                );
            }
        }
        if bridge.will_qos > 2 {
            self.fail(
                path.key("will_qos"),
                format!("will_qos {} is not 0, 1 or 2", bridge.will_qos),
            );
        }
        if bridge.topics.is_empty() {
            self.fail(
                path.key("topic"),
                "a bridge needs at least one [[bridge.topic]] rule, otherwise it forwards nothing",
            );
        }
        for (j, rule) in bridge.topics.iter().enumerate() {
            self.topic_rule(rule, &path.key("topic").index(j));
        }
        let queue_path = path.key("queue");
        self.nonzero(
            queue_path.key("max_bytes"),
            bridge.queue.max_bytes,
            "nothing could be queued",
        );
        self.nonzero_duration(
            queue_path.key("max_age"),
            bridge.queue.max_age,
            "every queued message would expire at once",
        );
        self.backoff(&bridge.reconnect, &path.key("reconnect"));
    }

    fn topic_rule(&mut self, rule: &TopicRule, path: &FieldPath) {
        if let Err(message) = check_filter(&rule.topic) {
            self.fail(path.key("topic"), message);
        }
        if rule.qos > 2 {
            self.fail(
                path.key("qos"),
                format!("qos {} is not 0, 1 or 2", rule.qos),
            );
        }
        for (key, prefix) in [
            ("local_prefix", &rule.local_prefix),
            ("remote_prefix", &rule.remote_prefix),
        ] {
            if prefix.contains(['+', '#']) {
                self.fail(
                    path.key(key),
                    format!("prefix `{prefix}` must not contain wildcards"),
                );
            }
        }
    }

    fn backoff(&mut self, backoff: &Backoff, path: &FieldPath) {
        self.nonzero_duration(
            path.key("initial"),
            backoff.initial,
            "reconnecting without delay would spin",
        );
        if backoff.max < backoff.initial {
            self.fail(
                path.key("max"),
                format!(
                    "max ({:?}) is shorter than initial ({:?})",
                    backoff.max, backoff.initial
                ),
            );
        }
    }

    fn tunnels(&mut self, config: &Config) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, tunnel) in config.tunnels.iter().enumerate() {
            let path = FieldPath::root("tunnel").index(i);
            self.name(&mut names, &tunnel.name, i, path.key("name"), "tunnel");
            self.tunnel(tunnel, &path);
        }
    }

    fn tunnel(&mut self, tunnel: &TunnelConfig, path: &FieldPath) {
        for (key, address) in [("server", &tunnel.server), ("remote", &tunnel.remote)] {
            if let Err(message) = check_host_port(address) {
                self.fail(path.key(key), message);
            }
        }
        if tunnel.user.is_empty() {
            self.fail(
                path.key("user"),
                "user is empty; expected the SSH login name",
            );
        }
        match &tunnel.host_key_fingerprint {
            None if tunnel.known_hosts.is_none() => self.fail(
                path.clone(),
                "the SSH server's key would not be verified: set known_hosts or host_key_fingerprint",
            ),
            Some(fingerprint) if !is_sha256_fingerprint(fingerprint) => self.fail(
                path.key("host_key_fingerprint"),
                format!("invalid fingerprint `{fingerprint}`, expected `SHA256:<base64>` as printed by ssh-keygen -l"),
            ),
            _ => {}
        }
        self.nonzero_duration(
            path.key("keepalive"),
            tunnel.keepalive,
            "a dead SSH server would never be detected",
        );
        self.backoff(&tunnel.reconnect, &path.key("reconnect"));
    }
}

/// Which clients of `listener` are who their CONNECT username says (a name only
/// `[auth] password_file` verifies), or `None` when the listener verifies every client
/// itself: by the SSH login (key or password), or by a required client certificate
/// taken as identity.
fn claimed_by_username(listener: &ListenerConfig) -> Option<&'static str> {
    match listener.kind {
        ListenerKind::Ssh => None,
        ListenerKind::Tcp | ListenerKind::Ws => {
            Some("its clients are who their CONNECT username says")
        }
        ListenerKind::Tls | ListenerKind::Wss => match &listener.tls {
            Some(tls) if tls.use_identity_as_username => match tls.client_cert {
                ClientCertMode::Required => None,
                ClientCertMode::Optional => Some(
                    "a client that comes without a certificate (client_cert = \"optional\") is \
                     who its CONNECT username says",
                ),
                // Refused on its own (use_identity_as_username needs client certificates).
                ClientCertMode::None => Some("its clients are who their CONNECT username says"),
            },
            _ => Some(
                "it does not take client certificates as identity \
                 (use_identity_as_username), so its clients are who their CONNECT username says",
            ),
        },
    }
}

fn kind_name(kind: ListenerKind) -> &'static str {
    match kind {
        ListenerKind::Tcp => "tcp",
        ListenerKind::Tls => "tls",
        ListenerKind::Ws => "ws",
        ListenerKind::Wss => "wss",
        ListenerKind::Ssh => "ssh",
    }
}

/// `SHA256:` followed by the unpadded base64 of a 32-byte digest (43 characters).
fn is_sha256_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|digest| {
        digest.len() == 43
            && digest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    })
}

/// Checks an MQTT topic filter: non-empty, `#` only as the whole last level,
/// `+` only as a whole level (MQTT 3.1.1 §4.7; kept local so config does not
/// depend on the protocol crate).
pub(crate) fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter cannot be empty".to_owned());
    }
    if filter.len() > usize::from(u16::MAX) {
        return Err("a topic filter is at most 65535 bytes".to_owned());
    }
    if filter.contains('\0') {
        return Err(format!("topic filter `{filter}` contains a NUL character"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "invalid topic filter `{filter}`: `#` must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "invalid topic filter `{filter}`: `+` must be a whole level"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;

    #[test]
    fn broker_limits_on_what_clients_store_must_be_at_least_one() {
        let text = "[broker]\nmax_retained_messages = 0\nmax_retained_bytes = 0\n\
                    max_subscriptions_per_client = 0\n";
        let Err(ConfigError::Invalid { errors, .. }) = Config::from_toml_str(text, "t") else {
            panic!("zero limits accepted");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "broker.max_retained_messages",
                "broker.max_retained_bytes",
                "broker.max_subscriptions_per_client"
            ]
        );
        assert!(errors
            .iter()
            .all(|e| e.message.contains("must be at least 1")));
        let text = "[broker]\nmax_retained_messages = 3\nmax_retained_bytes = 100\n\
                    max_subscriptions_per_client = 2\n";
        let Ok(config) = Config::from_toml_str(text, "t") else {
            panic!("small limits refused");
        };
        assert_eq!(
            (
                config.broker.max_retained_messages,
                config.broker.max_retained_bytes,
                config.broker.max_subscriptions_per_client
            ),
            (3, 100, 2)
        );
    }

    #[test]
    fn topic_filters() {
        for good in ["a", "a/b", "#", "a/#", "+", "+/+/c", "a/+/#", "/", "$SYS/#"] {
            assert_eq!(check_filter(good), Ok(()), "{good}");
        }
        for bad in ["", "a#", "a/#/b", "#/a", "a+", "a/b+/c", "+a", "a\0b"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprints() {
        assert!(is_sha256_fingerprint(
            "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"
        ));
        assert!(!is_sha256_fingerprint("MD5:aa:bb"));
        assert!(!is_sha256_fingerprint("SHA256:short"));
    }
}
