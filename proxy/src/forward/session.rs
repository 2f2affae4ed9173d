//! One proxied MQTT connection: CONNECT is authenticated here (and the will topic
//! checked), then packets flow to and from the upstream broker with the ACL applied in
//! both directions. Dropped messages get their QoS flow completed by the proxy, so
//! neither the client nor the upstream is left waiting.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use mqgate_broker_lite::{Authorizer as _, ClientInfo, ConnectRequest, Identity};
use mqgate_protocol::{
    ConnAck, MqttCodec, Packet, ProtocolVersion, PubAck, QoS, ReasonCode, SubAck,
};
use parking_lot::Mutex;
use ring::rand::{SecureRandom as _, SystemRandom};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts, FramedWrite};
use tracing::{debug, info};

use crate::error::Error;
use crate::security::Security;

/// Where and how the standalone proxy forwards.
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    /// The upstream broker, `host:port`.
    pub upstream: String,
    /// Time allowed for the client's CONNECT, and for the upstream's TCP connect and CONNACK.
    pub connect_timeout: Duration,
    /// Largest packet accepted from either side.
    pub max_packet_size: usize,
}

impl ForwardSettings {
    /// Defaults (10 s, 1 MiB) towards `upstream`.
    pub fn new(upstream: impl Into<String>) -> ForwardSettings {
        ForwardSettings {
            upstream: upstream.into(),
            connect_timeout: Duration::from_secs(10),
            max_packet_size: 1024 * 1024,
        }
    }
}

/// The write half of one side, shared by both directions (a direction also answers
/// the side it reads from).
type Sink<S> = Arc<tokio::sync::Mutex<FramedWrite<WriteHalf<S>, MqttCodec>>>;
/// The read half of one side. A `Framed` (only ever read from) rather than a
/// `FramedRead`: `Framed::from_parts` marks bytes already buffered as ready to decode.
type Source<S> = Framed<ReadHalf<S>, MqttCodec>;

/// Splits a framed stream into read and write halves, keeping bytes already buffered
/// (and the codec's protocol version, learnt from CONNECT).
///
/// Packets the peer sent right behind CONNECT (a client need not wait for CONNACK, MQTT
/// 3.1.1 §3.1.4) or behind CONNACK (an upstream's queued messages) are in `read_buf`
/// and are decoded before the socket is read again. (A `FramedRead` with those bytes
/// pushed into its buffer would read the socket first and sit on them until the peer
/// sent something else.)
fn split<S: AsyncRead + AsyncWrite>(framed: Framed<S, MqttCodec>) -> (Source<S>, Sink<S>) {
    let parts = framed.into_parts();
    let (r, w) = tokio::io::split(parts.io);
    let mut read = FramedParts::new::<&Packet>(r, parts.codec.clone());
    read.read_buf = parts.read_buf;
    let write = FramedWrite::new(w, parts.codec);
    (
        Framed::from_parts(read),
        Arc::new(tokio::sync::Mutex::new(write)),
    )
}

/// What both directions of one connection share.
struct Flow<'a, S> {
    client_tx: Sink<S>,
    upstream_tx: Sink<TcpStream>,
    security: &'a Security,
    info: &'a ClientInfo,
    state: Mutex<FlowState>,
    version: ProtocolVersion,
    upstream_addr: &'a str,
}

/// Bookkeeping shared by the two directions.
#[derive(Default)]
struct FlowState {
    /// SUBSCRIBEs forwarded with some filters removed: per packet id, which of the
    /// original filters were allowed (to rebuild the SUBACK in the client's order).
    partial_subscribes: HashMap<u16, Vec<bool>>,
    /// QoS 2 publishes from the client that were denied under 3.x: acknowledged with a
    /// PUBREC by the proxy, so their PUBREL is answered here too.
    local_client_qos2: HashSet<u16>,
    /// QoS 2 deliveries from the upstream that were dropped: the proxy sent PUBREC, and
    /// answers the upstream's PUBREL itself.
    local_upstream_qos2: HashSet<u16>,
}

