//! The shared broker state: the session table, the subscription trie, the retained store
//! and routing of a published message to the queues of matching sessions.
//!
//! Connection tasks call into it directly (no router task hop): routing takes the trie's
//! read lock, then each target session's own lock, so publishers on different cores only
//! meet on the sessions they both deliver to.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mqgate_protocol::QoS;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::auth::{Authorizer, ClientInfo};
use crate::message::{Delivery, Message};
use crate::session::{Enqueued, Limits, SessionState, Stage};
use crate::settings::BrokerSettings;
use crate::stats::Stats;
use crate::store::{Ack, Model, Record, Store};
use crate::trie::Trie;

/// A session's mutable part, behind one lock.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The sans-IO queue/inflight state.
    pub state: SessionState,
    /// Who the client is (for delivery authorization).
    pub client: Arc<ClientInfo>,
    /// Messages dropped for this session (drives log rate limiting).
    pub dropped: u64,
}

/// One MQTT session, shared by its connection task and every publisher delivering to it.
#[derive(Debug)]
pub(crate) struct Session {
    /// Broker-unique key (trie key and persistence id).
    pub uid: u64,
    /// Client identifier.
    pub client_id: Arc<str>,
    /// Clean session = 0: survives disconnects (and restarts, with persistence).
    pub persistent: bool,
    /// Mutable state.
    pub slot: Mutex<Slot>,
    /// Signalled when there is something new to send to the client.
    pub wake: Notify,
    /// Signalled when the queue drained (or the client went away): blocked publishers resume.
    pub space: Notify,
    /// Cancels the connection currently attached (takeover, slow-consumer policy).
    pub kick: Mutex<CancellationToken>,
    /// Held by the attached connection for its lifetime; a takeover waits for it.
    pub owner: Arc<tokio::sync::Mutex<()>>,
}

