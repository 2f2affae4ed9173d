//! Sans-IO state of one MQTT session: the queue of messages waiting for the client, the
//! inflight window with packet id allocation, and the incoming QoS 2 ids awaiting PUBREL.
//!
//! No locks, no I/O, no clocks: the connection task drives it and writes what it returns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mqgate_protocol::QoS;

use crate::message::Delivery;
use crate::router::SubOpts;
use crate::settings::OverloadPolicy;

/// The limits that bound one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// QoS 1/2 messages sent and not yet completely acknowledged.
    pub max_inflight: usize,
    /// Messages waiting behind the inflight window.
    pub max_queued_messages: usize,
    /// Payload bytes held: waiting behind the inflight window and inflight together.
    pub max_queued_bytes: usize,
    /// Queue QoS 0 messages while the client is offline.
    pub queue_qos0_offline: bool,
    /// What to do when the queue is full.
    pub policy: OverloadPolicy,
}

/// What [`SessionState::enqueue`] did with a delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Enqueued {
    /// Queued, the queue has room.
    Queued,
    /// Queued beyond the limit: the publisher must wait until the queue drains
    /// ([`OverloadPolicy::Backpressure`] with the client connected).
    QueuedOverLimit,
    /// Not queued: a QoS 0 message for an offline client (not an overflow).
    SkippedOffline,
    /// Not queued: the queue is full (counted and logged by the caller).
    DroppedNew,
    /// Queued after dropping the oldest waiting message, returned here.
    DroppedOldest(Delivery),
    /// Not queued, and the (connected) client should be disconnected as too slow.
    Disconnect,
}

/// A packet the connection must send for this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transmit {
    /// PUBLISH `delivery` with packet id `pkid` (0 for QoS 0).
    Publish {
        /// Packet identifier.
        pkid: u16,
        /// DUP flag (a retransmission after reconnect).
        dup: bool,
        /// What to send.
        delivery: Delivery,
    },
    /// PUBREL for a QoS 2 message whose PUBREC arrived before the reconnect.
    PubRel {
        /// Packet identifier.
        pkid: u16,
    },
    /// A queued message whose MQTT 5 expiry passed before it could be sent: it is
    /// dropped (the caller records it done).
    Expired(Delivery),
}

/// Which acknowledgement an outgoing QoS 1/2 message is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// QoS 1 sent, waiting for PUBACK.
    Ack,
    /// QoS 2 sent, waiting for PUBREC.
    Received,
    /// QoS 2 PUBREL sent, waiting for PUBCOMP.
    Completion,
}

#[derive(Debug, Clone)]
struct Inflight {
    pkid: u16,
    stage: Stage,
    delivery: Delivery,
}

/// A delivery's weight against `max_queued_bytes`: its payload length.
fn size(delivery: &Delivery) -> u32 {
    u32::try_from(delivery.msg.payload.len()).unwrap_or(u32::MAX)
}

/// Inflight windows up to this size find a free packet id by scanning.
const SCAN_LIMIT: usize = 32;

/// The state of one session (see the module comment).
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    pending: VecDeque<Delivery>,
    /// Payload bytes of `pending` (u32s, not usizes: every session holds this struct, and
    /// a payload is under 256 MiB; sums saturate).
    pending_bytes: u32,
    /// Payload bytes of `inflight`: they count toward `max_queued_bytes` too, or an MQTT 5
    /// client with a large Receive Maximum could pin 65,535 messages unbounded.
    inflight_bytes: u32,
    inflight: VecDeque<Inflight>,
    /// Packet ids in the inflight window as a bitmap, built once the window first holds
    /// `SCAN_LIMIT` entries: below that a scan is cheaper and idle sessions stay small;
    /// above it (MQTT 5 windows of up to 65,535) a scan per send would be quadratic.
    pkids_in_use: Option<Box<[u64; 1024]>>,
    next_pkid: u16,
    next_seq: u64,
    /// A B-tree set (24 bytes, no allocation while empty): every session holds one.
    incoming_qos2: BTreeSet<u16>,
    online: bool,
    /// A direct write to the client was cut short: its rest waits in the core
    /// (`Core::take_cut_write`) and goes out before anything else.
    pub direct_cut: bool,
    /// Granted subscriptions: filter → options.
    pub subscriptions: BTreeMap<String, SubOpts>,
}

