//! A short-lived cache of successful verifications, so a reconnect storm does not pay
//! one argon2 run per device. Entries are keyed by an HMAC (with a per-process random
//! key) of user, stored hash and password: the password itself is never kept, and a
//! changed hash (rehash, reload) misses the cache.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ring::hmac;
use ring::rand::SystemRandom;

use crate::password::hash::StoredHash;

/// Cache of recent successful verifications.
pub struct VerifyCache {
    key: hmac::Key,
    ttl: Duration,
    capacity: usize,
    entries: HashMap<[u8; 32], Instant>,
}

impl std::fmt::Debug for VerifyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl VerifyCache {
    /// A cache holding up to `capacity` entries for `ttl` each (`ttl` zero disables it).
    pub fn new(ttl: Duration, capacity: usize) -> VerifyCache {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            // Without randomness fall back to a key nobody can predict across restarts
            // either way: the process start time; the cache stays correct, only weaker.
            .unwrap_or_else(|_| {
                let seed = format!("{:?}", Instant::now());
                hmac::Key::new(hmac::HMAC_SHA256, seed.as_bytes())
            });
        VerifyCache {
            key,
            ttl,
            capacity,
            entries: HashMap::new(),
        }
    }

    fn digest(&self, user: &str, hash: &StoredHash, password: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        let encoded = hash.encode();
        // Length prefixes keep (user, hash, password) triples unambiguous.
        for part in [user.as_bytes(), encoded.as_bytes(), password] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether this exact (user, hash, password) verified successfully within the TTL.
    pub fn hit(&self, user: &str, hash: &StoredHash, password: &[u8], now: Instant) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let d = self.digest(user, hash, password);
        self.entries.get(&d).is_some_and(|&expiry| now < expiry)
    }

    /// Remembers a successful verification.
    pub fn insert(&mut self, user: &str, hash: &StoredHash, password: &[u8], now: Instant) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, &mut expiry| now < expiry);
            if self.entries.len() >= self.capacity {
                return;
            }
        }
        let d = self.digest(user, hash, password);
        self.entries.insert(d, now + self.ttl);
    }

    /// Forgets everything (after a password-file reload).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIX: &str = "$6$YWJjZGVmZ2hpamts$6i93SkOMf6fc41fymirTPrapd0oWBaT1tTlLItfP4seDAu6aexpm5rgu5nXJd6844jBYqiqRNRizDJXvI7dzHA==";
    const SEVEN: &str = "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==";

    #[test]
    fn hit_requires_same_user_hash_password_within_ttl() {
        let h = StoredHash::parse(SIX).unwrap();
        let h2 = StoredHash::parse(SEVEN).unwrap();
        let mut c = VerifyCache::new(Duration::from_secs(300), 10);
        let now = Instant::now();
        assert!(!c.hit("u", &h, b"secret", now));
        c.insert("u", &h, b"secret", now);
        assert!(c.hit("u", &h, b"secret", now));
        assert!(!c.hit("u", &h, b"secreT", now));
        assert!(!c.hit("v", &h, b"secret", now));
        assert!(!c.hit("u", &h2, b"secret", now), "a new hash misses");
        assert!(!c.hit("u", &h, b"secret", now + Duration::from_secs(301)));
        c.clear();
        assert!(!c.hit("u", &h, b"secret", now));
    }

    #[test]
    fn bounded_and_disableable() {
        let h = StoredHash::parse(SIX).unwrap();
        let now = Instant::now();
        let mut c = VerifyCache::new(Duration::from_secs(1), 2);
        for u in ["a", "b", "c"] {
            c.insert(u, &h, b"p", now);
        }
        assert_eq!(c.entries.len(), 2);
        // Once the first entries expired, there is room again.
        c.insert("c", &h, b"p", now + Duration::from_secs(2));
        assert!(c.hit("c", &h, b"p", now + Duration::from_secs(2)));
        let mut off = VerifyCache::new(Duration::ZERO, 10);
        off.insert("a", &h, b"p", now);
        assert!(!off.hit("a", &h, b"p", now));
    }
}
