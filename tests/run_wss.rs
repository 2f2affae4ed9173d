//! MQTT over WebSocket over TLS (`kind = "wss"`), end to end with the real binary:
//! `mqgate run` (broker-lite) and `mqgate proxy` (in front of a real mosquitto), with
//! certificates from `mqgate certs`. The client is a WebSocket client over rustls that
//! speaks MQTT 3.1.1 (mosquitto_pub/sub here are built without WebSocket support);
//! `openssl s_client` proves the handshake and ALPN. Bad input on the wss port (plain
//! HTTP, plaintext WebSocket, TLS without HTTP, a wrong path) is one log line each and
//! breaks nothing; a revocation applies on SIGHUP without dropping connections.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{run_mqgate, Mqgate};
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(20);

// ---- PKI and configuration ---------------------------------------------------------

fn certs(dir: &Path, args: &[&str]) {
    let mut all = vec!["certs", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run_mqgate(&all);
    assert_eq!(code, 0, "mqgate certs {args:?}: {stdout}{stderr}");
}

/// A CA, a `localhost` server certificate, devices `sensor1`, `sensor2`, and a CRL.
fn pki(dir: &Path) -> PathBuf {
    let ca = dir.join("certs");
    certs(&ca, &["init", "--name", "wss test CA"]);
    certs(
        &ca,
        &["issue-server", "--dns", "localhost", "--ip", "127.0.0.1"],
    );
    certs(&ca, &["issue-device", "sensor1"]);
    certs(&ca, &["issue-device", "sensor2"]);
    certs(&ca, &["crl"]);
    ca
}

/// A `wss` listener (certificate identity as user name) and a plain `tcp` one, in that
/// order (the test harness returns once the tcp listener is up, so both are).
fn listeners(ca: &Path) -> String {
    format!(
        r#"
[[listener]]
kind = "wss"
bind = "127.0.0.1:0"
[listener.tls]
cert = "{ca}/servers/localhost.pem"
key = "{ca}/servers/localhost.key"
client_ca = "{ca}/ca.pem"
crl = "{ca}/crl.pem"
client_cert = "optional"
use_identity_as_username = true
alpn = ["http/1.1"]

[[listener]]
kind = "tcp"
bind = "127.0.0.1:0"
"#,
        ca = ca.display()
    )
}

/// Anonymous clients read sensors/#; each device reads and writes only its own subtree.
const ACL: &str = "topic read sensors/#\n\npattern readwrite sensors/%u/#\n";

fn start_run(tmp: &Path, ca: &Path) -> Mqgate {
    let acl = tmp.join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let config = tmp.join("mqgate.toml");
    let text = format!(
        "{}\n[auth]\nallow_anonymous = true\n\n[acl]\nfile = \"{}\"\n",
        listeners(ca),
        acl.display()
    );
    std::fs::write(&config, text).unwrap();
    Mqgate::start_with_config(&tmp.join("data"), &config)
}

// ---- a WebSocket-over-TLS MQTT 3.1.1 client ----------------------------------------

type Wss = WebSocketStream<TlsStream<TcpStream>>;

struct Client {
    ws: Wss,
    buf: Vec<u8>,
}

fn tls_config(ca: &Path, device: Option<&str>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match device {
        Some(d) => {
            let chain = CertificateDer::pem_file_iter(ca.join(format!("devices/{d}.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(ca.join(format!("devices/{d}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

async fn try_tls_connect(
    port: u16,
    ca: &Path,
    device: Option<&str>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = TlsConnector::from(Arc::new(tls_config(ca, device)));
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

async fn tls_connect(port: u16, ca: &Path, device: Option<&str>) -> TlsStream<TcpStream> {
    try_tls_connect(port, ca, device).await.unwrap()
}

/// TLS, then the WebSocket upgrade to `path` with subprotocol `mqtt`.
async fn wss_connect(
    port: u16,
    path: &str,
    ca: &Path,
    device: Option<&str>,
) -> Result<Wss, tokio_tungstenite::tungstenite::Error> {
    let tls = try_tls_connect(port, ca, device).await?;
    let mut request = format!("wss://localhost:{port}{path}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let (ws, response) = tokio_tungstenite::client_async(request, tls).await?;
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "mqtt"
    );
    Ok(ws)
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

/// A whole packet: the first byte, the remaining length, `body`.
fn packet(first: u8, body: Vec<u8>) -> Vec<u8> {
    common::raw_client::hand_made_packet(first, &body)
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = string("MQTT");
    body.extend_from_slice(&[4, 0x02, 0, 60]);
    body.extend(string(client_id));
    packet(0x10, body)
}

fn subscribe_packet(id: u16, filter: &str) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.extend(string(filter));
    body.push(1);
    packet(0x82, body)
}

/// A retained QoS 1 PUBLISH: a subscriber sees it whether it subscribed before or after.
fn publish_qos1(id: u16, topic: &str, payload: &str) -> Vec<u8> {
    let mut body = string(topic);
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(payload.as_bytes());
    packet(0x33, body)
}

impl Client {
    /// Connects over wss, sends CONNECT (no user name: the certificate is the identity)
    /// and expects CONNACK 0.
    async fn connect(port: u16, ca: &Path, device: Option<&str>, client_id: &str) -> Client {
        let ws = wss_connect(port, "/mqtt", ca, device).await.unwrap();
        let mut client = Client {
            ws,
            buf: Vec::new(),
        };
        client.send_frames(&[&connect_packet(client_id)]).await;
        assert_eq!(client.recv().await, (0x20, vec![0, 0]), "CONNACK accepted");
        client
    }

    /// Sends each slice as one binary WebSocket frame.
    async fn send_frames(&mut self, frames: &[&[u8]]) {
        for frame in frames {
            self.ws.send(Message::Binary(frame.to_vec())).await.unwrap();
        }
    }

    /// The next MQTT packet: (first byte, body).
    async fn recv(&mut self) -> (u8, Vec<u8>) {
        tokio::time::timeout(WAIT, self.next_packet())
            .await
            .expect("an MQTT packet within the timeout")
    }

    /// Whether the server closes the connection within the timeout (packets before the
    /// close are skipped).
    async fn ended(&mut self) -> bool {
        let closed = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                    _ => return,
                }
            }
        };
        tokio::time::timeout(WAIT, closed).await.is_ok()
    }

    async fn next_packet(&mut self) -> (u8, Vec<u8>) {
        loop {
            if let Some((header, len)) = self.header() {
                if self.buf.len() >= header + len {
                    let first = self.buf[0];
                    let body = self.buf[header..header + len].to_vec();
                    self.buf.drain(..header + len);
                    return (first, body);
                }
            }
            match self.ws.next().await {
                Some(Ok(Message::Binary(data))) => self.buf.extend(data),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    }

    /// (fixed header length, remaining length) once the fixed header is complete.
    fn header(&self) -> Option<(usize, usize)> {
        let mut len = 0usize;
        for (i, byte) in self.buf.iter().enumerate().skip(1).take(4) {
            len |= usize::from(byte & 0x7f) << (7 * (i - 1));
            if byte & 0x80 == 0 {
                return Some((i + 1, len));
            }
        }
        None
    }
}

/// (topic, packet id if QoS > 0, payload) of a PUBLISH body.
fn parse_publish(body: &[u8], qos: u8) -> (String, Option<[u8; 2]>, String) {
    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8_lossy(&body[2..2 + len]).into_owned();
    let mut rest = &body[2 + len..];
    let id = (qos > 0).then(|| {
        let id = [rest[0], rest[1]];
        rest = &rest[2..];
        id
    });
    (topic, id, String::from_utf8_lossy(rest).into_owned())
}

/// An anonymous `mosquitto_sub` on a plain TCP port that prints one message and exits.
fn mosquitto_sub(port: u16, filter: &str) -> Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-v"])
        .args(["-t", filter, "-C", "1", "-W", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub")
}

/// Waits (bounded) until something listens on `port`.
fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + WAIT;
    while StdTcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_lines(mqgate: &Mqgate, needle: &str) -> usize {
    mqgate.logs().lines().filter(|l| l.contains(needle)).count()
}

/// Waits (bounded) until at least `count` log lines contain `needle`.
fn wait_for_lines(mqgate: &Mqgate, needle: &str, count: usize) {
    let deadline = Instant::now() + WAIT;
    while log_lines(mqgate, needle) < count {
        assert!(
            Instant::now() < deadline,
            "expected {count} lines with {needle:?}:\n{}",
            mqgate.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn s_client(port: u16, ca: &Path, alpn: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            "localhost",
            "-alpn",
            alpn,
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(ca.join("ca.pem"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- tests -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_wss_into_broker_lite_with_certificate_identity_and_acl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = pki(tmp.path());
    let mqgate = start_run(tmp.path(), &ca);
    let wss = mqgate.listener("wss").expect("wss listener logged").port();
    let tcp = mqgate.addr.port();

    // openssl: the TLS handshake completes, the certificate verifies, ALPN is http/1.1.
    let out = s_client(wss, &ca, "http/1.1");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    // sensor1 over wss: its certificate CN is its user name for the ACL.
    let sub = mosquitto_sub(tcp, "sensors/#");
    let mut sensor1 = Client::connect(wss, &ca, Some("sensor1"), "wss-sensor1").await;
    // Own subtree: granted QoS 1. Another device's: refused (0x80).
    sensor1
        .send_frames(&[&subscribe_packet(1, "sensors/sensor1/#")])
        .await;
    assert_eq!(sensor1.recv().await, (0x90, vec![0, 1, 1]));
    sensor1
        .send_frames(&[&subscribe_packet(2, "sensors/sensor2/#")])
        .await;
    assert_eq!(sensor1.recv().await, (0x90, vec![0, 2, 0x80]));

    // A publish outside its subtree is acknowledged and dropped (3.1.1)...
    sensor1
        .send_frames(&[&publish_qos1(3, "sensors/sensor2/temp", "spoofed")])
        .await;
    assert_eq!(sensor1.recv().await, (0x40, vec![0, 3]));
    // ...its own goes through (one PUBLISH split over two WebSocket frames) and is
    // delivered to its own subscription.
    let publish = publish_qos1(4, "sensors/sensor1/temp", "21.5");
    let (a, b) = publish.split_at(5);
    sensor1.send_frames(&[a, b]).await;
    let mut acked = false;
    let mut delivered = None;
    while !(acked && delivered.is_some()) {
        let (first, body) = sensor1.recv().await;
        match first & 0xf0 {
            0x40 => {
                assert_eq!(body, vec![0, 4]);
                acked = true;
            }
            0x30 => {
                let (topic, id, payload) = parse_publish(&body, (first >> 1) & 3);
                if let Some(id) = id {
                    sensor1.send_frames(&[&packet(0x40, id.to_vec())]).await;
                }
                delivered = Some((topic, payload));
            }
            other => panic!("unexpected packet type {other:#x}"),
        }
    }
    assert_eq!(
        delivered.unwrap(),
        ("sensors/sensor1/temp".to_owned(), "21.5".to_owned())
    );
    // The anonymous subscriber on TCP saw exactly the allowed message.
    let out = sub.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sensors/sensor1/temp 21.5"
    );
    assert!(
        mqgate.wait_for_log("sensors/sensor2/temp", WAIT),
        "the denial is logged: {}",
        mqgate.logs()
    );

    // Two MQTT packets in one frame (SUBSCRIBE + PINGREQ) are both answered.
    let mut both = subscribe_packet(5, "sensors/sensor1/x");
    both.extend_from_slice(&[0xc0, 0]);
    sensor1.send_frames(&[&both]).await;
    assert_eq!(sensor1.recv().await, (0x90, vec![0, 5, 1]));
    assert_eq!(sensor1.recv().await, (0xd0, vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_wss_port_is_one_log_line_each_and_breaks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = pki(tmp.path());
    let mqgate = start_run(tmp.path(), &ca);
    let wss = mqgate.listener("wss").expect("wss listener logged").port();

    // Plain HTTP, and a plaintext WebSocket upgrade, on the TLS port.
    let tls_failures = log_lines(&mqgate, "TLS handshake failed");
    for request in [
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
    ] {
        let mut tcp = StdTcpStream::connect(("127.0.0.1", wss)).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        tcp.write_all(request.as_bytes()).unwrap();
        // The server answers with a TLS alert at most, never an HTTP response.
        let mut reply = Vec::new();
        let _ = tcp.read_to_end(&mut reply);
        assert!(!reply.starts_with(b"HTTP"), "{reply:?}");
    }
    wait_for_lines(&mqgate, "TLS handshake failed", tls_failures + 2);
    let lines: Vec<String> = mqgate
        .logs()
        .lines()
        .filter(|l| l.contains("TLS handshake failed"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), tls_failures + 2, "one line per connection");
    for line in &lines[tls_failures..] {
        assert!(line.contains("not a TLS handshake"), "{line}");
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
    }

    // TLS, then raw MQTT instead of an HTTP upgrade: the WebSocket handshake fails.
    let mut tls = tls_connect(wss, &ca, None).await;
    tokio::io::AsyncWriteExt::write_all(&mut tls, &connect_packet("raw"))
        .await
        .unwrap();
    wait_for_lines(&mqgate, "WebSocket handshake failed", 1);
    drop(tls);

    // A WebSocket request for another path: 404, logged.
    let err = wss_connect(wss, "/other", &ca, None).await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    wait_for_lines(&mqgate, "WebSocket handshake failed", 2);
    assert_eq!(log_lines(&mqgate, "WebSocket handshake failed"), 2);

    // The listener still serves a good client (anonymous: no certificate).
    let mut client = Client::connect(wss, &ca, None, "after-bad-input").await;
    client
        .send_frames(&[&subscribe_packet(1, "sensors/#")])
        .await;
    assert_eq!(client.recv().await, (0x90, vec![0, 1, 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_proxy_serves_wss_in_front_of_mosquitto() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = pki(tmp.path());
    // mosquitto cannot listen on port 0: take a free port and start it there.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = tmp.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {upstream} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let mut mosquitto = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_listening(upstream);

    let acl = tmp.path().join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let config = tmp.path().join("proxy.toml");
    let text = format!(
        "{}\n[proxy]\nupstream = \"127.0.0.1:{upstream}\"\n\n[auth]\nallow_anonymous = true\n\n[acl]\nfile = \"{}\"\n",
        listeners(&ca),
        acl.display()
    );
    std::fs::write(&config, text).unwrap();
    let data = tmp.path().join("data");
    let proxy = Mqgate::start_with_args(&data, &["proxy", "--config", config.to_str().unwrap()]);
    let wss = proxy.listener("wss").expect("wss listener logged").port();

    // Read straight from mosquitto: only sensor2's own message arrives.
    let sub = mosquitto_sub(upstream, "sensors/#");
    let mut sensor2 = Client::connect(wss, &ca, Some("sensor2"), "wss-sensor2").await;
    sensor2
        .send_frames(&[&publish_qos1(1, "sensors/sensor1/temp", "spoofed")])
        .await;
    assert_eq!(sensor2.recv().await, (0x40, vec![0, 1]));
    sensor2
        .send_frames(&[&publish_qos1(2, "sensors/sensor2/temp", "19.0")])
        .await;
    assert_eq!(sensor2.recv().await, (0x40, vec![0, 2]));
    let out = sub.wait_with_output().unwrap();
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sensors/sensor2/temp 19.0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_applies_to_the_wss_listener_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = pki(tmp.path());
    let mqgate = start_run(tmp.path(), &ca);
    let wss = mqgate.listener("wss").expect("wss listener logged").port();
    let mut revoked = Client::connect(wss, &ca, Some("sensor1"), "before-revocation").await;
    let mut kept = Client::connect(wss, &ca, Some("sensor2"), "kept").await;

    certs(&ca, &["revoke", "sensor1"]);
    certs(&ca, &["crl"]);
    mqgate.signal("HUP");
    assert!(
        mqgate.wait_for_log("TLS certificates, key and CRL reloaded", WAIT),
        "{}",
        mqgate.logs()
    );
    // The revoked certificate no longer gets through (with TLS 1.3 the client may see
    // the refusal only at the WebSocket request); the server logs why.
    assert!(wss_connect(wss, "/mqtt", &ca, Some("sensor1"))
        .await
        .is_err());
    wait_for_lines(&mqgate, "client certificate revoked", 1);
    // The connection the revoked certificate made before the reload is closed (a 3.1.1
    // client: no DISCONNECT to send); another device still connects, and its connection
    // made before the reload is up.
    assert!(
        revoked.ended().await,
        "the revoked device is still connected"
    );
    wait_for_lines(&mqgate, "its credentials were withdrawn by a reload", 1);
    let _sensor2 = Client::connect(wss, &ca, Some("sensor2"), "after-revocation").await;
    kept.send_frames(&[&[0xc0, 0]]).await;
    assert_eq!(kept.recv().await, (0xd0, vec![]));
}
