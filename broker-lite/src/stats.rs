//! Broker-wide counters, published under `$SYS` and readable by tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters (and the connected-clients gauge) of one broker.
#[derive(Debug, Default)]
pub struct Stats {
    /// PUBLISH packets received from clients.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Bytes read from client sockets.
    pub bytes_received: AtomicU64,
    /// Bytes written to client sockets.
    pub bytes_sent: AtomicU64,
    /// Clients connected now.
    pub clients_connected: AtomicU64,
    /// Messages dropped because a session's queue was full (counted and logged).
    pub messages_dropped: AtomicU64,
    /// MQTT 5 messages that expired before they could be delivered to a subscriber.
    pub messages_expired: AtomicU64,
    /// Packets not sent because they exceed the client's MQTT 5 maximum packet size
    /// (counted and logged; a dropped PUBLISH counts as delivered).
    pub packets_too_large: AtomicU64,
    /// Idle TCP connections parked now (no task, see `ARCHITECTURE.md`).
    pub connections_parked: AtomicU64,
    /// Deliveries a publisher wrote straight into an idle subscriber's socket (direct
    /// delivery, see `ARCHITECTURE.md`); also counted in `messages_sent`.
    pub deliveries_direct: AtomicU64,
    /// Direct deliveries the socket did not take whole: the subscriber's connection
    /// wrote the rest.
    pub deliveries_direct_cut: AtomicU64,
    /// CONNECTs refused because their client id names a session of another identity.
    pub connects_refused_session_owner: AtomicU64,
    /// Queued or inflight deliveries dropped when sent because the subscriber may no
    /// longer read them (the ACL changed after they were queued).
    pub deliveries_revoked: AtomicU64,
    /// Retained PUBLISHes not stored as retained because they would have gone beyond
    /// `max_retained_messages` or `max_retained_bytes` (still delivered; logged).
    pub retained_refused: AtomicU64,
    /// SUBSCRIBE filters refused because the session holds `max_subscriptions_per_client`
    /// subscriptions already (logged).
    pub subscriptions_refused: AtomicU64,
}

impl Stats {
    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// One client fewer connected.
    pub(crate) fn sub_connected(&self) {
        self.clients_connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
