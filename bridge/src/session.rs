//! Sans-IO pieces of an MQTT client session: packet identifiers, the inflight window and
//! keep-alive bookkeeping. The async drivers (the upstream and local links) feed
//! them events and act on what they answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The upstream packet identifier of queue entry `seq`.
///
/// Deterministic, so that a QoS 2 message resent after a reconnect or a restart carries the
/// same identifier and a persistent upstream session recognises it (no duplicate).
pub fn pkid_for(seq: u64) -> u16 {
    // seq % 65535 < 65535, so the cast is lossless and the result is 1..=65535.
    (seq % 65535) as u16 + 1
}

/// What the QoS 1/2 exchange of an inflight message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// QoS 1: PUBACK.
    PubAck,
    /// QoS 2: PUBREC.
    PubRec,
    /// QoS 2: PUBCOMP (PUBREL sent).
    PubComp,
}

/// One message sent and not yet acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflightEntry {
    /// Its queue sequence number.
    pub seq: u64,
    /// What it waits for.
    pub stage: Stage,
    /// When its last packet was sent.
    pub sent_at: Instant,
}

/// The window of messages sent and not yet acknowledged, by packet identifier.
#[derive(Debug)]
pub struct Inflight {
    entries: HashMap<u16, InflightEntry>,
    capacity: usize,
}

impl Inflight {
    /// An empty window of `capacity` (at least 1).
    pub fn new(capacity: usize) -> Inflight {
        Inflight {
            entries: HashMap::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Whether another message may be sent.
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.capacity
    }

    /// Whether `pkid` is in use.
    pub fn contains(&self, pkid: u16) -> bool {
        self.entries.contains_key(&pkid)
    }

    /// Records a sent message.
    pub fn insert(&mut self, pkid: u16, entry: InflightEntry) {
        self.entries.insert(pkid, entry);
    }

    /// The entry of `pkid`, if it waits for `stage`.
    pub fn take(&mut self, pkid: u16, stage: Stage) -> Option<InflightEntry> {
        match self.entries.get(&pkid) {
            Some(e) if e.stage == stage => self.entries.remove(&pkid),
            _ => None,
        }
    }

    /// When the longest-waiting packet was sent.
    pub fn oldest(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.sent_at).min()
    }

    /// Number of messages in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What keep-alive asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing to do.
    Idle,
    /// Send PINGREQ.
    Ping,
    /// Nothing received for 1.5 × keep-alive: the connection is dead.
    Dead,
}

/// Client-side keep-alive: ping when idle, declare the peer dead when silent.
#[derive(Debug)]
pub struct Keepalive {
    interval: Duration,
    last_sent: Instant,
    last_received: Instant,
    ping_outstanding: bool,
}

impl Keepalive {
    /// Starts counting at `now`; an `interval` of zero disables keep-alive.
    pub fn new(interval: Duration, now: Instant) -> Keepalive {
        Keepalive {
            interval,
            last_sent: now,
            last_received: now,
            ping_outstanding: false,
        }
    }

    /// A packet was sent.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// A packet was received.
    pub fn received(&mut self, now: Instant) {
        self.last_received = now;
        self.ping_outstanding = false;
    }

    /// When the peer counts as dead if nothing arrives before (`None`: keep-alive is off).
    pub fn dead_at(&self) -> Option<Instant> {
        if self.interval.is_zero() {
            return None;
        }
        Some(self.last_received + self.interval.mul_f32(1.5))
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> KeepaliveAction {
        if self.interval.is_zero() {
            return KeepaliveAction::Idle;
        }
        if now.duration_since(self.last_received) >= self.interval.mul_f32(1.5) {
            return KeepaliveAction::Dead;
        }
        let idle = now.duration_since(self.last_sent.min(self.last_received));
        // Ping after a quiet interval, or earlier when only our side talks (a half-dead
        // path), so that a silent peer is noticed within 1.5 × keep-alive.
        if !self.ping_outstanding
            && (idle >= self.interval
                || now.duration_since(self.last_received) >= self.interval / 2)
        {
            self.ping_outstanding = true;
            self.last_sent = now;
            return KeepaliveAction::Ping;
        }
        KeepaliveAction::Idle
    }
}

/// Packet identifiers for the bridge's own publishes to the local broker.
#[derive(Debug, Default)]
pub struct PkidAllocator {
    last: u16,
}

impl PkidAllocator {
    /// The next identifier (1..=65535) for which `in_use` is false, or `None` if all are.
    pub fn next(&mut self, in_use: impl Fn(u16) -> bool) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last = if self.last == u16::MAX {
                1
            } else {
                self.last + 1
            };
            if !in_use(self.last) {
                return Some(self.last);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkids_are_never_zero_and_wrap() {
        assert_eq!(pkid_for(0), 1);
        assert_eq!(pkid_for(1), 2);
        assert_eq!(pkid_for(65534), 65535);
        assert_eq!(pkid_for(65535), 1);
        assert_eq!(pkid_for(u64::MAX), (u64::MAX % 65535) as u16 + 1);
    }

    #[test]
    fn inflight_window_tracks_stages() {
        let now = Instant::now();
        let mut w = Inflight::new(2);
        w.insert(
            1,
            InflightEntry {
                seq: 10,
                stage: Stage::PubAck,
                sent_at: now,
            },
        );
        assert!(w.has_room());
        w.insert(
            2,
            InflightEntry {
                seq: 11,
                stage: Stage::PubRec,
                sent_at: now,
            },
        );
        assert!(!w.has_room());
        assert!(
            w.take(2, Stage::PubAck).is_none(),
            "wrong stage is not an ack"
        );
        assert_eq!(w.take(2, Stage::PubRec).unwrap().seq, 11);
        assert!(w.has_room());
        assert_eq!(w.oldest(), Some(now));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn keepalive_deadline_is_one_and_a_half_intervals_after_the_last_packet() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Duration::from_secs(2), t0);
        assert_eq!(k.dead_at(), Some(t0 + Duration::from_secs(3)));
        k.sent(t0 + Duration::from_secs(1));
        assert_eq!(
            k.dead_at(),
            Some(t0 + Duration::from_secs(3)),
            "sending is not hearing"
        );
        k.received(t0 + Duration::from_secs(1));
        assert_eq!(k.dead_at(), Some(t0 + Duration::from_secs(4)));
        assert_eq!(Keepalive::new(Duration::ZERO, t0).dead_at(), None);
    }

    #[test]
    fn keepalive_pings_then_declares_dead() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(Duration::from_secs(10), t0);
        assert_eq!(k.poll(t0 + Duration::from_secs(4)), KeepaliveAction::Idle);
        assert_eq!(k.poll(t0 + Duration::from_secs(5)), KeepaliveAction::Ping);
        assert_eq!(k.poll(t0 + Duration::from_secs(6)), KeepaliveAction::Idle);
        assert_eq!(k.poll(t0 + Duration::from_secs(15)), KeepaliveAction::Dead);
        k.received(t0 + Duration::from_secs(15));
        k.sent(t0 + Duration::from_secs(15));
        assert_eq!(k.poll(t0 + Duration::from_secs(16)), KeepaliveAction::Idle);
        let mut off = Keepalive::new(Duration::ZERO, t0);
        assert_eq!(
            off.poll(t0 + Duration::from_secs(1000)),
            KeepaliveAction::Idle
        );
    }

    #[test]
    fn allocator_skips_identifiers_in_use() {
        let mut a = PkidAllocator::default();
        assert_eq!(a.next(|p| p == 1), Some(2));
        assert_eq!(a.next(|_| false), Some(3));
        assert_eq!(a.next(|_| true), None);
    }
}
