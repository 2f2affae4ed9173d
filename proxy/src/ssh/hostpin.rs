//! Pinning the SSH server's host key for a tunnel: an OpenSSH `known_hosts` file (plain or
//! hashed host names, `[host]:port` for non-22 ports) and/or a `SHA256:` fingerprint. Every
//! configured pin must match; a mismatch is logged at ERROR with both fingerprints.

use std::path::PathBuf;

use russh::keys::known_hosts::known_host_keys_path;
use russh::keys::PublicKey;
use tracing::error;

use super::hostkey::fingerprint;

/// The expected host key(s) of one SSH server.
#[derive(Debug, Clone)]
pub(crate) struct HostKeyPin {
    /// Tunnel name, for log lines.
    pub tunnel: String,
    /// Host name as written in `server` (what known_hosts lines name).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// known_hosts file to check, if configured.
    pub known_hosts: Option<PathBuf>,
    /// Expected `SHA256:...` fingerprint, if configured.
    pub fingerprint: Option<String>,
}

impl HostKeyPin {
    /// Whether `key` is the pinned key; logs an ERROR naming what was seen and expected if not.
    pub fn check(&self, key: &PublicKey) -> bool {
        let seen = fingerprint(key);
        if let Some(expected) = &self.fingerprint {
            if *expected != seen {
                error!(
                    tunnel = %self.tunnel,
                    server = %format!("{}:{}", self.host, self.port),
                    seen = %seen,
                    expected = %expected,
                    "SSH host key does not match the configured fingerprint: refusing the server (possible man-in-the-middle)"
                );
                return false;
            }
        }
        if let Some(path) = &self.known_hosts {
            let known = match known_host_keys_path(&self.host, self.port, path) {
                Ok(known) => known,
                Err(e) => {
                    error!(tunnel = %self.tunnel, path = %path.display(), error = %e, "cannot read known_hosts: refusing the server");
                    return false;
                }
            };
            if !known.iter().any(|(_, k)| k.key_data() == key.key_data()) {
                let expected: Vec<String> = known.iter().map(|(_, k)| fingerprint(k)).collect();
                if expected.is_empty() {
                    error!(
                        tunnel = %self.tunnel,
                        server = %format!("{}:{}", self.host, self.port),
                        seen = %seen,
                        path = %path.display(),
                        "SSH server is not in known_hosts: refusing it (add its key to trust it)"
                    );
                } else {
                    error!(
                        tunnel = %self.tunnel,
                        server = %format!("{}:{}", self.host, self.port),
                        seen = %seen,
                        expected = %expected.join(","),
                        path = %path.display(),
                        "SSH host key CHANGED: does not match known_hosts, refusing the server (possible man-in-the-middle)"
                    );
                }
                return false;
            }
        }
        true
    }
}
