//! `[[listener]]`: where devices connect (tcp, tls, ws, wss, ssh).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// One `[[listener]]` table: a socket the gateway accepts MQTT clients on.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Transport spoken on this socket.
    pub kind: ListenerKind,
    /// Listen address `ip:port`; port 0 picks a free port (used by tests).
    #[serde(deserialize_with = "crate::addr::deserialize_socket_addr")]
    pub bind: SocketAddr,
    /// HTTP path of the WebSocket endpoint (`ws`/`wss` only); `None` means [`DEFAULT_WS_PATH`].
    pub path: Option<String>,
    /// TLS settings; required for `tls` and `wss`, refused for other kinds.
    pub tls: Option<TlsListenerConfig>,
    /// SSH settings; required for `ssh`, refused for other kinds.
    pub ssh: Option<SshListenerConfig>,
}

/// The WebSocket path used when a `ws`/`wss` listener sets no `path`.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

impl ListenerConfig {
    /// A plain TCP listener on `bind`.
    pub fn tcp(bind: SocketAddr) -> Self {
        Self {
            kind: ListenerKind::Tcp,
            bind,
            path: None,
            tls: None,
            ssh: None,
        }
    }

    /// The WebSocket path for a `ws`/`wss` listener (`path` or [`DEFAULT_WS_PATH`]).
    pub fn ws_path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_WS_PATH)
    }
}

/// The transport of a listener (`kind = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerKind {
    /// MQTT over plain TCP (conventionally port 1883).
    Tcp,
    /// MQTT over TLS (conventionally port 8883); needs `[listener.tls]`.
    Tls,
    /// MQTT over plain WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS; needs `[listener.tls]`.
    Wss,
    /// An SSH server whose `direct-tcpip` channels carry MQTT; needs `[listener.ssh]`.
    Ssh,
}

impl ListenerKind {
    /// Whether this kind terminates TLS and therefore needs a `[listener.tls]` table.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// Whether this kind serves WebSocket and therefore understands `path`.
    pub fn uses_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

/// `[listener.tls]`: server certificate and client-certificate policy of a TLS listener.
///
/// Paths are checked for presence by validation, not opened: the files are read when
/// the listener starts, so a missing file is reported then.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsListenerConfig {
    /// PEM certificate chain presented to clients (required).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (required).
    pub key: Option<PathBuf>,
    /// PEM CA bundle client certificates must chain to; required unless `client_cert = "none"`.
    pub client_ca: Option<PathBuf>,
    /// PEM certificate revocation list checked against client certificates.
    pub crl: Option<PathBuf>,
    /// What a CRL past its next-update time means (`crl_next_update = "..."`).
    pub crl_next_update: CrlNextUpdate,
    /// Whether clients must, may or must not present a certificate.
    pub client_cert: ClientCertMode,
    /// Use a field of the verified client certificate (see `identity`) as the MQTT
    /// username (mosquitto's option).
    pub use_identity_as_username: bool,
    /// Which field of the client certificate is the identity: the subject CN (default)
    /// or the first subject alternative name of one type. A certificate without that
    /// field is refused when `use_identity_as_username` is on.
    pub identity: CertIdentity,
    /// ALPN protocols offered, most preferred first (e.g. `["mqtt"]`); empty = no ALPN.
    pub alpn: Vec<String>,
}

/// What a TLS listener does with a CRL whose next-update time has passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrlNextUpdate {
    /// The CRL is stale: every client certificate is refused until a fresh CRL is
    /// loaded (SIGHUP), since a certificate revoked since then would pass.
    #[default]
    Enforce,
    /// Keep using the stale CRL (a gateway that cannot always reach its CA).
    Ignore,
}

/// Client-certificate policy of a TLS listener (`client_cert = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertMode {
    /// Do not ask for a client certificate.
    #[default]
    None,
    /// Ask; accept clients without one (they authenticate by password instead).
    Optional,
    /// Refuse the TLS handshake without a valid client certificate (mTLS).
    Required,
}

/// The client-certificate field that becomes the MQTT username (`identity = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertIdentity {
    /// The subject's common name (what mosquitto uses).
    #[default]
    Cn,
    /// The first DNS-name subject alternative name.
    SanDns,
    /// The first e-mail (rfc822Name) subject alternative name.
    SanEmail,
    /// The first URI subject alternative name (e.g. a SPIFFE ID).
    SanUri,
}

/// `[listener.ssh]`: the SSH server of an `ssh` listener (for legacy plaintext sensors).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshListenerConfig {
    /// Private host key file (OpenSSH format); required.
    pub host_key: Option<PathBuf>,
    /// Public keys allowed to log in: either a directory holding one OpenSSH
    /// `authorized_keys` file per user (`<dir>/<user>`), or one `authorized_keys` file in
    /// which the comment of each key line is the user name that key logs in as.
    pub authorized_keys: Option<PathBuf>,
    /// Also accept SSH password logins, checked against `auth.password_file`.
    pub allow_password: bool,
    /// Maximum simultaneous forwarded channels per SSH connection.
    pub max_channels_per_connection: u32,
    /// Time allowed from TCP accept to successful SSH authentication.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub auth_timeout: Duration,
    /// Failed authentication attempts before the connection is closed.
    pub max_auth_attempts: u32,
    /// `host:port` targets of a direct-tcpip channel that mean "the MQTT service" (served
    /// in-process by the broker); a channel to any other target is refused.
    pub mqtt_targets: Vec<String>,
    /// An SSH connection is closed once it has had no MQTT channel open for this long
    /// (dead clients are found by `keepalive`).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub idle_timeout: Duration,
    /// Interval of server keep-alive requests to a silent client; three unanswered ones
    /// close the connection.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub keepalive: Duration,
    /// The SSH user is the MQTT identity of every connection in the tunnel. `false`
    /// (default): a CONNECT that claims another user name is refused; `true`: the SSH
    /// user silently replaces it (for devices whose firmware sends a fixed name).
    pub replace_connect_username: bool,
}

impl Default for SshListenerConfig {
    fn default() -> Self {
        Self {
            host_key: None,
            authorized_keys: None,
            allow_password: false,
            // A sensor needs one MQTT channel; a few more allow reconnects overlapping
            // with a not-yet-closed channel without letting one key open hundreds.
            max_channels_per_connection: 4,
            auth_timeout: Duration::from_secs(30),
            max_auth_attempts: 3,
            // What `ssh -L 1883:localhost:1883` and `-L 1883:127.0.0.1:1883` ask for.
            mqtt_targets: vec!["localhost:1883".to_owned(), "127.0.0.1:1883".to_owned()],
            // A sensor publishes at least every keep-alive (minutes); 10 min is OpenSSH-like.
            idle_timeout: Duration::from_secs(600),
            keepalive: Duration::from_secs(30),
            replace_connect_username: false,
        }
    }
}
