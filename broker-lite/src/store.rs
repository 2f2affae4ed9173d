//! Persistence of broker state on the write-ahead log: the record format (postcard), the
//! [`Model`] that replays records into state, and the [`Store`] that appends records and
//! compacts the log into a snapshot of the model.
//!
//! Every state change of a persistent session or of the retained store is appended while
//! the lock guarding that state is held, so the log order is the order of the changes.
//! The store keeps its own model of the persisted state (updated with every append), so a
//! snapshot never has to lock the live broker and never races with appends.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use mqgate_protocol::Properties;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

use crate::error::Error;
use crate::settings::{Durability, PersistenceSettings};
use mqgate_wal::{self as wal, Commit, Wal, WalOptions};

/// A commit to wait for before acknowledging (durability `Sync`).
pub(crate) type Ack = Commit;

/// One persisted state change. `sid` is a session's broker-unique id, `seq` a delivery's
/// per-session sequence number, `msg` a message id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Record {
    /// A retained message was set.
    Retain {
        /// Topic.
        topic: Arc<str>,
        /// Payload (non-empty).
        payload: Bytes,
        /// QoS.
        qos: u8,
    },
    /// The retained message of a topic was deleted.
    RetainClear {
        /// Topic.
        topic: Arc<str>,
    },
    /// A persistent session was created.
    SessionOpen {
        /// Session id.
        sid: u64,
        /// Client identifier.
        client_id: Arc<str>,
        /// Authorized user name.
        username: Option<Arc<str>>,
    },
    /// A persistent session ended (with everything queued for it).
    SessionClose {
        /// Session id.
        sid: u64,
    },
    /// A subscription was granted (or its QoS changed).
    Subscribe {
        /// Session id.
        sid: u64,
        /// Topic filter.
        filter: Arc<str>,
        /// Granted QoS.
        qos: u8,
    },
    /// A subscription was removed.
    Unsubscribe {
        /// Session id.
        sid: u64,
        /// Topic filter.
        filter: Arc<str>,
    },
    /// A message body, referenced by the `Enqueue` records that follow it.
    Message {
        /// Message id.
        id: u64,
        /// Topic.
        topic: Arc<str>,
        /// Payload.
        payload: Bytes,
        /// QoS as published.
        qos: u8,
    },
    /// A QoS 1/2 delivery was queued for a session.
    Enqueue {
        /// Session id.
        sid: u64,
        /// Delivery sequence number.
        seq: u64,
        /// Message id.
        msg: u64,
        /// Delivery QoS.
        qos: u8,
        /// Retain flag of the delivery.
        retain: bool,
    },
    /// A QoS 2 delivery was sent with a packet id (it keeps that id across a restart).
    Sent {
        /// Session id.
        sid: u64,
        /// Delivery sequence number.
        seq: u64,
        /// Packet id.
        pkid: u16,
    },
    /// A QoS 2 delivery got its PUBREC (PUBREL is next).
    Released {
        /// Session id.
        sid: u64,
        /// Delivery sequence number.
        seq: u64,
    },
    /// A delivery completed (PUBACK / PUBCOMP) or was dropped.
    Done {
        /// Session id.
        sid: u64,
        /// Delivery sequence number.
        seq: u64,
    },
    /// An incoming QoS 2 PUBLISH awaits PUBREL.
    InboundQos2 {
        /// Session id.
        sid: u64,
        /// Packet id.
        pkid: u16,
    },
    /// An incoming QoS 2 packet id was released.
    InboundReleased {
        /// Session id.
        sid: u64,
        /// Packet id.
        pkid: u16,
    },
    // Records added for MQTT 5 (appended, so that logs written before still decode).
    /// A retained message with MQTT 5 properties or an expiry.
    RetainV5 {
        /// Topic.
        topic: Arc<str>,
        /// Payload (non-empty).
        payload: Bytes,
        /// QoS.
        qos: u8,
        /// Properties forwarded with it.
        props: StoredProps,
        /// Absolute expiry (ms since the epoch).
        expires_at: Option<u64>,
    },
    /// A message body with MQTT 5 properties or an expiry.
    MessageV5 {
        /// Message id.
        id: u64,
        /// Topic.
        topic: Arc<str>,
        /// Payload.
        payload: Bytes,
        /// QoS as published.
        qos: u8,
        /// Properties forwarded with it.
        props: StoredProps,
        /// Absolute expiry (ms since the epoch).
        expires_at: Option<u64>,
    },
    /// A subscription with MQTT 5 options or a subscription identifier.
    SubscribeV5 {
        /// Session id.
        sid: u64,
        /// Topic filter.
        filter: Arc<str>,
        /// Options byte (QoS, No Local, Retain As Published).
        options: u8,
        /// Subscription identifier (0 = none).
        id: u32,
    },
    /// The session expiry interval of a session (absent: never expires).
    SessionExpiry {
        /// Session id.
        sid: u64,
        /// Seconds after the disconnect; `u32::MAX` = never.
        interval: u32,
    },
    /// The session went offline and ends at `at` (ms since the epoch), or came back
    /// online (`None`).
    SessionDeadline {
        /// Session id.
        sid: u64,
        /// Absolute end of the session.
        at: Option<u64>,
    },
    /// Subscription identifiers of a queued delivery (follows its `Enqueue`).
    EnqueueIds {
        /// Session id.
        sid: u64,
        /// Delivery sequence number.
        seq: u64,
        /// The identifiers.
        ids: Vec<u32>,
    },
}

