//! One MQTT connection from CONNECT to its end: a single task that reads many packets per
//! read, writes many packets per write, and waits (`select!`) on the socket, its session's
//! wake-ups, pending durability commits, the keepalive timer, blocked subscribers, takeover
//! and shutdown.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use mqgate_protocol::codec::{decode_packet, encode_packet};
use mqgate_protocol::{
    ConnAck, Connect, Packet, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, SubAck, Subscribe,
    UnsubAck, Unsubscribe,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, field, info, info_span, warn, Instrument, Span};

use crate::auth::{ClientInfo, ConnectRequest, Identity};
use crate::core::{Core, RouteOutcome, Session};
use crate::message::Message;
use crate::session::Transmit;
use crate::stats::Stats;
use crate::store::Ack;

/// Stop encoding more deliveries once this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Stop reading while this much (acks, pongs) is waiting to be written.
const READ_PAUSE_WRITE_BYTES: usize = 256 * 1024;
/// Stop reading while this many acknowledgements wait for their disk commit.
const MAX_PENDING_ACKS: usize = 4096;
/// Read buffer reserve before each read.
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client sent DISCONNECT.
    Disconnect,
    /// The peer closed the socket.
    Eof,
    /// Socket error.
    Io(io::Error),
    /// Malformed packet.
    Protocol(mqgate_protocol::Error),
    /// A protocol flow rule was broken.
    Violation(&'static str),
    /// Nothing received within 1.5 × keepalive.
    KeepAlive,
    /// Another connection took the session over, or a limit disconnected the client.
    Kicked,
    /// The broker is shutting down.
    Shutdown,
    /// The disk write of something to acknowledge failed.
    Persistence(mqgate_wal::WalError),
}

impl End {
    /// MQTT 3.1.1 §3.1.2.5: the will is published unless the client disconnected cleanly
    /// (and, for mqgate, unless the broker itself is stopping).
    fn publishes_will(&self) -> bool {
        !matches!(self, End::Disconnect | End::Shutdown)
    }
}

/// An acknowledgement waiting (in order) for its disk commit.
struct PendingAck {
    wait: Option<Ack>,
    packet: Packet,
}

/// Runs one connection to its end (see the module comment).
pub(crate) async fn serve<S>(
    core: Arc<Core>,
    shutdown: CancellationToken,
    stream: S,
    identity: Identity,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = info_span!("mqtt", peer = %identity.peer, client_id = field::Empty);
    async move {
        let mut conn = Conn {
            core,
            shutdown,
            stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            version: ProtocolVersion::V3_1_1,
            peer: identity.peer,
            need_flush: false,
        };
        conn.run(identity).await;
    }
    .instrument(span)
    .await
}

struct Conn<S> {
    core: Arc<Core>,
    shutdown: CancellationToken,
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    version: ProtocolVersion,
    peer: SocketAddr,
    need_flush: bool,
}

enum IoEvent {
    Read(usize),
    Wrote(usize),
    Flushed,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn<S> {
    async fn run(&mut self, identity: Identity) {
        let connect = match self.read_connect().await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(end) => {
                self.log_end(&end);
                return;
            }
        };
        let Some((session, client, owner, kick)) = self.accept(connect.clone(), &identity).await
        else {
            let _ = self.flush_all().await;
            return;
        };
        Stats::add(&self.core.stats.clients_connected, 1);
        let end = self.serve_session(&session, &client, &connect, &kick).await;
        self.core.stats.sub_connected();
        self.log_end(&end);
        if end.publishes_will() {
            if let Some(will) = &connect.will {
                if self.core.authorizer.authorize_publish(
                    &client,
                    &will.topic,
                    will.qos,
                    will.retain,
                ) {
                    info!(topic = %will.topic, "publishing will");
                    let msg = Arc::new(Message {
                        id: self.core.message_id(),
                        topic: will.topic.clone(),
                        payload: will.payload.clone(),
                        qos: will.qos,
                        retain: will.retain,
                        properties: will.properties.clone(),
                    });
                    self.core.publish(msg, &mut RouteOutcome::default());
                } else {
                    warn!(topic = %will.topic, "will not published: not authorized");
                }
            }
        }
        self.core.close_session(&session);
        drop(owner);
        if matches!(end, End::Disconnect | End::Shutdown | End::Kicked) {
            let _ = self.stream.shutdown().await;
        }
    }

