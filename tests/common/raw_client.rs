//! A blocking raw MQTT client (`mqgate_protocol`'s codec): every byte under the test's
//! control, over plain TCP, TLS or anything else that is a [`Socket`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqgate_protocol::codec::{decode_packet, encode_packet};
use mqgate_protocol::{
    Connect, Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, RetainHandling,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};

use super::Mqgate;

/// How long a client waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a client waits to be sure a packet it must not get does not come.
pub const QUIET: Duration = Duration::from_millis(700);

/// A byte stream whose underlying socket takes a read timeout.
pub trait Socket: Read + Write {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

/// Blocking TLS over TCP.
impl Socket for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
}

/// E.g. `Box<dyn Socket>`, for clients over TLS or plain TCP alike.
impl<S: Socket + ?Sized> Socket for Box<S> {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

/// The CONNECT a client sends: keep alive 60 s, no will, a session expiry of one hour
/// when not `clean` (MQTT 5), the user name and password of `credentials` if any.
pub fn connect_packet(
    version: ProtocolVersion,
    client_id: &str,
    clean: bool,
    credentials: Option<(&str, &str)>,
) -> Connect {
    let mut properties = Properties::default();
    if version.is_v5() && !clean {
        properties.session_expiry_interval = Some(3600);
    }
    Connect {
        protocol: version,
        clean_start: clean,
        keep_alive: 60,
        client_id: client_id.to_owned(),
        will: None,
        username: credentials.map(|c| c.0.to_owned()),
        password: credentials.map(|c| Bytes::copy_from_slice(c.1.as_bytes())),
        properties,
    }
}

/// Appends an MQTT string (or binary data): two length bytes, then `s`.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s);
}

/// A whole packet written by hand: the first byte, the remaining length, `body`.
pub fn hand_made_packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
}

/// A raw MQTT client: every byte under the test's control.
pub struct Client<S = TcpStream> {
    pub stream: S,
    buf: BytesMut,
    pub version: ProtocolVersion,
    next_pkid: u16,
    /// The server closed the connection (or it failed), as opposed to a quiet timeout.
    pub closed: bool,
}

impl Client<TcpStream> {
    /// Connects to `addr` with [`connect_packet`]; see [`Client::connect_over`].
    pub fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
        clean: bool,
        credentials: Option<(&str, &str)>,
    ) -> (Client, (ReasonCode, bool)) {
        let connect = connect_packet(version, client_id, clean, credentials);
        Client::connect_with(addr, version, connect)
    }

    /// Connects to `addr` and sends `connect`; see [`Client::connect_over`].
    pub fn connect_with(
        addr: SocketAddr,
        version: ProtocolVersion,
        connect: Connect,
    ) -> (Client, (ReasonCode, bool)) {
        Client::connect_over(TcpStream::connect(addr).unwrap(), version, connect)
    }
}

impl<S: Socket> Client<S> {
    /// A client on `stream` that has sent nothing yet.
    pub fn new(stream: S, version: ProtocolVersion) -> Client<S> {
        Client {
            stream,
            buf: BytesMut::new(),
            version,
            next_pkid: 1,
            closed: false,
        }
    }

    /// Sends `connect` on `stream`; returns the client and CONNACK's (reason, session
    /// present), the reason `UnspecifiedError` if the connection closed without a CONNACK.
    pub fn connect_over(
        stream: S,
        version: ProtocolVersion,
        connect: Connect,
    ) -> (Client<S>, (ReasonCode, bool)) {
        let mut client = Client::new(stream, version);
        if client.try_send(&Packet::Connect(connect)).is_err() {
            client.closed = true;
            return (client, (ReasonCode::UnspecifiedError, false));
        }
        let ack = match client.recv(WAIT) {
            Some(Packet::ConnAck(a)) => (a.reason, a.session_present),
            Some(other) => panic!("expected CONNACK, got {other:?}"),
            None => (ReasonCode::UnspecifiedError, false),
        };
        (client, ack)
    }

