//! Which queued message goes upstream next, so that live traffic is not starved by a
//! backlog while per-topic order holds.
//!
//! At connect, everything queued is backlog (sequence numbers below `boundary`); what is
//! queued later is live. When the backlog is larger than the inflight window, two lanes
//! share the window: the backlog lane (oldest first) and the live lane, which may hold up
//! to a quarter of the window (at least one message) and takes a free slot first. A live
//! message goes ahead of the backlog only if nothing older on its topic is still unsent:
//! no backlog entry on that topic is left (the backlog lane passes its last one), and no
//! earlier live message on that topic was held back. Held-back live messages are sent, in
//! order, once the backlog lane reaches the live region (the lanes merge there, skipping
//! what went ahead). Without live traffic the backlog uses the whole window. Entries that
//! leave the queue unsent (expired, evicted) keep their topic blocked until the merge:
//! conservative, never out of order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::queue::{DurableQueue, QueueEntry};
use crate::session::pkid_for;

/// The live lane while a backlog drains.
#[derive(Debug)]
struct Live {
    /// First live sequence number.
    boundary: u64,
    /// Topic → the last backlog sequence number on it not yet taken.
    blocked: HashMap<Arc<str>, u64>,
    /// The last live entry looked at.
    cursor: u64,
    /// Topics of live messages held back (sent after the merge).
    held: HashSet<Arc<str>>,
    /// Live messages sent ahead of the backlog.
    ahead: BTreeSet<u64>,
    /// Slots of the window the live lane may use.
    reserved: usize,
    /// Live messages sent ahead and not yet acknowledged.
    inflight: usize,
}

/// The send order of one upstream session.
#[derive(Debug)]
pub struct Drain {
    /// The last entry taken in queue order (the backlog lane, and everything after the
    /// merge).
    cursor: Option<u64>,
    live: Option<Live>,
    /// Live entries sent ahead, skipped when the merged cursor reaches them.
    skip: BTreeSet<u64>,
}

impl Drain {
    /// The order for a session whose inflight window is `window`: two lanes if the queue
    /// holds more than a window's worth, otherwise plain queue order.
    pub fn new(queue: &DurableQueue, window: usize) -> Drain {
        let depth = usize::try_from(queue.snapshot().depth).unwrap_or(usize::MAX);
        let live = (depth > window).then(|| {
            let boundary = queue.next_seq();
            Live {
                boundary,
                blocked: queue.last_seq_by_topic(boundary),
                cursor: boundary.saturating_sub(1),
                held: HashSet::new(),
                ahead: BTreeSet::new(),
                reserved: (window / 4).max(1),
                inflight: 0,
            }
        });
        Drain {
            cursor: None,
            live,
            skip: BTreeSet::new(),
        }
    }

    /// The next entry to send, marked as possibly sent; `None` when there is none, or when
    /// the next one's packet identifier is still `in_use` (a message 65535 places older
    /// waits for its ack).
    pub fn next(
        &mut self,
        queue: &DurableQueue,
        in_use: impl Fn(u16) -> bool,
    ) -> Option<QueueEntry> {
        if let Some(entry) = self.next_live(queue, &in_use) {
            return Some(entry);
        }
        loop {
            let entry = queue.peek_after(self.cursor)?;
            let seq = entry.message.seq;
            if let Some(live) = &mut self.live {
                if seq >= live.boundary {
                    // The backlog is drained: one lane again, minus what went ahead.
                    self.skip = std::mem::take(&mut live.ahead);
                    self.live = None;
                    continue;
                }
            }
            if in_use(pkid_for(seq)) && !self.skip.contains(&seq) {
                return None;
            }
            self.cursor = Some(seq);
            if self.skip.remove(&seq) {
                continue;
            }
            if let Some(live) = &mut self.live {
                if live.blocked.get(&entry.message.topic) == Some(&seq) {
                    live.blocked.remove(&entry.message.topic);
                }
            }
            queue.mark_sent(seq);
            return Some(entry);
        }
    }

