//! The bridge's link to the local broker: a persistent session (clean session off, client
//! id `mqgate-bridge-<name>`) subscribed to the `out` rules, so the local broker keeps
//! messages for the bridge while it restarts.
//!
//! * A local message is mapped, pushed into the durable queue, and acknowledged to the
//!   local broker (PUBACK / PUBREC) only once the queue's commit resolved. The commits
//!   wait in a FIFO polled by the link's own task (the WAL resolves them in append order),
//!   and each group commit releases its whole batch of acks in one write: no task per
//!   message.
//! * Messages from the upstream (`in` rules) are published locally; the upstream link is
//!   told (oneshot) when the local broker acknowledged them, and acks upstream only then.
//! * Loop prevention: MQTT 5 is tried first; with it, the subscriptions use No Local and
//!   Retain As Published. A broker that refuses MQTT 5 gets 3.1.1 and the [`EchoGuard`].

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use mqgate_protocol::{
    Connect, Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, RetainHandling,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};
use mqgate_wal::Commit;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::conn::Link;

type Tx = mpsc::UnboundedSender<Packet>;

fn send(tx: &Tx, packet: Packet) -> Result<(), BridgeError> {
    tx.send(packet).map_err(|_| BridgeError::Closed)
}
use crate::connector::LocalConnector;
use crate::echo::EchoGuard;
use crate::error::BridgeError;
use crate::mapping::TopicMap;
use crate::queue::{DurableQueue, NewMessage, Pushed};
use crate::session::PkidAllocator;

/// A message the bridge publishes on the local broker.
#[derive(Debug)]
pub struct LocalPublish {
    /// Local topic.
    pub topic: Arc<str>,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Payload.
    pub payload: Bytes,
    /// Told when the local broker acknowledged it (QoS 1/2).
    pub done: Option<oneshot::Sender<()>>,
}

struct Pending {
    publish: Publish,
    done: Option<oneshot::Sender<()>>,
}

/// The local side of one bridge.
pub struct LocalLink {
    name: String,
    map: Arc<TopicMap>,
    queue: Arc<DurableQueue>,
    outgoing_retain: bool,
    guard: EchoGuard,
    pending: HashMap<u16, Pending>,
    pkids: PkidAllocator,
    /// Settled by the first successful CONNECT: MQTT 5 unless the broker refused it.
    version: Option<ProtocolVersion>,
    /// Set to `true` once the out rules are subscribed on the local broker (at once when
    /// there are none): from then on, local messages for them reach the queue.
    subscribed: watch::Sender<bool>,
}

impl LocalLink {
    /// A link for bridge `name`.
    pub fn new(
        name: &str,
        map: Arc<TopicMap>,
        queue: Arc<DurableQueue>,
        outgoing_retain: bool,
        subscribed: watch::Sender<bool>,
    ) -> LocalLink {
        LocalLink {
            name: name.to_owned(),
            map,
            queue,
            outgoing_retain,
            guard: EchoGuard::default(),
            pending: HashMap::new(),
            pkids: PkidAllocator::default(),
            version: None,
            subscribed,
        }
    }

    fn client_id(&self) -> String {
        format!("mqgate-bridge-{}", self.name)
    }