impl Session {
    fn new(uid: u64, client_id: Arc<str>, persistent: bool, client: Arc<ClientInfo>) -> Session {
        Session {
            uid,
            client_id,
            persistent,
            slot: Mutex::new(Slot {
                state: SessionState::new(),
                client,
                dropped: 0,
            }),
            wake: Notify::new(),
            space: Notify::new(),
            kick: Mutex::new(CancellationToken::new()),
            owner: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// What routing one message produced for the publisher.
#[derive(Debug, Default)]
pub(crate) struct RouteOutcome {
    /// Wait for this before acknowledging (durability `Sync`).
    pub ack: Option<Ack>,
    /// Connected sessions whose queue is over the limit: stop reading until they drain.
    pub blocked: Vec<Arc<Session>>,
    message_persisted: bool,
}

/// The result of attaching a connection to a session.
pub(crate) struct Opened {
    /// The session to use.
    pub session: Arc<Session>,
    /// True if an existing persistent session was resumed.
    pub present: bool,
    /// A session that was replaced (its connection must be kicked).
    pub replaced: Option<Arc<Session>>,
    /// Wait for this before CONNACK (durability `Sync`).
    pub ack: Option<Ack>,
}

/// Broker-wide shared state.
pub(crate) struct Core {
    /// Settings.
    pub settings: BrokerSettings,
    /// Session limits derived from the settings.
    pub limits: Limits,
    /// Access control.
    pub authorizer: Arc<dyn Authorizer>,
    /// Counters.
    pub stats: Stats,
    /// Disk persistence, if configured.
    pub store: Option<Store>,
    /// When the broker started.
    pub started: Instant,
    trie: RwLock<Trie<Arc<Session>>>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    retained: RwLock<HashMap<Arc<str>, Arc<Message>>>,
    next_uid: AtomicU64,
    next_message: AtomicU64,
    next_client: AtomicU64,
}

fn qos_from(value: u8) -> QoS {
    QoS::from_u8(value).unwrap_or(QoS::AtLeastOnce)
}

impl Core {
    /// A broker core, rebuilt from `model` (the recovered persistent state, if any).
    pub fn new(
        settings: BrokerSettings,
        authorizer: Arc<dyn Authorizer>,
        store: Option<Store>,
        model: Option<Model>,
    ) -> Core {
        let limits = Limits {
            max_inflight: usize::from(settings.max_inflight).max(1),
            max_queued_messages: settings.max_queued_messages,
            max_queued_bytes: settings.max_queued_bytes,
            queue_qos0_offline: settings.queue_qos0_messages,
            policy: settings.overload,
        };
        let core = Core {
            settings,
            limits,
            authorizer,
            stats: Stats::default(),
            store,
            started: Instant::now(),
            trie: RwLock::new(Trie::new()),
            sessions: Mutex::new(HashMap::new()),
            retained: RwLock::new(HashMap::new()),
            next_uid: AtomicU64::new(1),
            next_message: AtomicU64::new(1),
            next_client: AtomicU64::new(1),
        };
        if let Some(model) = model {
            core.restore(model);
        }
        core
    }

    /// Rebuilds sessions, subscriptions, queues and retained messages from `model`.
    fn restore(&self, model: Model) {
        let mut max_uid = 0;
        let mut max_msg = 0;
        let mut messages: HashMap<u64, Arc<Message>> = HashMap::new();
        for (id, m) in &model.messages {
            max_msg = max_msg.max(*id);
            messages.insert(
                *id,
                Arc::new(Message {
                    id: *id,
                    topic: m.topic.clone(),
                    payload: m.payload.clone(),
                    qos: qos_from(m.qos),
                    retain: false,
                    properties: Default::default(),
                }),
            );
        }
        self.next_message.store(max_msg + 1, Ordering::Relaxed);
        {
            let mut retained = self.retained.write();
            for (topic, (payload, qos)) in &model.retained {
                let id = self.message_id();
                retained.insert(
                    topic.clone(),
                    Arc::new(Message {
                        id,
                        topic: topic.clone(),
                        payload: payload.clone(),
                        qos: qos_from(*qos),
                        retain: true,
                        properties: Default::default(),
                    }),
                );
            }
        }
        let mut sessions = self.sessions.lock();
        let mut trie = self.trie.write();
        for (sid, ms) in &model.sessions {
            max_uid = max_uid.max(*sid);
            let client = Arc::new(ClientInfo {
                client_id: ms.client_id.to_string(),
                username: ms.username.as_deref().map(str::to_owned),
                peer: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            });
            let session = Arc::new(Session::new(*sid, ms.client_id.clone(), true, client));
            {
                let mut slot = session.slot.lock();
                for (filter, qos) in &ms.subs {
                    let qos = qos_from(*qos);
                    slot.state.subscriptions.insert(filter.to_string(), qos);
                    trie.insert(filter, *sid, session.clone(), qos);
                }
                for (seq, q) in &ms.queue {
                    let Some(msg) = messages.get(&q.msg) else {
                        continue;
                    };
                    let delivery = Delivery {
                        seq: *seq,
                        msg: msg.clone(),
                        qos: qos_from(q.qos),
                        retain: q.retain,
                    };
                    match q.pkid {
                        Some(pkid) => {
                            let stage = if q.released {
                                Stage::Completion
                            } else {
                                Stage::Received
                            };
                            slot.state.restore_inflight(pkid, stage, delivery);
                        }
                        None => slot.state.restore_pending(delivery),
                    }
                }
                for pkid in &ms.inbound {
                    slot.state.restore_incoming_qos2(*pkid);
                }
            }
            sessions.insert(ms.client_id.clone(), session);
        }
        self.next_uid.store(max_uid + 1, Ordering::Relaxed);
    }

    fn append(&self, record: &Record) -> Option<Ack> {
        self.store.as_ref().and_then(|s| s.append(record))
    }

    /// A fresh message id.
    pub fn message_id(&self) -> u64 {
        self.next_message.fetch_add(1, Ordering::Relaxed)
    }

    /// A client id for a client that sent an empty one (mosquitto style `auto-…`).
    pub fn assign_client_id(&self) -> String {
        let n = self.next_client.fetch_add(1, Ordering::Relaxed);
        let nanos = self.started.elapsed().as_nanos() as u64;
        format!("auto-{:016X}{:08X}", nanos ^ (n << 40), n)
    }

    /// Number of sessions (connected or not).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.trie.read().len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.read().len()
    }

    /// Finds or creates the session for `client_id` (MQTT 3.1.1 §3.1.2.4).
    pub fn open_session(&self, client_id: &str, clean: bool, client: Arc<ClientInfo>) -> Opened {
        let mut sessions = self.sessions.lock();
        let existing = sessions.get(client_id).cloned();
        if let Some(existing) = &existing {
            if !clean && existing.persistent {
                existing.slot.lock().client = client;
                return Opened {
                    session: existing.clone(),
                    present: true,
                    replaced: None,
                    ack: None,
                };
            }
        }
        let mut ack = None;
        if let Some(old) = &existing {
            ack = self.discard(old);
        }
        let uid = self.next_uid.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = Arc::from(client_id);
        let username = client.username.as_deref().map(Arc::from);
        let session = Arc::new(Session::new(uid, id.clone(), !clean, client));
        if !clean {
            ack = self
                .append(&Record::SessionOpen {
                    sid: uid,
                    client_id: id.clone(),
                    username,
                })
                .or(ack);
        }
        sessions.insert(id, session.clone());
        Opened {
            session,
            present: false,
            replaced: existing,
            ack,
        }
    }

    /// Removes `session`'s subscriptions and persistent state (not its table entry).
    fn discard(&self, session: &Arc<Session>) -> Option<Ack> {
        let filters: Vec<String> = {
            let slot = session.slot.lock();
            slot.state.subscriptions.keys().cloned().collect()
        };
        {
            let mut trie = self.trie.write();
            for filter in &filters {
                trie.remove(filter, session.uid);
            }
        }
        if session.persistent {
            self.append(&Record::SessionClose { sid: session.uid })
        } else {
            None
        }
    }

    /// The connection of `session` ended: a clean session is removed, a persistent one
    /// goes offline and keeps queueing.
    pub fn close_session(&self, session: &Arc<Session>) {
        if session.persistent {
            session.slot.lock().state.set_online(false);
        } else {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(&session.client_id)
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                sessions.remove(&session.client_id);
            }
            drop(sessions);
            self.discard(session);
        }
        session.space.notify_waiters();
    }

    /// Grants `filter` at `qos` to `session`. Returns the ack to wait for.
    pub fn subscribe(&self, session: &Arc<Session>, filter: &str, qos: QoS) -> Option<Ack> {
        self.trie
            .write()
            .insert(filter, session.uid, session.clone(), qos);
        let mut slot = session.slot.lock();
        slot.state.subscriptions.insert(filter.to_owned(), qos);
        if session.persistent {
            self.append(&Record::Subscribe {
                sid: session.uid,
                filter: Arc::from(filter),
                qos: qos as u8,
            })
        } else {
            None
        }
    }

    /// Removes `session`'s subscription to `filter`. Returns the ack to wait for.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> Option<Ack> {
        self.trie.write().remove(filter, session.uid);
        let mut slot = session.slot.lock();
        let existed = slot.state.subscriptions.remove(filter).is_some();
        if session.persistent && existed {
            self.append(&Record::Unsubscribe {
                sid: session.uid,
                filter: Arc::from(filter),
            })
        } else {
            None
        }
    }

