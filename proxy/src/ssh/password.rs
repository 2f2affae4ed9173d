//! SSH password logins checked by the proxy's password file: the same argon2 verifier, with
//! its rate limiting, minimum rejection time and cache, as MQTT CONNECT passwords.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::Security;

use super::SshPasswordVerifier;

impl SshPasswordVerifier for Security {
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            match self.verifier() {
                Some(verifier) => verifier.verify(user, password.as_bytes(), peer.ip()).await,
                None => false,
            }
        })
    }

    fn still_known(&self, user: &str) -> bool {
        self.passwords()
            .is_some_and(|file| file.get(user).is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::password::{Argon2Cost, PasswordFile, StoredHash, VerifierSettings};
    use crate::Security;

    use super::SshPasswordVerifier;

    #[tokio::test]
    async fn checks_the_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let cost = Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let mut file = PasswordFile::parse("", &path).unwrap();
        file.set(
            "sensor7",
            StoredHash::new_argon2id(b"s3cret", cost).unwrap(),
        );
        file.save(&path).unwrap();
        let settings = VerifierSettings {
            cost,
            min_rejection_time: Duration::ZERO,
            ..Default::default()
        };
        let concrete = Arc::new(Security::new(Some(path.clone()), None, false, settings).unwrap());
        let security: Arc<dyn SshPasswordVerifier> = concrete.clone();
        let peer = "127.0.0.1:5000".parse().unwrap();
        assert!(security.verify("sensor7", "s3cret", peer).await);
        assert!(!security.verify("sensor7", "wrong", peer).await);
        assert!(!security.verify("nobody", "s3cret", peer).await);
        // A user removed from the file (and reloaded) is no longer known: an SSH
        // connection that logged in as it opens no new MQTT channel.
        assert!(security.still_known("sensor7"));
        assert!(!security.still_known("nobody"));
        PasswordFile::parse("", &path).unwrap().save(&path).unwrap();
        assert!(security.still_known("sensor7"), "not reloaded yet");
        concrete.reload().unwrap();
        assert!(!security.still_known("sensor7"));
    }
}
