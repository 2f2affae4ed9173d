//! The durable, bounded store-and-forward queue of one bridge, built on the WAL.
//!
//! * [`DurableQueue::push`] appends an `Enqueued` record and returns the WAL's
//!   [`Commit`]: the local broker is acknowledged only once it resolves.
//! * The upstream link reads entries in sequence order ([`DurableQueue::next_after`]) and
//!   calls [`DurableQueue::remove`] on PUBACK/PUBCOMP, [`DurableQueue::release`] on PUBREC.
//! * Bounds: `max_bytes` (topic + payload bytes) with the `when_full` policy, and
//!   `max_age` (checked on push and when an entry is about to be sent). Age is wall-clock
//!   time with the clock's jumps taken out, and counts downtime only as far as the clock at
//!   recovery can be trusted ([`crate::clock`]): an NTP sync after a boot without RTC does
//!   not expire the queue, and a clock set back does not keep messages forever.
//! * Every drop is counted in [`BridgeStats`], logged at DEBUG, and summarised at WARN (at
//!   most once a second, with the running totals), so no loss is silent and a long outage
//!   does not flood the log.
//! * `Removed` records are not appended one by one: they wait in memory and go into the
//!   WAL with the next `Enqueued` append (same group commit, no fsync of their own), or on
//!   [`DurableQueue::flush_removed`] (the upstream link calls it every 250 ms) once
//!   `REMOVED_FLUSH` of them are pending, and at close. A crash can therefore forget up to
//!   that many removals: those messages are sent once more after a restart (at least once;
//!   QoS 2 entries already released only resend PUBREL).
//! * The log is compacted (snapshot of the live entries) once it exceeds
//!   `COMPACT_MIN_BYTES` and is more than twice the live data.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqgate_config::{BridgeQueueConfig, QueueOverflow};
use mqgate_protocol::QoS;
use mqgate_wal::{Commit, Wal, WalOptions};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::{shift, Clock, Frame, SystemClock};
use crate::error::BridgeError;
use crate::record::{Record, StoredMessage};
use crate::stats::{BridgeStats, StatsSnapshot};

/// Compaction is not considered below this many bytes of log.
const COMPACT_MIN_BYTES: u64 = 8 * 1024 * 1024;
/// Pending `Removed` records appended on their own once this many wait.
const REMOVED_FLUSH: usize = 1024;
/// Accounting overhead per entry, so that empty messages still count.
const ENTRY_OVERHEAD: u64 = 32;

/// A message offered to the queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Remote topic.
    pub topic: Arc<str>,
    /// QoS towards the upstream.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Payload.
    pub payload: Bytes,
}

/// An entry handed to the upstream link.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    /// The stored message.
    pub message: StoredMessage,
    /// QoS 2: PUBREC was received; only PUBREL remains to be sent.
    pub released: bool,
    /// It may have been sent before (previous connection or previous process).
    pub maybe_sent: bool,
}

#[derive(Debug)]
struct Entry {
    message: StoredMessage,
    released: bool,
    maybe_sent: bool,
}

impl Entry {
    fn size(&self) -> u64 {
        size_of(&self.message.topic, &self.message.payload)
    }
}

fn size_of(topic: &str, payload: &Bytes) -> u64 {
    (topic.len() + payload.len()) as u64 + ENTRY_OVERHEAD
}

#[derive(Debug)]
struct State {
    entries: BTreeMap<u64, Entry>,
    next_seq: u64,
    bytes: u64,
    /// A compaction was requested and has not finished yet.
    compacting: Arc<AtomicBool>,
    last_drop_warning: Option<Instant>,
    /// Encoded `Removed` records not appended yet.
    removed: Vec<Bytes>,
    /// The last reading of the clocks; entries' `enqueued_at_ms` are in its wall frame.
    frame: Frame,
}

/// Why a message left the queue without being delivered.
#[derive(Debug, Clone, Copy)]
enum DropReason {
    Full,
    Expired,
    Qos0Refused,
}