    fn log_end(&self, end: &End) {
        match end {
            End::Disconnect => info!("client disconnected"),
            End::Eof => info!("connection closed by peer"),
            End::Io(e) => info!(error = %e, "connection lost"),
            End::Protocol(mqgate_protocol::Error::PacketTooLarge { size, max }) => warn!(
                limit = "max_packet_size",
                size, max, "disconnecting client: packet exceeds the maximum packet size"
            ),
            End::Protocol(e) => warn!(rule = %e, "disconnecting client: malformed packet"),
            End::Violation(rule) => warn!(rule, "disconnecting client: protocol violation"),
            End::KeepAlive => warn!(
                rule = "keepalive: nothing received within 1.5 x keep alive",
                "disconnecting client"
            ),
            End::Kicked => info!("disconnected: session taken over or client too slow"),
            End::Shutdown => info!("disconnected: broker shutting down"),
            End::Persistence(e) => warn!(error = %e, "disconnecting client: persistence failed"),
        }
    }

    /// Waits for the first packet, which must be CONNECT, within the connect timeout.
    async fn read_connect(&mut self) -> Result<Option<Connect>, End> {
        let deadline = sleep(self.core.settings.connect_timeout);
        tokio::pin!(deadline);
        let max = self.core.settings.max_packet_size;
        loop {
            match decode_packet(&mut self.rbuf, ProtocolVersion::V3_1_1, max) {
                Ok(Some(Packet::Connect(c))) => return Ok(Some(c)),
                Ok(Some(_)) => {
                    return Err(End::Violation(
                        "the first packet must be CONNECT [MQTT-3.1.0-1]",
                    ))
                }
                Ok(None) => {}
                Err(e) => {
                    if e.is_unsupported_protocol() {
                        warn!(rule = %e, "refusing CONNECT: unsupported protocol version");
                        self.send_connack(false, ReasonCode::UnsupportedProtocolVersion);
                        let _ = self.flush_all().await;
                        return Ok(None);
                    }
                    return Err(End::Protocol(e));
                }
            }
            self.rbuf.reserve(READ_CHUNK.min(max));
            let stream = &mut self.stream;
            let rbuf = &mut self.rbuf;
            tokio::select! {
                _ = &mut deadline => {
                    warn!(limit = "connect_timeout", "disconnecting: no CONNECT within the connect timeout");
                    return Ok(None);
                }
                _ = self.shutdown.cancelled() => return Ok(None),
                r = poll_fn(|cx| tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, rbuf)) => match r {
                    Ok(0) => return Err(End::Eof),
                    Ok(n) => Stats::add(&self.core.stats.bytes_received, n as u64),
                    Err(e) => return Err(End::Io(e)),
                },
            }
        }
    }

    fn send_connack(&mut self, session_present: bool, reason: ReasonCode) {
        self.send(&Packet::ConnAck(ConnAck {
            session_present,
            reason,
            properties: Default::default(),
        }));
    }

    fn send(&mut self, packet: &Packet) {
        if let Err(e) = encode_packet(packet, self.version, &mut self.wbuf) {
            warn!(error = %e, packet = ?packet.packet_type(), "cannot encode an outgoing packet");
        }
    }

    async fn flush_all(&mut self) -> io::Result<()> {
        let n = self.wbuf.len();
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Stats::add(&self.core.stats.bytes_sent, n as u64);
        self.stream.flush().await
    }

    /// Validates CONNECT, authenticates, attaches the session and sends CONNACK.
    async fn accept(
        &mut self,
        mut connect: Connect,
        identity: &Identity,
    ) -> Option<(
        Arc<Session>,
        Arc<ClientInfo>,
        tokio::sync::OwnedMutexGuard<()>,
        CancellationToken,
    )> {
        self.version = connect.protocol;
        if connect.protocol == ProtocolVersion::V5 {
            warn!(
                rule = "MQTT 5 is not supported yet",
                "refusing CONNECT with CONNACK 0x84"
            );
            self.send_connack(false, ReasonCode::UnsupportedProtocolVersion);
            return None;
        }
        if connect.client_id.is_empty() {
            if !connect.clean_start || connect.protocol == ProtocolVersion::V3_1 {
                warn!(
                    rule = "empty client id requires clean session [MQTT-3.1.3-8]",
                    "refusing CONNECT with return code 0x02"
                );
                self.send_connack(false, ReasonCode::ClientIdentifierNotValid);
                return None;
            }
            connect.client_id = self.core.assign_client_id();
        }
        Span::current().record("client_id", connect.client_id.as_str());
        let request = ConnectRequest {
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
            password: connect.password.as_ref(),
            protocol: connect.protocol,
        };
        let username = match self.core.authorizer.authenticate(identity, request).await {
            Ok(user) => user,
            Err(code) => {
                let code = match code {
                    ReasonCode::BadUserNameOrPassword
                    | ReasonCode::NotAuthorized
                    | ReasonCode::ServerUnavailable
                    | ReasonCode::ClientIdentifierNotValid => code,
                    _ => ReasonCode::NotAuthorized,
                };
                warn!(reason = ?code, "refusing CONNECT: authentication failed");
                self.send_connack(false, code);
                return None;
            }
        };
        let client = Arc::new(ClientInfo {
            client_id: connect.client_id.clone(),
            username,
            peer: self.peer,
        });
        let opened =
            self.core
                .open_session(&connect.client_id, connect.clean_start, client.clone());
        if let Some(old) = &opened.replaced {
            old.kick.lock().cancel();
        }
        let session = opened.session;
        let kick = CancellationToken::new();
        let previous = std::mem::replace(&mut *session.kick.lock(), kick.clone());
        previous.cancel();
        let owner = tokio::select! {
            guard = session.owner.clone().lock_owned() => guard,
            _ = self.shutdown.cancelled() => return None,
        };
        if let Some(ack) = opened.ack {
            if let Err(e) = ack.await {
                warn!(error = %e, "refusing CONNECT: persistence failed");
                self.send_connack(false, ReasonCode::ServerUnavailable);
                return None;
            }
        }
        let resend = {
            let mut slot = session.slot.lock();
            slot.state.set_online(true);
            slot.state.resume()
        };
        self.send_connack(opened.present, ReasonCode::Success);
        for t in resend {
            self.encode_transmit(&session, t);
        }
        info!(
            protocol = connect.protocol.level(),
            clean_session = connect.clean_start,
            keep_alive = connect.keep_alive,
            session_present = opened.present,
            "client connected"
        );
        Some((session, client, owner, kick))
    }

    fn encode_transmit(&mut self, session: &Session, t: Transmit) {
        match t {
            Transmit::Publish {
                pkid,
                dup,
                delivery,
            } => {
                if delivery.qos == QoS::ExactlyOnce && !dup {
                    self.core.note_sent_qos2(session, delivery.seq, pkid);
                }
                let packet = Packet::Publish(Publish {
                    dup,
                    qos: delivery.qos,
                    retain: delivery.retain,
                    topic: delivery.msg.topic.clone(),
                    pkid,
                    payload: delivery.msg.payload.clone(),
                    properties: Default::default(),
                });
                self.send(&packet);
                Stats::add(&self.core.stats.messages_sent, 1);
            }
            Transmit::PubRel { pkid } => self.send(&Packet::PubRel(PubAck::new(pkid))),
        }
    }

    /// Moves queued deliveries into the write buffer. Returns true if it stopped because
    /// the buffer is full (more may be waiting).
    fn fill(&mut self, session: &Session) -> bool {
        let limits = self.core.limits;
        let mut slot = session.slot.lock();
        let mut full = false;
        loop {
            if self.wbuf.len() >= WRITE_HIGH_WATER {
                full = true;
                break;
            }
            match slot.state.poll_transmit(&limits) {
                Some(t) => self.encode_transmit(session, t),
                None => break,
            }
        }
        let over = slot.state.is_over_limit(&limits);
        drop(slot);
        if !over {
            session.space.notify_waiters();
        }
        full
    }

    async fn serve_session(
        &mut self,
        session: &Arc<Session>,
        client: &Arc<ClientInfo>,
        connect: &Connect,
        kick: &CancellationToken,
    ) -> End {
        let keep_alive = (connect.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
        let timer = sleep(keep_alive.unwrap_or(Duration::from_secs(86_400)));
        tokio::pin!(timer);
        let mut acks: VecDeque<PendingAck> = VecDeque::new();
        let mut blocked: Vec<Arc<Session>> = Vec::new();
        let mut want_fill = true;
        let max = self.core.settings.max_packet_size;
        loop {
            if want_fill && self.wbuf.len() < WRITE_HIGH_WATER {
                want_fill = self.fill(session);
            }
            self.flush_ready_acks(&mut acks);
            let can_read = blocked.is_empty()
                && acks.len() < MAX_PENDING_ACKS
                && self.wbuf.len() < READ_PAUSE_WRITE_BYTES;
            if can_read {
                self.rbuf.reserve(READ_CHUNK.min(max));
            }
            let waiting_ack = acks.front().is_some_and(|a| a.wait.is_some());
            let stream = &mut self.stream;
            let rbuf = &mut self.rbuf;
            let wbuf = &self.wbuf;
            let need_flush = self.need_flush;
            tokio::select! {
                biased;
                _ = kick.cancelled() => return End::Kicked,
                _ = self.shutdown.cancelled() => return End::Shutdown,
                _ = &mut timer, if keep_alive.is_some() => return End::KeepAlive,
                r = poll_fn(|cx| poll_io(&mut *stream, rbuf, wbuf, can_read, need_flush, cx)) => match r {
                    Err(e) => return End::Io(e),
                    Ok(IoEvent::Wrote(n)) => {
                        self.wbuf.advance(n);
                        self.need_flush = true;
                        Stats::add(&self.core.stats.bytes_sent, n as u64);
                    }
                    Ok(IoEvent::Flushed) => self.need_flush = false,
                    Ok(IoEvent::Read(0)) => return End::Eof,
                    Ok(IoEvent::Read(n)) => {
                        Stats::add(&self.core.stats.bytes_received, n as u64);
                        if let Some(ka) = keep_alive {
                            timer.as_mut().reset(Instant::now() + ka);
                        }
                        if let Err(end) = self
                            .process_buffered(session, client, &mut acks, &mut blocked, &mut want_fill)
                            .await
                        {
                            return end;
                        }
                    }
                },
                r = poll_fn(|cx| poll_front_ack(&mut acks, cx)), if waiting_ack => {
                    if let Err(e) = r {
                        return End::Persistence(e);
                    }
                    if let Some(front) = acks.front_mut() {
                        front.wait = None;
                    }
                }
                _ = session.wake.notified() => want_fill = true,
                _ = wait_for_space(&blocked, &self.core), if !blocked.is_empty() => {
                    blocked.clear();
                    if let Err(end) = self
                        .process_buffered(session, client, &mut acks, &mut blocked, &mut want_fill)
                        .await
                    {
                        return end;
                    }
                }
            }
        }
    }

    /// Handles the complete packets in the read buffer, stopping early while a subscriber
    /// this client publishes to is over its queue limit (backpressure).
    async fn process_buffered(
        &mut self,
        session: &Arc<Session>,
        client: &Arc<ClientInfo>,
        acks: &mut VecDeque<PendingAck>,
        blocked: &mut Vec<Arc<Session>>,
        want_fill: &mut bool,
    ) -> Result<(), End> {
        let max = self.core.settings.max_packet_size;
        while blocked.is_empty() {
            match decode_packet(&mut self.rbuf, self.version, max) {
                Ok(Some(packet)) => {
                    self.handle(packet, session, client, acks, blocked, want_fill)
                        .await?
                }
                Ok(None) => break,
                Err(e) => return Err(End::Protocol(e)),
            }
        }
        Ok(())
    }

    fn flush_ready_acks(&mut self, acks: &mut VecDeque<PendingAck>) {
        while acks.front().is_some_and(|a| a.wait.is_none()) {
            if let Some(a) = acks.pop_front() {
                self.send(&a.packet);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn handle(
        &mut self,
        packet: Packet,
        session: &Arc<Session>,
        client: &Arc<ClientInfo>,
        acks: &mut VecDeque<PendingAck>,
        blocked: &mut Vec<Arc<Session>>,
        want_fill: &mut bool,
    ) -> Result<(), End> {
        match packet {
            Packet::Publish(p) => self.on_publish(p, session, client, acks, blocked),
            Packet::PubAck(a) => {
                let done = session.slot.lock().state.on_puback(a.pkid);
                match done {
                    Some(d) => {
                        self.core.note_done(session, &d);
                        *want_fill = true;
                    }
                    None => debug!(pkid = a.pkid, "PUBACK for an unknown packet id"),
                }
                Ok(())
            }
            Packet::PubRec(a) => {
                let seq = session.slot.lock().state.on_pubrec(a.pkid);
                if let Some(seq) = seq {
                    self.core.note_released(session, seq);
                }
                self.send(&Packet::PubRel(PubAck::new(a.pkid)));
                Ok(())
            }
            Packet::PubRel(a) => {
                let known = session.slot.lock().state.incoming_pubrel(a.pkid);
                let wait = if known {
                    self.core.note_inbound_released(session, a.pkid)
                } else {
                    None
                };
                acks.push_back(PendingAck {
                    wait,
                    packet: Packet::PubComp(PubAck::new(a.pkid)),
                });
                Ok(())
            }
            Packet::PubComp(a) => {
                let done = session.slot.lock().state.on_pubcomp(a.pkid);
                if let Some(d) = done {
                    self.core.note_done(session, &d);
                    *want_fill = true;
                }
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(s, session, client, want_fill).await,
            Packet::Unsubscribe(u) => self.on_unsubscribe(u, session).await,
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(_) => Err(End::Disconnect),
            Packet::Connect(_) => Err(End::Violation(
                "a second CONNECT on a connection [MQTT-3.1.0-2]",
            )),
            _ => Err(End::Violation(
                "a server-to-client packet sent by the client",
            )),
        }
    }

    fn on_publish(
        &mut self,
        p: Publish,
        session: &Arc<Session>,
        client: &Arc<ClientInfo>,
        acks: &mut VecDeque<PendingAck>,
        blocked: &mut Vec<Arc<Session>>,
    ) -> Result<(), End> {
        Stats::add(&self.core.stats.messages_received, 1);
        let fresh = p.qos != QoS::ExactlyOnce || session.slot.lock().state.incoming_qos2(p.pkid);
        let mut outcome = RouteOutcome::default();
        if fresh {
            if p.topic.starts_with("$SYS") {
                debug!(topic = %p.topic, "ignoring a client PUBLISH to $SYS");
            } else if !self
                .core
                .authorizer
                .authorize_publish(client, &p.topic, p.qos, p.retain)
            {
                info!(topic = %p.topic, "PUBLISH not authorized; dropped");
            } else {
                let msg = Arc::new(Message {
                    id: self.core.message_id(),
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos,
                    retain: p.retain,
                    properties: p.properties,
                });
                self.core.publish(msg, &mut outcome);
            }
            if p.qos == QoS::ExactlyOnce {
                outcome.ack = self
                    .core
                    .note_inbound_qos2(session, p.pkid)
                    .or(outcome.ack.take());
            }
        }
        for b in outcome.blocked {
            if !Arc::ptr_eq(&b, session) && !blocked.iter().any(|x| Arc::ptr_eq(x, &b)) {
                blocked.push(b);
            }
        }
        let packet = match p.qos {
            QoS::AtMostOnce => return Ok(()),
            QoS::AtLeastOnce => Packet::PubAck(PubAck::new(p.pkid)),
            QoS::ExactlyOnce => Packet::PubRec(PubAck::new(p.pkid)),
        };
        acks.push_back(PendingAck {
            wait: outcome.ack,
            packet,
        });
        Ok(())
    }

    async fn on_subscribe(
        &mut self,
        s: Subscribe,
        session: &Arc<Session>,
        client: &Arc<ClientInfo>,
        want_fill: &mut bool,
    ) -> Result<(), End> {
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut granted = Vec::new();
        let mut wait = None;
        for f in &s.filters {
            let qos = f.options.qos;
            if mqgate_protocol::topic::parse_shared(&f.filter).is_some() {
                info!(filter = %f.filter, "shared subscriptions are not supported for MQTT 3.x; refused");
                reasons.push(ReasonCode::UnspecifiedError);
            } else if !self
                .core
                .authorizer
                .authorize_subscribe(client, &f.filter, qos)
            {
                info!(filter = %f.filter, "SUBSCRIBE not authorized");
                reasons.push(ReasonCode::UnspecifiedError);
            } else {
                wait = self.core.subscribe(session, &f.filter, qos).or(wait);
                reasons.push(ReasonCode::granted(qos));
                granted.push((f.filter.clone(), qos));
            }
        }
        if let Some(w) = wait {
            w.await.map_err(End::Persistence)?;
        }
        self.send(&Packet::SubAck(SubAck {
            pkid: s.pkid,
            reasons,
            properties: Default::default(),
        }));
        for (filter, qos) in granted {
            self.core.deliver_retained(session, &filter, qos);
            *want_fill = true;
        }
        Ok(())
    }

    async fn on_unsubscribe(&mut self, u: Unsubscribe, session: &Arc<Session>) -> Result<(), End> {
        let mut wait = None;
        for f in &u.filters {
            wait = self.core.unsubscribe(session, f).or(wait);
        }
        if let Some(w) = wait {
            w.await.map_err(End::Persistence)?;
        }
        self.send(&Packet::UnsubAck(UnsubAck {
            pkid: u.pkid,
            reasons: Vec::new(),
            properties: Default::default(),
        }));
        Ok(())
    }
}

/// One step of socket I/O: write what is buffered (or flush it), else read.
fn poll_io<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    wbuf: &BytesMut,
    can_read: bool,
    need_flush: bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<IoEvent>> {
    if !wbuf.is_empty() {
        if let Poll::Ready(r) = Pin::new(&mut *stream).poll_write(cx, wbuf) {
            return Poll::Ready(r.map(IoEvent::Wrote));
        }
    } else if need_flush {
        if let Poll::Ready(r) = Pin::new(&mut *stream).poll_flush(cx) {
            return Poll::Ready(r.map(|()| IoEvent::Flushed));
        }
    }
    if can_read {
        if let Poll::Ready(r) = tokio_util::io::poll_read_buf(Pin::new(stream), cx, rbuf) {
            return Poll::Ready(r.map(IoEvent::Read));
        }
    }
    Poll::Pending
}

fn poll_front_ack(
    acks: &mut VecDeque<PendingAck>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), mqgate_wal::WalError>> {
    match acks.front_mut() {
        Some(PendingAck {
            wait: Some(ack), ..
        }) => Pin::new(ack).poll(cx),
        _ => Poll::Pending,
    }
}

/// Resolves once none of `targets` is over its queue limit.
async fn wait_for_space(targets: &[Arc<Session>], core: &Core) {
    for t in targets {
        loop {
            let notified = t.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !t.slot.lock().state.is_over_limit(&core.limits) {
                break;
            }
            notified.await;
        }
    }
}