/// The MQTT 5 properties of a message that are forwarded to subscribers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredProps {
    /// Payload format indicator.
    pub payload_format_indicator: Option<u8>,
    /// Content type.
    pub content_type: Option<Arc<str>>,
    /// Response topic.
    pub response_topic: Option<Arc<str>>,
    /// Correlation data.
    pub correlation_data: Option<Bytes>,
    /// User properties, in order.
    pub user_properties: Vec<(String, String)>,
}

impl StoredProps {
    /// The forwarded part of `p`.
    pub fn from_properties(p: &Properties) -> StoredProps {
        StoredProps {
            payload_format_indicator: p.payload_format_indicator,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
        }
    }

    /// Back into a property block.
    pub fn to_properties(&self) -> Properties {
        mqgate_protocol::PropertyValues {
            payload_format_indicator: self.payload_format_indicator,
            content_type: self.content_type.clone(),
            response_topic: self.response_topic.clone(),
            correlation_data: self.correlation_data.clone(),
            user_properties: self.user_properties.clone(),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into()
    }
}

/// A retained message as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelRetained {
    /// Payload.
    pub payload: Bytes,
    /// QoS.
    pub qos: u8,
    /// MQTT 5 properties, if any.
    pub props: Option<StoredProps>,
    /// Absolute expiry (ms since the epoch).
    pub expires_at: Option<u64>,
}

/// A persisted message body and how many queued deliveries reference it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelMessage {
    /// Topic.
    pub topic: Arc<str>,
    /// Payload.
    pub payload: Bytes,
    /// QoS as published.
    pub qos: u8,
    /// MQTT 5 properties, if any.
    pub props: Option<StoredProps>,
    /// Absolute expiry (ms since the epoch).
    pub expires_at: Option<u64>,
    refs: usize,
}

/// A queued delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelQueued {
    /// Message id.
    pub msg: u64,
    /// Delivery QoS.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// Packet id, once a QoS 2 delivery was sent.
    pub pkid: Option<u16>,
    /// PUBREC received.
    pub released: bool,
    /// Subscription identifiers.
    pub sub_ids: Vec<u32>,
}