    /// Queues the retained messages matching `filter` for `session` (retain flag set).
    pub fn deliver_retained(&self, session: &Arc<Session>, filter: &str, granted: QoS) {
        let matching: Vec<Arc<Message>> = self
            .retained
            .read()
            .values()
            .filter(|m| mqgate_protocol::topic::matches(filter, &m.topic))
            .cloned()
            .collect();
        let mut outcome = RouteOutcome::default();
        for msg in matching {
            let qos = msg.qos.min(granted);
            self.deliver(session, msg, qos, true, &mut outcome);
        }
    }

    /// Routes a published message: updates the retained store, then queues it once for
    /// every matching session at the highest granted QoS (capped by the message's QoS).
    pub fn publish(&self, msg: Arc<Message>, outcome: &mut RouteOutcome) {
        let is_sys = msg.topic.starts_with('$');
        if msg.retain && self.settings.retain_available {
            let mut retained = self.retained.write();
            if msg.payload.is_empty() {
                if retained.remove(&msg.topic).is_some() && !is_sys {
                    outcome.ack = self
                        .append(&Record::RetainClear {
                            topic: msg.topic.clone(),
                        })
                        .or(outcome.ack.take());
                }
            } else {
                retained.insert(msg.topic.clone(), msg.clone());
                if !is_sys {
                    outcome.ack = self
                        .append(&Record::Retain {
                            topic: msg.topic.clone(),
                            payload: msg.payload.clone(),
                            qos: msg.qos as u8,
                        })
                        .or(outcome.ack.take());
                }
            }
        }
        let mut targets = Vec::new();
        self.trie.read().matches(&msg.topic, &mut targets);
        if targets.len() > 1 {
            targets.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
            targets.dedup_by_key(|t| t.0);
        }
        for (_, session, granted) in targets {
            let qos = msg.qos.min(granted);
            self.deliver(&session, msg.clone(), qos, false, outcome);
        }
    }

