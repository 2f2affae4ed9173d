//! The error type of the SSH module.

use std::path::PathBuf;

/// What can go wrong setting up or running an SSH server or tunnel.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// A key or authorized_keys/known_hosts file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key file is not a valid OpenSSH key.
    #[error("{path}: not a usable OpenSSH key: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What the key parser said.
        message: String,
    },
    /// A `host:port` setting could not be used.
    #[error("invalid address `{0}`: expected host:port")]
    Address(String),
    /// The configuration misses something the server or tunnel needs.
    #[error("{0}")]
    Config(String),
    /// An SSH protocol or transport failure.
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
    /// The server refused our public key.
    #[error("the SSH server refused public-key authentication for user `{0}`")]
    AuthRefused(String),
}