/// A persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelSession {
    /// Client identifier.
    pub client_id: Arc<str>,
    /// Authorized user name.
    pub username: Option<Arc<str>>,
    /// Filter → (options byte, subscription identifier).
    pub subs: BTreeMap<Arc<str>, (u8, u32)>,
    /// Deliveries by sequence number.
    pub queue: BTreeMap<u64, ModelQueued>,
    /// Incoming QoS 2 ids awaiting PUBREL.
    pub inbound: BTreeSet<u16>,
    /// Session expiry interval in seconds; `u32::MAX` = never.
    pub expiry_interval: u32,
    /// While offline: when the session ends (ms since the epoch).
    pub deadline: Option<u64>,
}

/// The persisted state, as replayed from records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Model {
    /// Retained messages by topic.
    pub retained: BTreeMap<Arc<str>, ModelRetained>,
    /// Persistent sessions by id.
    pub sessions: BTreeMap<u64, ModelSession>,
    /// Message bodies by id.
    pub messages: HashMap<u64, ModelMessage>,
}

impl Model {
    fn release(&mut self, msg: u64) {
        if let Some(m) = self.messages.get_mut(&msg) {
            m.refs = m.refs.saturating_sub(1);
            if m.refs == 0 {
                self.messages.remove(&msg);
            }
        }
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Retain {
                topic,
                payload,
                qos,
            } => {
                self.retained.insert(
                    topic.clone(),
                    ModelRetained {
                        payload: payload.clone(),
                        qos: *qos,
                        props: None,
                        expires_at: None,
                    },
                );
            }
            Record::RetainV5 {
                topic,
                payload,
                qos,
                props,
                expires_at,
            } => {
                self.retained.insert(
                    topic.clone(),
                    ModelRetained {
                        payload: payload.clone(),
                        qos: *qos,
                        props: Some(props.clone()),
                        expires_at: *expires_at,
                    },
                );
            }
            Record::RetainClear { topic } => {
                self.retained.remove(topic);
            }
            Record::SessionOpen {
                sid,
                client_id,
                username,
            } => {
                self.sessions.insert(
                    *sid,
                    ModelSession {
                        client_id: client_id.clone(),
                        username: username.clone(),
                        subs: BTreeMap::new(),
                        queue: BTreeMap::new(),
                        inbound: BTreeSet::new(),
                        expiry_interval: u32::MAX,
                        deadline: None,
                    },
                );
            }
            Record::SessionExpiry { sid, interval } => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.expiry_interval = *interval;
                }
            }
            Record::SessionDeadline { sid, at } => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.deadline = *at;
                }
            }
            Record::SessionClose { sid } => {
                if let Some(session) = self.sessions.remove(sid) {
                    for q in session.queue.values() {
                        self.release(q.msg);
                    }
                }
            }
            Record::Subscribe { sid, filter, qos } => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.subs.insert(filter.clone(), (*qos, 0));
                }
            }
            Record::SubscribeV5 {
                sid,
                filter,
                options,
                id,
            } => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.subs.insert(filter.clone(), (*options, *id));
                }
            }
            Record::Unsubscribe { sid, filter } => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.subs.remove(filter);
                }
            }
            Record::Message {
                id,
                topic,
                payload,
                qos,
            } => {
                self.messages.entry(*id).or_insert_with(|| ModelMessage {
                    topic: topic.clone(),
                    payload: payload.clone(),
                    qos: *qos,
                    props: None,
                    expires_at: None,
                    refs: 0,
                });
            }
            Record::MessageV5 {
                id,
                topic,
                payload,
                qos,
                props,
                expires_at,
            } => {
                self.messages.entry(*id).or_insert_with(|| ModelMessage {
                    topic: topic.clone(),
                    payload: payload.clone(),
                    qos: *qos,
                    props: Some(props.clone()),
                    expires_at: *expires_at,
                    refs: 0,
                });
            }
            Record::EnqueueIds { sid, seq, ids } => {
                if let Some(q) = self
                    .sessions
                    .get_mut(sid)
                    .and_then(|s| s.queue.get_mut(seq))
                {
                    q.sub_ids.clone_from(ids);
                }
            }
            Record::Enqueue {
                sid,
                seq,
                msg,
                qos,
                retain,
            } => {
                let Some(s) = self.sessions.get_mut(sid) else {
                    return;
                };
                let Some(m) = self.messages.get_mut(msg) else {
                    return;
                };
                m.refs += 1;
                s.queue.insert(
                    *seq,
                    ModelQueued {
                        msg: *msg,
                        qos: *qos,
                        retain: *retain,
                        pkid: None,
                        released: false,
                        sub_ids: Vec::new(),
                    },
                );
            }
            Record::Sent { sid, seq, pkid } => {
                if let Some(q) = self
                    .sessions
                    .get_mut(sid)
                    .and_then(|s| s.queue.get_mut(seq))
                {
                    q.pkid = Some(*pkid);
                }
            }
            Record::Released { sid, seq } => {
                if let Some(q) = self
                    .sessions
                    .get_mut(sid)
                    .and_then(|s| s.queue.get_mut(seq))
                {
                    q.released = true;
                }
            }
            Record::Done { sid, seq } => {
                let removed = self.sessions.get_mut(sid).and_then(|s| s.queue.remove(seq));
                if let Some(q) = removed {
                    self.release(q.msg);
                }
            }
            Record::InboundQos2 { sid, pkid } => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.inbound.insert(*pkid);
                }
            }
            Record::InboundReleased { sid, pkid } => {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.inbound.remove(pkid);
                }
            }
        }
    }

    /// The records that rebuild this model from nothing.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for (topic, r) in &self.retained {
            out.push(match &r.props {
                None if r.expires_at.is_none() => Record::Retain {
                    topic: topic.clone(),
                    payload: r.payload.clone(),
                    qos: r.qos,
                },
                props => Record::RetainV5 {
                    topic: topic.clone(),
                    payload: r.payload.clone(),
                    qos: r.qos,
                    props: props.clone().unwrap_or_default(),
                    expires_at: r.expires_at,
                },
            });
        }
        let mut ids: Vec<&u64> = self
            .messages
            .iter()
            .filter(|(_, m)| m.refs > 0)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(m) = self.messages.get(id) {
                out.push(match &m.props {
                    None if m.expires_at.is_none() => Record::Message {
                        id: *id,
                        topic: m.topic.clone(),
                        payload: m.payload.clone(),
                        qos: m.qos,
                    },
                    props => Record::MessageV5 {
                        id: *id,
                        topic: m.topic.clone(),
                        payload: m.payload.clone(),
                        qos: m.qos,
                        props: props.clone().unwrap_or_default(),
                        expires_at: m.expires_at,
                    },
                });
            }
        }
        for (sid, s) in &self.sessions {
            out.push(Record::SessionOpen {
                sid: *sid,
                client_id: s.client_id.clone(),
                username: s.username.clone(),
            });
            if s.expiry_interval != u32::MAX {
                out.push(Record::SessionExpiry {
                    sid: *sid,
                    interval: s.expiry_interval,
                });
            }
            if s.deadline.is_some() {
                out.push(Record::SessionDeadline {
                    sid: *sid,
                    at: s.deadline,
                });
            }
            for (filter, &(options, id)) in &s.subs {
                out.push(if options <= 2 && id == 0 {
                    Record::Subscribe {
                        sid: *sid,
                        filter: filter.clone(),
                        qos: options,
                    }
                } else {
                    Record::SubscribeV5 {
                        sid: *sid,
                        filter: filter.clone(),
                        options,
                        id,
                    }
                });
            }
            for (seq, q) in &s.queue {
                out.push(Record::Enqueue {
                    sid: *sid,
                    seq: *seq,
                    msg: q.msg,
                    qos: q.qos,
                    retain: q.retain,
                });
                if !q.sub_ids.is_empty() {
                    out.push(Record::EnqueueIds {
                        sid: *sid,
                        seq: *seq,
                        ids: q.sub_ids.clone(),
                    });
                }
                if let Some(pkid) = q.pkid {
                    out.push(Record::Sent {
                        sid: *sid,
                        seq: *seq,
                        pkid,
                    });
                }
                if q.released {
                    out.push(Record::Released {
                        sid: *sid,
                        seq: *seq,
                    });
                }
            }
            for pkid in &s.inbound {
                out.push(Record::InboundQos2 {
                    sid: *sid,
                    pkid: *pkid,
                });
            }
        }
        out
    }
}

