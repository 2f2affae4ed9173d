//! Which public key may log in as which user: a directory of per-user OpenSSH
//! `authorized_keys` files (`<dir>/<user>`), or one `authorized_keys` file in which each
//! key line's comment is the user name that key logs in as. Files are re-read at every
//! login attempt, so edits take effect without a restart.

use std::path::{Path, PathBuf};

use russh::keys::ssh_key::authorized_keys::AuthorizedKeys as Parser;
use russh::keys::PublicKey;
use tracing::warn;

use super::SshError;

/// The public keys allowed to log in, per user.
#[derive(Debug, Clone)]
pub struct AuthorizedKeys {
    path: PathBuf,
}

impl AuthorizedKeys {
    /// Keys from `path`: a directory (one file per user) or a single file (comment = user).
    pub fn new(path: impl Into<PathBuf>) -> AuthorizedKeys {
        AuthorizedKeys { path: path.into() }
    }

    /// Whether the key `openssh` (`ssh-ed25519 AAAA...`) may still log in as `user`,
    /// reading the files now, synchronously (for a reload, which checks the SSH clients
    /// still connected). A key that does not parse, or files that cannot be read, count
    /// as withdrawn.
    pub fn still_authorized(&self, user: &str, openssh: &str) -> bool {
        let Ok(key) = PublicKey::from_openssh(openssh) else {
            return false;
        };
        let read = |path: &Path| std::fs::read_to_string(path).ok();
        if self.path.is_dir() {
            if !is_plain_user_name(user) {
                return false;
            }
            let file = self.path.join(user);
            read(&file).is_some_and(|text| {
                entries(&file, &text).any(|(_, entry)| entry.key_data() == key.key_data())
            })
        } else {
            read(&self.path).is_some_and(|text| {
                entries(&self.path, &text)
                    .any(|(comment, entry)| comment == user && entry.key_data() == key.key_data())
            })
        }
    }

    /// Whether `key` may log in as `user`. A missing per-user file means "no keys".
    pub async fn is_authorized(&self, user: &str, key: &PublicKey) -> Result<bool, SshError> {
        let metadata = tokio::fs::metadata(&self.path)
            .await
            .map_err(|source| SshError::Io {
                path: self.path.clone(),
                source,
            })?;
        if metadata.is_dir() {
            if !is_plain_user_name(user) {
                return Ok(false);
            }
            let file = self.path.join(user);
            let Some(text) = read_optional(&file).await? else {
                return Ok(false);
            };
            let found =
                entries(&file, &text).any(|(_, entry_key)| entry_key.key_data() == key.key_data());
            Ok(found)
        } else {
            let Some(text) = read_optional(&self.path).await? else {
                return Ok(false);
            };
            let found = entries(&self.path, &text).any(|(comment, entry_key)| {
                comment == user && entry_key.key_data() == key.key_data()
            });
            Ok(found)
        }
    }
}

/// A user name that is safe as a file name: letters, digits, `.`, `_`, `-`, `@`, not
/// starting with `.`.
fn is_plain_user_name(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('.')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

async fn read_optional(path: &Path) -> Result<Option<String>, SshError> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SshError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The valid `(comment, key)` lines of an authorized_keys text; invalid lines are logged
/// and skipped (one bad line must not lock every other key out).
fn entries<'a>(path: &'a Path, text: &'a str) -> impl Iterator<Item = (String, PublicKey)> + 'a {
    Parser::new(text).enumerate().filter_map(move |(index, entry)| match entry {
        Ok(entry) => {
            let key = entry.public_key().clone();
            let comment: &str = key.comment().as_ref();
            Some((comment.trim().to_owned(), key))
        }
        Err(e) => {
            warn!(path = %path.display(), entry = index + 1, error = %e, "skipping an invalid authorized_keys line");
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    use russh::keys::PrivateKey;

    fn key(seed: u8) -> PublicKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
            .public_key()
            .clone()
    }

    fn line(key: &PublicKey, comment: &str) -> String {
        let mut key = key.clone();
        key.set_comment(comment);
        key.to_openssh().unwrap()
    }

    #[tokio::test]
    async fn single_file_maps_comment_to_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authorized_keys");
        let text = format!(
            "# sensors\n{}\ngarbage line\n{}\n",
            line(&key(1), "sensor7"),
            line(&key(2), "sensor8")
        );
        std::fs::write(&path, text).unwrap();
        let keys = AuthorizedKeys::new(&path);
        assert!(keys.is_authorized("sensor7", &key(1)).await.unwrap());
        assert!(keys.is_authorized("sensor8", &key(2)).await.unwrap());
        assert!(!keys.is_authorized("sensor8", &key(1)).await.unwrap());
        assert!(!keys.is_authorized("sensor9", &key(1)).await.unwrap());
        assert!(!keys.is_authorized("sensor7", &key(3)).await.unwrap());
    }

    #[tokio::test]
    async fn directory_has_one_file_per_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sensor7"), line(&key(1), "whatever")).unwrap();
        let keys = AuthorizedKeys::new(dir.path());
        assert!(keys.is_authorized("sensor7", &key(1)).await.unwrap());
        assert!(!keys.is_authorized("sensor7", &key(2)).await.unwrap());
        assert!(!keys.is_authorized("sensor8", &key(1)).await.unwrap());
        assert!(!keys.is_authorized("../sensor7", &key(1)).await.unwrap());
        assert!(!keys.is_authorized(".", &key(1)).await.unwrap());
    }
}
