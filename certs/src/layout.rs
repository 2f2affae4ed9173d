//! Where the CA keeps its files inside the certs directory.

use std::path::{Path, PathBuf};

use crate::profile::Profile;

/// The certs directory and the names of the files in it:
///
/// ```text
/// ca.pem  ca.key (0600)  inventory.toml  crl.pem
/// issued/<SERIAL>.pem                       every certificate ever issued
/// devices/<ID>.pem  <ID>.key  <ID>-chain.pem
/// servers/<NAME>.pem  <NAME>.key  <NAME>-chain.pem
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertsDir {
    root: PathBuf,
}

/// The files written for one issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPaths {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, 0600), when the CA generated it.
    pub key: PathBuf,
    /// The certificate followed by the CA certificate (PEM).
    pub chain: PathBuf,
}

impl CertsDir {
    /// A certs directory rooted at `root` (not created until something is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// The CA private key.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }

    /// The inventory of issued certificates.
    pub fn inventory(&self) -> PathBuf {
        self.root.join("inventory.toml")
    }

    /// The certificate revocation list.
    pub fn crl(&self) -> PathBuf {
        self.root.join("crl.pem")
    }

    /// Archive path (relative to the root) of the certificate with this serial.
    pub(crate) fn issued_rel(serial_hex: &str) -> String {
        format!("issued/{serial_hex}.pem")
    }

    /// Output files of the certificate named `name` under `profile`.
    pub fn outputs(&self, profile: Profile, name: &str) -> OutputPaths {
        let dir = self.root.join(profile.dir_name());
        OutputPaths {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            chain: dir.join(format!("{name}-chain.pem")),
        }
    }

    /// Directories that hold private keys of issued certificates.
    pub(crate) fn key_dirs(&self) -> [PathBuf; 2] {
        [
            self.root.join(Profile::Device.dir_name()),
            self.root.join(Profile::Server.dir_name()),
        ]
    }
}