fn encode(record: &Record) -> Option<Bytes> {
    match postcard::to_allocvec(record) {
        Ok(v) => Some(Bytes::from(v)),
        Err(e) => {
            error!(error = %e, "persistence: cannot encode a record");
            None
        }
    }
}

/// The broker's persistent store (see the module comment).
pub(crate) struct Store {
    wal: Wal,
    model: Mutex<Model>,
    wait_for_sync: bool,
    compaction_threshold: u64,
    compacting: Arc<AtomicBool>,
}

impl Store {
    /// Opens (recovering) the log in `settings.dir`; returns the store and the recovered model.
    pub async fn open(settings: &PersistenceSettings) -> Result<(Store, Model), Error> {
        let durability = match settings.durability {
            Durability::Sync => wal::Durability::Sync,
            Durability::Batch => wal::Durability::Batch,
            Durability::None => wal::Durability::None,
        };
        let options = WalOptions {
            durability,
            flush_interval: settings.flush_interval,
            ..WalOptions::default()
        };
        let (wal, records) = Wal::open(&settings.dir, options).await?;
        let mut model = Model::default();
        let mut skipped = 0usize;
        for bytes in &records {
            match postcard::from_bytes::<Record>(bytes) {
                Ok(record) => model.apply(&record),
                Err(_) => skipped += 1,
            }
        }
        if skipped > 0 {
            warn!(skipped, "persistence: skipped undecodable records");
        }
        info!(
            dir = %settings.dir.display(),
            records = records.len(),
            sessions = model.sessions.len(),
            retained = model.retained.len(),
            messages = model.messages.len(),
            "persistent state recovered"
        );
        let store = Store {
            wal,
            model: Mutex::new(model.clone()),
            wait_for_sync: settings.durability == Durability::Sync,
            compaction_threshold: settings.compaction_threshold_bytes,
            compacting: Arc::new(AtomicBool::new(false)),
        };
        Ok((store, model))
    }

