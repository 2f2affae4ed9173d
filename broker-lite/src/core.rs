//! The shared broker state: the session table, the subscription trie, the retained store
//! and routing of a published message to the queues of matching sessions.
//!
//! Connection tasks call into it directly (no router task hop): routing takes the trie's
//! read lock, then each target session's own lock, so publishers on different cores only
//! meet on the sessions they both deliver to.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use mqgate_protocol::codec::{encode_packet, encoded_len};
use mqgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::auth::{is_reserved_client_id, Authorizer, ClientInfo, Credential};
use crate::message::{now_ms, Delivery, Message, SubIds};
use crate::park::Parker;
use crate::retained::{Limit, Retained};
use crate::router::{Router, SubOpts};
use crate::session::{Enqueued, Limits, SessionState, Stage, Transmit};
use crate::settings::BrokerSettings;
use crate::stats::Stats;
use crate::store::{Ack, Model, Record, Store, StoredProps};

/// Most sessions one message is written to directly: a larger fan-out is left to the
/// subscribers' own tasks, which write on both cores and batch their writes.
const DIRECT_MAX_TARGETS: usize = 4;

/// A session's mutable part, behind one lock.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The sans-IO queue/inflight state.
    pub state: SessionState,
    /// Direct delivery: a publisher writes a delivery straight into the subscriber's
    /// socket instead of queueing it and waking the subscriber's connection task. It
    /// saves a task wake-up and a scheduling round between the publisher's read and the
    /// delivery, the path mosquitto's single loop takes ([`Core::deliver_direct`]).
    /// `Some` while the attached connection is idle (nothing buffered to write) and lent
    /// its socket: it writes nothing until it takes the socket back under this lock.
    pub direct: Option<Arc<TcpStream>>,
    /// Who the client is (for delivery authorization).
    pub client: Arc<ClientInfo>,
    /// Messages dropped for this session (drives log rate limiting).
    pub dropped: u32,
    /// Session expiry interval in seconds (0: ends at disconnect; `u32::MAX`: never).
    pub expiry: u32,
    /// While offline with a finite expiry: when the session ends (ms since the epoch).
    pub deadline: Option<NonZeroU64>,
    /// A will waiting for its delay (MQTT 5) after the connection ended.
    pub will: Option<Arc<Message>>,
}

/// One MQTT session, shared by its connection task and every publisher delivering to it.
#[derive(Debug)]
pub(crate) struct Session {
    /// Broker-unique key (router key and persistence id).
    pub uid: u64,
    /// The client as it first connected (the client id, for the table key and logs,
    /// without a second copy of it).
    named: Arc<ClientInfo>,
    /// Created with a non-zero session expiry: its state is persisted and survives
    /// disconnects (and restarts, with persistence).
    pub persistent: bool,
    /// Mutable state.
    pub slot: Mutex<Slot>,
    /// Signalled when there is something new to send to the client.
    pub wake: Notify,
    /// Signalled when the queue drained (or the client went away): blocked publishers resume.
    pub space: Notify,
    /// The `attach_seq` of the connection told to go (slow-consumer policy, shutdown);
    /// 0: none. A takeover needs no mark: the old connection sees `attach_seq` move on.
    pub kicked: AtomicU64,
    /// The MQTT 5 reason code for the DISCONNECT sent when `kicked` is set.
    pub kick_reason: AtomicU8,
    /// Counts connections attached (incremented by each CONNECT that takes the session):
    /// a closing connection or a timer compares it to know whether it is still current.
    pub attach_seq: AtomicU64,
    /// True while a connection is attached (read without the slot lock by shared routing).
    pub connected: AtomicBool,
    /// Held by the attached connection for its lifetime (see [`OwnerGuard`]); a
    /// takeover waits for it (woken by `space`).
    pub owned: AtomicBool,
    /// While the attached connection is parked (`park.rs`): its parking key + 1; else 0.
    /// Set under the slot lock after checking the session is idle, so a delivery either
    /// finds it set (and unparks) or is seen by the check.
    pub parked: AtomicU32,
}

impl Session {
    fn new(uid: u64, expiry: u32, client: Arc<ClientInfo>) -> Session {
        Session {
            uid,
            named: client.clone(),
            persistent: expiry > 0,
            slot: Mutex::new(Slot {
                state: SessionState::new(),
                direct: None,
                client,
                dropped: 0,
                expiry,
                deadline: None,
                will: None,
            }),
            wake: Notify::new(),
            space: Notify::new(),
            kicked: AtomicU64::new(0),
            kick_reason: AtomicU8::new(ReasonCode::SessionTakenOver.value()),
            attach_seq: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            owned: AtomicBool::new(false),
            parked: AtomicU32::new(0),
        }
    }
}

/// A session in the sessions table, keyed by its client id.
#[derive(Debug)]
struct ById(Arc<Session>);

impl Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.client_id()
    }
}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.client_id().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.client_id() == other.0.client_id()
    }
}

impl Eq for ById {}

impl Session {
    /// The client identifier.
    pub fn client_id(&self) -> &str {
        &self.named.client_id
    }
}

/// The attached connection's hold on its session (`owned`), released when dropped.
#[derive(Debug)]
pub(crate) struct OwnerGuard(Arc<Session>);

impl OwnerGuard {
    /// Waits until no other connection holds `session`.
    pub async fn acquire(session: Arc<Session>) -> OwnerGuard {
        loop {
            let released = session.space.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if session
                .owned
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break;
            }
            released.await;
        }
        OwnerGuard(session)
    }
}

