//! Packets pipelined right behind CONNECT (MQTT 3.1.1 §3.1.4: a client need not wait
//! for CONNACK) are served, over every listener kind of `mqgate run` (tcp, tls, ws, wss,
//! an ssh direct-tcpip channel) and through the standalone `mqgate proxy` in front of a
//! real mosquitto: CONNECT + SUBSCRIBE `pipe/t` QoS 1 + PUBLISH `pipe/t` QoS 1 "hello",
//! sent in one write, get CONNACK, SUBACK, PUBACK and the delivery of "hello", as
//! mosquitto answers. A CONNECT with a wrong password followed by the same packets gets
//! only a refusing CONNACK, the connection closes, and nothing is published.
//!
//! Cells covered (version × login; "password" = user `alice` from a password file made
//! with `mqgate passwd add`, "anonymous" = no user name):
//! - run/tcp: 3.1.1 and 5.0, anonymous and password (all four).
//! - run/tls: 3.1.1 + password, 5.0 + anonymous.
//! - run/ws: one frame holding all three packets (3.1.1 + password, 5.0 + anonymous),
//!   one message fragmented into three frames (5.0 + password), three messages flushed
//!   in one write (3.1.1 + anonymous).
//! - run/wss: one frame, 3.1.1 + password and 5.0 + anonymous.
//! - run/ssh: 3.1.1 over an SSH password login (CONNECT with user name and password),
//!   5.0 over an SSH key login (CONNECT without user name).
//! - proxy: tcp all four; tls, ws (one frame) and wss (one frame) each 3.1.1 + password
//!   and 5.0 + anonymous.
//! - wrong password: run/tcp and proxy/tcp, 3.1.1 and 5.0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::net::{SocketAddr, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::pki::{ca_with_server, client_config};
use common::ssh::keygen;
use common::{add_password, free_port, KillOnDrop, Mqgate};
use futures_util::{SinkExt as _, StreamExt as _};
use mqgate_protocol::{
    decode_packet, encode_packet, Connect, Disconnect, Packet, ProtocolVersion, PubAck, Publish,
    QoS, ReasonCode, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Read deadline for a whole exchange: a lost packet is an assertion, never a hang.
const WAIT: Duration = Duration::from_secs(10);
/// Time allowed for processes (mqgate, mosquitto, ssh) to come up.
const START: Duration = Duration::from_secs(30);
const USER: &str = "alice";
const PASSWORD: &str = "pipe-s3cret";
const TOPIC: &str = "pipe/t";
const PAYLOAD: &[u8] = b"hello";
const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

// ---- packets -----------------------------------------------------------------------

fn encode(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_packet(packet, version, &mut buf).unwrap();
    buf.to_vec()
}

fn connect(version: ProtocolVersion, client_id: &str, login: Option<(&str, &str)>) -> Packet {
    Packet::Connect(Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.to_owned(),
        will: None,
        username: login.map(|(user, _)| user.to_owned()),
        password: login.map(|(_, pw)| Bytes::copy_from_slice(pw.as_bytes())),
        properties: Default::default(),
    })
}

fn subscribe(pkid: u16, filter: &str) -> Packet {
    Packet::Subscribe(Subscribe {
        pkid,
        filters: vec![SubscribeFilter {
            filter: filter.to_owned(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        }],
        properties: Default::default(),
    })
}

fn publish(pkid: u16, topic: &str, payload: &[u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: topic.into(),
        pkid,
        payload: Bytes::copy_from_slice(payload),
        properties: Default::default(),
    })
}