    /// Appends `record`; returns the commit to wait for before acknowledging, if the
    /// durability policy says to wait.
    pub fn append(&self, record: &Record) -> Option<Ack> {
        let bytes = encode(record)?;
        let mut model = self.model.lock();
        model.apply(record);
        let commit = self.wal.append(bytes);
        if self.wal.log_bytes() > self.compaction_threshold
            && !self.compacting.swap(true, Ordering::AcqRel)
        {
            let done = self.compact_locked(&model);
            let compacting = self.compacting.clone();
            tokio::spawn(async move {
                done.await;
                compacting.store(false, Ordering::Release);
            });
        }
        drop(model);
        self.wait_for_sync.then_some(commit)
    }

    fn compact_locked(
        &self,
        model: &Model,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let snapshot: Vec<Bytes> = model.snapshot().iter().filter_map(encode).collect();
        let records = snapshot.len();
        let done = self.wal.compact(snapshot);
        async move {
            match done.await {
                Ok(()) => info!(records, "persistence: log compacted"),
                Err(e) => error!(error = %e, "persistence: compaction failed"),
            }
        }
    }

    /// Compacts the log and closes it (clean shutdown).
    pub async fn close(&self) {
        let done = {
            let model = self.model.lock();
            self.compact_locked(&model)
        };
        done.await;
        if let Err(e) = self.wal.close().await {
            error!(error = %e, "persistence: closing the log failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::Retain {
                topic: Arc::from("r"),
                payload: Bytes::from_static(b"x"),
                qos: 1,
            },
            Record::SessionOpen {
                sid: 7,
                client_id: Arc::from("c"),
                username: None,
            },
            Record::Subscribe {
                sid: 7,
                filter: Arc::from("a/#"),
                qos: 2,
            },
            Record::Message {
                id: 1,
                topic: Arc::from("a/b"),
                payload: Bytes::from_static(b"one"),
                qos: 2,
            },
            Record::Enqueue {
                sid: 7,
                seq: 1,
                msg: 1,
                qos: 2,
                retain: false,
            },
            Record::Message {
                id: 2,
                topic: Arc::from("a/c"),
                payload: Bytes::from_static(b"two"),
                qos: 1,
            },
            Record::Enqueue {
                sid: 7,
                seq: 2,
                msg: 2,
                qos: 1,
                retain: false,
            },
            Record::Sent {
                sid: 7,
                seq: 1,
                pkid: 9,
            },
            Record::Released { sid: 7, seq: 1 },
            Record::InboundQos2 { sid: 7, pkid: 3 },
            Record::SessionExpiry {
                sid: 7,
                interval: 60,
            },
            Record::SessionDeadline {
                sid: 7,
                at: Some(123_456),
            },
            Record::SubscribeV5 {
                sid: 7,
                filter: Arc::from("$share/g/x"),
                options: 0b1101,
                id: 4,
            },
            Record::MessageV5 {
                id: 3,
                topic: Arc::from("a/d"),
                payload: Bytes::from_static(b"three"),
                qos: 1,
                props: StoredProps {
                    content_type: Some(Arc::from("text/plain")),
                    user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
                    ..StoredProps::default()
                },
                expires_at: Some(99),
            },
            Record::Enqueue {
                sid: 7,
                seq: 3,
                msg: 3,
                qos: 1,
                retain: false,
            },
            Record::EnqueueIds {
                sid: 7,
                seq: 3,
                ids: vec![4, 5],
            },
            Record::RetainV5 {
                topic: Arc::from("r5"),
                payload: Bytes::from_static(b"y"),
                qos: 0,
                props: StoredProps::default(),
                expires_at: Some(42),
            },
        ]
    }