/// The outcome of [`DurableQueue::push`].
#[derive(Debug)]
pub enum Pushed {
    /// Stored; the `Commit` resolves when it is durable.
    Stored(Commit),
    /// Dropped by the `when_full` policy (counted and logged).
    Dropped,
}

/// The durable queue. Shared (`Arc`) by the local link, the upstream link and the stats task.
#[derive(Debug)]
pub struct DurableQueue {
    name: String,
    wal: Wal,
    limits: BridgeQueueConfig,
    state: Mutex<State>,
    /// Signalled when an entry is added (wakes the upstream link).
    added: Notify,
    /// Signalled when room is made (wakes `push` under backpressure).
    room: Notify,
    stats: Arc<BridgeStats>,
    clock: Arc<dyn Clock>,
}

impl DurableQueue {
    /// Opens (or creates) the queue in `dir` and recovers what it held.
    pub async fn open(
        name: &str,
        dir: &Path,
        options: WalOptions,
        limits: BridgeQueueConfig,
        stats: Arc<BridgeStats>,
    ) -> Result<DurableQueue, BridgeError> {
        let clock = Arc::new(SystemClock::new());
        Self::open_with_clock(name, dir, options, limits, stats, clock).await
    }

    /// [`DurableQueue::open`] with the clocks that judge `max_age` given (tests).
    pub async fn open_with_clock(
        name: &str,
        dir: &Path,
        options: WalOptions,
        limits: BridgeQueueConfig,
        stats: Arc<BridgeStats>,
        clock: Arc<dyn Clock>,
    ) -> Result<DurableQueue, BridgeError> {
        let (wal, records) = Wal::open(dir, options).await?;
        let frame = Frame::new(clock.wall_ms(), clock.monotonic_ms());
        let mut state = State {
            entries: BTreeMap::new(),
            next_seq: 1,
            bytes: 0,
            compacting: Arc::default(),
            last_drop_warning: None,
            removed: Vec::new(),
            frame,
        };
        let mut damaged = 0usize;
        for bytes in records {
            match Record::decode(bytes) {
                Ok(record) => state.apply(record),
                Err(_) => damaged += 1,
            }
        }
        if damaged > 0 {
            tracing::error!(
                bridge = name,
                damaged,
                "bridge queue: undecodable records skipped"
            );
        }
        if let Some(ahead_ms) = state.cap(frame.now_ms()) {
            // Persisted, so that the next restart does not see these stamps in the future
            // again and reset their age once more. Not awaited, like `Released`.
            drop(wal.append(Record::Capped(frame.now_ms()).encode()));
            tracing::info!(
                bridge = name,
                ahead_ms,
                "bridge queue: the clock is behind messages recovered from disk (no RTC?); \
                 they age from now on"
            );
        }
        tracing::info!(
            bridge = name,
            messages = state.entries.len(),
            bytes = state.bytes,
            "bridge queue recovered"
        );
        Ok(DurableQueue {
            name: name.to_owned(),
            wal,
            limits,
            state: Mutex::new(state),
            added: Notify::new(),
            room: Notify::new(),
            stats,
            clock,
        })
    }