    /// A live entry that may go ahead of the backlog now, if the live lane has room.
    fn next_live(
        &mut self,
        queue: &DurableQueue,
        in_use: &impl Fn(u16) -> bool,
    ) -> Option<QueueEntry> {
        let live = self.live.as_mut()?;
        if live.inflight >= live.reserved {
            return None;
        }
        loop {
            let entry = queue.peek_after(Some(live.cursor))?;
            let seq = entry.message.seq;
            let topic = &entry.message.topic;
            if live.blocked.contains_key(topic) || live.held.contains(topic) {
                live.held.insert(topic.clone());
                live.cursor = seq;
                continue;
            }
            if in_use(pkid_for(seq)) {
                return None;
            }
            live.cursor = seq;
            live.ahead.insert(seq);
            live.inflight += 1;
            queue.mark_sent(seq);
            return Some(entry);
        }
    }

    /// `seq` no longer occupies the window (acknowledged, or sent at QoS 0).
    pub fn settled(&mut self, seq: u64) {
        if let Some(live) = &mut self.live {
            if live.ahead.contains(&seq) {
                live.inflight = live.inflight.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{NewMessage, Pushed};
    use crate::stats::BridgeStats;
    use mqgate_config::BridgeQueueConfig;
    use mqgate_protocol::QoS;
    use mqgate_wal::WalOptions;

    async fn queue(dir: &std::path::Path) -> DurableQueue {
        DurableQueue::open(
            "t",
            dir,
            WalOptions::default(),
            BridgeQueueConfig::default(),
            Arc::new(BridgeStats::default()),
        )
        .await
        .unwrap()
    }

    async fn push(q: &DurableQueue, topic: &str, payload: &str) {
        let message = NewMessage {
            topic: topic.into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            payload: payload.to_owned().into(),
        };
        match q.push(message).await.unwrap() {
            Pushed::Stored(commit) => commit.await.unwrap(),
            Pushed::Dropped => panic!("dropped"),
        }
    }

    fn take(d: &mut Drain, q: &DurableQueue) -> Option<String> {
        d.next(q, |_| false)
            .map(|e| String::from_utf8_lossy(&e.message.payload).into_owned())
    }

    #[tokio::test]
    async fn live_goes_ahead_only_on_topics_without_older_unsent_messages() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path()).await;
        for i in 0..6 {
            push(&q, "old", &format!("o{i}")).await;
        }
        push(&q, "mixed", "m0").await;
        // Window 4: two lanes, the live one with 1 slot.
        let mut d = Drain::new(&q, 4);
        assert_eq!(take(&mut d, &q).as_deref(), Some("o0"));
        push(&q, "old", "o-live").await;
        push(&q, "mixed", "m-live").await;
        push(&q, "new", "n0").await;
        push(&q, "new", "n1").await;
        // The live slot: "old" and "mixed" have backlog, so "n0" goes first.
        assert_eq!(take(&mut d, &q).as_deref(), Some("n0"));
        // The live slot is taken until n0 is acknowledged: backlog meanwhile.
        assert_eq!(take(&mut d, &q).as_deref(), Some("o1"));
        // Sequence numbers: o0..o5 1-6, m0 7, o-live 8, m-live 9, n0 10, n1 11.
        d.settled(10);
        assert_eq!(take(&mut d, &q).as_deref(), Some("n1"));
        let mut rest = Vec::new();
        while let Some(p) = take(&mut d, &q) {
            rest.push(p);
        }
        // Backlog in order, then the held live messages in order, n0/n1 not again.
        assert_eq!(rest, ["o2", "o3", "o4", "o5", "m0", "o-live", "m-live"]);
    }

    #[tokio::test]
    async fn a_small_backlog_is_plain_queue_order() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path()).await;
        push(&q, "a", "1").await;
        let mut d = Drain::new(&q, 4);
        push(&q, "b", "2").await;
        assert_eq!(take(&mut d, &q).as_deref(), Some("1"));
        assert_eq!(take(&mut d, &q).as_deref(), Some("2"));
        assert_eq!(take(&mut d, &q), None);
    }
}