    fn replay(records: &[Record]) -> Model {
        let mut m = Model::default();
        for r in records {
            m.apply(r);
        }
        m
    }

    #[test]
    fn records_round_trip_through_postcard() {
        for r in sample() {
            let bytes = encode(&r).unwrap();
            assert_eq!(postcard::from_bytes::<Record>(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn snapshot_replays_to_the_same_model() {
        let model = replay(&sample());
        assert_eq!(replay(&model.snapshot()), model);
        let s = &model.sessions[&7];
        assert_eq!(s.queue[&1].pkid, Some(9));
        assert!(s.queue[&1].released);
        assert!(s.inbound.contains(&3));
        assert_eq!(s.expiry_interval, 60);
        assert_eq!(s.deadline, Some(123_456));
        assert_eq!(s.subs[&Arc::<str>::from("$share/g/x")], (0b1101, 4));
        assert_eq!(s.queue[&3].sub_ids, [4, 5]);
        let m = &model.messages[&3];
        assert_eq!(m.expires_at, Some(99));
        assert_eq!(m.props.as_ref().unwrap().user_properties.len(), 2);
        assert_eq!(model.retained[&Arc::<str>::from("r5")].expires_at, Some(42));
    }

    #[test]
    fn done_and_session_close_free_message_bodies() {
        let mut records = sample();
        records.push(Record::Done { sid: 7, seq: 2 });
        let model = replay(&records);
        assert!(!model.messages.contains_key(&2));
        assert!(model.messages.contains_key(&1));
        records.push(Record::RetainClear {
            topic: Arc::from("r5"),
        });
        records.push(Record::SessionClose { sid: 7 });
        records.push(Record::RetainClear {
            topic: Arc::from("r"),
        });
        let model = replay(&records);
        assert!(model.messages.is_empty());
        assert!(model.sessions.is_empty());
        assert!(model.retained.is_empty());
        assert!(model.snapshot().is_empty());
    }
}