    /// Runs until `shutdown` (reconnecting to the local broker if the link drops).
    pub async fn run(
        mut self,
        connector: Arc<dyn LocalConnector>,
        mut commands: mpsc::UnboundedReceiver<LocalPublish>,
        shutdown: CancellationToken,
    ) {
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.session(&*connector, &mut commands, &shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(bridge = %self.name, client_id = %self.client_id(), %error,
                        "bridge: local broker link lost; reconnecting");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn open(&mut self, connector: &dyn LocalConnector) -> Result<Link, BridgeError> {
        let versions: &[ProtocolVersion] = match self.version {
            Some(v) => &[v][..],
            None => &[ProtocolVersion::V5, ProtocolVersion::V3_1_1],
        };
        let mut last = BridgeError::Closed;
        for &version in versions.to_vec().iter() {
            let stream = connector
                .connect()
                .await
                .map_err(|e| BridgeError::io("connecting to the local broker", e))?;
            let mut properties = Properties::default();
            if version.is_v5() {
                properties.session_expiry_interval = Some(u32::MAX);
                properties.receive_maximum = Some(u16::MAX);
            }
            let connect = Connect {
                protocol: version,
                clean_start: false,
                keep_alive: 0,
                client_id: self.client_id(),
                will: None,
                username: None,
                password: None,
                properties,
            };
            match Link::open(stream, &connect, false, Duration::from_secs(10)).await {
                Ok((link, connack)) if connack.reason == ReasonCode::Success => {
                    self.version = Some(version);
                    tracing::info!(bridge = %self.name, client_id = %connect.client_id,
                        ?version, session_present = connack.session_present,
                        "bridge: connected to the local broker");
                    return Ok(link);
                }
                Ok((_, connack)) => {
                    last = BridgeError::Refused {
                        reason: connack.reason,
                    }
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    async fn session(
        &mut self,
        connector: &dyn LocalConnector,
        commands: &mut mpsc::UnboundedReceiver<LocalPublish>,
        shutdown: &CancellationToken,
    ) -> Result<(), BridgeError> {
        let mut link = self.open(connector).await?;
        let v5 = self.version.is_some_and(ProtocolVersion::is_v5);
        let filters: Vec<SubscribeFilter> = self
            .map
            .local_subscriptions()
            .into_iter()
            .map(|(filter, qos)| SubscribeFilter {
                filter,
                options: SubscriptionOptions {
                    qos,
                    no_local: v5,
                    retain_as_published: v5,
                    retain_handling: RetainHandling::SendAtSubscribe,
                },
            })
            .collect();
        if !filters.is_empty() {
            let pending = &self.pending;
            let pkid = self.pkids.next(|p| pending.contains_key(&p)).unwrap_or(1);
            link.send(Packet::Subscribe(Subscribe {
                pkid,
                filters,
                properties: Properties::default(),
            }))?;
        } else {
            self.subscribed.send_replace(true);
        }
        // Our own publishes the broker has not acknowledged yet: send them again.
        for pending in self.pending.values() {
            let mut publish = pending.publish.clone();
            publish.dup = true;
            link.send(Packet::Publish(publish))?;
        }
        let tx = link.sender();
        // Acks for the local broker, each waiting for its message's commit, in order.
        let mut durable: VecDeque<(Commit, Packet)> = VecDeque::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = link.send(Packet::Disconnect(Default::default()));
                    link.close(Duration::from_secs(1)).await;
                    return Ok(());
                }
                packet = link.next() => {
                    if let Some(waiting) = self.on_packet(packet?, &tx, v5).await? {
                        durable.push_back(waiting);
                    }
                }
                result = poll_fn(|cx| match durable.front_mut() {
                    Some((commit, _)) => commit.poll_unpin(cx),
                    None => Poll::Pending,
                }), if !durable.is_empty() => {
                    self.release_acks(result, &mut durable, &tx)?;
                }
                command = commands.recv() => match command {
                    Some(command) => self.publish(command, &tx, v5)?,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Sends the ack whose commit resolved with `first`, and those of every following
    /// commit already resolved. A failed commit is logged and its message left unacked
    /// (the local broker redelivers it after a reconnect).
    fn release_acks(
        &self,
        first: Result<(), mqgate_wal::WalError>,
        durable: &mut VecDeque<(Commit, Packet)>,
        tx: &Tx,
    ) -> Result<(), BridgeError> {
        let mut result = Some(first);
        while let Some(outcome) = result.take() {
            let Some((_, ack)) = durable.pop_front() else {
                break;
            };
            match outcome {
                Ok(()) => send(tx, ack)?,
                Err(error) => tracing::error!(bridge = %self.name, %error,
                    "bridge queue could not store a message; not acknowledging it"),
            }
            result = durable
                .front_mut()
                .and_then(|(commit, _)| commit.now_or_never());
        }
        Ok(())
    }

    /// Handles a packet from the local broker; returns an ack to send once its commit
    /// resolves.
    async fn on_packet(
        &mut self,
        packet: Packet,
        link: &Tx,
        v5: bool,
    ) -> Result<Option<(Commit, Packet)>, BridgeError> {
        let done = |r: Result<(), BridgeError>| r.map(|()| None);
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, link, v5).await,
            Packet::PubAck(ack) | Packet::PubComp(ack) => {
                if let Some(pending) = self.pending.remove(&ack.pkid) {
                    if let Some(done) = pending.done {
                        let _ = done.send(());
                    }
                }
                Ok(None)
            }
            Packet::PubRec(ack) => done(send(link, Packet::PubRel(PubAck::new(ack.pkid)))),
            Packet::PubRel(ack) => done(send(link, Packet::PubComp(PubAck::new(ack.pkid)))),
            Packet::SubAck(suback) => {
                for reason in suback.reasons.iter().filter(|r| r.is_failure()) {
                    tracing::error!(bridge = %self.name, ?reason,
                        "bridge: the local broker refused an out-rule subscription");
                }
                // From here on, local messages for the out rules reach the queue (before,
                // the local broker had no subscriber for them).
                tracing::info!(bridge = %self.name, filters = suback.reasons.len(),
                    "bridge: subscribed to the local broker");
                self.subscribed.send_replace(true);
                Ok(None)
            }
            Packet::PingResp => Ok(None),
            Packet::Disconnect(d) => {
                tracing::warn!(bridge = %self.name, reason = ?d.reason, "bridge: local broker disconnected us");
                Err(BridgeError::Closed)
            }
            other => Err(BridgeError::Unexpected(other.packet_type())),
        }
    }

    /// A local message for an `out` rule: queue it; returns its ack, to be sent once the
    /// message is durable.
    async fn on_publish(
        &mut self,
        publish: Publish,
        link: &Tx,
        v5: bool,
    ) -> Result<Option<(Commit, Packet)>, BridgeError> {
        let ack = match publish.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(publish.pkid))),
            QoS::ExactlyOnce => Some(Packet::PubRec(PubAck::new(publish.pkid))),
        };
        let echo = !v5
            && self.map.has_overlap()
            && self
                .guard
                .take(&publish.topic, &publish.payload, Instant::now());
        let mapped = if echo {
            None
        } else {
            self.map.outgoing(&publish.topic)
        };
        let Some((topic, cap)) = mapped else {
            if echo {
                tracing::trace!(bridge = %self.name, topic = %publish.topic, "bridge: not forwarding our own message back");
            }
            return ack.map_or(Ok(None), |a| send(link, a).map(|()| None));
        };
        let message = NewMessage {
            topic: topic.into(),
            qos: publish.qos.min(cap),
            retain: publish.retain && self.outgoing_retain,
            payload: publish.payload,
        };
        match self.queue.push(message).await? {
            Pushed::Dropped => ack.map_or(Ok(None), |a| send(link, a).map(|()| None)),
            Pushed::Stored(commit) => Ok(ack.map(|ack| (commit, ack))),
        }
    }

    /// Publishes a message from the upstream on the local broker.
    fn publish(&mut self, command: LocalPublish, link: &Tx, v5: bool) -> Result<(), BridgeError> {
        if !v5 && self.map.has_overlap() {
            self.guard
                .note(&command.topic, &command.payload, Instant::now());
        }
        let pkid = if command.qos == QoS::AtMostOnce {
            0
        } else {
            let pending = &self.pending;
            match self.pkids.next(|p| pending.contains_key(&p)) {
                Some(pkid) => pkid,
                None => {
                    return Err(BridgeError::Unsupported(
                        "65535 local messages in flight".into(),
                    ))
                }
            }
        };
        let publish = Publish {
            dup: false,
            qos: command.qos,
            retain: command.retain,
            topic: command.topic,
            pkid,
            payload: command.payload,
            properties: Properties::default(),
        };
        send(link, Packet::Publish(publish.clone()))?;
        if pkid != 0 {
            self.pending.insert(
                pkid,
                Pending {
                    publish,
                    done: command.done,
                },
            );
        } else if let Some(done) = command.done {
            let _ = done.send(());
        }
        Ok(())
    }
}