    /// Accepts a message, applying `max_age` and the `when_full` policy. Under
    /// `backpressure` it waits until there is room.
    pub async fn push(&self, message: NewMessage) -> Result<Pushed, BridgeError> {
        let size = size_of(&message.topic, &message.payload);
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.state.lock();
                let now = self.tick(&mut state);
                self.expire(&mut state, now);
                if state.bytes + size > self.limits.max_bytes {
                    match self.limits.when_full {
                        QueueOverflow::Backpressure if size <= self.limits.max_bytes => {}
                        QueueOverflow::RefuseQos0 if message.qos == QoS::AtMostOnce => {
                            self.count_drop(&mut state, DropReason::Qos0Refused, &message.topic, 0);
                            return Ok(Pushed::Dropped);
                        }
                        _ => self.evict_until_room(&mut state, size),
                    }
                }
                if state.bytes + size <= self.limits.max_bytes {
                    return Ok(Pushed::Stored(self.store(&mut state, message, size, now)));
                }
                if size > self.limits.max_bytes {
                    self.count_drop(&mut state, DropReason::Full, &message.topic, 0);
                    return Ok(Pushed::Dropped);
                }
            }
            room.await;
        }
    }

    fn store(&self, state: &mut State, message: NewMessage, size: u64, now: u64) -> Commit {
        let seq = state.next_seq;
        state.next_seq += 1;
        let stored = StoredMessage {
            seq,
            enqueued_at_ms: now,
            qos: message.qos,
            retain: message.retain,
            topic: message.topic,
            payload: message.payload,
        };
        let enqueued = Record::Enqueued(stored.clone()).encode();
        let commit = if state.removed.is_empty() {
            self.wal.append(enqueued)
        } else {
            let mut records = std::mem::take(&mut state.removed);
            records.push(enqueued);
            self.wal.append_many(records)
        };
        state.entries.insert(
            seq,
            Entry {
                message: stored,
                released: false,
                maybe_sent: false,
            },
        );
        state.bytes += size;
        BridgeStats::bump(&self.stats.queued);
        self.added.notify_one();
        commit
    }

    fn evict_until_room(&self, state: &mut State, size: u64) {
        while state.bytes + size > self.limits.max_bytes {
            let Some((&seq, entry)) = state.entries.iter().next() else {
                return;
            };
            let topic = entry.message.topic.clone();
            self.remove_locked(state, seq);
            self.count_drop(state, DropReason::Full, &topic, seq);
        }
    }

    /// Reads the clocks and returns the queue's "now" (wall-clock milliseconds). A jump of
    /// the wall clock moves every entry's stamp with it, so that ages follow the monotonic
    /// clock; the shift is logged in the WAL so that the next run sees the same ages.
    fn tick(&self, state: &mut State) -> u64 {
        let Some(delta_ms) = state
            .frame
            .observe(self.clock.wall_ms(), self.clock.monotonic_ms())
        else {
            return state.frame.now_ms();
        };
        if !state.entries.is_empty() {
            state.shift(delta_ms);
            // Not awaited, like `Released`: lost in a crash, the next run judges the
            // entries queued before the jump by their old stamps.
            drop(self.wal.append(Record::Shifted(delta_ms).encode()));
        }
        tracing::info!(
            bridge = %self.name,
            jump_ms = delta_ms,
            queue_messages = state.entries.len(),
            "the wall clock jumped; queued messages keep the age the monotonic clock gives them"
        );
        state.frame.now_ms()
    }

    /// Drops entries older than `max_age` from the front.
    fn expire(&self, state: &mut State, now: u64) {
        let max_age = u64::try_from(self.limits.max_age.as_millis()).unwrap_or(u64::MAX);
        while let Some((&seq, entry)) = state.entries.iter().next() {
            if now.saturating_sub(entry.message.enqueued_at_ms) <= max_age {
                return;
            }
            let topic = entry.message.topic.clone();
            self.remove_locked(state, seq);
            self.count_drop(state, DropReason::Expired, &topic, seq);
        }
    }

    fn count_drop(&self, state: &mut State, reason: DropReason, topic: &str, seq: u64) {
        let counter = match reason {
            DropReason::Full | DropReason::Qos0Refused => &self.stats.dropped_full,
            DropReason::Expired => &self.stats.dropped_expired,
        };
        BridgeStats::bump(counter);
        tracing::debug!(bridge = %self.name, seq, topic, ?reason, "bridge queue dropped a message");
        let due = state
            .last_drop_warning
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        if due {
            state.last_drop_warning = Some(Instant::now());
            let s = self.snapshot_locked(state);
            tracing::warn!(
                bridge = %self.name,
                ?reason,
                topic,
                dropped_full = s.dropped_full,
                dropped_expired = s.dropped_expired,
                queue_messages = s.depth,
                queue_bytes = s.bytes,
                max_bytes = self.limits.max_bytes,
                policy = ?self.limits.when_full,
                "bridge queue is dropping messages"
            );
        }
    }

    /// The first entry with a sequence number above `after` (all entries if `None`),
    /// dropping expired ones on the way. Marks it as possibly sent.
    pub fn next_after(&self, after: Option<u64>) -> Option<QueueEntry> {
        let mut state = self.state.lock();
        let now = self.tick(&mut state);
        self.expire(&mut state, now);
        let start = after.map_or(0, |s| s + 1);
        let (_, entry) = state.entries.range_mut(start..).next()?;
        let out = QueueEntry {
            message: entry.message.clone(),
            released: entry.released,
            maybe_sent: entry.maybe_sent,
        };
        entry.maybe_sent = true;
        Some(out)
    }

    /// Like [`DurableQueue::next_after`], without marking the entry as possibly sent.
    pub fn peek_after(&self, after: Option<u64>) -> Option<QueueEntry> {
        let mut state = self.state.lock();
        let now = self.tick(&mut state);
        self.expire(&mut state, now);
        let start = after.map_or(0, |s| s + 1);
        let (_, entry) = state.entries.range(start..).next()?;
        Some(QueueEntry {
            message: entry.message.clone(),
            released: entry.released,
            maybe_sent: entry.maybe_sent,
        })
    }

    /// Marks `seq` as possibly sent (it is about to be).
    pub fn mark_sent(&self, seq: u64) {
        if let Some(entry) = self.state.lock().entries.get_mut(&seq) {
            entry.maybe_sent = true;
        }
    }

    /// The sequence number the next message pushed will get.
    pub fn next_seq(&self) -> u64 {
        self.state.lock().next_seq
    }

    /// For every topic queued below sequence number `below`, the highest such sequence
    /// number.
    pub fn last_seq_by_topic(&self, below: u64) -> HashMap<Arc<str>, u64> {
        let state = self.state.lock();
        let mut last = HashMap::new();
        for (&seq, entry) in state.entries.range(..below) {
            last.insert(entry.message.topic.clone(), seq);
        }
        last
    }

    /// Whether `seq` is still queued (not acknowledged, dropped or expired).
    pub fn contains(&self, seq: u64) -> bool {
        self.state.lock().entries.contains_key(&seq)
    }

    /// The upstream acknowledged `seq` (PUBACK, PUBCOMP, or a QoS 0 send): it leaves the queue.
    pub fn remove(&self, seq: u64) {
        let mut state = self.state.lock();
        if self.remove_locked(&mut state, seq) {
            BridgeStats::bump(&self.stats.forwarded);
        }
        self.maybe_compact(&mut state);
    }

    /// The upstream refused `seq` (MQTT 5 error reason code): it leaves the queue, counted.
    pub fn refuse(&self, seq: u64) {
        let mut state = self.state.lock();
        if self.remove_locked(&mut state, seq) {
            BridgeStats::bump(&self.stats.dropped_refused);
        }
    }

    fn remove_locked(&self, state: &mut State, seq: u64) -> bool {
        let Some(entry) = state.entries.remove(&seq) else {
            return false;
        };
        state.bytes -= entry.size();
        // Deferred and not awaited: losing it in a crash only means sending the message
        // once more.
        state.removed.push(Record::Removed(seq).encode());
        if state.removed.len() >= REMOVED_FLUSH {
            self.flush_removed_locked(state);
        }
        self.room.notify_waiters();
        true
    }

    /// Appends the pending `Removed` records (not awaited).
    pub fn flush_removed(&self) {
        self.flush_removed_locked(&mut self.state.lock());
    }

    fn flush_removed_locked(&self, state: &mut State) {
        if !state.removed.is_empty() {
            drop(self.wal.append_many(std::mem::take(&mut state.removed)));
        }
    }

    /// QoS 2: the upstream sent PUBREC for `seq`; from now on only PUBREL is resent.
    pub fn release(&self, seq: u64) {
        let mut state = self.state.lock();
        if let Some(entry) = state.entries.get_mut(&seq) {
            if !entry.released {
                entry.released = true;
                // Not awaited: if lost, the PUBLISH is resent with the same packet id and
                // the upstream, which holds it in its session, answers PUBREC again.
                drop(self.wal.append(Record::Released(seq).encode()));
            }
        }
    }

    /// Marks every entry as possibly sent (a connection ended; what follows is a resend).
    pub fn mark_all_maybe_sent(&self) {
        for entry in self.state.lock().entries.values_mut() {
            entry.maybe_sent = true;
        }
    }

    fn maybe_compact(&self, state: &mut State) {
        let log = self.wal.log_bytes();
        if state.compacting.load(Ordering::Relaxed)
            || log < COMPACT_MIN_BYTES
            || log < 2 * state.bytes
        {
            return;
        }
        let mut snapshot = Vec::with_capacity(state.entries.len() * 2 + 1);
        snapshot.push(Record::NextSeq(state.next_seq).encode());
        for entry in state.entries.values() {
            snapshot.push(Record::Enqueued(entry.message.clone()).encode());
            if entry.released {
                snapshot.push(Record::Released(entry.message.seq).encode());
            }
        }
        state.compacting.store(true, Ordering::Relaxed);
        // The snapshot already leaves the removed entries out.
        state.removed.clear();
        let done = self.wal.compact(snapshot);
        let name = self.name.clone();
        let entries = state.entries.len();
        let flag = state.compacting.clone();
        tracing::debug!(bridge = %name, log_bytes = log, entries, "compacting the bridge queue");
        tokio::spawn(async move {
            if let Err(error) = done.await {
                tracing::error!(bridge = %name, %error, "bridge queue compaction failed");
            }
            flag.store(false, Ordering::Relaxed);
        });
    }

    /// A future resolving when an entry is added.
    pub fn added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }

    /// The queue's counters and live figures.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut state = self.state.lock();
        self.tick(&mut state);
        self.snapshot_locked(&state)
    }

    /// As of the last [`DurableQueue::tick`].
    fn snapshot_locked(&self, state: &State) -> StatsSnapshot {
        let now = state.frame.now_ms();
        let oldest = state
            .entries
            .values()
            .next()
            .map_or(0, |e| now.saturating_sub(e.message.enqueued_at_ms) / 1000);
        self.stats
            .snapshot(state.entries.len() as u64, state.bytes, oldest)
    }

    /// Flushes and closes the log.
    pub async fn close(&self) -> Result<(), BridgeError> {
        self.flush_removed();
        self.wal.close().await.map_err(BridgeError::from)
    }
}

