//! Small top-level sections: `[proxy]`, `[certs]` and `[log]`.

use std::path::PathBuf;

use serde::Deserialize;

/// `[proxy]`: standalone proxy mode, in front of an existing broker instead of broker-lite.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The broker that authenticated, ACL-checked traffic is forwarded to (`host:port`).
    pub upstream: String,
}

/// `[certs]`: where the built-in CA keeps its files.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertsConfig {
    /// CA directory (CA key and certificate, issued certificates, CRL, inventory).
    pub dir: PathBuf,
}

/// The certificate directory used when none is configured.
pub const DEFAULT_CERTS_DIR: &str = "./mqgate-certs";

impl Default for CertsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_CERTS_DIR),
        }
    }
}

/// `[log]`: logging.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or directives
    /// such as `"info,mqgate_bridge=debug"`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}
