//! The bridge's link to the upstream broker: connect (with failover, backoff and jitter),
//! subscribe to the `in` rules, drain the durable queue through the inflight window, and
//! pass inbound messages to the local link.
//!
//! Retransmission: MQTT 3.1.1 and 5 forbid resending within a session, so an upstream that
//! stops acknowledging (nothing acked for `ack_timeout`) or goes silent (keep-alive) is
//! disconnected; the next session resends everything unacknowledged, oldest first, with
//! DUP set, QoS 2 messages already PUBREC'd as PUBREL (mosquitto#3275), all with the packet
//! identifiers derived from their queue sequence numbers.
//!
//! State on the upstream: with `will_topic` set, CONNECT carries a last will
//! (`will_payload`, default "0") and, once connected, the bridge publishes "1" there
//! (mosquitto's notification topic); on a graceful stop it publishes `will_payload`
//! itself before DISCONNECT (which suppresses the will). Both notices go at QoS 0 with
//! `will_retain`, so they never take a packet identifier from the queue's sequence; if one
//! is lost, the connection is gone and the will says "0" anyway.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqgate_config::BridgeConfig;
use mqgate_protocol::{
    Connect, LastWill, Packet, Properties, PubAck, Publish, QoS, ReasonCode, RetainHandling,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::conn::{protocol_of, Link};
use crate::connector::UpstreamConnector;
use crate::drain::Drain;
use crate::error::BridgeError;
use crate::local::LocalPublish;
use crate::mapping::TopicMap;
use crate::queue::DurableQueue;
use crate::session::{pkid_for, Inflight, InflightEntry, Keepalive, KeepaliveAction, Stage};
use crate::stats::BridgeStats;

/// How a session ended without an error.
enum Ended {
    Shutdown,
}

/// Per-session state of the send side.
struct Sender {
    inflight: Inflight,
    drain: Drain,
    keepalive: Keepalive,
    max_qos: QoS,
    /// The upstream's QoS 2 downgrade was logged on this connection.
    downgrade_warned: bool,
}

/// The upstream side of one bridge.
pub struct UpstreamLink {
    config: BridgeConfig,
    map: Arc<TopicMap>,
    queue: Arc<DurableQueue>,
    stats: Arc<BridgeStats>,
    local: mpsc::UnboundedSender<LocalPublish>,
}

impl UpstreamLink {
    /// A link for `config`, publishing inbound messages through `local`.
    pub fn new(
        config: BridgeConfig,
        map: Arc<TopicMap>,
        queue: Arc<DurableQueue>,
        stats: Arc<BridgeStats>,
        local: mpsc::UnboundedSender<LocalPublish>,
    ) -> UpstreamLink {
        UpstreamLink {
            config,
            map,
            queue,
            stats,
            local,
        }
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    fn client_id(&self) -> String {
        self.config.client_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default();
            if host.is_empty() {
                self.config.name.clone()
            } else {
                format!("{}.{}", self.config.name, host)
            }
        })
    }

    /// The longest the oldest unacknowledged message may wait before the connection is
    /// considered stuck and dropped (so that the next one resends it).
    fn ack_timeout(&self) -> Duration {
        self.config.keepalive.max(Duration::from_secs(10)) * 2
    }

    /// Runs until `shutdown`, reconnecting with exponential backoff and jitter.
    pub async fn run(self, connector: Arc<dyn UpstreamConnector>, shutdown: CancellationToken) {
        let backoff = self.config.reconnect.clone();
        let mut delay = backoff.initial;
        // The previous session ended without CONNACK or without SUBACK.
        let mut unanswered = false;
        loop {
            let started = Instant::now();
            let mut connected = false;
            let outcome = self.session(&*connector, &shutdown, &mut connected).await;
            if connected {
                self.state(false);
                self.queue.mark_all_maybe_sent();
            }
            let was_unanswered = unanswered;
            unanswered = matches!(outcome, Err(BridgeError::NoConnAck | BridgeError::NoSubAck));
            match outcome {
                Ok(Ended::Shutdown) => return,
                Err(BridgeError::Refused { reason }) => {
                    tracing::error!(bridge = %self.name(), ?reason,
                        "bridge: the upstream refused the connection; retrying at the slowest pace");
                    delay = backoff.max;
                }
                // Logged with their likely cause where they happened. Once can be a
                // cluster node in transition (RabbitMQ right after another node stopped);
                // twice in a row, retrying soon would only repeat it.
                Err(error @ (BridgeError::NoConnAck | BridgeError::NoSubAck)) => {
                    if was_unanswered {
                        tracing::warn!(bridge = %self.name(), %error,
                            "bridge: retrying at the slowest pace");
                        delay = backoff.max;
                    } else {
                        tracing::warn!(bridge = %self.name(), %error,
                            "bridge: retrying (at the slowest pace if it happens again)");
                    }
                }
                Err(error) => {
                    let s = self.queue.snapshot();
                    tracing::warn!(bridge = %self.name(), %error, queued = s.depth,
                        "bridge: upstream connection failed or lost");
                    if connected
                        && started.elapsed() >= backoff.initial.max(Duration::from_secs(10))
                    {
                        delay = backoff.initial;
                    }
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            let pause = jitter(delay);
            tracing::info!(bridge = %self.name(), delay_ms = pause.as_millis() as u64, "bridge: reconnecting");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            delay = (delay * 2).min(backoff.max).max(backoff.initial);
        }
    }

    /// Publishes the retained connection state `$SYS/broker/connection/<name>/state` locally.
    fn state(&self, up: bool) {
        let _ = self.local.send(LocalPublish {
            topic: format!("$SYS/broker/connection/{}/state", self.name()).into(),
            qos: QoS::AtLeastOnce,
            retain: true,
            payload: if up { "1" } else { "0" }.into(),
            done: None,
        });
    }

    fn connect_packet(&self) -> Connect {
        let protocol = protocol_of(self.config.protocol);
        let mut properties = Properties::default();
        if protocol.is_v5() && !self.config.clean_start {
            // Without it an MQTT 5 session ends at disconnect (expiry 0 is the default).
            properties.session_expiry_interval = Some(u32::MAX);
        }
        let will = self.config.will_topic.as_ref().map(|topic| LastWill {
            topic: topic.as_str().into(),
            payload: bytes::Bytes::copy_from_slice(self.config.will_payload.as_bytes()),
            qos: QoS::from_u8(self.config.will_qos).unwrap_or(QoS::AtLeastOnce),
            retain: self.config.will_retain,
            properties: Properties::default(),
        });
        Connect {
            protocol,
            clean_start: self.config.clean_start,
            keep_alive: u16::try_from(self.config.keepalive.as_secs()).unwrap_or(u16::MAX),
            client_id: self.client_id(),
            will,
            username: self.config.username.clone(),
            password: self
                .config
                .password
                .as_ref()
                .map(|p| bytes::Bytes::copy_from_slice(p.expose().as_bytes())),
            properties,
        }
    }

    async fn session(
        &self,
        connector: &dyn UpstreamConnector,
        shutdown: &CancellationToken,
        connected: &mut bool,
    ) -> Result<Ended, BridgeError> {
        let dialled = tokio::select! {
            _ = shutdown.cancelled() => return Ok(Ended::Shutdown),
            dialled = connector.connect() => dialled.map_err(|e| BridgeError::io("connecting upstream", e))?,
        };
        let peer = dialled.peer;
        let connect = self.connect_packet();
        let v5 = connect.protocol.is_v5();
        let try_private = self.config.try_private && !v5;
        let opened = Link::open(
            dialled.stream,
            &connect,
            try_private,
            Duration::from_secs(10),
        )
        .await;
        let (mut link, connack) = match opened {
            Err(BridgeError::NoConnAck) => {
                tracing::warn!(bridge = %self.name(), %peer, client_id = %connect.client_id,
                    "bridge: upstream closed the connection before CONNACK; {}",
                    no_connack_cause(v5, try_private));
                return Err(BridgeError::NoConnAck);
            }
            other => other?,
        };
        if connack.reason != ReasonCode::Success {
            tracing::warn!(bridge = %self.name(), %peer, client_id = %connect.client_id,
                reason = ?connack.reason, "bridge: upstream CONNACK refused");
            return Err(BridgeError::Refused {
                reason: connack.reason,
            });
        }
        *connected = true;
        BridgeStats::bump(&self.stats.connects);
        let props = &connack.properties;
        let window = usize::from(self.config.max_inflight)
            .min(usize::from(props.receive_maximum.unwrap_or(u16::MAX)));
        let keepalive = props
            .server_keep_alive
            .map_or(self.config.keepalive, |s| Duration::from_secs(s.into()));
        let backlog = self.queue.snapshot();
        tracing::info!(bridge = %self.name(), %peer, client_id = %connect.client_id,
            session_present = connack.session_present, window, backlog = backlog.depth,
            "bridge: connected upstream");
        self.state(true);
        self.notice(&link, "1")?;
        let mut sender = Sender {
            inflight: Inflight::new(window),
            drain: Drain::new(&self.queue, window),
            keepalive: Keepalive::new(keepalive, Instant::now()),
            max_qos: props
                .maximum_qos
                .and_then(QoS::from_u8)
                .unwrap_or(QoS::ExactlyOnce),
            downgrade_warned: false,
        };
        let asked = self.subscribe(&link, v5)?;
        let mut ready = asked.is_empty();
        let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<Packet>();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        // Exactly 1.5 x keep-alive after the last packet received (the 250 ms tick alone
        // could notice a dead peer up to a tick late).
        let dead_timer = tokio::time::sleep_until(far(sender.keepalive.dead_at()));
        tokio::pin!(dead_timer);
        let ack_timeout = self.ack_timeout();
        loop {
            if ready {
                self.fill(&link, &mut sender)?;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = self.notice(&link, &self.config.will_payload);
                    let _ = link.send(Packet::Disconnect(Default::default()));
                    link.close(Duration::from_secs(2)).await;
                    return Ok(Ended::Shutdown);
                }
                packet = link.next() => {
                    let packet = match packet {
                        Err(BridgeError::Closed) if !ready => {
                            tracing::error!(bridge = %self.name(), %peer, client_id = %connect.client_id,
                                "bridge: upstream closed the connection after SUBSCRIBE, before SUBACK; \
                                 RabbitMQ does this (NOT_FOUND) when the session's subscription queue lives \
                                 on a cluster node that is down: the in rules resume on this node once that \
                                 node is back, or after `rabbitmqctl forget_cluster_node` drops its queues");
                            return Err(BridgeError::NoSubAck);
                        }
                        other => other?,
                    };
                    sender.keepalive.received(Instant::now());
                    if let Packet::SubAck(suback) = &packet {
                        self.subscribed(&peer, &asked, &suback.reasons);
                        ready = true;
                    } else {
                        self.on_packet(packet, &link, &mut sender, &acks_tx)?;
                    }
                }
                Some(packet) = acks_rx.recv() => {
                    link.send(packet)?;
                    sender.keepalive.sent(Instant::now());
                }
                _ = self.queue.added(), if ready && sender.inflight.has_room() => {}
                _ = &mut dead_timer => {
                    // Fires at the deadline set from the last packet seen when it was armed;
                    // re-armed if something arrived since.
                    self.keepalive(&link, &mut sender, &peer, keepalive)?;
                    dead_timer.as_mut().reset(far(sender.keepalive.dead_at()));
                }
                _ = tick.tick() => {
                    self.queue.flush_removed();
                    self.keepalive(&link, &mut sender, &peer, keepalive)?;
                    let now = Instant::now();
                    if sender.inflight.oldest().is_some_and(|t| now.duration_since(t) > ack_timeout) {
                        tracing::warn!(bridge = %self.name(), %peer, inflight = sender.inflight.len(),
                            timeout_s = ack_timeout.as_secs(),
                            "bridge: upstream does not acknowledge; reconnecting to resend");
                        return Err(BridgeError::Timeout("an upstream acknowledgement"));
                    }
                }
            }
        }
    }

    /// Sends PINGREQ when due; fails when the upstream was silent for 1.5 x keep-alive.
    fn keepalive(
        &self,
        link: &Link,
        s: &mut Sender,
        peer: &str,
        keepalive: Duration,
    ) -> Result<(), BridgeError> {
        match s.keepalive.poll(Instant::now()) {
            KeepaliveAction::Ping => link.send(Packet::PingReq),
            KeepaliveAction::Idle => Ok(()),
            KeepaliveAction::Dead => {
                tracing::warn!(bridge = %self.name(), %peer, keepalive_s = keepalive.as_secs(),
                    "bridge: upstream silent for 1.5 x keep-alive; dropping the connection");
                Err(BridgeError::Timeout("the upstream (keep-alive)"))
            }
        }
    }

    /// Publishes `payload` on `will_topic` (QoS 0, `will_retain`), if there is one.
    fn notice(&self, link: &Link, payload: &str) -> Result<(), BridgeError> {
        let Some(topic) = &self.config.will_topic else {
            return Ok(());
        };
        link.send(Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: self.config.will_retain,
            topic: topic.as_str().into(),
            pkid: 0,
            payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
            properties: Properties::default(),
        }))
    }

    /// Logs the SUBACK's outcome: refusals as errors, a QoS granted below the one asked
    /// (RabbitMQ grants QoS 1 for 2) as a warning; the messages then arrive at that QoS.
    fn subscribed(&self, peer: &str, asked: &[(String, QoS)], reasons: &[ReasonCode]) {
        for ((filter, qos), reason) in asked.iter().zip(reasons) {
            if reason.is_failure() {
                tracing::error!(bridge = %self.name(), %peer, filter, ?reason,
                    "bridge: the upstream refused an in-rule subscription");
            } else if reason.value() < *qos as u8 {
                tracing::warn!(bridge = %self.name(), %peer, filter, asked = *qos as u8,
                    granted = reason.value(),
                    "bridge: the upstream granted an in-rule subscription a lower QoS than asked");
            }
        }
        tracing::info!(bridge = %self.name(), %peer, filters = reasons.len(),
            "bridge: subscribed upstream");
    }

    /// Subscribes to the `in` rules; returns the filters and QoS asked for (none: sending
    /// may start at once, there is no SUBACK to wait for).
    fn subscribe(&self, link: &Link, v5: bool) -> Result<Vec<(String, QoS)>, BridgeError> {
        let filters: Vec<SubscribeFilter> = self
            .map
            .remote_subscriptions()
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
        let asked = filters
            .iter()
            .map(|f| (f.filter.to_string(), f.options.qos))
            .collect::<Vec<_>>();
        if filters.is_empty() {
            return Ok(asked);
        }
        // The identifier of the sequence number just before the oldest queued message:
        // not in use by any message that this session may resend.
        let oldest = self.queue.peek_after(None).map_or(0, |e| e.message.seq);
        link.send(Packet::Subscribe(Subscribe {
            pkid: pkid_for(oldest.wrapping_sub(1)),
            filters,
            properties: Properties::default(),
        }))?;
        Ok(asked)
    }

    /// Sends queued messages while the window has room.
    fn fill(&self, link: &Link, s: &mut Sender) -> Result<(), BridgeError> {
        while s.inflight.has_room() {
            let inflight = &s.inflight;
            let Some(entry) = s.drain.next(&self.queue, |pkid| inflight.contains(pkid)) else {
                return Ok(());
            };
            let message = entry.message;
            let seq = message.seq;
            let pkid = pkid_for(seq);
            if entry.maybe_sent {
                BridgeStats::bump(&self.stats.retransmitted);
            }
            let now = Instant::now();
            let qos = message.qos.min(s.max_qos);
            if qos != QoS::AtMostOnce && entry.released {
                link.send(Packet::PubRel(PubAck::new(pkid)))?;
                s.inflight.insert(
                    pkid,
                    InflightEntry {
                        seq,
                        stage: Stage::PubComp,
                        sent_at: now,
                    },
                );
                continue;
            }
            link.send(Packet::Publish(Publish {
                dup: entry.maybe_sent && qos != QoS::AtMostOnce,
                qos,
                retain: message.retain,
                topic: message.topic,
                pkid: if qos == QoS::AtMostOnce { 0 } else { pkid },
                payload: message.payload,
                properties: Properties::default(),
            }))?;
            s.keepalive.sent(now);
            match qos {
                QoS::AtMostOnce => {
                    self.queue.remove(seq);
                    s.drain.settled(seq);
                }
                QoS::AtLeastOnce => s.inflight.insert(
                    pkid,
                    InflightEntry {
                        seq,
                        stage: Stage::PubAck,
                        sent_at: now,
                    },
                ),
                QoS::ExactlyOnce => s.inflight.insert(
                    pkid,
                    InflightEntry {
                        seq,
                        stage: Stage::PubRec,
                        sent_at: now,
                    },
                ),
            }
        }
        Ok(())
    }

    fn on_packet(
        &self,
        packet: Packet,
        link: &Link,
        s: &mut Sender,
        acks: &mpsc::UnboundedSender<Packet>,
    ) -> Result<(), BridgeError> {
        match packet {
            Packet::PubAck(ack) => {
                let mut entry = s.inflight.take(ack.pkid, Stage::PubAck);
                if entry.is_none() {
                    // Brokers that downgrade QoS 2 to 1 (RabbitMQ 3.x) answer a QoS 2
                    // PUBLISH with PUBACK: the message was taken, at least once.
                    entry = s.inflight.take(ack.pkid, Stage::PubRec);
                    if entry.is_some() && !s.downgrade_warned {
                        s.downgrade_warned = true;
                        tracing::warn!(bridge = %self.name(),
                            "bridge: the upstream answered a QoS 2 PUBLISH with PUBACK: it downgrades \
                             QoS 2 to 1, so these messages are delivered at least once, not exactly once");
                    }
                }
                if let Some(entry) = entry {
                    s.drain.settled(entry.seq);
                    self.settle(entry.seq, ack.reason);
                }
            }
            Packet::PubRec(ack) => {
                if let Some(entry) = s.inflight.take(ack.pkid, Stage::PubRec) {
                    if ack.reason.is_failure() {
                        s.drain.settled(entry.seq);
                        self.settle(entry.seq, ack.reason);
                    } else {
                        self.queue.release(entry.seq);
                        link.send(Packet::PubRel(PubAck::new(ack.pkid)))?;
                        s.inflight.insert(
                            ack.pkid,
                            InflightEntry {
                                stage: Stage::PubComp,
                                sent_at: Instant::now(),
                                ..entry
                            },
                        );
                    }
                }
            }
            Packet::PubComp(ack) => {
                if let Some(entry) = s.inflight.take(ack.pkid, Stage::PubComp) {
                    // PacketIdentifierNotFound after a lost session still means done.
                    s.drain.settled(entry.seq);
                    self.queue.remove(entry.seq);
                }
            }
            Packet::Publish(publish) => self.inbound(publish, acks)?,
            Packet::PubRel(ack) => link.send(Packet::PubComp(PubAck::new(ack.pkid)))?,
            Packet::PingResp => {}
            Packet::Disconnect(d) => {
                tracing::warn!(bridge = %self.name(), reason = ?d.reason,
                    reason_string = ?d.properties.reason_string, "bridge: upstream disconnected us");
                return Err(BridgeError::Closed);
            }
            other => return Err(BridgeError::Unexpected(other.packet_type())),
        }
        Ok(())
    }

    fn settle(&self, seq: u64, reason: ReasonCode) {
        if reason.is_failure() {
            tracing::warn!(bridge = %self.name(), seq, ?reason,
                "bridge: the upstream refused a message; dropped (counted)");
            self.queue.refuse(seq);
        } else {
            self.queue.remove(seq);
        }
    }

    /// A message from the upstream: publish it locally, ack upstream once the local broker did.
    fn inbound(
        &self,
        publish: Publish,
        acks: &mpsc::UnboundedSender<Packet>,
    ) -> Result<(), BridgeError> {
        let ack = match publish.qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(publish.pkid))),
            QoS::ExactlyOnce => Some(Packet::PubRec(PubAck::new(publish.pkid))),
        };
        let Some((topic, cap)) = self.map.incoming(&publish.topic) else {
            tracing::debug!(bridge = %self.name(), topic = %publish.topic, "bridge: upstream message matches no in rule");
            if let Some(ack) = ack {
                let _ = acks.send(ack);
            }
            return Ok(());
        };
        BridgeStats::bump(&self.stats.received);
        let (done, waited) = match ack {
            Some(ack) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some((rx, ack)))
            }
            None => (None, None),
        };
        self.local
            .send(LocalPublish {
                topic: topic.into(),
                qos: publish.qos.min(cap),
                retain: publish.retain,
                payload: publish.payload,
                done,
            })
            .map_err(|_| BridgeError::Closed)?;
        if let Some((rx, ack)) = waited {
            let acks = acks.clone();
            tokio::spawn(async move {
                if rx.await.is_ok() {
                    let _ = acks.send(ack);
                }
            });
        }
        Ok(())
    }
}

