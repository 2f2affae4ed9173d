//! The costed password check used at CONNECT: hashing off the reactor behind a
//! semaphore, a cache of recent successes, failure throttling, a minimum rejection time,
//! a dummy verification for unknown users, and rehash-to-argon2id of legacy entries.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::error::Error;
use crate::password::cache::VerifyCache;
use crate::password::file::PasswordFile;
use crate::password::hash::{Argon2Cost, StoredHash};
use crate::password::throttle::{Throttle, ThrottleSettings};

/// Tuning of the [`Verifier`].
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// Cost of new hashes (rehash on login, dummy hash for unknown users).
    pub cost: Argon2Cost,
    /// Verifications running at once (bounds CPU and argon2 memory).
    pub max_concurrent: usize,
    /// How long a successful verification is remembered.
    pub cache_ttl: Duration,
    /// Most cached successes.
    pub cache_capacity: usize,
    /// Every refusal takes at least this long, so its timing tells nothing.
    pub min_rejection_time: Duration,
    /// Failure slow-down.
    pub throttle: ThrottleSettings,
    /// Rewrite legacy entries as argon2id after a successful login (if the file is writable).
    pub rehash_on_login: bool,
    /// Longer user names are refused before they are hashed or remembered.
    pub max_username_bytes: usize,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        VerifierSettings {
            cost: Argon2Cost::default(),
            max_concurrent: 2,
            cache_ttl: Duration::from_secs(300),
            cache_capacity: 100_000,
            min_rejection_time: Duration::from_secs(1),
            throttle: ThrottleSettings::default(),
            rehash_on_login: true,
            max_username_bytes: 256,
        }
    }
}

impl VerifierSettings {
    /// Settings from `[auth]`: its argon2 cost and concurrency, other values default.
    pub fn from_config(auth: &mqgate_config::AuthConfig) -> VerifierSettings {
        VerifierSettings {
            cost: Argon2Cost::from(&auth.argon2),
            max_concurrent: auth.max_concurrent_verifications.max(1) as usize,
            max_username_bytes: auth.max_username_bytes as usize,
            ..VerifierSettings::default()
        }
    }
}

struct Inner {
    file: ArcSwap<PasswordFile>,
    path: Option<PathBuf>,
    settings: VerifierSettings,
    permits: Arc<Semaphore>,
    cache: Mutex<VerifyCache>,
    throttle: Mutex<Throttle>,
    /// Verified against for unknown users, so they cost as much as known ones.
    dummy: StoredHash,
    /// Serialises rewrites of the password file.
    write_lock: Mutex<()>,
    /// Set after a rewrite failed for lack of permission: logged once, not retried.
    read_only: AtomicBool,
    /// Hash computations run (including dummy ones), for metrics and tests.
    hashes_run: AtomicU64,
    /// Logins answered from the cache.
    cache_hits: AtomicU64,
}