/// Proxies one client connection to the upstream broker until either side ends.
/// Errors are logged with the peer and client id.
pub async fn forward_connection<S>(
    stream: S,
    identity: Identity,
    security: Arc<Security>,
    settings: Arc<ForwardSettings>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = identity.peer;
    match run(stream, identity, security, settings).await {
        Ok(()) => debug!(%peer, "proxied connection closed"),
        Err(e) => info!(%peer, error = %e, "proxied connection ended"),
    }
}

fn refusal(version: ProtocolVersion) -> ReasonCode {
    if version == ProtocolVersion::V5 {
        ReasonCode::NotAuthorized
    } else {
        ReasonCode::UnspecifiedError
    }
}

fn random_client_id() -> String {
    let mut b = [0u8; 8];
    let _ = SystemRandom::new().fill(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("mqgate-{hex}")
}

async fn run<S>(
    stream: S,
    identity: Identity,
    security: Arc<Security>,
    settings: Arc<ForwardSettings>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut client = Framed::new(stream, MqttCodec::new(settings.max_packet_size));
    let first = tokio::time::timeout(settings.connect_timeout, client.next())
        .await
        .map_err(|_| Error::ClientProtocol("no CONNECT within the connect timeout"))?;
    let mut connect = match first {
        Some(Ok(Packet::Connect(c))) => c,
        Some(Ok(_)) => return Err(Error::ClientProtocol("first packet is not CONNECT")),
        Some(Err(e)) => return Err(e.into()),
        None => return Ok(()),
    };
    let version = connect.protocol;
    let mut assigned = None;
    if connect.client_id.is_empty() {
        connect.client_id = random_client_id();
        assigned = Some(connect.client_id.clone());
    }
    let request = ConnectRequest {
        client_id: &connect.client_id,
        username: connect.username.as_deref(),
        password: connect.password.as_ref(),
        protocol: version,
        // The standalone proxy checks the will topic itself, below.
        will: None,
    };
    let username = match security.authenticate(&identity, request).await {
        Ok(u) => u,
        Err(reason) => {
            client
                .send(&Packet::ConnAck(ConnAck {
                    session_present: false,
                    reason,
                    properties: Default::default(),
                }))
                .await?;
            return Ok(());
        }
    };
    let info = Arc::new(ClientInfo {
        client_id: connect.client_id.clone(),
        username: username.clone(),
        peer: identity.peer,
        credential: identity.credential.clone().shared(),
    });
    if let Some(will) = &connect.will {
        if !security.authorize_publish(&info, &will.topic, will.qos, will.retain) {
            client
                .send(&Packet::ConnAck(ConnAck {
                    session_present: false,
                    reason: ReasonCode::NotAuthorized,
                    properties: Default::default(),
                }))
                .await?;
            return Ok(());
        }
    }

    let upstream_err = |reason: String| Error::Upstream {
        addr: settings.upstream.clone(),
        reason,
    };
    let tcp = tokio::time::timeout(
        settings.connect_timeout,
        TcpStream::connect(&settings.upstream),
    )
    .await
    .map_err(|_| upstream_err("connect timed out".into()))?
    .map_err(|e| upstream_err(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let mut codec = MqttCodec::new(settings.max_packet_size);
    codec.set_version(version);
    let mut upstream = Framed::new(tcp, codec);
    // The upstream sees the authenticated identity, never the client's password; topic
    // aliases are switched off both ways so every PUBLISH names its topic for the ACL.
    connect.password = None;
    connect.username = username;
    connect.properties.take(|v| v.topic_alias_maximum.take());
    upstream.send(&Packet::Connect(connect)).await?;
    let answer = tokio::time::timeout(settings.connect_timeout, upstream.next())
        .await
        .map_err(|_| upstream_err("no CONNACK".into()))?;
    let mut connack = match answer {
        Some(Ok(Packet::ConnAck(c))) => c,
        Some(Ok(_)) => return Err(upstream_err("first packet is not CONNACK".into())),
        Some(Err(e)) => return Err(e.into()),
        None => return Err(upstream_err("closed before CONNACK".into())),
    };
    connack.properties.take(|v| v.topic_alias_maximum.take());
    if version == ProtocolVersion::V5 && connack.properties.assigned_client_identifier.is_none() {
        connack.properties.assigned_client_identifier = assigned;
    }
    let accepted = connack.reason == ReasonCode::Success;
    client.send(&Packet::ConnAck(connack)).await?;
    if !accepted {
        return Ok(());
    }
    info!(peer = %info.peer, client_id = %info.client_id, user = info.username.as_deref().unwrap_or(""), "proxying to upstream");

    let (client_rx, client_tx) = split(client);
    let (upstream_rx, upstream_tx) = split(upstream);
    let flow = Flow {
        client_tx,
        upstream_tx,
        security: &security,
        info: &info,
        state: Mutex::new(FlowState::default()),
        version,
        upstream_addr: &settings.upstream,
    };
    let up = client_to_upstream(client_rx, &flow);
    let down = upstream_to_client(upstream_rx, &flow);
    // The first direction to end (EOF, DISCONNECT forwarded, error) ends the connection;
    // dropping both halves closes both sockets.
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

async fn send<T>(sink: &Sink<T>, packet: Packet) -> Result<(), Error>
where
    T: AsyncWrite,
{
    sink.lock().await.send(&packet).await?;
    Ok(())
}

async fn client_to_upstream<S>(mut rx: Source<S>, flow: &Flow<'_, S>) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(packet) = rx.next().await {
        match packet? {
            Packet::Publish(p) => {
                if p.topic.is_empty() {
                    return Err(Error::ClientProtocol("topic alias used without agreement"));
                }
                if flow
                    .security
                    .authorize_publish(flow.info, &p.topic, p.qos, p.retain)
                {
                    send(&flow.upstream_tx, Packet::Publish(p)).await?;
                    continue;
                }
                let v5 = flow.version == ProtocolVersion::V5;
                let mut ack = PubAck::new(p.pkid);
                if v5 {
                    ack.reason = ReasonCode::NotAuthorized;
                }
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => send(&flow.client_tx, Packet::PubAck(ack)).await?,
                    QoS::ExactlyOnce => {
                        // MQTT 5: a PUBREC error ends the flow. 3.x: pretend success and
                        // answer the coming PUBREL ourselves.
                        if !v5 {
                            flow.state.lock().local_client_qos2.insert(p.pkid);
                        }
                        send(&flow.client_tx, Packet::PubRec(ack)).await?;
                    }
                }
            }
            Packet::PubRel(rel) if flow.state.lock().local_client_qos2.remove(&rel.pkid) => {
                send(&flow.client_tx, Packet::PubComp(PubAck::new(rel.pkid))).await?;
            }
            Packet::Subscribe(mut sub) => {
                let verdicts: Vec<bool> = sub
                    .filters
                    .iter()
                    .map(|f| {
                        flow.security
                            .authorize_subscribe(flow.info, &f.filter, f.options.qos)
                    })
                    .collect();
                if !verdicts.contains(&true) {
                    let suback = SubAck {
                        pkid: sub.pkid,
                        reasons: vec![refusal(flow.version); verdicts.len()],
                        properties: Default::default(),
                    };
                    send(&flow.client_tx, Packet::SubAck(suback)).await?;
                    continue;
                }
                if verdicts.contains(&false) {
                    let mut allowed = verdicts.iter();
                    sub.filters
                        .retain(|_| allowed.next().copied().unwrap_or(false));
                    flow.state
                        .lock()
                        .partial_subscribes
                        .insert(sub.pkid, verdicts);
                }
                send(&flow.upstream_tx, Packet::Subscribe(sub)).await?;
            }
            Packet::Connect(_) => return Err(Error::ClientProtocol("second CONNECT")),
            Packet::Disconnect(d) => {
                send(&flow.upstream_tx, Packet::Disconnect(d)).await?;
                return Ok(());
            }
            other => send(&flow.upstream_tx, other).await?,
        }
    }
    Ok(())
}

async fn upstream_to_client<S>(mut rx: Source<TcpStream>, flow: &Flow<'_, S>) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(packet) = rx.next().await {
        match packet? {
            Packet::Publish(p) => {
                if p.topic.is_empty() {
                    return Err(Error::Upstream {
                        addr: flow.upstream_addr.to_owned(),
                        reason: "topic alias used without agreement".into(),
                    });
                }
                if flow.security.authorize_delivery(flow.info, &p.topic) {
                    send(&flow.client_tx, Packet::Publish(p)).await?;
                    continue;
                }
                // Dropped: complete the flow with the upstream ourselves.
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => {
                        send(&flow.upstream_tx, Packet::PubAck(PubAck::new(p.pkid))).await?
                    }
                    QoS::ExactlyOnce => {
                        flow.state.lock().local_upstream_qos2.insert(p.pkid);
                        send(&flow.upstream_tx, Packet::PubRec(PubAck::new(p.pkid))).await?;
                    }
                }
            }
            Packet::PubRel(rel) if flow.state.lock().local_upstream_qos2.remove(&rel.pkid) => {
                send(&flow.upstream_tx, Packet::PubComp(PubAck::new(rel.pkid))).await?;
            }
            Packet::SubAck(mut ack) => {
                let verdicts = flow.state.lock().partial_subscribes.remove(&ack.pkid);
                if let Some(verdicts) = verdicts {
                    let mut granted = ack.reasons.into_iter();
                    ack.reasons = verdicts
                        .iter()
                        .map(|&ok| {
                            if ok {
                                granted.next().unwrap_or(ReasonCode::UnspecifiedError)
                            } else {
                                refusal(flow.version)
                            }
                        })
                        .collect();
                }
                send(&flow.client_tx, Packet::SubAck(ack)).await?;
            }
            Packet::Disconnect(d) => {
                send(&flow.client_tx, Packet::Disconnect(d)).await?;
                return Ok(());
            }
            other => send(&flow.client_tx, other).await?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::{Bytes, BytesMut};
    use mqgate_protocol::{encode_packet, Connect, Publish, Subscribe, SubscribeFilter};
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    fn bytes(packet: &Packet, version: ProtocolVersion) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_packet(packet, version, &mut buf).unwrap();
        buf
    }

    /// CONNECT, SUBSCRIBE and PUBLISH in one write: after CONNECT is read and the stream
    /// split, the other two come out of the read half without another byte arriving,
    /// decoded in the CONNECT's version (5.0 here: SUBSCRIBE and PUBLISH have
    /// properties, which 3.1.1 decoding would misread).
    #[tokio::test]
    async fn split_decodes_packets_buffered_behind_connect_in_the_connect_version() {
        let v5 = ProtocolVersion::V5;
        let mut wire = bytes(
            &Packet::Connect(Connect {
                protocol: v5,
                clean_start: true,
                keep_alive: 60,
                client_id: "c".into(),
                will: None,
                username: None,
                password: None,
                properties: Default::default(),
            }),
            v5,
        );
        let subscribe = Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![SubscribeFilter {
                filter: "pipe/t".into(),
                options: Default::default(),
            }],
            properties: Default::default(),
        });
        let publish = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "pipe/t".into(),
            pkid: 2,
            payload: Bytes::from_static(b"hello"),
            properties: Default::default(),
        });
        wire.extend_from_slice(&bytes(&subscribe, v5));
        wire.extend_from_slice(&bytes(&publish, v5));
        let (mut client, server) = tokio::io::duplex(4096);
        client.write_all(&wire).await.unwrap();

        let mut framed = Framed::new(server, MqttCodec::new(1 << 20));
        assert!(matches!(
            framed.next().await,
            Some(Ok(Packet::Connect(c))) if c.protocol == v5
        ));
        let (mut rx, _tx) = split(framed);
        let wait = Duration::from_secs(5);
        for expected in [subscribe, publish] {
            let got = tokio::time::timeout(wait, rx.next()).await;
            assert_eq!(got.unwrap().unwrap().unwrap(), expected);
        }
        // `client` is still open: nothing more arrives until it writes.
        assert!(tokio::time::timeout(Duration::from_millis(50), rx.next())
            .await
            .is_err());
        drop(client);
    }
}
