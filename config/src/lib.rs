//! mqgate configuration: the TOML schema, its defaults, and validation with `file:line:column` errors.
//!
//! One TOML file configures the whole program. This crate holds only data types and
//! their checks; each crate takes the section it needs.
//!
//! # Public API
//!
//! - [`Config`]: the whole file. [`Config::default()`] is what `mqgate run` uses without
//!   a file (one TCP listener on 127.0.0.1:1883, persistence on in `./mqgate-data`,
//!   durability `sync`).
//! - [`Config::load`] reads a file, [`Config::from_toml_str`] parses text; **both also
//!   validate**, so a returned `Config` is always valid. [`Config::validate`] checks a
//!   `Config` built in code.
//! - [`ConfigError`]: `Read` (missing/unreadable file), `Parse` (TOML syntax or schema:
//!   unknown field, wrong type…, with line:column) and `Invalid` (every broken rule, one
//!   [`ValidationError`] each, naming the field such as `listener[1].bind`). Its `Display`
//!   prints one `file:line:column: message` line per error.
//! - [`DEFAULT_CONFIG_TOML`]: the annotated default file; it parses to `Config::default()`.
//! - Sections: [`ListenerConfig`] (`[[listener]]`), [`BrokerConfig`] (`[broker]`),
//!   [`PersistenceConfig`] (`[persistence]`), [`AuthConfig`] (`[auth]`), [`AclConfig`]
//!   (`[acl]`), [`ProxyConfig`] (`[proxy]`), [`BridgeConfig`] (`[[bridge]]`),
//!   [`TunnelConfig`] (`[[tunnel]]`), [`CertsConfig`] (`[certs]`), [`LogConfig`] (`[log]`).
//!
//! # Conventions
//!
//! - Every table rejects unknown keys, so a typo is an error, not a silently ignored line.
//! - Durations are strings of `<integer><unit>` groups, units `ms`, `s`, `m`, `h`, `d`:
//!   `"30s"`, `"5m"`, `"1h30m"` (see [`parse_duration`]).
//! - Sizes are integers in bytes (fields ending in `_bytes`, and `max_packet_size`).
//! - Listen addresses are `ip:port` ([`std::net::SocketAddr`]); remote addresses are
//!   `host:port` strings, checked by validation.
//! - File paths (certificates, keys, password and ACL files) are checked for presence of
//!   the setting only; the files are opened when the component using them starts.

mod addr;
mod auth;
mod bridge;
mod broker;
mod duration;
mod error;
mod listener;
mod path;
mod persistence;
mod secret;
mod sections;
mod tunnel;
mod validate;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;

pub use auth::{AclAccess, AclConfig, AclRule, Argon2Params, AuthConfig};
pub use bridge::{
    Backoff, BridgeConfig, BridgeQueueConfig, BridgeTlsConfig, BridgeTransport, Direction,
    ProtocolVersion, QueueOverflow, TopicRule,
};
pub use broker::{BrokerConfig, QueueFullPolicy, MQTT_MAX_PACKET_SIZE};
pub use duration::parse_duration;
pub use error::{ConfigError, Location, ValidationError};
pub use listener::{
    CertIdentity, ClientCertMode, CrlNextUpdate, ListenerConfig, ListenerKind, SshListenerConfig,
    TlsListenerConfig, DEFAULT_WS_PATH,
};
pub use persistence::{Durability, PersistenceConfig, DEFAULT_DATA_DIR};
pub use secret::Secret;
pub use sections::{CertsConfig, LogConfig, ProxyConfig, DEFAULT_CERTS_DIR};
pub use tunnel::TunnelConfig;

/// The annotated default configuration (`mqgate config default`); parses to [`Config::default()`].
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default.toml");

/// The port of the default listener (the IANA MQTT port).
pub const DEFAULT_MQTT_PORT: u16 = 1883;

/// The origin used in messages of [`Config::validate`], which has no file name.
const UNNAMED_ORIGIN: &str = "<config>";

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[[listener]]`: sockets devices connect to. Omitted = the default TCP listener.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// `[broker]`: limits of the local broker.
    pub broker: BrokerConfig,
    /// `[persistence]`: the on-disk store.
    pub persistence: PersistenceConfig,
    /// `[auth]`: client authentication.
    pub auth: AuthConfig,
    /// `[acl]`: topic access control.
    pub acl: AclConfig,
    /// `[proxy]`: present = standalone proxy mode in front of an existing broker.
    pub proxy: Option<ProxyConfig>,
    /// `[[bridge]]`: connections to remote brokers.
    #[serde(rename = "bridge")]
    pub bridges: Vec<BridgeConfig>,
    /// `[[tunnel]]`: outgoing SSH tunnels.
    #[serde(rename = "tunnel")]
    pub tunnels: Vec<TunnelConfig>,
    /// `[certs]`: the built-in CA's directory.
    pub certs: CertsConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // Loopback only: with anonymous access on, nothing off the machine can connect
            // until a configuration opens a LAN listener deliberately.
            listeners: vec![ListenerConfig::tcp(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                DEFAULT_MQTT_PORT,
            )))],
            broker: BrokerConfig::default(),
            persistence: PersistenceConfig::default(),
            auth: AuthConfig::default(),
            acl: AclConfig::default(),
            proxy: None,
            bridges: Vec::new(),
            tunnels: Vec::new(),
            certs: CertsConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates TOML `text`; `origin` (usually the file name) prefixes messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|error| ConfigError::Parse {
            origin: origin.to_owned(),
            location: error
                .span()
                .map(|span| Location::from_offset(text, span.start)),
            message: error.message().trim_end().to_owned(),
        })?;
        let issues = validate::check(&config);
        if issues.is_empty() {
            return Ok(config);
        }
        // The text parsed as TOML above, so this parse succeeds too; it keeps the spans.
        let document = toml_edit::ImDocument::parse(text).ok();
        let errors = issues
            .into_iter()
            .map(|issue| ValidationError {
                location: document
                    .as_ref()
                    .and_then(|doc| issue.path.span_in(doc))
                    .map(|span| Location::from_offset(text, span.start)),
                field: issue.path.to_string(),
                message: issue.message,
            })
            .collect();
        Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            errors,
        })
    }

    /// Checks the rules serde cannot (duplicate addresses, missing certificates, unknown
    /// tunnel names, invalid topic filters, zero limits…) and reports all violations.
    ///
    /// [`Config::load`] and [`Config::from_toml_str`] already call this; errors from here
    /// carry no line:column, only the field path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let errors: Vec<ValidationError> = validate::check(self)
            .into_iter()
            .map(|issue| ValidationError {
                field: issue.path.to_string(),
                message: issue.message,
                location: None,
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: UNNAMED_ORIGIN.to_owned(),
                errors,
            })
        }
    }
}