/// Checks passwords against a password file. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("path", &self.inner.path)
            .field("users", &self.inner.file.load().len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over `file`; `path` (where it was read from) enables rehash-on-login
    /// rewrites and [`Verifier::reload`].
    pub fn new(
        file: PasswordFile,
        path: Option<PathBuf>,
        settings: VerifierSettings,
    ) -> Result<Verifier, Error> {
        settings.cost.validate()?;
        let mut random = [0u8; 32];
        SystemRandom::new()
            .fill(&mut random)
            .map_err(|_| Error::Hashing("no system randomness".into()))?;
        let dummy = StoredHash::new_argon2id(&random, settings.cost)?;
        Ok(Verifier {
            inner: Arc::new(Inner {
                file: ArcSwap::from_pointee(file),
                path,
                permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
                cache: Mutex::new(VerifyCache::new(
                    settings.cache_ttl,
                    settings.cache_capacity,
                )),
                throttle: Mutex::new(Throttle::new(settings.throttle)),
                settings,
                dummy,
                write_lock: Mutex::new(()),
                read_only: AtomicBool::new(false),
                hashes_run: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
            }),
        })
    }

    /// Loads `path` and builds a verifier over it.
    pub fn load(path: &Path, settings: VerifierSettings) -> Result<Verifier, Error> {
        let file = PasswordFile::load(path)?;
        Verifier::new(file, Some(path.to_path_buf()), settings)
    }

    /// Re-reads the password file. On error the current contents stay in force.
    pub fn reload(&self) -> Result<(), Error> {
        let Some(path) = &self.inner.path else {
            return Ok(());
        };
        let file = PasswordFile::load(path)?;
        info!(path = %path.display(), users = file.len(), "password file reloaded");
        self.inner.file.store(Arc::new(file));
        self.inner.cache.lock().clear();
        Ok(())
    }

    /// The longest user name this verifier checks (`max_username_bytes`).
    pub fn max_username_bytes(&self) -> usize {
        self.inner.settings.max_username_bytes
    }

    /// The current file contents.
    pub fn file(&self) -> Arc<PasswordFile> {
        self.inner.file.load_full()
    }

    /// Checks `user`/`password` for a client at `addr`. A refusal is returned only after
    /// the minimum rejection time and any failure delay have passed; other clients are
    /// never held up (the wait is this task's own sleep).
    pub async fn verify(&self, user: &str, password: &[u8], addr: IpAddr) -> bool {
        let inner = &self.inner;
        if user.len() > inner.settings.max_username_bytes {
            // Neither hashed nor remembered: only the address's failure counts.
            self.reject_without_check(None, addr).await;
            return false;
        }
        let start = tokio::time::Instant::now();
        let file = inner.file.load_full();
        let stored = file.get(user).cloned();
        let ok = match &stored {
            Some(hash) if inner.cache.lock().hit(user, hash, password, Instant::now()) => {
                inner.cache_hits.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(hash) => self.run_verification(hash.clone(), password).await,
            None => {
                // Unknown user: spend the same work so timing does not reveal it.
                self.run_verification(inner.dummy.clone(), password).await;
                false
            }
        };
        if ok {
            if let Some(hash) = stored {
                inner
                    .cache
                    .lock()
                    .insert(user, &hash, password, Instant::now());
                inner.throttle.lock().record_success(user);
                if inner.settings.rehash_on_login && hash.needs_rehash(inner.settings.cost) {
                    self.spawn_rehash(user.to_owned(), hash, password.to_vec());
                }
            }
            return true;
        }
        let delay = inner
            .throttle
            .lock()
            .record_failure(addr, Some(user), Instant::now());
        let wait = delay.max(inner.settings.min_rejection_time);
        tokio::time::sleep_until(start + wait).await;
        false
    }

    /// Waits for the minimum rejection time from `start` (for refusals decided without a
    /// password check, e.g. a missing password), and records the failure for `addr`.
    pub async fn reject_without_check(&self, user: Option<&str>, addr: IpAddr) {
        let start = tokio::time::Instant::now();
        // A name over the limit is never remembered (see `max_username_bytes`).
        let user = user.filter(|u| u.len() <= self.inner.settings.max_username_bytes);
        let delay = self
            .inner
            .throttle
            .lock()
            .record_failure(addr, user, Instant::now());
        let wait = delay.max(self.inner.settings.min_rejection_time);
        tokio::time::sleep_until(start + wait).await;
    }

    /// Password hashes computed so far (login checks, including dummy ones for unknown
    /// users; not rehashes).
    pub fn hashes_run(&self) -> u64 {
        self.inner.hashes_run.load(Ordering::Relaxed)
    }

    /// Logins accepted from the cache without hashing.
    pub fn cache_hits(&self) -> u64 {
        self.inner.cache_hits.load(Ordering::Relaxed)
    }

    async fn run_verification(&self, hash: StoredHash, password: &[u8]) -> bool {
        let Ok(permit) = self.inner.permits.clone().acquire_owned().await else {
            return false;
        };
        self.inner.hashes_run.fetch_add(1, Ordering::Relaxed);
        let password = password.to_vec();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash.verify(&password)
        });
        job.await.unwrap_or(false)
    }

    fn spawn_rehash(&self, user: String, old: StoredHash, password: Vec<u8>) {
        let Some(path) = self.inner.path.clone() else {
            return;
        };
        if self.inner.read_only.load(Ordering::Relaxed) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(permit) = this.inner.permits.clone().acquire_owned().await else {
                return;
            };
            let worker = this.clone();
            let result = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                worker.rehash(&path, &user, &old, &password)
            })
            .await;
            if let Ok(Err(e)) = result {
                warn!(error = %e, "could not rewrite the password file with an argon2id hash");
            }
        });
    }

    /// Replaces `user`'s entry by an argon2id hash if the file on disk still holds `old`.
    fn rehash(
        &self,
        path: &Path,
        user: &str,
        old: &StoredHash,
        password: &[u8],
    ) -> Result<(), Error> {
        let inner = &self.inner;
        let _guard = inner.write_lock.lock();
        let mut file = PasswordFile::load(path)?;
        if file.get(user) != Some(old) {
            return Ok(());
        }
        let new = StoredHash::new_argon2id(password, inner.settings.cost)?;
        let scheme = old.scheme();
        file.set(user, new);
        match file.save(path) {
            Ok(()) => {}
            Err(Error::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                inner.read_only.store(true, Ordering::Relaxed);
                info!(path = %path.display(), "password file not writable; legacy hashes are kept");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        info!(user, from = scheme, "password entry upgraded to argon2id");
        inner.file.store(Arc::new(file));
        Ok(())
    }
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
