//! Loop prevention on the local side for MQTT 3.1.1 local connections (no No Local):
//! remembers what the bridge itself published locally, so that the copy the local broker
//! delivers back to the bridge's `out` subscription is not forwarded upstream again.
//!
//! Entries are (topic, payload) hashes kept for `WINDOW` or until `CAPACITY` newer ones
//! push them out; each local delivery consumes one matching entry. A device publishing
//! the very same payload on the very same topic within the window is, in the rare case
//! both coincide, taken for an echo: the price of not having No Local.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
const CAPACITY: usize = 65_536;

/// The window of recent inbound publishes.
#[derive(Debug, Default)]
pub struct EchoGuard {
    /// Every note, oldest first, for expiry.
    order: VecDeque<(u64, Instant)>,
    /// Per key, the times of its notes not consumed yet, oldest first.
    live: HashMap<u64, VecDeque<Instant>>,
}

fn key(topic: &str, payload: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

impl EchoGuard {
    /// The bridge published `payload` on local `topic`.
    pub fn note(&mut self, topic: &str, payload: &[u8], now: Instant) {
        self.expire(now);
        if self.order.len() >= CAPACITY {
            self.pop();
        }
        let k = key(topic, payload);
        self.order.push_back((k, now));
        self.live.entry(k).or_default().push_back(now);
    }

    /// Whether a local delivery is the echo of something the bridge published (consumes it).
    pub fn take(&mut self, topic: &str, payload: &[u8], now: Instant) -> bool {
        self.expire(now);
        let k = key(topic, payload);
        let Some(times) = self.live.get_mut(&k) else {
            return false;
        };
        times.pop_front();
        if times.is_empty() {
            self.live.remove(&k);
        }
        true
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > WINDOW)
        {
            self.pop();
        }
    }

    /// Forgets the oldest note, unless it was consumed already.
    fn pop(&mut self) {
        let Some((k, at)) = self.order.pop_front() else {
            return;
        };
        if let Some(times) = self.live.get_mut(&k) {
            if times.front().is_some_and(|t| *t <= at) {
                times.pop_front();
            }
            if times.is_empty() {
                self.live.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_recognised_once_each_and_expire() {
        let t = Instant::now();
        let mut g = EchoGuard::default();
        g.note("a", b"1", t);
        g.note("a", b"1", t);
        assert!(!g.take("a", b"2", t));
        assert!(!g.take("b", b"1", t));
        assert!(g.take("a", b"1", t));
        assert!(g.take("a", b"1", t));
        assert!(!g.take("a", b"1", t));
        g.note("a", b"1", t);
        assert!(!g.take("a", b"1", t + WINDOW + Duration::from_secs(1)));
        // A consumed note expiring does not take a newer one with it.
        let mut g = EchoGuard::default();
        g.note("a", b"1", t);
        assert!(g.take("a", b"1", t));
        g.note("a", b"1", t + Duration::from_secs(30));
        assert!(g.take("a", b"1", t + Duration::from_secs(61)));
    }
}
