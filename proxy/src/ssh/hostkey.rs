//! The server's Ed25519 host key: loaded from an OpenSSH private key file, or generated and
//! stored (mode 0600) on first start; its SHA256 fingerprint as `ssh-keygen -l` prints it.

use std::io::Write;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use tracing::info;

use super::SshError;

/// `SHA256:<base64>` fingerprint of a public key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Loads the host key at `path`, or creates a new Ed25519 key there (mode 0600, OpenSSH
/// format) if the file does not exist. An existing unreadable or invalid file is an error,
/// never silently replaced.
pub fn load_or_generate_host_key(path: &Path) -> Result<PrivateKey, SshError> {
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_openssh(text.as_bytes()).map_err(|e| SshError::Key {
            path: path.to_owned(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_ed25519(path)?;
            write_private_key(path, &key)?;
            info!(
                path = %path.display(),
                fingerprint = %fingerprint(key.public_key()),
                "generated a new SSH host key"
            );
            Ok(key)
        }
        Err(source) => Err(SshError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The public key in `path`: an OpenSSH private key file, or a public key (`.pub` /
/// authorized_keys line) file.
pub fn read_public_key(path: &Path) -> Result<PublicKey, SshError> {
    let text = std::fs::read_to_string(path).map_err(|source| SshError::Io {
        path: path.to_owned(),
        source,
    })?;
    if let Ok(private) = PrivateKey::from_openssh(text.as_bytes()) {
        return Ok(private.public_key().clone());
    }
    PublicKey::from_openssh(text.trim()).map_err(|e| SshError::Key {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn generate_ed25519(path: &Path) -> Result<PrivateKey, SshError> {
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| SshError::Key {
            path: path.to_owned(),
            message: "the system random generator failed".to_owned(),
        })?;
    Ok(PrivateKey::from(Ed25519Keypair::from_seed(&seed)))
}

fn write_private_key(path: &Path, key: &PrivateKey) -> Result<(), SshError> {
    let io_err = |source| SshError::Io {
        path: path.to_owned(),
        source,
    };
    let text = key.to_openssh(LineEnding::LF).map_err(|e| SshError::Key {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_loads_the_same_key_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        let first = load_or_generate_host_key(&path).unwrap();
        let second = load_or_generate_host_key(&path).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(first.algorithm(), russh::keys::Algorithm::Ed25519);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(fingerprint(first.public_key()).starts_with("SHA256:"));
        let public = read_public_key(&path).unwrap();
        assert_eq!(&public, first.public_key());
        let pub_path = dir.path().join("host_key.pub");
        std::fs::write(&pub_path, first.public_key().to_openssh().unwrap()).unwrap();
        assert_eq!(
            fingerprint(&read_public_key(&pub_path).unwrap()),
            fingerprint(&public)
        );
    }

    #[test]
    fn refuses_a_corrupt_key_file_instead_of_replacing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host_key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_generate_host_key(&path),
            Err(SshError::Key { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }
}