impl State {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Enqueued(message) => {
                self.next_seq = self.next_seq.max(message.seq + 1);
                let entry = Entry {
                    message,
                    released: false,
                    maybe_sent: true,
                };
                self.bytes += entry.size();
                if let Some(old) = self.entries.insert(entry.message.seq, entry) {
                    self.bytes -= old.size();
                }
            }
            Record::Removed(seq) => {
                self.next_seq = self.next_seq.max(seq + 1);
                if let Some(entry) = self.entries.remove(&seq) {
                    self.bytes -= entry.size();
                }
            }
            Record::Released(seq) => {
                if let Some(entry) = self.entries.get_mut(&seq) {
                    entry.released = true;
                }
            }
            Record::NextSeq(seq) => self.next_seq = self.next_seq.max(seq),
            Record::Shifted(delta_ms) => self.shift(delta_ms),
            Record::Capped(at_ms) => {
                self.cap(at_ms);
            }
        }
    }

    /// Moves every entry's stamp by a clock jump.
    fn shift(&mut self, delta_ms: i64) {
        for entry in self.entries.values_mut() {
            entry.message.enqueued_at_ms = shift(entry.message.enqueued_at_ms, delta_ms);
        }
    }

    /// Restamps entries stamped after `at_ms` at `at_ms`; returns how far ahead the latest
    /// was, if any was.
    fn cap(&mut self, at_ms: u64) -> Option<u64> {
        let mut ahead = None;
        for entry in self.entries.values_mut() {
            let stamp = &mut entry.message.enqueued_at_ms;
            if *stamp > at_ms {
                ahead = ahead.max(Some(*stamp - at_ms));
                *stamp = at_ms;
            }
        }
        ahead
    }
}