impl std::ops::Deref for OwnerGuard {
    type Target = Arc<Session>;
    fn deref(&self) -> &Arc<Session> {
        &self.0
    }
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        self.0.owned.store(false, Ordering::Release);
        self.0.space.notify_waiters();
    }
}

/// What routing one message produced for the publisher.
#[derive(Debug, Default)]
pub(crate) struct RouteOutcome {
    /// Wait for this before acknowledging (durability `Sync`).
    pub ack: Option<Ack>,
    /// Connected sessions whose queue is over the limit: stop reading until they drain.
    pub blocked: Vec<Arc<Session>>,
    /// Sessions the message was routed to (after No Local).
    pub matched: usize,
    /// Of those, sessions that dropped it because their queue was full.
    pub dropped: usize,
    /// Set by the caller: it may write deliveries into idle subscribers' sockets itself
    /// (a publisher with no further packet buffered, see [`Slot::direct`]).
    pub direct: bool,
    /// Set by routing: a subscriber's connection task was woken to write a delivery.
    pub woke: bool,
    /// Set by routing: a delivery was written straight into a subscriber's socket.
    pub wrote_direct: bool,
    /// Set by routing: the message was not retained because of this limit (counted in
    /// `Stats::retained_refused`; the caller logs it, with the topic, naming the
    /// publisher). It was still routed as a normal PUBLISH.
    pub retain_refused: Option<(Limit, Arc<str>)>,
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
    /// This connection's number in the session's `attach_seq`, taken under the session
    /// table lock so that an expiry timer and a resuming CONNECT cannot both win.
    pub seq: u64,
}

/// Why [`Core::open_session`] refused: the client id names a session of another
/// principal.
#[derive(Debug)]
pub(crate) struct SessionOwned {
    /// The user name of the session's owner (`None`: anonymous).
    pub owner: Option<String>,
}

/// A will to publish when a connection ends abnormally.
pub(crate) struct PendingWill {
    /// The message.
    pub msg: Arc<Message>,
    /// MQTT 5 Will Delay Interval in seconds (0 for 3.x).
    pub delay: u32,
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
    /// Cancelled when the broker shuts down (stops connections and timers).
    pub shutdown: CancellationToken,
    router: RwLock<Router<Arc<Session>>>,
    /// Sessions by client id (the key is the session's own `client_id`).
    sessions: Mutex<HashSet<ById>>,
    retained: RwLock<Retained>,
    next_uid: AtomicU64,
    next_message: AtomicU64,
    next_client: AtomicU64,
    /// Where idle TCP connections wait (set once the broker runs its parking task).
    pub parker: OnceLock<Arc<Parker>>,
    /// The unwritten rest of direct writes cut short, by session uid (rare: a full
    /// socket buffer). Flagged by `SessionState::direct_cut`, taken by the connection
    /// before it writes anything. Here rather than in every session's slot.
    cut_writes: Mutex<HashMap<u64, BytesMut>>,
    /// The authorizer's [`Authorizer::rules_epoch`] last seen by [`Core::recheck_below`].
    rules_epoch: AtomicU64,
    /// See [`Core::recheck_below`].
    recheck_below: AtomicU64,
    /// The session uid named by the last limit refusal logged (see
    /// [`Core::log_refusal`]); 0: none yet.
    refusal_logged: AtomicU64,
}

fn qos_from(value: u8) -> QoS {
    QoS::from_u8(value).unwrap_or(QoS::AtLeastOnce)
}

fn restored_message(
    id: u64,
    topic: &Arc<str>,
    payload: &Bytes,
    qos: u8,
    retain: bool,
    props: Option<&StoredProps>,
    expires_at: Option<u64>,
) -> Arc<Message> {
    Arc::new(Message {
        id,
        topic: topic.clone(),
        payload: payload.clone(),
        qos: qos_from(qos),
        retain,
        properties: props.map(StoredProps::to_properties).unwrap_or_default(),
        origin: 0,
        expires_at,
    })
}