    pub fn try_send(&mut self, packet: &Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode_packet(packet, self.version, &mut out).unwrap();
        self.stream.write_all(&out)?;
        self.stream.flush()
    }

    pub fn send(&mut self, packet: &Packet) {
        self.try_send(packet).unwrap();
    }

    /// The next packet within `timeout`; `None` on timeout or when the connection closed
    /// (then `closed` is set).
    pub fn recv(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(p)) = decode_packet(&mut self.buf, self.version, 1 << 20) {
                return Some(p);
            }
            if self.closed {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => self.closed = true,
            }
        }
    }

    /// The next packet id (1, 2, ...; never 0).
    pub fn pkid(&mut self) -> u16 {
        let id = self.next_pkid;
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        id
    }

    /// Subscribes and returns the SUBACK reasons.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<ReasonCode> {
        let pkid = self.pkid();
        self.send(&Packet::Subscribe(Subscribe {
            pkid,
            filters: vec![SubscribeFilter {
                filter: filter.to_owned(),
                options: SubscriptionOptions {
                    qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribe,
                },
            }],
            properties: Properties::default(),
        }));
        loop {
            match self.recv(WAIT) {
                Some(Packet::SubAck(a)) if a.pkid == pkid => return a.reasons,
                Some(Packet::Publish(p)) => self.ack(&p),
                Some(other) => panic!("expected SUBACK, got {other:?}"),
                None => panic!("no SUBACK for {filter}"),
            }
        }
    }

    /// Publishes at QoS 1 and waits for the PUBACK; returns its reason.
    pub fn publish(&mut self, topic: &str, payload: &str) -> ReasonCode {
        let pkid = self.pkid();
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Arc::from(topic),
            pkid,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            properties: Properties::default(),
        }));
        loop {
            match self.recv(WAIT) {
                Some(Packet::PubAck(a)) if a.pkid == pkid => return a.reason,
                Some(Packet::Publish(p)) => self.ack(&p),
                Some(other) => panic!("expected PUBACK, got {other:?}"),
                None => panic!("no PUBACK for {topic} (closed: {})", self.closed),
            }
        }
    }

    /// PUBACK for a QoS 1 delivery.
    pub fn ack(&mut self, p: &Publish) {
        if p.qos == QoS::AtLeastOnce {
            self.send(&Packet::PubAck(PubAck::new(p.pkid)));
        }
    }

    /// Payloads of the deliveries that arrive until nothing came for [`QUIET`].
    pub fn drain(&mut self) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(packet) = self.recv(QUIET) {
            if let Packet::Publish(p) = packet {
                self.ack(&p);
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
            }
        }
        got
    }

    /// Waits until `n` deliveries arrived (or [`WAIT`] passed); returns their payloads.
    pub fn receive(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Some(Packet::Publish(p)) => {
                    self.ack(&p);
                    got.push(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Some(_) => {}
                None => break,
            }
        }
        got
    }

    /// Asserts that the server disconnects this client for withdrawn credentials:
    /// DISCONNECT 0x87 then the close (MQTT 5), or the close (3.1.1).
    pub fn expect_withdrawn(&mut self, who: &str, gw: &Mqgate) {
        if self.version.is_v5() {
            match self.recv(WAIT) {
                Some(Packet::Disconnect(d)) => {
                    assert_eq!(d.reason, ReasonCode::NotAuthorized, "{who}")
                }
                other => panic!(
                    "{who} expected DISCONNECT 0x87, got {other:?} (closed: {})\n{}",
                    self.closed,
                    gw.logs()
                ),
            }
        }
        let next = self.recv(WAIT);
        assert!(
            next.is_none() && self.closed,
            "{who}: still connected after the reload ({next:?})\n{}",
            gw.logs()
        );
    }

    /// Sends DISCONNECT and waits for the server to close, so the session is offline
    /// before the test goes on.
    pub fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Default::default()));
        let _ = self.recv(WAIT);
    }
}