    /// Queues one delivery for `session` and wakes its connection.
    fn deliver(
        &self,
        session: &Arc<Session>,
        msg: Arc<Message>,
        qos: QoS,
        retain: bool,
        outcome: &mut RouteOutcome,
    ) {
        let mut slot = session.slot.lock();
        if !self.authorizer.authorize_delivery(&slot.client, &msg.topic) {
            return;
        }
        let seq = slot.state.alloc_seq();
        let msg_id = msg.id;
        let delivery = Delivery {
            seq,
            msg: msg.clone(),
            qos,
            retain,
        };
        let result = slot.state.enqueue(delivery, &self.limits);
        let persist = session.persistent && qos != QoS::AtMostOnce && self.store.is_some();
        let queued = matches!(
            result,
            Enqueued::Queued | Enqueued::QueuedOverLimit | Enqueued::DroppedOldest(_)
        );
        if persist && queued {
            if !outcome.message_persisted {
                self.append(&Record::Message {
                    id: msg_id,
                    topic: msg.topic.clone(),
                    payload: msg.payload.clone(),
                    qos: msg.qos as u8,
                });
                outcome.message_persisted = true;
            }
            outcome.ack = self
                .append(&Record::Enqueue {
                    sid: session.uid,
                    seq,
                    msg: msg_id,
                    qos: qos as u8,
                    retain,
                })
                .or(outcome.ack.take());
        }
        let online = slot.state.online();
        match result {
            Enqueued::Queued | Enqueued::SkippedOffline => {}
            Enqueued::QueuedOverLimit => outcome.blocked.push(session.clone()),
            Enqueued::DroppedNew => self.count_drop(&mut slot, session, "newest"),
            Enqueued::DroppedOldest(old) => {
                if session.persistent && old.qos != QoS::AtMostOnce {
                    self.append(&Record::Done {
                        sid: session.uid,
                        seq: old.seq,
                    });
                }
                self.count_drop(&mut slot, session, "oldest");
            }
            Enqueued::Disconnect => {
                self.count_drop(&mut slot, session, "newest");
                warn!(
                    client_id = %session.client_id,
                    peer = %slot.client.peer,
                    limit = "max_queued_messages",
                    "disconnecting slow subscriber: its queue is full"
                );
                session.kick.lock().cancel();
            }
        }
        drop(slot);
        if online && queued {
            session.wake.notify_one();
        }
    }

    fn count_drop(&self, slot: &mut Slot, session: &Session, which: &str) {
        Stats::add(&self.stats.messages_dropped, 1);
        slot.dropped += 1;
        if slot.dropped.is_power_of_two() {
            warn!(
                client_id = %session.client_id,
                peer = %slot.client.peer,
                limit = "max_queued_messages/max_queued_bytes",
                dropped_total = slot.dropped,
                "session queue full: dropped the {which} message"
            );
        }
    }

    /// Records (for a persistent session) that QoS 2 delivery `seq` went out as `pkid`.
    pub fn note_sent_qos2(&self, session: &Session, seq: u64, pkid: u16) {
        if session.persistent {
            self.append(&Record::Sent {
                sid: session.uid,
                seq,
                pkid,
            });
        }
    }

    /// Records that QoS 2 delivery `seq` got its PUBREC.
    pub fn note_released(&self, session: &Session, seq: u64) {
        if session.persistent {
            self.append(&Record::Released {
                sid: session.uid,
                seq,
            });
        }
    }

    /// Records that delivery `seq` is complete.
    pub fn note_done(&self, session: &Session, delivery: &Delivery) {
        if session.persistent && delivery.qos != QoS::AtMostOnce {
            self.append(&Record::Done {
                sid: session.uid,
                seq: delivery.seq,
            });
        }
    }

    /// Records an incoming QoS 2 packet id awaiting PUBREL.
    pub fn note_inbound_qos2(&self, session: &Session, pkid: u16) -> Option<Ack> {
        if session.persistent {
            self.append(&Record::InboundQos2 {
                sid: session.uid,
                pkid,
            })
        } else {
            None
        }
    }

    /// Records that an incoming QoS 2 packet id was released.
    pub fn note_inbound_released(&self, session: &Session, pkid: u16) -> Option<Ack> {
        if session.persistent {
            self.append(&Record::InboundReleased {
                sid: session.uid,
                pkid,
            })
        } else {
            None
        }
    }

    /// Every session with a connection attached gets kicked (shutdown).
    pub fn kick_all(&self) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for s in sessions {
            s.kick.lock().cancel();
        }
    }
}
