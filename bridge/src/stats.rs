//! Counters of one bridge, readable at any time without locking.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the bridge started (queue depth figures are live values).
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Messages accepted into the queue.
    pub queued: AtomicU64,
    /// Messages acknowledged by the upstream (PUBACK / PUBCOMP) or sent at QoS 0.
    pub forwarded: AtomicU64,
    /// Messages dropped because the queue was full.
    pub dropped_full: AtomicU64,
    /// Messages dropped because they were older than `max_age`.
    pub dropped_expired: AtomicU64,
    /// Messages refused by the upstream (MQTT 5 PUBACK/PUBREC with an error code).
    pub dropped_refused: AtomicU64,
    /// Messages sent again after a reconnect.
    pub retransmitted: AtomicU64,
    /// Messages received from the upstream and published locally.
    pub received: AtomicU64,
    /// Successful upstream connections.
    pub connects: AtomicU64,
}

/// A copy of the counters plus the queue's live figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`BridgeStats::queued`].
    pub queued: u64,
    /// See [`BridgeStats::forwarded`].
    pub forwarded: u64,
    /// Every drop: full + expired + refused.
    pub dropped: u64,
    /// See [`BridgeStats::dropped_full`].
    pub dropped_full: u64,
    /// See [`BridgeStats::dropped_expired`].
    pub dropped_expired: u64,
    /// See [`BridgeStats::retransmitted`].
    pub retransmitted: u64,
    /// See [`BridgeStats::received`].
    pub received: u64,
    /// See [`BridgeStats::connects`].
    pub connects: u64,
    /// Messages in the queue now.
    pub depth: u64,
    /// Bytes (topic + payload) in the queue now.
    pub bytes: u64,
    /// Age of the oldest queued message, in seconds.
    pub oldest_age_secs: u64,
}

impl BridgeStats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with the queue figures given.
    pub fn snapshot(&self, depth: u64, bytes: u64, oldest_age_secs: u64) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let dropped_full = get(&self.dropped_full);
        let dropped_expired = get(&self.dropped_expired);
        StatsSnapshot {
            queued: get(&self.queued),
            forwarded: get(&self.forwarded),
            dropped: dropped_full + dropped_expired + get(&self.dropped_refused),
            dropped_full,
            dropped_expired,
            retransmitted: get(&self.retransmitted),
            received: get(&self.received),
            connects: get(&self.connects),
            depth,
            bytes,
            oldest_age_secs,
        }
    }
}
