//! Test support: an in-process broker on 127.0.0.1:0 and a raw MQTT client built on the
//! protocol crate's codec, so tests control every byte.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqgate_broker_lite::{AllowAll, Broker, BrokerHandle, BrokerSettings};
use mqgate_protocol::codec::{decode_packet, encode_packet};
use mqgate_protocol::{
    ConnAck, Connect, LastWill, Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, SubAck,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestBroker {
    pub broker: Option<Broker>,
    pub handle: BrokerHandle,
    pub addr: SocketAddr,
    pub ws_addr: SocketAddr,
    pub stop: CancellationToken,
}

impl TestBroker {
    pub async fn start(settings: BrokerSettings) -> TestBroker {
        TestBroker::start_with(settings, Arc::new(AllowAll)).await
    }

    pub async fn start_with(
        settings: BrokerSettings,
        authorizer: Arc<dyn mqgate_broker_lite::Authorizer>,
    ) -> TestBroker {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("mqgate_broker_lite=debug")
            .with_test_writer()
            .try_init();
        let ws_settings = mqgate_broker_lite::ws::WsSettings {
            path: "/mqtt".to_owned(),
            max_packet_size: settings.max_packet_size,
        };
        let broker = Broker::start(settings, authorizer).await.unwrap();
        let handle = broker.handle();
        let stop = CancellationToken::new();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_addr = ws.local_addr().unwrap();
        tokio::spawn(mqgate_broker_lite::serve_tcp(
            tcp,
            handle.clone(),
            stop.clone(),
        ));
        tokio::spawn(mqgate_broker_lite::serve_ws(
            ws,
            handle.clone(),
            stop.clone(),
            ws_settings,
        ));
        TestBroker {
            broker: Some(broker),
            handle,
            addr,
            ws_addr,
            stop,
        }
    }

    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
    }
}

pub fn settings() -> BrokerSettings {
    BrokerSettings {
        sys_interval: Duration::ZERO,
        connect_timeout: Duration::from_millis(500),
        ..BrokerSettings::default()
    }
}

pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    pub version: ProtocolVersion,
}

pub fn connect_packet(
    client_id: &str,
    clean: bool,
    keep_alive: u16,
    will: Option<LastWill>,
) -> Connect {
    Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: clean,
        keep_alive,
        client_id: client_id.to_owned(),
        will,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

pub fn will(topic: &str, payload: &'static str, qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: Arc::from(topic),
        payload: Bytes::from_static(payload.as_bytes()),
        qos,
        retain,
        properties: Properties::default(),
    }
}

pub fn publish(topic: &str, payload: &[u8], qos: QoS, retain: bool, pkid: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: Arc::from(topic),
        pkid,
        payload: Bytes::copy_from_slice(payload),
        properties: Properties::default(),
    })
}