impl Core {
    /// A broker core, rebuilt from `model` (the recovered persistent state, if any).
    /// Call [`Core::start_timers`] once it is in its `Arc`.
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
        let epoch = authorizer.rules_epoch();
        let retained = Retained::new(settings.max_retained_messages, settings.max_retained_bytes);
        let core = Core {
            settings,
            limits,
            authorizer,
            stats: Stats::default(),
            store,
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            router: RwLock::new(Router::new()),
            sessions: Mutex::new(HashSet::new()),
            retained: RwLock::new(retained),
            next_uid: AtomicU64::new(1),
            next_message: AtomicU64::new(1),
            next_client: AtomicU64::new(1),
            parker: OnceLock::new(),
            cut_writes: Mutex::new(HashMap::new()),
            rules_epoch: AtomicU64::new(epoch),
            recheck_below: AtomicU64::new(0),
            refusal_logged: AtomicU64::new(0),
        };
        if let Some(model) = model {
            core.restore(model);
            // Restored deliveries were checked under the rules of an earlier run.
            let next = core.next_message.load(Ordering::Relaxed);
            core.recheck_below.store(next, Ordering::Relaxed);
        }
        core
    }

    /// Rebuilds sessions, subscriptions, queues and retained messages from `model`.
    fn restore(&self, model: Model) {
        let now = now_ms();
        let mut max_uid = 0;
        let mut max_msg = 0;
        let mut messages: HashMap<u64, Arc<Message>> = HashMap::new();
        for (id, m) in &model.messages {
            max_msg = max_msg.max(*id);
            messages.insert(
                *id,
                restored_message(
                    *id,
                    &m.topic,
                    &m.payload,
                    m.qos,
                    false,
                    m.props.as_ref(),
                    m.expires_at,
                ),
            );
        }
        self.next_message.store(max_msg + 1, Ordering::Relaxed);
        {
            let mut retained = self.retained.write();
            for (topic, r) in &model.retained {
                if r.expires_at.is_some_and(|at| at <= now) {
                    self.append(&Record::RetainClear {
                        topic: topic.clone(),
                    });
                    continue;
                }
                let id = self.message_id();
                let msg = restored_message(
                    id,
                    topic,
                    &r.payload,
                    r.qos,
                    true,
                    r.props.as_ref(),
                    r.expires_at,
                );
                retained.put(msg);
            }
            if retained.over_limits() {
                // Kept (they were acknowledged as retained), but no new topic is stored
                // until publishers clear enough of them.
                warn!(
                    retained_messages = retained.count,
                    retained_bytes = retained.bytes,
                    max_retained_messages = retained.max_messages,
                    max_retained_bytes = retained.max_bytes,
                    "the retained messages restored exceed max_retained_messages or \
                     max_retained_bytes: all kept, new retained topics are refused"
                );
            }
        }
        let mut sessions = self.sessions.lock();
        let mut router = self.router.write();
        for (sid, ms) in &model.sessions {
            max_uid = max_uid.max(*sid);
            let client = Arc::new(ClientInfo {
                client_id: ms.client_id.to_string(),
                username: ms.username.as_deref().map(str::to_owned),
                peer: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                // Reserved ids are only ever opened by internal clients.
                credential: if is_reserved_client_id(&ms.client_id) {
                    Credential::Internal
                } else {
                    Credential::None
                }
                .shared(),
            });
            let expiry = ms.expiry_interval.max(1);
            let session = Arc::new(Session::new(*sid, expiry, client));
            {
                let mut slot = session.slot.lock();
                if expiry != u32::MAX {
                    // A session that was connected at the crash ends `expiry` after now.
                    slot.deadline = NonZeroU64::new(
                        ms.deadline
                            .unwrap_or(now.saturating_add(u64::from(expiry) * 1000)),
                    );
                }
                for (filter, &(options, id)) in &ms.subs {
                    let opts = SubOpts::from_byte(options, id);
                    slot.state.subscriptions.insert(filter.to_string(), opts);
                    router.insert(filter, *sid, session.clone(), opts);
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
                        sub_ids: SubIds::from_slice(&q.sub_ids),
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
            sessions.replace(ById(session));
        }
        self.next_uid.store(max_uid + 1, Ordering::Relaxed);
    }

    /// Starts the expiry timers of the restored offline sessions.
    pub fn start_timers(self: &Arc<Self>) {
        let sessions: Vec<Arc<Session>> =
            self.sessions.lock().iter().map(|s| s.0.clone()).collect();
        for session in sessions {
            let deadline = session.slot.lock().deadline;
            if let Some(at) = deadline {
                self.schedule(&session, at.get(), Timer::SessionExpiry);
            }
        }
    }

    fn append(&self, record: &Record) -> Option<Ack> {
        self.store.as_ref().and_then(|s| s.append(record))
    }

    /// A fresh message id.
    pub fn message_id(&self) -> u64 {
        self.next_message.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether `client` may publish on `topic` (and have its will published there).
    /// mqgate's internal clients may publish anywhere; everyone else asks the authorizer.
    pub fn may_publish(&self, client: &ClientInfo, topic: &str, qos: QoS, retain: bool) -> bool {
        client.is_internal()
            || self
                .authorizer
                .authorize_publish(client, topic, qos, retain)
    }

    /// Whether `client` may subscribe to `filter` (internal clients always may).
    pub fn may_subscribe(&self, client: &ClientInfo, filter: &str, qos: QoS) -> bool {
        client.is_internal() || self.authorizer.authorize_subscribe(client, filter, qos)
    }

    /// Whether a message on `topic` may be delivered to `client` (internal clients
    /// read everything their subscriptions match).
    pub fn may_read(&self, client: &ClientInfo, topic: &str) -> bool {
        client.is_internal() || self.authorizer.authorize_delivery(client, topic)
    }

    /// Messages with an id below this were queued before the authorizer's rules last
    /// changed (a reload), so their read permission is checked again when sent.
    pub fn recheck_below(&self) -> u64 {
        let epoch = self.authorizer.rules_epoch();
        if self.rules_epoch.load(Ordering::Acquire) != epoch {
            // Every message queued so far was checked under older rules (ids are
            // taken before routing, so this errs on the side of checking again).
            let next = self.next_message.load(Ordering::Relaxed);
            self.recheck_below.fetch_max(next, Ordering::AcqRel);
            self.rules_epoch.store(epoch, Ordering::Release);
        }
        self.recheck_below.load(Ordering::Acquire)
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
        self.router.read().len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.read().messages.len()
    }

    /// Bytes of the retained messages counted against `max_retained_bytes` (topic,
    /// payload and MQTT 5 properties of all but `$SYS`).
    pub fn retained_bytes(&self) -> usize {
        self.retained.read().bytes
    }

    /// Finds or creates the session for `client_id` (MQTT 3.1.1 §3.1.2.4, MQTT 5
    /// §3.1.2.4): an existing persistent session is resumed unless `clean`. `expiry` is
    /// the session expiry interval of this connection (3.x: 0 for clean session,
    /// `u32::MAX` otherwise).
    ///
    /// A session belongs to the principal that created it: a client of another
    /// principal (another user name, or anonymous) asking for the same client id is
    /// refused with [`SessionOwned`], and the session is left untouched, whether
    /// `clean` or not and whether it is connected or not. mqgate's internal clients own
    /// their reserved client ids.
    pub fn open_session(
        &self,
        client_id: &str,
        clean: bool,
        expiry: u32,
        client: Arc<ClientInfo>,
    ) -> Result<Opened, SessionOwned> {
        let mut sessions = self.sessions.lock();
        let existing = sessions.get(client_id).map(|s| s.0.clone());
        if let Some(existing) = &existing {
            let owner = existing.slot.lock().client.clone();
            if !client.is_internal() && !owner.same_principal(&client) {
                return Err(SessionOwned {
                    owner: owner.username.clone(),
                });
            }
        }
        // Whoever is attached to `existing` sees its `attach_seq` move on (or is kicked)
        // and goes; wake it if it waits (or is parked).
        if let Some(existing) = &existing {
            if !clean && existing.persistent {
                let mut ack = None;
                {
                    let mut slot = existing.slot.lock();
                    slot.client = client;
                    if slot.expiry != expiry && expiry > 0 {
                        ack = self.append(&Record::SessionExpiry {
                            sid: existing.uid,
                            interval: expiry,
                        });
                    }
                    slot.expiry = expiry;
                }
                let seq = existing.attach_seq.fetch_add(1, Ordering::AcqRel) + 1;
                drop(sessions);
                self.wake(existing);
                return Ok(Opened {
                    session: existing.clone(),
                    present: true,
                    replaced: None,
                    ack,
                    seq,
                });
            }
        }
        let mut ack = None;
        if let Some(old) = &existing {
            ack = self.discard(old);
        }
        let uid = self.next_uid.fetch_add(1, Ordering::Relaxed);
        debug_assert_eq!(client.client_id, client_id);
        let username = client.username.as_deref().map(Arc::from);
        let session = Arc::new(Session::new(uid, expiry, client));
        if session.persistent {
            ack = self
                .append(&Record::SessionOpen {
                    sid: uid,
                    client_id: Arc::from(client_id),
                    username,
                })
                .or(ack);
            if expiry != u32::MAX {
                ack = self
                    .append(&Record::SessionExpiry {
                        sid: uid,
                        interval: expiry,
                    })
                    .or(ack);
            }
        }
        sessions.replace(ById(session.clone()));
        let seq = session.attach_seq.fetch_add(1, Ordering::AcqRel) + 1;
        Ok(Opened {
            session,
            present: false,
            replaced: existing,
            ack,
            seq,
        })
    }

    /// Attaches a connection to `session` after it got the owner lock: marks it online,
    /// cancels a pending will and the expiry countdown. Returns what to resend.
    pub fn attach(&self, session: &Session) -> Vec<Transmit> {
        let mut slot = session.slot.lock();
        slot.state.set_online(true);
        session.connected.store(true, Ordering::Relaxed);
        slot.will = None;
        if slot.deadline.take().is_some() && session.persistent {
            self.append(&Record::SessionDeadline {
                sid: session.uid,
                at: None,
            });
        }
        slot.state.resume()
    }

    /// Removes `session`'s subscriptions and persistent state (not its table entry).
    fn discard(&self, session: &Arc<Session>) -> Option<Ack> {
        let filters: Vec<String> = {
            let slot = session.slot.lock();
            slot.state.subscriptions.keys().cloned().collect()
        };
        {
            let mut router = self.router.write();
            for filter in &filters {
                router.remove(filter, session.uid);
            }
        }
        if session.persistent {
            self.append(&Record::SessionClose { sid: session.uid })
        } else {
            None
        }
    }

    /// Removes `session` from the table (if it is still the one there) and discards it.
    /// With `seq`, only if no connection attached since (checked under the table lock);
    /// returns whether it ended.
    fn end_session(&self, session: &Arc<Session>, seq: Option<u64>) -> bool {
        let mut sessions = self.sessions.lock();
        if seq.is_some_and(|seq| session.attach_seq.load(Ordering::Acquire) != seq) {
            return false;
        }
        if sessions
            .get(session.client_id())
            .is_some_and(|s| Arc::ptr_eq(&s.0, session))
        {
            sessions.remove(session.client_id());
        }
        drop(sessions);
        self.discard(session);
        true
    }

    /// The connection number `seq` of `session` ended. `expiry` is the session expiry
    /// interval in force (0: the session ends now; `u32::MAX`: never). `will` is published
    /// now, or after its delay (capped by the session expiry) unless the session resumes.
    /// If another connection already took the session over, only the will is handled.
    pub fn close_session(
        self: &Arc<Self>,
        session: &Arc<Session>,
        seq: u64,
        expiry: u32,
        will: Option<PendingWill>,
    ) {
        if session.attach_seq.load(Ordering::Acquire) != seq {
            // Taken over: a resumed session keeps a delayed will unpublished.
            let resumed = self
                .sessions
                .lock()
                .get(session.client_id())
                .is_some_and(|s| Arc::ptr_eq(&s.0, session));
            if let Some(w) = will {
                if w.delay == 0 || !resumed {
                    self.publish_will(session, w.msg);
                }
            }
            session.space.notify_waiters();
            return;
        }
        let (now_will, delayed) = {
            let mut slot = session.slot.lock();
            slot.state.set_online(false);
            session.connected.store(false, Ordering::Relaxed);
            slot.expiry = expiry;
            match will {
                Some(w) if w.delay.min(expiry) > 0 => {
                    slot.will = Some(w.msg);
                    (None, Some(w.delay.min(expiry)))
                }
                Some(w) => (Some(w.msg), None),
                None => (None, None),
            }
        };
        if let Some(delay) = delayed {
            let at = now_ms().saturating_add(u64::from(delay) * 1000);
            self.schedule(session, at, Timer::Will);
        }
        if let Some(msg) = now_will {
            self.publish_will(session, msg);
        }
        if expiry == 0 {
            self.end_session(session, None);
        } else if expiry != u32::MAX {
            let at = now_ms().saturating_add(u64::from(expiry) * 1000);
            session.slot.lock().deadline = NonZeroU64::new(at);
            if session.persistent {
                self.append(&Record::SessionDeadline {
                    sid: session.uid,
                    at: Some(at),
                });
            }
            self.schedule(session, at, Timer::SessionExpiry);
        }
        session.space.notify_waiters();
    }

    fn publish_will(&self, session: &Session, msg: Arc<Message>) {
        info!(topic = %msg.topic, "publishing will");
        let mut outcome = RouteOutcome::default();
        self.publish(msg, &mut outcome);
        if let Some((limit, topic)) = outcome.retain_refused {
            let client = session.slot.lock().client.clone();
            self.log_refusal(limit, session, &client, &topic);
        }
    }

    /// Runs `timer` for `session` at `at` (ms since the epoch), unless the broker stops
    /// first. It does nothing if a connection attached in between.
    fn schedule(self: &Arc<Self>, session: &Arc<Session>, at: u64, timer: Timer) {
        let core = self.clone();
        let session = session.clone();
        let seq = session.attach_seq.load(Ordering::Acquire);
        let wait = Duration::from_millis(at.saturating_sub(now_ms()));
        tokio::spawn(async move {
            tokio::select! {
                _ = core.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if session.attach_seq.load(Ordering::Acquire) != seq {
                return;
            }
            let will = {
                let mut slot = session.slot.lock();
                if slot.state.online() {
                    return;
                }
                slot.will.take()
            };
            if timer == Timer::SessionExpiry {
                if !core.end_session(&session, Some(seq)) {
                    return;
                }
                info!(client_id = %session.client_id(), "session expired");
            }
            if let Some(msg) = will {
                core.publish_will(&session, msg);
            }
        });
    }

    /// Grants `filter` with `opts` to `session`. Returns the ack to wait for and whether
    /// the subscription is new; refuses a new one beyond `max_subscriptions_per_client`
    /// (counted in `Stats::subscriptions_refused`; the caller logs it). Changing the
    /// options of an existing subscription is always allowed.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &str,
        opts: SubOpts,
    ) -> Result<(Option<Ack>, bool), Limit> {
        {
            // Only the session's connection subscribes, so the check holds until the
            // insert below (the slot lock is not held across the router's: routing
            // takes them in the other order).
            let slot = session.slot.lock();
            let subs = &slot.state.subscriptions;
            if subs.len() >= self.settings.max_subscriptions_per_client
                && !subs.contains_key(filter)
            {
                Stats::add(&self.stats.subscriptions_refused, 1);
                return Err(Limit::SubscriptionsPerClient);
            }
        }
        let new = self
            .router
            .write()
            .insert(filter, session.uid, session.clone(), opts);
        let mut slot = session.slot.lock();
        slot.state.subscriptions.insert(filter.to_owned(), opts);
        let ack = if session.persistent {
            let options = opts.to_byte();
            self.append(&if options <= 2 && opts.id == 0 {
                Record::Subscribe {
                    sid: session.uid,
                    filter: Arc::from(filter),
                    qos: options,
                }
            } else {
                Record::SubscribeV5 {
                    sid: session.uid,
                    filter: Arc::from(filter),
                    options,
                    id: opts.id,
                }
            })
        } else {
            None
        };
        Ok((ack, new))
    }

    /// Logs that `limit` refused something `client` (of `session`) asked for: `what`
    /// names the topic or filter. Every refusal is counted; the log names a client the
    /// first time in a row it hits a limit, then at every power of two of the total, so
    /// one client retrying in a loop does not flood the log.
    pub fn log_refusal(&self, limit: Limit, session: &Session, client: &ClientInfo, what: &str) {
        let (total, max) = match limit {
            Limit::RetainedMessages => (
                &self.stats.retained_refused,
                self.settings.max_retained_messages,
            ),
            Limit::RetainedBytes => (
                &self.stats.retained_refused,
                self.settings.max_retained_bytes,
            ),
            Limit::SubscriptionsPerClient => (
                &self.stats.subscriptions_refused,
                self.settings.max_subscriptions_per_client,
            ),
        };
        let total = Stats::get(total);
        let last = self.refusal_logged.swap(session.uid, Ordering::Relaxed);
        if last == session.uid && !total.is_power_of_two() {
            return;
        }
        let (client_id, peer, name) = (&client.client_id, client.peer, limit.name());
        if limit == Limit::SubscriptionsPerClient {
            warn!(
                %client_id, %peer, limit = name, max, filter = ?what, refused_total = total,
                "SUBSCRIBE refused: the client holds {name} = {max} subscriptions already"
            );
        } else {
            warn!(
                %client_id, %peer, limit = name, max, topic = ?what, refused_total = total,
                "retained message not stored (delivered as a normal PUBLISH): {name} = {max} reached"
            );
        }
    }

    /// Removes `session`'s subscription to `filter`. Returns the ack to wait for and
    /// whether the subscription existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> (Option<Ack>, bool) {
        self.router.write().remove(filter, session.uid);
        let mut slot = session.slot.lock();
        let existed = slot.state.subscriptions.remove(filter).is_some();
        let ack = if session.persistent && existed {
            self.append(&Record::Unsubscribe {
                sid: session.uid,
                filter: Arc::from(filter),
            })
        } else {
            None
        };
        (ack, existed)
    }

    /// Queues the retained messages matching `filter` for `session` (retain flag set).
    /// Shared subscriptions get none; expired retained messages are deleted instead.
    pub fn deliver_retained(&self, session: &Arc<Session>, filter: &str, opts: SubOpts) {
        if mqgate_protocol::topic::parse_shared(filter).is_some() {
            return;
        }
        let now = now_ms();
        let mut expired = Vec::new();
        let retained = self.retained.read();
        let matching: Vec<Arc<Message>> = retained
            .messages
            .values()
            .filter(|m| mqgate_protocol::topic::matches(filter, &m.topic))
            .filter(|m| {
                let gone = m.expired(now);
                if gone {
                    expired.push(Arc::clone(m));
                }
                !gone
            })
            .cloned()
            .collect();
        drop(retained);
        for m in expired {
            self.drop_expired_retained(&m);
        }
        let sub_ids = if opts.id == 0 {
            SubIds::None
        } else {
            SubIds::One(opts.id)
        };
        let mut outcome = RouteOutcome::default();
        for msg in matching {
            let qos = msg.qos.min(opts.qos);
            self.deliver(session, msg, qos, true, sub_ids.clone(), &mut outcome);
        }
    }

    fn drop_expired_retained(&self, msg: &Arc<Message>) {
        let mut retained = self.retained.write();
        if retained
            .messages
            .get(&msg.topic)
            .is_some_and(|m| Arc::ptr_eq(m, msg))
        {
            retained.remove(&msg.topic);
            Stats::add(&self.stats.messages_expired, 1);
            self.append(&Record::RetainClear {
                topic: msg.topic.clone(),
            });
        }
    }

    fn retain_record(msg: &Message) -> Record {
        if msg.properties.is_empty() && msg.expires_at.is_none() {
            Record::Retain {
                topic: msg.topic.clone(),
                payload: msg.payload.clone(),
                qos: msg.qos as u8,
            }
        } else {
            Record::RetainV5 {
                topic: msg.topic.clone(),
                payload: msg.payload.clone(),
                qos: msg.qos as u8,
                props: StoredProps::from_properties(&msg.properties),
                expires_at: msg.expires_at,
            }
        }
    }

    /// Routes a published message: updates the retained store, then queues it once for
    /// every matching session (one member per share group) at the highest granted QoS
    /// (capped by the message's QoS), with the identifiers of the matching subscriptions.
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
                match retained.store(&msg) {
                    Err(limit) => {
                        // Routed below as a normal PUBLISH; nothing of it is persisted.
                        Stats::add(&self.stats.retained_refused, 1);
                        outcome.retain_refused = Some((limit, msg.topic.clone()));
                    }
                    Ok(stored) if !is_sys => {
                        outcome.ack = self
                            .append(&Self::retain_record(&stored))
                            .or(outcome.ack.take());
                    }
                    Ok(_) => {}
                }
            }
        }
        let mut targets = Vec::new();
        self.router.read().route(
            &msg.topic,
            &mut targets,
            |s| s.connected.load(Ordering::Relaxed),
            |s| self.may_read(&s.slot.lock().client, &msg.topic),
        );
        if targets.len() > 1 {
            targets.sort_unstable_by_key(|t| t.0);
        }
        outcome.direct &= targets.len() <= DIRECT_MAX_TARGETS;
        let mut rest = targets.as_slice();
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|t| t.0 == first.0).count();
            let (group, tail) = rest.split_at(n);
            rest = tail;
            if let Some((qos, retain, sub_ids)) = merge(&msg, group) {
                outcome.matched += 1;
                self.deliver(&first.1, msg.clone(), qos, retain, sub_ids, outcome);
            }
        }
    }

    /// Queues one delivery for `session` and wakes its connection.
    fn deliver(
        &self,
        session: &Arc<Session>,
        msg: Arc<Message>,
        qos: QoS,
        retain: bool,
        sub_ids: SubIds,
        outcome: &mut RouteOutcome,
    ) {
        let mut slot = session.slot.lock();
        if !self.may_read(&slot.client, &msg.topic) {
            return;
        }
        let seq = slot.state.alloc_seq();
        let msg_id = msg.id;
        let ids = (session.persistent && sub_ids != SubIds::None).then(|| sub_ids.to_vec());
        let delivery = Delivery {
            seq,
            msg: msg.clone(),
            qos,
            retain,
            sub_ids,
        };
        let result = slot.state.enqueue(delivery, &self.limits);
        let persist = session.persistent && qos != QoS::AtMostOnce && self.store.is_some();
        let mut kick = false;
        let queued = matches!(
            result,
            Enqueued::Queued | Enqueued::QueuedOverLimit | Enqueued::DroppedOldest(_)
        );
        if persist && queued {
            if !outcome.message_persisted {
                self.append(&message_record(&msg));
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
            if let Some(ids) = ids {
                self.append(&Record::EnqueueIds {
                    sid: session.uid,
                    seq,
                    ids,
                });
            }
        }
        let online = slot.state.online();
        let sole = matches!(result, Enqueued::Queued);
        match result {
            Enqueued::Queued | Enqueued::SkippedOffline => {}
            Enqueued::QueuedOverLimit => outcome.blocked.push(session.clone()),
            Enqueued::DroppedNew => {
                outcome.dropped += 1;
                self.count_drop(&mut slot, session, "newest");
            }
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
                outcome.dropped += 1;
                self.count_drop(&mut slot, session, "newest");
                warn!(
                    client_id = %session.client_id(),
                    peer = %slot.client.peer,
                    limit = "max_queued_messages",
                    "disconnecting slow subscriber: its queue is full"
                );
                kick = true;
            }
        }
        let written = outcome.direct && sole && self.deliver_direct(session, &mut slot);
        outcome.wrote_direct |= written;
        drop(slot);
        if kick {
            self.kick(session, ReasonCode::QuotaExceeded);
        } else if online && queued && !written {
            self.wake(session);
            outcome.woke = true;
        }
    }

    /// Direct delivery (see [`Slot::direct`]): if the connection lent its socket and the
    /// delivery just queued is the only one and may be sent now, moves it into the
    /// inflight window and writes it (3.1/3.1.1 framing: only such connections lend).
    /// True if it was written whole. A write cut short (or refused: a full socket
    /// buffer, an error) ends the loan, leaves the unwritten bytes for the connection
    /// ([`Core::take_cut_write`]) and returns false: the connection, woken by the
    /// caller, writes them first.
    fn deliver_direct(&self, session: &Session, slot: &mut Slot) -> bool {
        let Slot { state, direct, .. } = slot;
        let Some(stream) = direct else {
            return false;
        };
        let now = now_ms();
        if !state.sole_pending_sendable(&self.limits, now) {
            return false;
        }
        let Some(Transmit::Publish { pkid, delivery, .. }) = state.poll_transmit(&self.limits, now)
        else {
            return false;
        };
        if delivery.qos == QoS::ExactlyOnce {
            self.note_sent_qos2(session, delivery.seq, pkid);
        }
        let packet = Packet::Publish(delivery.publish_v3(pkid, false));
        let version = ProtocolVersion::V3_1_1;
        let mut buf = BytesMut::with_capacity(encoded_len(&packet, version));
        if let Err(e) = encode_packet(&packet, version, &mut buf) {
            // As the connection does: logged, and the delivery counts as sent.
            warn!(error = %e, packet = "PUBLISH", "cannot encode an outgoing packet");
            return true;
        }
        let written = match stream.try_write(&buf) {
            Ok(n) => n,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    debug!(client_id = %session.client_id(), error = %e,
                        "direct delivery failed; the connection will see the error");
                }
                0
            }
        };
        Stats::add(&self.stats.messages_sent, 1);
        Stats::add(&self.stats.bytes_sent, written as u64);
        Stats::add(&self.stats.deliveries_direct, 1);
        if written == buf.len() {
            return true;
        }
        Stats::add(&self.stats.deliveries_direct_cut, 1);
        buf.advance(written);
        *direct = None;
        state.direct_cut = true;
        self.cut_writes.lock().insert(session.uid, buf);
        false
    }

    /// The rest of `session`'s direct write cut short, if there is one (see
    /// [`Core::deliver_direct`]); called with its slot lock held.
    pub fn take_cut_write(&self, session: &Session, slot: &mut Slot) -> Option<BytesMut> {
        if !std::mem::take(&mut slot.state.direct_cut) {
            return None;
        }
        self.cut_writes.lock().remove(&session.uid)
    }

    /// Wakes the connection attached to `session`: notifies it, or unparks it if parked.
    /// Never called with the session's slot lock held.
    pub fn wake(&self, session: &Session) {
        session.wake.notify_one();
        if session.parked.load(Ordering::SeqCst) != 0 {
            self.unpark(session);
        }
    }

    /// Unparks `session`'s connection if it is parked.
    pub fn unpark(&self, session: &Session) {
        let key = session.parked.swap(0, Ordering::SeqCst);
        if let (Some(key), Some(parker)) = (key.checked_sub(1), self.parker.get()) {
            parker.wake(key, session.uid);
        }
    }

    /// Disconnects the connection attached to `session` with `reason` (MQTT 5
    /// DISCONNECT code).
    pub fn kick(&self, session: &Session, reason: ReasonCode) {
        session.kick_reason.store(reason.value(), Ordering::Relaxed);
        session
            .kicked
            .store(session.attach_seq.load(Ordering::SeqCst), Ordering::SeqCst);
        self.wake(session);
    }

    fn count_drop(&self, slot: &mut Slot, session: &Session, which: &str) {
        Stats::add(&self.stats.messages_dropped, 1);
        slot.dropped = slot.dropped.saturating_add(1);
        if slot.dropped.is_power_of_two() {
            warn!(
                client_id = %session.client_id(),
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

    /// Records that delivery `seq` is complete (or dropped: expired, too large).
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
    /// Disconnects (reason NotAuthorized, MQTT 5 DISCONNECT 0x87) every connected client
    /// for which `still_valid` is false; returns how many. Internal clients are kept.
    pub fn disconnect_revoked(&self, still_valid: &dyn Fn(&ClientInfo) -> bool) -> usize {
        let sessions: Vec<Arc<Session>> =
            self.sessions.lock().iter().map(|s| s.0.clone()).collect();
        let mut n = 0;
        for s in sessions {
            if !s.connected.load(Ordering::Acquire) {
                continue;
            }
            let client = s.slot.lock().client.clone();
            if client.is_internal() || still_valid(&client) {
                continue;
            }
            warn!(client_id = %client.client_id, peer = %client.peer,
                user = client.username.as_deref().unwrap_or(""), credential = ?client.credential,
                "disconnecting client: its credentials were withdrawn by a reload");
            self.kick(&s, ReasonCode::NotAuthorized);
            n += 1;
        }
        n
    }

    pub fn kick_all(&self) {
        let sessions: Vec<Arc<Session>> =
            self.sessions.lock().iter().map(|s| s.0.clone()).collect();
        for s in sessions {
            self.kick(&s, ReasonCode::ServerShuttingDown);
        }
    }
}

/// What a scheduled timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Publish the delayed will.
    Will,
    /// End the session (publishing a will still waiting).
    SessionExpiry,
}

/// The persistence record of a message body.
fn message_record(msg: &Message) -> Record {
    if msg.properties.is_empty() && msg.expires_at.is_none() {
        Record::Message {
            id: msg.id,
            topic: msg.topic.clone(),
            payload: msg.payload.clone(),
            qos: msg.qos as u8,
        }
    } else {
        Record::MessageV5 {
            id: msg.id,
            topic: msg.topic.clone(),
            payload: msg.payload.clone(),
            qos: msg.qos as u8,
            props: StoredProps::from_properties(&msg.properties),
            expires_at: msg.expires_at,
        }
    }
}

/// Merges the matching subscriptions of one session into one delivery: the highest QoS,
/// Retain As Published if any asks for it, every subscription identifier; subscriptions
/// with No Local do not count for the publisher's own messages. `None`: not delivered.
fn merge(msg: &Message, subs: &[(u64, Arc<Session>, SubOpts)]) -> Option<(QoS, bool, SubIds)> {
    if let [(uid, _, o)] = subs {
        if o.no_local && *uid == msg.origin {
            return None;
        }
        let ids = if o.id == 0 {
            SubIds::None
        } else {
            SubIds::One(o.id)
        };
        return Some((msg.qos.min(o.qos), o.retain_as_published && msg.retain, ids));
    }
    let mut qos: Option<QoS> = None;
    let mut rap = false;
    let mut ids = Vec::new();
    for (uid, _, o) in subs {
        if o.no_local && *uid == msg.origin {
            continue;
        }
        qos = Some(qos.map_or(o.qos, |q| q.max(o.qos)));
        rap |= o.retain_as_published;
        if o.id != 0 && !ids.contains(&o.id) {
            ids.push(o.id);
        }
    }
    Some((
        msg.qos.min(qos?),
        rap && msg.retain,
        SubIds::from_slice(&ids),
    ))
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// Every session (idle connections included) holds one `Arc<Session>`: at 296 bytes
    /// it is a 320-byte malloc chunk (glibc), at 304 the next size (336), which cost
    /// idle connections their lead over mosquitto's 749 B (see `ARCHITECTURE.md`).
    #[test]
    fn a_session_fits_its_malloc_chunk() {
        let size = std::mem::size_of::<super::Session>();
        assert!(size <= 296, "Session is {size} bytes");
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::auth::AllowAll;
    use crate::retained::tests::msg;

    /// A core with `settings` and one clean session, "c".
    fn core_with(settings: BrokerSettings) -> (Core, Arc<Session>) {
        let core = Core::new(settings, Arc::new(AllowAll), None, None);
        let client = Arc::new(ClientInfo {
            client_id: "c".into(),
            username: None,
            peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 1)),
            credential: Credential::None.shared(),
        });
        let Ok(opened) = core.open_session("c", true, 0, client) else {
            panic!("session refused");
        };
        (core, opened.session)
    }

    #[test]
    fn a_new_subscription_beyond_the_limit_is_refused_an_update_is_not() {
        let (core, s) = core_with(BrokerSettings {
            max_subscriptions_per_client: 2,
            ..BrokerSettings::default()
        });
        let s = &s;
        let q1 = SubOpts::qos(QoS::AtLeastOnce);
        assert!(matches!(core.subscribe(s, "a/#", q1), Ok((_, true))));
        assert!(matches!(core.subscribe(s, "b", q1), Ok((_, true))));
        assert_eq!(
            core.subscribe(s, "c", q1).err(),
            Some(Limit::SubscriptionsPerClient)
        );
        let q0 = SubOpts::qos(QoS::AtMostOnce);
        assert!(matches!(core.subscribe(s, "a/#", q0), Ok((_, false))));
        assert_eq!(Stats::get(&core.stats.subscriptions_refused), 1);
        assert_eq!(core.subscription_count(), 2);
        core.unsubscribe(s, "b");
        assert!(matches!(core.subscribe(s, "c", q1), Ok((_, true))));
    }

    #[test]
    fn a_refused_retained_publish_is_still_routed_and_counted() {
        let (core, s) = core_with(BrokerSettings {
            max_retained_messages: 1,
            ..BrokerSettings::default()
        });
        assert!(core
            .subscribe(&s, "#", SubOpts::qos(QoS::AtMostOnce))
            .is_ok());
        let mut outcome = RouteOutcome::default();
        core.publish(msg("a", "1"), &mut outcome);
        assert!(outcome.retain_refused.is_none());
        let mut outcome = RouteOutcome::default();
        core.publish(msg("b", "1"), &mut outcome);
        let Some((limit, topic)) = outcome.retain_refused else {
            panic!("retained")
        };
        assert_eq!((limit, &*topic), (Limit::RetainedMessages, "b"));
        assert_eq!(outcome.matched, 1, "delivered all the same");
        assert_eq!(core.retained_count(), 1);
        assert_eq!(Stats::get(&core.stats.retained_refused), 1);
    }
}