impl SessionState {
    /// An empty, offline session.
    pub fn new() -> SessionState {
        SessionState {
            next_seq: 1,
            ..SessionState::default()
        }
    }

    /// Allocates the next per-session sequence number for a delivery.
    pub fn alloc_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The sequence number the next delivery gets: it moves with every delivery.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether a connection is attached.
    pub fn online(&self) -> bool {
        self.online
    }

    /// Marks the session connected or not.
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
    }

    /// Nothing queued (in flight or not, messages may be waiting to be sent).
    pub fn nothing_queued(&self) -> bool {
        self.pending.is_empty()
    }

    /// Nothing queued and nothing in flight: the connection may park.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.inflight.is_empty()
    }

    /// Messages waiting behind the inflight window.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Messages sent and not yet completely acknowledged.
    #[cfg(test)]
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    fn is_full(&self, limits: &Limits, extra_bytes: usize) -> bool {
        let held = u64::from(self.pending_bytes) + u64::from(self.inflight_bytes);
        self.pending.len() >= limits.max_queued_messages
            || held + extra_bytes as u64 > limits.max_queued_bytes as u64
    }

    /// True while a connected client's queue is at or over its limit: publishers wait.
    pub fn is_over_limit(&self, limits: &Limits) -> bool {
        self.online && self.is_full(limits, 0)
    }

    /// Queues `delivery` for the client according to `limits`.
    pub fn enqueue(&mut self, delivery: Delivery, limits: &Limits) -> Enqueued {
        if !self.online && delivery.qos == QoS::AtMostOnce && !limits.queue_qos0_offline {
            return Enqueued::SkippedOffline;
        }
        let len = delivery.msg.payload.len();
        if !self.is_full(limits, len) {
            self.push(delivery);
            return Enqueued::Queued;
        }
        match (limits.policy, self.online) {
            (OverloadPolicy::Backpressure, true) => {
                self.push(delivery);
                Enqueued::QueuedOverLimit
            }
            (OverloadPolicy::DropOldest, _) => match self.pending.pop_front() {
                Some(old) => {
                    self.pending_bytes = self.pending_bytes.saturating_sub(size(&old));
                    self.push(delivery);
                    Enqueued::DroppedOldest(old)
                }
                None => Enqueued::DroppedNew,
            },
            (OverloadPolicy::Disconnect, true) => Enqueued::Disconnect,
            _ => Enqueued::DroppedNew,
        }
    }

    fn push(&mut self, delivery: Delivery) {
        self.pending_bytes = self.pending_bytes.saturating_add(size(&delivery));
        self.pending.push_back(delivery);
    }

    fn alloc_pkid(&mut self) -> u16 {
        if self.pkids_in_use.is_none() && self.inflight.len() >= SCAN_LIMIT {
            let mut bits = Box::new([0u64; 1024]);
            for i in &self.inflight {
                bits[usize::from(i.pkid / 64)] |= 1 << (i.pkid % 64);
            }
            self.pkids_in_use = Some(bits);
        }
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            let candidate = self.next_pkid;
            let used = match &self.pkids_in_use {
                Some(bits) => bits[usize::from(candidate / 64)] & (1 << (candidate % 64)) != 0,
                None => self.inflight.iter().any(|i| i.pkid == candidate),
            };
            if !used {
                return candidate;
            }
        }
    }

    /// Records that `pkid` entered (`true`) or left the inflight window.
    fn mark_pkid(&mut self, pkid: u16, in_use: bool) {
        if let Some(bits) = &mut self.pkids_in_use {
            let (word, bit) = (usize::from(pkid / 64), 1u64 << (pkid % 64));
            if in_use {
                bits[word] |= bit;
            } else {
                bits[word] &= !bit;
            }
        }
    }

    /// Removes the inflight entry at `at`, keeping the id bitmap in step.
    fn remove_inflight(&mut self, at: usize) -> Option<Delivery> {
        let entry = self.inflight.remove(at)?;
        self.inflight_bytes = self.inflight_bytes.saturating_sub(size(&entry.delivery));
        self.mark_pkid(entry.pkid, false);
        Some(entry.delivery)
    }

    /// The next PUBLISH to send, if the queue is not empty and the inflight window
    /// (for QoS 1/2) has room. QoS 1/2 messages enter the inflight window here. A message
    /// expired at `now` (ms since the epoch) comes back as [`Transmit::Expired`].
    pub fn poll_transmit(&mut self, limits: &Limits, now: u64) -> Option<Transmit> {
        let front = self.pending.front()?;
        if front.msg.expired(now) {
            let delivery = self.pending.pop_front()?;
            self.pending_bytes = self.pending_bytes.saturating_sub(size(&delivery));
            return Some(Transmit::Expired(delivery));
        }
        if front.qos != QoS::AtMostOnce && self.inflight.len() >= limits.max_inflight.max(1) {
            return None;
        }
        let delivery = self.pending.pop_front()?;
        self.pending_bytes = self.pending_bytes.saturating_sub(size(&delivery));
        let pkid = match delivery.qos {
            QoS::AtMostOnce => 0,
            qos => {
                let pkid = self.alloc_pkid();
                let stage = if qos == QoS::AtLeastOnce {
                    Stage::Ack
                } else {
                    Stage::Received
                };
                self.inflight_bytes = self.inflight_bytes.saturating_add(size(&delivery));
                self.inflight.push_back(Inflight {
                    pkid,
                    stage,
                    delivery: delivery.clone(),
                });
                self.mark_pkid(pkid, true);
                pkid
            }
        };
        Some(Transmit::Publish {
            pkid,
            dup: false,
            delivery,
        })
    }

    /// True if the only queued message can be sent now (not expired at `now`, and a
    /// QoS 1/2 one fits the inflight window): [`SessionState::poll_transmit`] then
    /// returns it as a PUBLISH. Direct delivery (`core.rs`) sends it without the queue.
    pub fn sole_pending_sendable(&self, limits: &Limits, now: u64) -> bool {
        match self.pending.front() {
            Some(front) if self.pending.len() == 1 => {
                !front.msg.expired(now)
                    && (front.qos == QoS::AtMostOnce
                        || self.inflight.len() < limits.max_inflight.max(1))
            }
            _ => false,
        }
    }

    /// What to resend when a client resumes the session: every inflight message in the
    /// order it was first sent, PUBLISH with DUP set, or PUBREL after a PUBREC.
    pub fn resume(&self) -> Vec<Transmit> {
        self.inflight
            .iter()
            .map(|i| match i.stage {
                Stage::Ack | Stage::Received => Transmit::Publish {
                    pkid: i.pkid,
                    dup: true,
                    delivery: i.delivery.clone(),
                },
                Stage::Completion => Transmit::PubRel { pkid: i.pkid },
            })
            .collect()
    }

    fn position(&self, pkid: u16, stage: Stage) -> Option<usize> {
        self.inflight
            .iter()
            .position(|i| i.pkid == pkid && i.stage == stage)
    }

    /// Whether an acknowledgement of kind `got` for `pkid` answers a delivery that waits
    /// for another kind: a PUBACK for a QoS 2 delivery, a PUBREC for a QoS 1 one, a
    /// PUBCOMP for a QoS 1 one or before PUBREC. That is a protocol error (MQTT 5:
    /// DISCONNECT 0x82); an id nothing waits for is not (it may be a late duplicate).
    pub fn is_wrong_ack(&self, pkid: u16, got: Stage) -> bool {
        self.stage_of(pkid).is_some_and(|stage| stage != got)
    }

    /// What the inflight delivery `pkid` waits for, if one does.
    pub fn stage_of(&self, pkid: u16) -> Option<Stage> {
        self.inflight
            .iter()
            .find(|i| i.pkid == pkid)
            .map(|i| i.stage)
    }

    /// PUBACK received: the QoS 1 delivery it completes, if any.
    pub fn on_puback(&mut self, pkid: u16) -> Option<Delivery> {
        let at = self.position(pkid, Stage::Ack)?;
        self.remove_inflight(at)
    }

    /// Forgets the inflight delivery `pkid` whatever its stage (it could not be sent: it
    /// is larger than the client's maximum packet size).
    pub fn drop_inflight(&mut self, pkid: u16) -> Option<Delivery> {
        let at = self.inflight.iter().position(|i| i.pkid == pkid)?;
        self.remove_inflight(at)
    }

    /// PUBREC received: the sequence number of the QoS 2 delivery now awaiting PUBCOMP.
    pub fn on_pubrec(&mut self, pkid: u16) -> Option<u64> {
        let at = self.position(pkid, Stage::Received)?;
        let entry = self.inflight.get_mut(at)?;
        entry.stage = Stage::Completion;
        Some(entry.delivery.seq)
    }

    /// PUBCOMP received: the QoS 2 delivery it completes, if any.
    pub fn on_pubcomp(&mut self, pkid: u16) -> Option<Delivery> {
        let at = self.position(pkid, Stage::Completion)?;
        self.remove_inflight(at)
    }

    /// Incoming QoS 2 PUBLISH with `pkid`: true if it is new (deliver it), false if it is
    /// a duplicate of one not yet released (do not deliver it again).
    pub fn incoming_qos2(&mut self, pkid: u16) -> bool {
        self.incoming_qos2.insert(pkid)
    }

    /// Incoming PUBREL: true if `pkid` was awaiting release.
    pub fn incoming_pubrel(&mut self, pkid: u16) -> bool {
        self.incoming_qos2.remove(&pkid)
    }

    /// Restores (after a restart) a message that was queued and not yet sent.
    pub fn restore_pending(&mut self, delivery: Delivery) {
        self.next_seq = self.next_seq.max(delivery.seq + 1);
        self.push(delivery);
    }

    /// Restores (after a restart) a QoS 2 message sent with `pkid` and at `stage`.
    pub fn restore_inflight(&mut self, pkid: u16, stage: Stage, delivery: Delivery) {
        self.inflight_bytes = self.inflight_bytes.saturating_add(size(&delivery));
        self.next_seq = self.next_seq.max(delivery.seq + 1);
        self.next_pkid = self.next_pkid.max(pkid);
        self.inflight.push_back(Inflight {
            pkid,
            stage,
            delivery,
        });
        self.mark_pkid(pkid, true);
    }

    /// Restores (after a restart) an incoming QoS 2 id awaiting PUBREL.
    pub fn restore_incoming_qos2(&mut self, pkid: u16) {
        self.incoming_qos2.insert(pkid);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use mqgate_protocol::{Properties, QoS};

    use super::*;
    use crate::message::Message;

    fn limits() -> Limits {
        Limits {
            max_inflight: 2,
            max_queued_messages: 3,
            max_queued_bytes: 1000,
            queue_qos0_offline: false,
            policy: OverloadPolicy::Backpressure,
        }
    }

    fn delivery(state: &mut SessionState, qos: QoS, payload: &'static str) -> Delivery {
        Delivery {
            seq: state.alloc_seq(),
            msg: Arc::new(Message {
                id: 1,
                topic: Arc::from("t"),
                payload: Bytes::from_static(payload.as_bytes()),
                qos,
                retain: false,
                properties: Properties::default(),
                origin: 0,
                expires_at: None,
            }),
            qos,
            retain: false,
            sub_ids: Default::default(),
        }
    }

    fn online() -> SessionState {
        let mut s = SessionState::new();
        s.set_online(true);
        s
    }

    fn pkid_of(t: Option<Transmit>) -> u16 {
        match t {
            Some(Transmit::Publish { pkid, .. }) => pkid,
            other => panic!("expected a publish, got {other:?}"),
        }
    }

    #[test]
    fn an_acknowledgement_of_the_wrong_kind_is_told_apart_from_an_unknown_id() {
        let mut s = online();
        let l = limits();
        let d = delivery(&mut s, QoS::AtLeastOnce, "one");
        s.enqueue(d, &l);
        let d = delivery(&mut s, QoS::ExactlyOnce, "two");
        s.enqueue(d, &l);
        let qos1 = pkid_of(s.poll_transmit(&l, 0));
        let qos2 = pkid_of(s.poll_transmit(&l, 0));
        // QoS 1 waits for PUBACK: PUBREC or PUBCOMP are wrong.
        assert!(!s.is_wrong_ack(qos1, Stage::Ack));
        assert!(s.is_wrong_ack(qos1, Stage::Received));
        assert!(s.is_wrong_ack(qos1, Stage::Completion));
        // QoS 2 waits for PUBREC: PUBACK and an early PUBCOMP are wrong.
        assert!(s.is_wrong_ack(qos2, Stage::Ack));
        assert!(s.is_wrong_ack(qos2, Stage::Completion));
        assert!(!s.is_wrong_ack(qos2, Stage::Received));
        assert!(s.on_pubrec(qos2).is_some());
        // After PUBREC it waits for PUBCOMP: a PUBACK (or a second PUBREC) is wrong.
        assert!(s.is_wrong_ack(qos2, Stage::Ack));
        assert!(!s.is_wrong_ack(qos2, Stage::Completion));
        // An id nothing waits for is not a protocol error (a late duplicate).
        assert!(!s.is_wrong_ack(999, Stage::Ack));
        assert!(s.on_pubcomp(qos2).is_some());
        assert!(s.on_puback(qos1).is_some());
        assert!(!s.is_wrong_ack(qos1, Stage::Completion));
    }

    #[test]
    fn inflight_bytes_count_toward_the_queue_byte_limit() {
        let mut s = online();
        let l = Limits {
            max_inflight: 100,
            max_queued_bytes: 250,
            ..limits()
        };
        let big = "x".repeat(100).leak();
        for _ in 0..2 {
            let d = delivery(&mut s, QoS::AtLeastOnce, big);
            assert_eq!(s.enqueue(d, &l), Enqueued::Queued);
        }
        let first = pkid_of(s.poll_transmit(&l, 0));
        pkid_of(s.poll_transmit(&l, 0));
        // 200 bytes inflight, nothing pending: a third 100 bytes is over the 250 limit.
        let d = delivery(&mut s, QoS::AtLeastOnce, big);
        assert_eq!(s.enqueue(d, &l), Enqueued::QueuedOverLimit);
        assert!(s.is_over_limit(&l));
        // An acknowledgement frees its bytes.
        assert!(s.on_puback(first).is_some());
        assert!(!s.is_over_limit(&l));
    }

    #[test]
    fn inflight_window_limits_qos1_but_not_qos0() {
        let mut s = online();
        let l = limits();
        for qos in [QoS::AtLeastOnce, QoS::AtLeastOnce, QoS::AtLeastOnce] {
            let d = delivery(&mut s, qos, "x");
            assert_eq!(s.enqueue(d, &l), Enqueued::Queued);
        }
        assert_eq!(pkid_of(s.poll_transmit(&l, 0)), 1);
        assert_eq!(pkid_of(s.poll_transmit(&l, 0)), 2);
        assert_eq!(s.poll_transmit(&l, 0), None, "window of 2 is full");
        assert!(s.on_puback(1).is_some());
        assert_eq!(pkid_of(s.poll_transmit(&l, 0)), 3);
        let d = delivery(&mut s, QoS::AtMostOnce, "x");
        s.enqueue(d, &l);
        assert_eq!(
            pkid_of(s.poll_transmit(&l, 0)),
            0,
            "QoS 0 passes a full window"
        );
    }

    #[test]
    fn large_windows_never_reuse_an_inflight_packet_id() {
        // Past SCAN_LIMIT the free-id search uses the bitmap; ids must stay unique
        // across wrap-around while some old ones are still unacknowledged.
        let mut s = online();
        let l = Limits {
            max_inflight: 5_000,
            max_queued_messages: 100_000,
            max_queued_bytes: usize::MAX,
            ..limits()
        };
        let mut outstanding = std::collections::BTreeSet::new();
        for round in 0..40 {
            for _ in 0..5_000 - outstanding.len() {
                let d = delivery(&mut s, QoS::AtLeastOnce, "x");
                s.enqueue(d, &l);
                let pkid = pkid_of(s.poll_transmit(&l, 0));
                assert!(
                    pkid != 0 && outstanding.insert(pkid),
                    "round {round}: id {pkid} reused"
                );
            }
            // Acknowledge all but every 7th, so old ids stay in flight across wrap-around.
            let acked: Vec<u16> = outstanding.iter().copied().filter(|p| p % 7 != 0).collect();
            for pkid in acked {
                assert!(s.on_puback(pkid).is_some());
                outstanding.remove(&pkid);
            }
        }
        assert_eq!(s.inflight(), outstanding.len());
    }

    #[test]
    fn qos2_flow_and_resume_with_dup_and_pubrel() {
        let mut s = online();
        let l = limits();
        let a = delivery(&mut s, QoS::ExactlyOnce, "a");
        let b = delivery(&mut s, QoS::ExactlyOnce, "b");
        s.enqueue(a, &l);
        s.enqueue(b, &l);
        let pa = pkid_of(s.poll_transmit(&l, 0));
        let pb = pkid_of(s.poll_transmit(&l, 0));
        assert_eq!(s.on_puback(pa), None, "PUBACK does not complete QoS 2");
        assert_eq!(s.on_pubrec(pa), Some(1));
        assert_eq!(
            s.on_pubrec(pa),
            None,
            "second PUBREC for the same id is unknown"
        );
        let resumed = s.resume();
        assert_eq!(resumed.len(), 2);
        assert_eq!(resumed[0], Transmit::PubRel { pkid: pa });
        match &resumed[1] {
            Transmit::Publish { pkid, dup, .. } => {
                assert_eq!(*pkid, pb);
                assert!(*dup);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(s.on_pubcomp(pa).is_some());
        assert_eq!(s.inflight(), 1);
    }

    #[test]
    fn pkids_skip_ids_in_use_after_wrapping() {
        let mut s = online();
        let l = Limits {
            max_inflight: 10,
            ..limits()
        };
        let d = delivery(&mut s, QoS::AtLeastOnce, "x");
        s.enqueue(d, &l);
        assert_eq!(pkid_of(s.poll_transmit(&l, 0)), 1);
        s.next_pkid = u16::MAX;
        let d = delivery(&mut s, QoS::AtLeastOnce, "x");
        s.enqueue(d, &l);
        assert_eq!(
            pkid_of(s.poll_transmit(&l, 0)),
            2,
            "wraps to 1, which is in use"
        );
    }

    #[test]
    fn offline_qos0_is_skipped_unless_configured() {
        let mut s = SessionState::new();
        let mut l = limits();
        let d = delivery(&mut s, QoS::AtMostOnce, "x");
        assert_eq!(s.enqueue(d, &l), Enqueued::SkippedOffline);
        l.queue_qos0_offline = true;
        let d = delivery(&mut s, QoS::AtMostOnce, "x");
        assert_eq!(s.enqueue(d, &l), Enqueued::Queued);
    }

    #[test]
    fn full_queue_follows_the_policy() {
        let l = limits();
        let mut s = online();
        for _ in 0..3 {
            let d = delivery(&mut s, QoS::AtLeastOnce, "x");
            assert_eq!(s.enqueue(d, &l), Enqueued::Queued);
        }
        let d = delivery(&mut s, QoS::AtLeastOnce, "x");
        assert_eq!(s.enqueue(d, &l), Enqueued::QueuedOverLimit);
        assert!(s.is_over_limit(&l));
        s.set_online(false);
        assert!(
            !s.is_over_limit(&l),
            "an offline session never blocks publishers"
        );
        let d = delivery(&mut s, QoS::AtLeastOnce, "x");
        assert_eq!(s.enqueue(d, &l), Enqueued::DroppedNew);

        let l = Limits {
            policy: OverloadPolicy::DropOldest,
            ..limits()
        };
        let mut s = SessionState::new();
        for p in ["1", "2", "3"] {
            let d = delivery(&mut s, QoS::AtLeastOnce, p);
            s.enqueue(d, &l);
        }
        let d = delivery(&mut s, QoS::AtLeastOnce, "4");
        match s.enqueue(d, &l) {
            Enqueued::DroppedOldest(old) => assert_eq!(old.msg.payload, "1"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.queued(), 3);
    }

    #[test]
    fn byte_limit_applies() {
        let l = Limits {
            max_queued_bytes: 5,
            ..limits()
        };
        let mut s = SessionState::new();
        let d = delivery(&mut s, QoS::AtLeastOnce, "abcd");
        assert_eq!(s.enqueue(d, &l), Enqueued::Queued);
        let d = delivery(&mut s, QoS::AtLeastOnce, "ef");
        assert_eq!(s.enqueue(d, &l), Enqueued::DroppedNew);
    }

    #[test]
    fn incoming_qos2_duplicates_are_detected_until_pubrel() {
        let mut s = online();
        assert!(s.incoming_qos2(7));
        assert!(!s.incoming_qos2(7));
        assert!(s.incoming_pubrel(7));
        assert!(!s.incoming_pubrel(7));
        assert!(s.incoming_qos2(7), "after PUBREL the id may be reused");
    }

    #[test]
    fn expired_messages_are_not_sent() {
        let mut s = online();
        let l = limits();
        let mut d = delivery(&mut s, QoS::AtLeastOnce, "old");
        if let Some(m) = Arc::get_mut(&mut d.msg) {
            m.expires_at = Some(1_000);
        }
        s.enqueue(d, &l);
        let fresh = delivery(&mut s, QoS::AtLeastOnce, "new");
        s.enqueue(fresh, &l);
        match s.poll_transmit(&l, 1_000) {
            Some(Transmit::Expired(d)) => assert_eq!(d.msg.payload, "old"),
            other => panic!("expected the expired message, got {other:?}"),
        }
        assert_eq!(pkid_of(s.poll_transmit(&l, 1_000)), 1);
        assert!(s.drop_inflight(1).is_some());
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn queue_preserves_order() {
        let mut s = online();
        let l = Limits {
            max_inflight: 100,
            max_queued_messages: 100,
            ..limits()
        };
        for p in ["a", "b", "c"] {
            let d = delivery(&mut s, QoS::AtLeastOnce, p);
            s.enqueue(d, &l);
        }
        let mut got = Vec::new();
        while let Some(Transmit::Publish { delivery, .. }) = s.poll_transmit(&l, 0) {
            got.push(delivery.msg.payload.clone());
        }
        assert_eq!(got, ["a", "b", "c"]);
    }
}