impl Raw {
    /// A client over an already connected socket (no CONNECT sent yet).
    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            buf: BytesMut::new(),
            version: ProtocolVersion::V3_1_1,
        }
    }

    pub async fn open(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            version: ProtocolVersion::V3_1_1,
        }
    }

    /// Connects with CONNECT `c` and returns the CONNACK.
    pub async fn connect_with(addr: SocketAddr, c: Connect) -> (Raw, ConnAck) {
        let mut raw = Raw::open(addr).await;
        raw.version = c.protocol;
        raw.send(&Packet::Connect(c)).await;
        match raw.recv().await {
            Some(Packet::ConnAck(a)) => (raw, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects (3.1.1) and asserts success.
    pub async fn connect(addr: SocketAddr, client_id: &str, clean: bool) -> Raw {
        let (raw, ack) = Raw::connect_with(addr, connect_packet(client_id, clean, 60, None)).await;
        assert!(!ack.reason.is_failure(), "{ack:?}");
        raw
    }

    pub async fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        encode_packet(p, self.version, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet, or None when the broker closed the connection. Panics after WAIT.
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT)
            .await
            .expect("timed out waiting for a packet")
    }

    /// The next packet within `d`: Err(()) on timeout, Ok(None) on close.
    pub async fn recv_within(&mut self, d: Duration) -> Result<Option<Packet>, ()> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(p) = decode_packet(&mut self.buf, self.version, 1 << 24).unwrap() {
                return Ok(Some(p));
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Asserts that nothing arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Ok(p) = self.recv_within(d).await {
            panic!("expected nothing, got {p:?}");
        }
    }

    /// Asserts the broker closes the connection (within WAIT), skipping other packets.
    pub async fn expect_closed(&mut self) {
        loop {
            match self.recv().await {
                None => return,
                Some(_) => continue,
            }
        }
    }

    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_many(&[(filter, qos)]).await
    }

    pub async fn subscribe_many(&mut self, filters: &[(&str, QoS)]) -> SubAck {
        let filters = filters
            .iter()
            .map(|(f, q)| SubscribeFilter {
                filter: (*f).to_owned(),
                options: SubscriptionOptions {
                    qos: *q,
                    ..SubscriptionOptions::default()
                },
            })
            .collect();
        self.send(&Packet::Subscribe(Subscribe {
            pkid: 77,
            filters,
            properties: Properties::default(),
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(a)) => a,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and completes the QoS flow from the client side.
    pub async fn publish_acked(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        pkid: u16,
    ) {
        self.send(&publish(topic, payload, qos, retain, pkid)).await;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => match self.recv().await {
                Some(Packet::PubAck(a)) => assert_eq!(a.pkid, pkid),
                other => panic!("expected PUBACK, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                match self.recv().await {
                    Some(Packet::PubRec(a)) => assert_eq!(a.pkid, pkid),
                    other => panic!("expected PUBREC, got {other:?}"),
                }
                self.send(&Packet::PubRel(PubAck::new(pkid))).await;
                match self.recv().await {
                    Some(Packet::PubComp(a)) => assert_eq!(a.pkid, pkid),
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
            }
        }
    }

    /// Acknowledges a received publish as a well-behaved client would.
    pub async fn ack(&mut self, p: &Publish) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(PubAck::new(p.pkid))).await,
            QoS::ExactlyOnce => {
                self.send(&Packet::PubRec(PubAck::new(p.pkid))).await;
                match self.recv().await {
                    Some(Packet::PubRel(a)) => assert_eq!(a.pkid, p.pkid),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(&Packet::PubComp(PubAck::new(p.pkid))).await;
            }
        }
    }

    pub async fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Default::default())).await;
        let _ = self.recv_within(WAIT).await;
    }
}

/// An MQTT 5 CONNECT with a session expiry interval.
pub fn connect_v5(client_id: &str, clean: bool, expiry: u32) -> Connect {
    let mut c = connect_packet(client_id, clean, 60, None);
    c.protocol = ProtocolVersion::V5;
    c.properties.session_expiry_interval = (expiry > 0).then_some(expiry);
    c
}

/// Connects with an MQTT 5 CONNECT and asserts success.
pub async fn raw_v5(addr: SocketAddr, c: Connect) -> (Raw, ConnAck) {
    let (raw, ack) = Raw::connect_with(addr, c).await;
    assert_eq!(ack.reason, mqgate_protocol::ReasonCode::Success, "{ack:?}");
    (raw, ack)
}

/// A SUBSCRIBE with full MQTT 5 options and an optional subscription identifier.
pub fn subscribe_v5(filter: &str, options: SubscriptionOptions, id: Option<u32>) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid: 5,
        filters: vec![SubscribeFilter {
            filter: filter.to_owned(),
            options,
        }],
        properties: mqgate_protocol::PropertyValues {
            subscription_identifiers: id.into_iter().collect(),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into(),
    })
}

impl Raw {
    /// Sends a SUBSCRIBE and returns its SUBACK.
    pub async fn request_suback(&mut self, p: Packet) -> SubAck {
        self.send(&p).await;
        match self.recv().await {
            Some(Packet::SubAck(a)) => a,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Expects the broker's DISCONNECT and returns its reason, then the close.
    pub async fn expect_disconnect(&mut self) -> mqgate_protocol::ReasonCode {
        loop {
            match self.recv().await {
                Some(Packet::Disconnect(d)) => {
                    self.expect_closed().await;
                    return d.reason;
                }
                Some(_) => continue,
                None => panic!("closed without DISCONNECT"),
            }
        }
    }
}

/// A raw client over an in-process stream (e.g. `tokio::io::duplex`).
pub struct DuplexClient<S> {
    stream: S,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> DuplexClient<S> {
    pub fn new(stream: S, version: ProtocolVersion) -> Self {
        DuplexClient {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    pub async fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        encode_packet(p, self.version, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet (None on close); panics after WAIT.
    pub async fn recv(&mut self) -> Option<Packet> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(p) = decode_packet(&mut self.buf, self.version, 1 << 24).unwrap() {
                return Some(p);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => panic!("timed out waiting for a packet"),
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }
}