/// CONNECT + SUBSCRIBE `pipe/t` QoS 1 (id 1) + PUBLISH `pipe/t` QoS 1 "hello" (id 2),
/// each packet's bytes.
fn pipeline(
    version: ProtocolVersion,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Vec<Vec<u8>> {
    vec![
        encode(&connect(version, client_id, login), version),
        encode(&subscribe(1, TOPIC), version),
        encode(&publish(2, TOPIC, PAYLOAD), version),
    ]
}

fn describe(packet: &Packet) -> String {
    match packet {
        Packet::ConnAck(c) => format!("CONNACK {:?}", c.reason),
        Packet::SubAck(s) => format!("SUBACK id {} {:?}", s.pkid, s.reasons),
        Packet::PubAck(a) => format!("PUBACK id {} {:?}", a.pkid, a.reason),
        Packet::Publish(p) => format!(
            "PUBLISH {} qos {:?} {:?}",
            p.topic,
            p.qos,
            String::from_utf8_lossy(&p.payload)
        ),
        Packet::Disconnect(d) => format!("DISCONNECT {:?}", d.reason),
        other => format!("{:?}", other.packet_type()),
    }
}

// ---- transports --------------------------------------------------------------------

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type BoxIo = Box<dyn Io>;

/// How MQTT packets are put into WebSocket frames.
#[derive(Clone, Copy, Debug)]
enum WsMode {
    /// All packets in one binary frame.
    OneFrame,
    /// One binary message fragmented into one frame per packet.
    Fragmented,
    /// One binary message per packet, all flushed in one write.
    Messages,
}

enum Link {
    Stream(BoxIo),
    Ws(Box<WebSocketStream<BoxIo>>, WsMode),
}

enum Read {
    Data(Vec<u8>),
    Closed(String),
}

impl Link {
    /// Sends `packets` at once: one `write_all` of their concatenation (WebSocket: framed
    /// as the mode says, one flush).
    async fn send(&mut self, packets: &[Vec<u8>]) {
        match self {
            Link::Stream(io) => {
                io.write_all(&packets.concat()).await.unwrap();
                io.flush().await.unwrap();
            }
            Link::Ws(ws, WsMode::OneFrame) => {
                ws.send(Message::Binary(packets.concat())).await.unwrap();
            }
            Link::Ws(ws, WsMode::Fragmented) => {
                let last = packets.len() - 1;
                for (i, packet) in packets.iter().enumerate() {
                    let opcode = if i == 0 {
                        OpCode::Data(Data::Binary)
                    } else {
                        OpCode::Data(Data::Continue)
                    };
                    let frame = Frame::message(packet.clone(), opcode, i == last);
                    ws.feed(Message::Frame(frame)).await.unwrap();
                }
                ws.flush().await.unwrap();
            }
            Link::Ws(ws, WsMode::Messages) => {
                for packet in packets {
                    ws.feed(Message::Binary(packet.clone())).await.unwrap();
                }
                ws.flush().await.unwrap();
            }
        }
    }

    async fn read(&mut self) -> Read {
        match self {
            Link::Stream(io) => {
                let mut buf = vec![0u8; 4096];
                match io.read(&mut buf).await {
                    Ok(0) => Read::Closed("end of stream".into()),
                    Ok(n) => {
                        buf.truncate(n);
                        Read::Data(buf)
                    }
                    Err(e) => Read::Closed(e.to_string()),
                }
            }
            Link::Ws(ws, _) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => return Read::Data(data),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(frame))) => {
                        return Read::Closed(format!("WebSocket close {frame:?}"))
                    }
                    Some(Ok(other)) => panic!("unexpected WebSocket message {other:?}"),
                    Some(Err(e)) => return Read::Closed(e.to_string()),
                    None => return Read::Closed("end of stream".into()),
                }
            },
        }
    }
}

async fn tcp(addr: SocketAddr) -> BoxIo {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    Box::new(tcp)
}

/// TLS to `addr` as `localhost`, trusting `ca`.
async fn tls(addr: SocketAddr, ca: &Path) -> BoxIo {
    let connector = TlsConnector::from(Arc::new(client_config(ca, None)));
    let name = ServerName::try_from("localhost").unwrap();
    Box::new(connector.connect(name, tcp(addr).await).await.unwrap())
}

