//! Slows repeated login failures down, per peer address and per user name: an
//! exponential delay with a cap, forgotten after a quiet period. Pure bookkeeping; the
//! verifier sleeps the returned delay before refusing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Tuning of the failure delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures without extra delay (a device with a typo is not punished at once).
    pub free_failures: u32,
    /// Delay after the first failure beyond the free ones; doubles per further failure.
    pub base: Duration,
    /// Upper bound of the delay.
    pub cap: Duration,
    /// A key with no failure for this long starts from zero again.
    pub forget_after: Duration,
    /// Most keys remembered, so random user names cannot grow the table without bound.
    pub max_keys: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            free_failures: 2,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            forget_after: Duration::from_secs(15 * 60),
            max_keys: 65_536,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Failure counters per address and per user.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    records: HashMap<Key, Record>,
}

impl Throttle {
    /// An empty throttle.
    pub fn new(settings: ThrottleSettings) -> Throttle {
        Throttle {
            settings,
            records: HashMap::new(),
        }
    }

    fn bump(&mut self, key: Key, now: Instant) -> u32 {
        let forget = self.settings.forget_after;
        if !self.records.contains_key(&key) && self.records.len() >= self.settings.max_keys {
            self.records
                .retain(|_, r| now.saturating_duration_since(r.last) < forget);
            if self.records.len() >= self.settings.max_keys {
                // Table full of live entries: count this one as a first failure.
                return 1;
            }
        }
        let r = self.records.entry(key).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(r.last) >= forget {
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        r.failures
    }

    /// Records a failed login from `addr` for `user` and returns how long to wait before
    /// refusing it: the larger of the per-address and per-user delays.
    pub fn record_failure(&mut self, addr: IpAddr, user: Option<&str>, now: Instant) -> Duration {
        let mut n = self.bump(Key::Addr(addr), now);
        if let Some(u) = user {
            n = n.max(self.bump(Key::User(u.to_owned()), now));
        }
        self.delay_for(n)
    }

    /// A successful login clears the user's counter (not the address's, so one valid
    /// account does not reset a guessing peer's penalty).
    pub fn record_success(&mut self, user: &str) {
        self.records.remove(&Key::User(user.to_owned()));
    }

    /// The delay after `failures` consecutive failures.
    pub fn delay_for(&self, failures: u32) -> Duration {
        let s = &self.settings;
        if failures <= s.free_failures {
            return Duration::ZERO;
        }
        let exp = (failures - s.free_failures - 1).min(31);
        s.base.saturating_mul(1u32 << exp).min(s.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Throttle {
        Throttle::new(ThrottleSettings {
            free_failures: 1,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            forget_after: Duration::from_secs(60),
            max_keys: 4,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let mut th = t();
        let now = Instant::now();
        let d: Vec<u128> = (0..7)
            .map(|_| th.record_failure(A, Some("u"), now).as_millis())
            .collect();
        assert_eq!(d, [0, 100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn per_user_counts_across_addresses() {
        let mut th = t();
        let now = Instant::now();
        th.record_failure(A, Some("victim"), now);
        th.record_failure(A, Some("victim"), now);
        // A new address guessing the same user is slowed down at once.
        assert_eq!(th.record_failure(B, Some("victim"), now).as_millis(), 200);
        // Another user from B: B's own count is 2.
        assert_eq!(th.record_failure(B, Some("other"), now).as_millis(), 100);
    }

    #[test]
    fn success_clears_user_and_quiet_period_forgets() {
        let mut th = t();
        let now = Instant::now();
        for _ in 0..3 {
            th.record_failure(A, Some("u"), now);
        }
        th.record_success("u");
        // The address still remembers 3 failures.
        assert_eq!(th.record_failure(A, Some("u"), now).as_millis(), 400);
        let later = now + Duration::from_secs(61);
        assert_eq!(th.record_failure(A, Some("u"), later), Duration::ZERO);
    }

    #[test]
    fn table_is_bounded() {
        let mut th = t();
        let now = Instant::now();
        for i in 0..100 {
            th.record_failure(A, Some(&format!("user{i}")), now);
        }
        assert!(th.records.len() <= 4);
    }
}
