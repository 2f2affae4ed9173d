//! `[[tunnel]]`: outgoing SSH tunnels (what autossh -L did), used by bridges or local programs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::bridge::Backoff;

/// One `[[tunnel]]` table: a kept-alive SSH connection forwarding to `remote`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// Unique name (letters, digits, `-`, `_`, `.`), referenced by `bridge.tunnel`.
    pub name: String,
    /// Optional local listen address `ip:port` forwarded through the tunnel (like `ssh -L`);
    /// bridges use the tunnel in-process and do not need it.
    #[serde(default, deserialize_with = "crate::addr::deserialize_opt_socket_addr")]
    pub listen: Option<SocketAddr>,
    /// SSH server `host:port`.
    pub server: String,
    /// SSH user name.
    pub user: String,
    /// Private key file for public-key authentication.
    pub key_file: PathBuf,
    /// OpenSSH `known_hosts` file to verify the server key against.
    pub known_hosts: Option<PathBuf>,
    /// Expected server key fingerprint, `SHA256:<base64>` as printed by `ssh-keygen -l`.
    pub host_key_fingerprint: Option<String>,
    /// Target `host:port` as seen from the SSH server (e.g. the cloud broker).
    pub remote: String,
    /// Interval of SSH keep-alive requests; a dead server is detected after three misses.
    #[serde(
        default = "default_keepalive",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub keepalive: Duration,
    /// Delay between reconnect attempts.
    #[serde(default)]
    pub reconnect: Backoff,
    /// How long a local connection arriving while the tunnel is down waits for it to
    /// come back before it is closed.
    #[serde(
        default = "default_connect_wait",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub connect_wait: Duration,
}

fn default_keepalive() -> Duration {
    // autossh users set ServerAliveInterval 15-60 s; 30 s detects a dead link in 90 s.
    Duration::from_secs(30)
}

fn default_connect_wait() -> Duration {
    // Longer than one reconnect at the default 1 s initial backoff, shorter than the
    // 30-60 s an MQTT client waits for CONNACK.
    Duration::from_secs(10)
}