/// The WebSocket upgrade to `/mqtt` with subprotocol `mqtt` over `io`.
async fn ws(io: BoxIo, addr: SocketAddr, mode: WsMode) -> Link {
    let mut request = format!("ws://localhost:{}/mqtt", addr.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let (ws, _) = tokio_tungstenite::client_async(request, io).await.unwrap();
    Link::Ws(Box::new(ws), mode)
}

// ---- an MQTT client over a link ----------------------------------------------------

struct Client {
    name: String,
    link: Link,
    version: ProtocolVersion,
    buf: BytesMut,
    trace: Vec<String>,
}

enum Next {
    Packet(Packet),
    Closed(String),
    Timeout,
}

impl Client {
    fn new(name: String, link: Link, version: ProtocolVersion) -> Client {
        Client {
            name,
            link,
            version,
            buf: BytesMut::new(),
            trace: Vec::new(),
        }
    }

    async fn send(&mut self, packets: &[Vec<u8>]) {
        self.link.send(packets).await;
    }

    /// The next packet, or why there is none before `deadline`.
    async fn next(&mut self, deadline: Instant) -> Next {
        loop {
            match decode_packet(&mut self.buf, self.version, 1 << 20) {
                Ok(Some(packet)) => {
                    self.trace.push(describe(&packet));
                    return Next::Packet(packet);
                }
                Ok(None) => {}
                Err(e) => panic!("{}: undecodable answer: {e}; {:?}", self.name, self.trace),
            }
            let read = tokio::time::timeout_at(deadline.into(), self.link.read()).await;
            match read {
                Ok(Read::Data(data)) => self.buf.extend_from_slice(&data),
                Ok(Read::Closed(why)) => return Next::Closed(why),
                Err(_) => return Next::Timeout,
            }
        }
    }

    /// The next packet before `deadline`; panics naming `waiting_for` otherwise.
    async fn expect(&mut self, deadline: Instant, waiting_for: &str) -> Packet {
        match self.next(deadline).await {
            Next::Packet(p) => p,
            Next::Closed(why) => panic!(
                "{}: connection closed ({why}) while waiting for {waiting_for}; received {:?}",
                self.name, self.trace
            ),
            Next::Timeout => panic!(
                "{}: no {waiting_for} within {WAIT:?}; received {:?}",
                self.name, self.trace
            ),
        }
    }

    async fn puback(&mut self, pkid: u16) {
        let ack = encode(&Packet::PubAck(PubAck::new(pkid)), self.version);
        self.send(&[ack]).await;
    }

    async fn disconnect(mut self) {
        let bye = encode(&Packet::Disconnect(Disconnect::default()), self.version);
        self.send(&[bye]).await;
    }
}

/// Sends the pipeline in one write and expects CONNACK (success) first, then SUBACK
/// (QoS 1 granted), PUBACK and the delivery of "hello" on `pipe/t`, in any order.
async fn pipelined_cell(name: &str, link: Link, version: ProtocolVersion, password: bool) {
    let v = if version == V5 { "5" } else { "311" };
    let login = if password { "pw" } else { "anon" };
    let name = format!("{name}/{v}/{login}");
    let client_id = format!("pipe-{}", name.replace('/', "-"));
    let mut client = Client::new(name.clone(), link, version);
    client
        .send(&pipeline(
            version,
            &client_id,
            password.then_some((USER, PASSWORD)),
        ))
        .await;
    let deadline = Instant::now() + WAIT;
    match client.expect(deadline, "CONNACK").await {
        Packet::ConnAck(c) => assert_eq!(c.reason, ReasonCode::Success, "{name}: {c:?}"),
        other => panic!("{name}: first answer is not CONNACK: {}", describe(&other)),
    }
    let (mut suback, mut puback, mut delivered) = (false, false, false);
    while !(suback && puback && delivered) {
        let mut missing = Vec::new();
        for (got, what) in [
            (suback, "SUBACK"),
            (puback, "PUBACK"),
            (delivered, "PUBLISH"),
        ] {
            if !got {
                missing.push(what);
            }
        }
        let waiting_for = missing.join(" + ");
        match client.expect(deadline, &waiting_for).await {
            Packet::SubAck(s) if !suback => {
                assert_eq!(s.pkid, 1, "{name}");
                assert_eq!(s.reasons, vec![ReasonCode::GrantedQoS1], "{name}");
                suback = true;
            }
            Packet::PubAck(a) if !puback => {
                assert_eq!(a.pkid, 2, "{name}");
                assert_eq!(a.reason, ReasonCode::Success, "{name}");
                puback = true;
            }
            Packet::Publish(p) if !delivered => {
                assert_eq!(&*p.topic, TOPIC, "{name}");
                assert_eq!(&p.payload[..], PAYLOAD, "{name}");
                if p.qos != QoS::AtMostOnce {
                    client.puback(p.pkid).await;
                }
                delivered = true;
            }
            other => panic!(
                "{name}: unexpected {} (received {:?})",
                describe(&other),
                client.trace
            ),
        }
    }
    eprintln!("{name}: ok, {:?}", client.trace);
    client.disconnect().await;
}

/// A subscriber on `pipe/#` (QoS 1), connected and subscribed before it returns.
async fn subscriber(link: Link, version: ProtocolVersion, client_id: &str) -> Client {
    let mut client = Client::new(format!("subscriber {client_id}"), link, version);
    client
        .send(&[
            encode(&connect(version, client_id, None), version),
            encode(&subscribe(1, "pipe/#"), version),
        ])
        .await;
    let deadline = Instant::now() + WAIT;
    assert!(matches!(
        client.expect(deadline, "CONNACK").await,
        Packet::ConnAck(c) if c.reason == ReasonCode::Success
    ));
    assert!(matches!(
        client.expect(deadline, "SUBACK").await,
        Packet::SubAck(s) if s.reasons == vec![ReasonCode::GrantedQoS1]
    ));
    client
}

/// CONNECT with a wrong password + SUBSCRIBE + PUBLISH in one write: only a refusing
/// CONNACK comes back, then the connection closes.
async fn refused_cell(name: &str, link: Link, version: ProtocolVersion) {
    let name = format!("{name}/{}", if version == V5 { "5" } else { "311" });
    let client_id = format!("pipe-wrong-{}", name.replace('/', "-"));
    let mut client = Client::new(name.clone(), link, version);
    client
        .send(&pipeline(
            version,
            &client_id,
            Some((USER, "wrong-password")),
        ))
        .await;
    let deadline = Instant::now() + WAIT;
    match client.expect(deadline, "CONNACK").await {
        Packet::ConnAck(c) => {
            assert_eq!(c.reason, ReasonCode::BadUserNameOrPassword, "{name}: {c:?}")
        }
        other => panic!("{name}: first answer is not CONNACK: {}", describe(&other)),
    }
    match client.next(deadline).await {
        Next::Closed(why) => eprintln!("{name}: refused and closed ({why}), {:?}", client.trace),
        Next::Packet(p) => panic!(
            "{name}: a refused CONNECT must be answered by CONNACK alone, got {} ({:?})",
            describe(&p),
            client.trace
        ),
        Next::Timeout => panic!("{name}: the connection stayed open after a refused CONNECT"),
    }
}

/// Publishes a QoS 1 sentinel on `pipe/sentinel`, then checks that the first message
/// `sub` received is that sentinel: nothing from the refused pipelines got through.
async fn assert_only_sentinel(sub: &mut Client, publisher: Link, version: ProtocolVersion) {
    let mut client = Client::new("sentinel publisher".into(), publisher, version);
    client
        .send(&[
            encode(&connect(version, "pipe-sentinel", None), version),
            encode(&publish(7, "pipe/sentinel", b"sentinel"), version),
        ])
        .await;
    let deadline = Instant::now() + WAIT;
    assert!(matches!(
        client.expect(deadline, "CONNACK").await,
        Packet::ConnAck(c) if c.reason == ReasonCode::Success
    ));
    assert!(matches!(
        client.expect(deadline, "PUBACK").await,
        Packet::PubAck(a) if a.pkid == 7
    ));
    client.disconnect().await;
    match sub.expect(deadline, "the sentinel").await {
        Packet::Publish(p) => {
            assert_eq!(
                (&*p.topic, &p.payload[..]),
                ("pipe/sentinel", &b"sentinel"[..]),
                "the subscriber on pipe/# received a refused client's message first"
            );
            if p.qos != QoS::AtMostOnce {
                sub.puback(p.pkid).await;
            }
        }
        other => panic!("subscriber: unexpected {}", describe(&other)),
    }
}

// ---- fixtures ----------------------------------------------------------------------

/// A CA and a `localhost` server certificate made with `mqgate certs`.
fn pki(dir: &Path) -> PathBuf {
    let ca = dir.join("certs");
    ca_with_server(&ca, "pipelining test CA", None);
    ca
}

/// A password file with `alice`, made with `mqgate passwd add` (password on stdin).
fn password_file(dir: &Path) -> PathBuf {
    let file = dir.join("passwd");
    add_password(&file, USER, PASSWORD);
    file
}

fn tls_table(ca: &Path) -> String {
    format!(
        "[listener.tls]\ncert = \"{ca}/servers/localhost.pem\"\nkey = \"{ca}/servers/localhost.key\"\n",
        ca = ca.display()
    )
}

/// `mqgate run` with tls, ws, wss, ssh and tcp listeners, a password file with `alice`,
/// anonymous access allowed and no ACL.
struct Gateway {
    dir: tempfile::TempDir,
    mqgate: Mqgate,
}

impl Gateway {
    fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n);
        let ca = pki(dir.path());
        let passwd = password_file(dir.path());
        keygen(&path("host_key"), "host");
        keygen(&path("sensor7"), "sensor7");
        std::fs::copy(path("sensor7.pub"), path("authorized_keys")).unwrap();
        let config = format!(
            "[[listener]]\nkind = \"tls\"\nbind = \"127.0.0.1:0\"\n{tls}\n\
             [[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:0\"\n\n\
             [[listener]]\nkind = \"wss\"\nbind = \"127.0.0.1:0\"\n{tls}\n\
             [[listener]]\nkind = \"ssh\"\nbind = \"127.0.0.1:0\"\n[listener.ssh]\n\
             host_key = \"{host_key}\"\nauthorized_keys = \"{keys}\"\nallow_password = true\n\n\
             [[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:0\"\n\n\
             [auth]\npassword_file = \"{passwd}\"\nallow_anonymous = true\n",
            tls = tls_table(&ca),
            host_key = path("host_key").display(),
            keys = path("authorized_keys").display(),
            passwd = passwd.display(),
        );
        std::fs::write(path("mqgate.toml"), config).unwrap();
        let mqgate = Mqgate::start_with_config(&path("data"), &path("mqgate.toml"));
        Gateway { dir, mqgate }
    }

    fn addr(&self, kind: &str) -> SocketAddr {
        self.mqgate
            .listener(kind)
            .unwrap_or_else(|| panic!("{kind} listener logged: {}", self.mqgate.logs()))
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// mosquitto (anonymous, no persistence) and `mqgate proxy --config` in front of it with
/// tls, ws, wss and tcp listeners, a password file with `alice` and anonymous access.
struct ProxySetup {
    dir: tempfile::TempDir,
    proxy: Mqgate,
    _mosquitto: KillOnDrop,
}

impl ProxySetup {
    fn start() -> ProxySetup {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n);
        let upstream = free_port();
        std::fs::write(
            path("mosquitto.conf"),
            format!("listener {upstream} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let mosquitto = KillOnDrop(
            Command::new("mosquitto")
                .arg("-c")
                .arg(path("mosquitto.conf"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + START;
        while StdStream::connect(("127.0.0.1", upstream)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ca = pki(dir.path());
        let passwd = password_file(dir.path());
        let config = format!(
            "[[listener]]\nkind = \"tls\"\nbind = \"127.0.0.1:0\"\n{tls}\n\
             [[listener]]\nkind = \"ws\"\nbind = \"127.0.0.1:0\"\n\n\
             [[listener]]\nkind = \"wss\"\nbind = \"127.0.0.1:0\"\n{tls}\n\
             [[listener]]\nkind = \"tcp\"\nbind = \"127.0.0.1:0\"\n\n\
             [proxy]\nupstream = \"127.0.0.1:{upstream}\"\n\n\
             [auth]\npassword_file = \"{passwd}\"\nallow_anonymous = true\n",
            tls = tls_table(&ca),
            passwd = passwd.display(),
        );
        std::fs::write(path("proxy.toml"), config).unwrap();
        let proxy = Mqgate::start_with_args(
            &path("data"),
            &["proxy", "--config", path("proxy.toml").to_str().unwrap()],
        );
        ProxySetup {
            dir,
            proxy,
            _mosquitto: mosquitto,
        }
    }

    fn addr(&self, kind: &str) -> SocketAddr {
        self.proxy
            .listener(kind)
            .unwrap_or_else(|| panic!("{kind} listener logged: {}", self.proxy.logs()))
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }
}

/// `ssh -N -L 127.0.0.1:LOCAL:localhost:1883` to the gateway's ssh listener; the local
/// end of the forward is the MQTT connection.
struct SshForward {
    local: u16,
    child: KillOnDrop,
    stderr: PathBuf,
}

impl SshForward {
    /// Logs in as `sensor7` with its key, or as `alice` with her password (from the
    /// password file, given through SSH_ASKPASS).
    fn start(gateway: &Gateway, password: bool) -> SshForward {
        let port = gateway.addr("ssh").port();
        let host_pub = std::fs::read_to_string(gateway.path("host_key.pub")).unwrap();
        let known_hosts = gateway.path(&format!("known_hosts_{password}"));
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
        let local = free_port();
        let stderr = gateway.path(&format!("ssh_{password}.log"));
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-N", "-p", &port.to_string()])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
            .args(["-o", "ExitOnForwardFailure=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg("-L")
            .arg(format!("127.0.0.1:{local}:localhost:1883"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if password {
            let askpass = gateway.path("askpass.sh");
            std::fs::write(&askpass, format!("#!/bin/sh\necho '{PASSWORD}'\n")).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
            cmd.args(["-o", "BatchMode=no", "-o", "PubkeyAuthentication=no"])
                .args(["-o", "PreferredAuthentications=password"])
                .args(["-o", "NumberOfPasswordPrompts=1"])
                .env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0")
                .arg(format!("{USER}@127.0.0.1"));
        } else {
            cmd.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
                .arg(gateway.path("sensor7"))
                .arg("sensor7@127.0.0.1");
        }
        SshForward {
            local,
            child: KillOnDrop(cmd.spawn().unwrap()),
            stderr,
        }
    }

    /// The first connection accepted by the forward's local end (retried while ssh logs in).
    async fn connect(&mut self) -> BoxIo {
        let deadline = Instant::now() + START;
        loop {
            if let Ok(tcp) = TcpStream::connect(("127.0.0.1", self.local)).await {
                tcp.set_nodelay(true).unwrap();
                return Box::new(tcp);
            }
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!(
                    "ssh exited ({status}): {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ssh -L never opened its port: {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---- tests: mqgate run -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_pipelined_after_connect_all_versions_and_logins() {
    let gw = Gateway::start();
    let addr = gw.mqgate.addr;
    for version in [V3, V5] {
        for password in [false, true] {
            let link = Link::Stream(tcp(addr).await);
            pipelined_cell("run/tcp", link, version, password).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_pipelined_after_connect() {
    let gw = Gateway::start();
    let addr = gw.addr("tls");
    for (version, password) in [(V3, true), (V5, false)] {
        let link = Link::Stream(tls(addr, &gw.ca()).await);
        pipelined_cell("run/tls", link, version, password).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_pipelined_after_connect_in_one_frame_fragments_and_messages() {
    let gw = Gateway::start();
    let addr = gw.addr("ws");
    for (mode, version, password) in [
        (WsMode::OneFrame, V3, true),
        (WsMode::OneFrame, V5, false),
        (WsMode::Fragmented, V5, true),
        (WsMode::Messages, V3, false),
    ] {
        let link = ws(tcp(addr).await, addr, mode).await;
        pipelined_cell(&format!("run/ws {mode:?}"), link, version, password).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_pipelined_after_connect() {
    let gw = Gateway::start();
    let addr = gw.addr("wss");
    for (version, password) in [(V3, true), (V5, false)] {
        let link = ws(tls(addr, &gw.ca()).await, addr, WsMode::OneFrame).await;
        pipelined_cell("run/wss OneFrame", link, version, password).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_channel_pipelined_after_connect() {
    let gw = Gateway::start();
    // SSH password login as alice; the CONNECT carries her user name and password.
    let mut forward = SshForward::start(&gw, true);
    let link = Link::Stream(forward.connect().await);
    pipelined_cell("run/ssh password-login", link, V3, true).await;
    // SSH key login as sensor7; the CONNECT carries no user name.
    let mut forward = SshForward::start(&gw, false);
    let link = Link::Stream(forward.connect().await);
    pipelined_cell("run/ssh key-login", link, V5, false).await;
}

// ---- tests: the standalone proxy ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_proxy_pipelined_after_connect() {
    let setup = ProxySetup::start();
    let addr = setup.proxy.addr;
    for version in [V3, V5] {
        for password in [false, true] {
            let link = Link::Stream(tcp(addr).await);
            pipelined_cell("proxy/tcp", link, version, password).await;
        }
    }
    let tls_addr = setup.addr("tls");
    let ws_addr = setup.addr("ws");
    let wss_addr = setup.addr("wss");
    for (version, password) in [(V3, true), (V5, false)] {
        let link = Link::Stream(tls(tls_addr, &setup.ca()).await);
        pipelined_cell("proxy/tls", link, version, password).await;
        let link = ws(tcp(ws_addr).await, ws_addr, WsMode::OneFrame).await;
        pipelined_cell("proxy/ws OneFrame", link, version, password).await;
        let link = ws(tls(wss_addr, &setup.ca()).await, wss_addr, WsMode::OneFrame).await;
        pipelined_cell("proxy/wss OneFrame", link, version, password).await;
    }
}

// ---- tests: a refused CONNECT ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_pipeline_gets_only_a_refusing_connack_and_publishes_nothing() {
    let gw = Gateway::start();
    let addr = gw.mqgate.addr;
    let mut sub = subscriber(Link::Stream(tcp(addr).await), V3, "pipe-watch-run").await;
    for version in [V3, V5] {
        refused_cell(
            "run/tcp wrong password",
            Link::Stream(tcp(addr).await),
            version,
        )
        .await;
    }
    assert_only_sentinel(&mut sub, Link::Stream(tcp(addr).await), V3).await;

    let setup = ProxySetup::start();
    let addr = setup.proxy.addr;
    let mut sub = subscriber(Link::Stream(tcp(addr).await), V5, "pipe-watch-proxy").await;
    for version in [V3, V5] {
        refused_cell(
            "proxy/tcp wrong password",
            Link::Stream(tcp(addr).await),
            version,
        )
        .await;
    }
    assert_only_sentinel(&mut sub, Link::Stream(tcp(addr).await), V5).await;
}
