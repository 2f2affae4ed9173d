//! The one error type of the certs crate: every variant names the problem and the path.

use std::path::PathBuf;

/// Everything that can go wrong while running the CA.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The certs directory holds no CA certificate or key.
    #[error("no CA in {}: run `mqgate certs init` first", dir.display())]
    NoCa {
        /// The certs directory that was searched.
        dir: PathBuf,
    },
    /// `init` found an existing CA and `--force` was not given.
    #[error("a CA already exists in {}: pass --force to replace it", dir.display())]
    CaExists {
        /// The certs directory holding the CA.
        dir: PathBuf,
    },
    /// A private key file could not be parsed.
    #[error("corrupt key {}: {source}", path.display())]
    CorruptKey {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: rcgen::Error,
    },
    /// The CA key does not belong to the CA certificate.
    #[error("CA key {} does not match CA certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// A certificate file could not be parsed.
    #[error("corrupt certificate {}: {reason}", path.display())]
    CorruptCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A CSR file is not a PEM or DER certificate signing request.
    #[error("cannot read CSR {}: {reason}", path.display())]
    CsrUnreadable {
        /// The CSR file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The CSR's self-signature does not verify against its public key.
    #[error("CSR {} does not verify: its signature is invalid", path.display())]
    CsrSignature {
        /// The CSR file.
        path: PathBuf,
    },
    /// The CSR asks for an extension this CA does not handle.
    #[error("CSR {} requests something this CA does not sign: {source}", path.display())]
    CsrUnsupported {
        /// The CSR file.
        path: PathBuf,
        /// What rcgen refused.
        #[source]
        source: rcgen::Error,
    },
    /// The CSR asks to become a CA (basicConstraints CA:true or a CA key usage).
    #[error("CSR {} asks for CA rights ({what}): refused", path.display())]
    CsrRequestsCa {
        /// The CSR file.
        path: PathBuf,
        /// The offending request.
        what: String,
    },
    /// The CSR asks for an extended key usage the chosen profile does not grant.
    #[error("CSR {} asks for extended key usage {eku}, which {profile} certificates do not get", path.display())]
    CsrEkuNotGranted {
        /// The CSR file.
        path: PathBuf,
        /// The requested usage.
        eku: String,
        /// The profile (device or server).
        profile: String,
    },
    /// A server CSR's SANs were not kept, which leaves the certificate without names.
    #[error("CSR {} is for a server certificate, which needs SANs, but its SANs ({sans}) are copied only with --keep-san: check them, then pass --keep-san", path.display())]
    CsrSansNotKept {
        /// The CSR file.
        path: PathBuf,
        /// The CSR's SANs, comma-separated.
        sans: String,
    },
    /// The CSR has no subject common name to name the certificate by.
    #[error("CSR {} has no subject CN", path.display())]
    CsrNoCommonName {
        /// The CSR file.
        path: PathBuf,
    },
    /// A certificate name (device id, server name) is not usable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A requested validity is not possible.
    #[error("invalid validity of {days} days: {reason}")]
    InvalidValidity {
        /// The requested number of days.
        days: u32,
        /// Why.
        reason: String,
    },
    /// A server certificate was requested without any DNS name or IP address.
    #[error("a server certificate needs at least one --dns name or --ip address")]
    NoServerNames,
    /// Another valid certificate already carries this subject.
    #[error("a valid certificate for {subject:?} already exists (serial {serial}): revoke it, renew it, or pass --force")]
    SubjectInUse {
        /// The subject CN.
        subject: String,
        /// The serial of the existing certificate.
        serial: String,
    },
    /// No certificate in the inventory matches an id or serial.
    #[error("no certificate matches {target:?} in {}", inventory.display())]
    NotFound {
        /// The id or serial asked for.
        target: String,
        /// The inventory file searched.
        inventory: PathBuf,
    },
    /// Every matching certificate is revoked already.
    #[error("certificate {serial} ({subject}) is already revoked")]
    AlreadyRevoked {
        /// The serial.
        serial: String,
        /// The subject CN.
        subject: String,
    },
    /// A revocation reason name is unknown.
    #[error("unknown revocation reason {0:?} (expected one of: unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn)")]
    UnknownReason(String),
    /// A key type name is unknown.
    #[error("unknown key type {0:?} (expected ecdsa-p256 or ed25519)")]
    UnknownKeyType(String),
    /// The inventory file could not be parsed.
    #[error("corrupt inventory {}: {source}", path.display())]
    CorruptInventory {
        /// The inventory file.
        path: PathBuf,
        /// What the TOML parser said.
        #[source]
        source: toml::de::Error,
    },
    /// An inventory entry is inconsistent (hand-edited or damaged).
    #[error("bad entry for serial {serial} in {}: {reason}", path.display())]
    BadInventoryEntry {
        /// The inventory file.
        path: PathBuf,
        /// The entry's serial.
        serial: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The inventory could not be serialised.
    #[error("cannot write inventory {}: {source}", path.display())]
    InventoryWrite {
        /// The inventory file.
        path: PathBuf,
        /// What the TOML serialiser said.
        #[source]
        source: toml::ser::Error,
    },
    /// rcgen refused to build a key, certificate or CRL.
    #[error("cannot create {what}: {source}")]
    Generate {
        /// What was being built.
        what: String,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl CertsError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CertsError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, CertsError>;