/// The likely reason why an upstream closed the connection instead of answering CONNECT.
fn no_connack_cause(v5: bool, try_private: bool) -> &'static str {
    match (v5, try_private) {
        (true, _) => "it may not support MQTT 5.0, set protocol = \"3.1.1\"",
        (false, true) => {
            "it may not accept try_private (protocol level 0x84), set try_private = false"
        }
        (false, false) => {
            "it may refuse the client id or the protocol level without saying so (see its log)"
        }
    }
}

/// `at`, or a day from now when there is no deadline.
fn far(at: Option<Instant>) -> tokio::time::Instant {
    at.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))
        .into()
}

/// `delay` scaled by a random factor in [0.5, 1.0) ("equal jitter"), so that many gateways
/// cut off together do not reconnect in lockstep.
fn jitter(delay: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    delay.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{BoxFuture, Connected};
    use crate::queue::{NewMessage, Pushed};
    use futures_util::{SinkExt, StreamExt};
    use mqgate_protocol::{ConnAck, MqttCodec, ProtocolVersion};
    use tokio::io::DuplexStream;
    use tokio_util::codec::{FramedRead, FramedWrite};

    /// An upstream played by the test: each connect hands the server end to the test.
    struct Fake(mpsc::UnboundedSender<DuplexStream>);

    impl UpstreamConnector for Fake {
        fn connect(&self) -> BoxFuture<'_, std::io::Result<Connected>> {
            Box::pin(async move {
                let (client, server) = tokio::io::duplex(1 << 20);
                self.0
                    .send(server)
                    .map_err(|_| std::io::Error::other("test over"))?;
                Ok(Connected {
                    stream: Box::new(client),
                    peer: "fake".into(),
                })
            })
        }
    }

    async fn push(queue: &DurableQueue, topic: &str, payload: String) {
        let message = NewMessage {
            topic: topic.into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            payload: payload.into(),
        };
        match queue.push(message).await.unwrap() {
            Pushed::Stored(commit) => commit.await.unwrap(),
            Pushed::Dropped => panic!("dropped"),
        }
    }

    #[tokio::test]
    async fn after_a_reconnect_live_messages_on_other_topics_pass_the_backlog() {
        const BACKLOG: usize = 100;
        let dir = tempfile::tempdir().unwrap();
        let config = mqgate_config::Config::from_toml_str(
            "[[bridge]]\nname = \"t\"\naddresses = [\"127.0.0.1:1\"]\nmax_inflight = 8\n\
             [[bridge.topic]]\ntopic = \"#\"\nqos = 1\n",
            "test",
        )
        .unwrap()
        .bridges
        .remove(0);
        let stats = Arc::new(BridgeStats::default());
        let queue = Arc::new(
            DurableQueue::open(
                "t",
                dir.path(),
                mqgate_wal::WalOptions::default(),
                config.queue.clone(),
                stats.clone(),
            )
            .await
            .unwrap(),
        );
        for i in 0..BACKLOG {
            push(&queue, "old", format!("o{i}")).await;
        }
        let map = Arc::new(TopicMap::new(&config.topics).unwrap());
        let (local, _local_rx) = mpsc::unbounded_channel();
        let link = UpstreamLink::new(config, map, queue.clone(), stats, local);
        let (servers, mut accepted) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(link.run(Arc::new(Fake(servers)), shutdown.clone()));

        let (read, write) = tokio::io::split(accepted.recv().await.unwrap());
        let mut codec = MqttCodec::new(1 << 20);
        codec.set_version(ProtocolVersion::V3_1_1);
        let mut reader = FramedRead::new(read, codec.clone());
        let mut writer = FramedWrite::new(write, codec);
        macro_rules! next {
            () => {
                reader.next().await.unwrap().unwrap()
            };
        }
        assert!(matches!(next!(), Packet::Connect(_)));
        let connack = ConnAck {
            session_present: false,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        };
        writer.send(&Packet::ConnAck(connack)).await.unwrap();
        let publish = |p: Packet| match p {
            Packet::Publish(p) => (p.pkid, String::from_utf8_lossy(&p.payload).into_owned()),
            other => panic!("{other:?}"),
        };
        // The backlog fills the whole window (no live traffic yet); none acknowledged.
        let mut got = Vec::new();
        let mut pkids = Vec::new();
        for _ in 0..8 {
            let (pkid, payload) = publish(next!());
            pkids.push(pkid);
            got.push(payload);
        }
        assert_eq!(got[7], "o7");
        // Live traffic: one more on the backlog's topic (must wait for it), one on another.
        push(&queue, "old", "o-live".into()).await;
        push(&queue, "new", "n-live".into()).await;
        // The first slot that frees goes to the live lane, to the message that may pass.
        writer
            .send(&Packet::PubAck(PubAck::new(pkids[0])))
            .await
            .unwrap();
        let (pkid, payload) = publish(next!());
        assert_eq!(
            payload, "n-live",
            "the live message waited behind the backlog"
        );
        pkids.push(pkid);
        got.push(payload);
        for pkid in pkids.drain(1..) {
            writer
                .send(&Packet::PubAck(PubAck::new(pkid)))
                .await
                .unwrap();
        }
        while got.len() < BACKLOG + 2 {
            let (pkid, payload) = publish(next!());
            writer
                .send(&Packet::PubAck(PubAck::new(pkid)))
                .await
                .unwrap();
            got.push(payload);
        }
        let mut expected: Vec<String> = (0..8).map(|i| format!("o{i}")).collect();
        expected.push("n-live".into());
        expected.extend((8..BACKLOG).map(|i| format!("o{i}")));
        expected.push("o-live".into());
        assert_eq!(got, expected, "per-topic order, nothing twice");
        shutdown.cancel();
        running.await.unwrap();
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(5) && d < Duration::from_secs(10),
                "{d:?}"
            );
        }
    }
}
