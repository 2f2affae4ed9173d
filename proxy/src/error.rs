//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the security layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a password file is malformed.
    #[error("{path}:{line}: {reason}")]
    PasswordFile {
        /// The password file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored password hash cannot be decoded.
    #[error("invalid password hash: {0}")]
    BadHash(&'static str),
    /// Argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    Argon2Params(String),
    /// Hashing failed (argon2 internal error or no randomness).
    #[error("hashing failed: {0}")]
    Hashing(String),
    /// A line of an ACL file is malformed.
    #[error("{path}:{line}: {reason}")]
    AclFile {
        /// The ACL file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A user name is not acceptable in a password file.
    #[error("invalid user name: {0}")]
    BadUserName(&'static str),
    /// `delete` of a user that is not in the file.
    #[error("no such user: {0}")]
    NoSuchUser(String),
    /// Reading a password from the terminal or stdin failed, or it was empty.
    #[error("cannot read password: {0}")]
    PasswordInput(String),
    /// TLS configuration (certificate, key, CA bundle, CRL) is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// An MQTT packet could not be decoded or encoded (standalone proxy).
    #[error("MQTT: {0}")]
    Protocol(#[from] mqgate_protocol::error::Error),
    /// A socket operation failed (standalone proxy).
    #[error("network: {0}")]
    Network(#[from] std::io::Error),
    /// The upstream broker could not be reached or answered wrongly.
    #[error("upstream {addr}: {reason}")]
    Upstream {
        /// The configured upstream address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// A client broke the MQTT session rules (standalone proxy).
    #[error("client protocol violation: {0}")]
    ClientProtocol(&'static str),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
