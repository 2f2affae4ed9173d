//! Standalone proxy tests against a real mosquitto on loopback: authentication, ACL on
//! publish, refused and filtered subscriptions, will topic, and QoS flows the proxy
//! completes itself for dropped deliveries (mosquitto runs with one inflight message, so
//! a flow left open would block everything after it). Clients come over TCP, TLS and
//! WebSocket.

// Test helpers outside #[test] functions may panic on setup failures.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqgate_broker_lite::ws::WsSettings;
use mqgate_config::TlsListenerConfig;
use mqgate_proxy::forward::{run_standalone, ForwardSettings, StandaloneListener};
use mqgate_proxy::password::{Argon2Cost, VerifierSettings};
use mqgate_proxy::tls::TlsAcceptorSource;
use mqgate_proxy::Security;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const SEVEN: &str = "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==";

struct Setup {
    dir: tempfile::TempDir,
    mosquitto: Child,
    upstream_port: u16,
    proxy_port: u16,
    stop: CancellationToken,
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn setup(acl: &str) -> Setup {
    setup_with(acl, Front::Tcp).await
}

/// What the proxy listens with.
#[derive(PartialEq)]
enum Front {
    Tcp,
    /// TLS with a self-signed `localhost` certificate written to `cert.pem`.
    Tls,
    /// Plain WebSocket on `/mqtt`.
    Ws,
}

/// mosquitto, and the proxy in front of it listening with `front`.
async fn setup_with(acl: &str, front: Front) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| -> PathBuf { dir.path().join(n) };
    // mosquitto cannot listen on port 0: take a free port and start it there.
    let upstream_port = free_port().await;
    std::fs::write(
        path("mosquitto.conf"),
        format!(
            "listener {upstream_port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1\npersistence false\n"
        ),
    )
    .unwrap();
    let mosquitto = Command::new("mosquitto")
        .arg("-c")
        .arg(path("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", upstream_port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(path("passwd"), format!("alice:{SEVEN}\nbob:{SEVEN}\n")).unwrap();
    std::fs::write(path("acl"), acl).unwrap();
    let security = Security::new(
        Some(path("passwd")),
        Some(path("acl")),
        false,
        VerifierSettings {
            cost: Argon2Cost {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            min_rejection_time: Duration::from_millis(10),
            rehash_on_login: false,
            ..VerifierSettings::default()
        },
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let listener = if front == Front::Ws {
        StandaloneListener::Ws(
            listener,
            WsSettings {
                path: "/mqtt".into(),
                max_packet_size: 1 << 20,
            },
        )
    } else if front == Front::Tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(path("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(path("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let source = TlsAcceptorSource::new(TlsListenerConfig {
            cert: Some(path("cert.pem")),
            key: Some(path("key.pem")),
            ..TlsListenerConfig::default()
        })
        .unwrap();
        StandaloneListener::Tls(listener, Arc::new(source))
    } else {
        StandaloneListener::Tcp(listener)
    };
    tokio::spawn(run_standalone(
        vec![listener],
        Arc::new(security),
        ForwardSettings::new(format!("127.0.0.1:{upstream_port}")),
        stop.clone(),
    ));
    Setup {
        dir,
        mosquitto,
        upstream_port,
        proxy_port,
        stop,
    }
}

impl Setup {
    async fn stop(mut self) {
        self.stop.cancel();
        let _ = self.mosquitto.kill().await;
    }
}

/// Runs a mosquitto client; returns (exit code, stdout+stderr).
async fn client(bin: &str, port: u16, args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(bin)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const ACL: &str = "\
user alice
topic readwrite devices/#
user bob
topic write devices/bob/#
";

#[tokio::test]
async fn authentication_through_the_proxy() {
    let s = setup(ACL).await;
    let ok = client(
        "mosquitto_pub",
        s.proxy_port,
        &["-u", "alice", "-P", "secret", "-t", "devices/a", "-m", "x"],
    )
    .await;
    assert_eq!(ok.0, 0, "{}", ok.1);
    let bad = client(
        "mosquitto_pub",
        s.proxy_port,
        &["-u", "alice", "-P", "nope", "-t", "devices/a", "-m", "x"],
    )
    .await;
    assert_ne!(bad.0, 0, "{}", bad.1);
    let anon = client(
        "mosquitto_pub",
        s.proxy_port,
        &["-t", "devices/a", "-m", "x"],
    )
    .await;
    assert_ne!(anon.0, 0, "{}", anon.1);
    // A will on a forbidden topic is refused at CONNECT.
    let will = client(
        "mosquitto_pub",
        s.proxy_port,
        &[
            "-u",
            "bob",
            "-P",
            "secret",
            "--will-topic",
            "secret/w",
            "--will-payload",
            "x",
            "-t",
            "devices/bob/a",
            "-m",
            "x",
        ],
    )
    .await;
    assert_ne!(will.0, 0, "{}", will.1);
    s.stop().await;
}

#[tokio::test]
async fn denied_publishes_never_reach_the_upstream() {
    let s = setup(ACL).await;
    for (qos, topic) in [("0", "secret/q0"), ("1", "secret/q1"), ("2", "secret/q2")] {
        let r = client(
            "mosquitto_pub",
            s.proxy_port,
            &[
                "-u", "bob", "-P", "secret", "-q", qos, "-r", "-t", topic, "-m", "leak",
            ],
        )
        .await;
        assert_eq!(
            r.0, 0,
            "3.1.1 denials are acknowledged and dropped: {}",
            r.1
        );
    }
    // Allowed one, retained, to show the path works.
    let r = client(
        "mosquitto_pub",
        s.proxy_port,
        &[
            "-u",
            "bob",
            "-P",
            "secret",
            "-q",
            "1",
            "-r",
            "-t",
            "devices/bob/ok",
            "-m",
            "fine",
        ],
    )
    .await;
    assert_eq!(r.0, 0, "{}", r.1);
    // Read straight from mosquitto: only the allowed retained message exists.
    let (code, out) = client(
        "mosquitto_sub",
        s.upstream_port,
        &["-t", "#", "-v", "-W", "2"],
    )
    .await;
    assert!(out.contains("devices/bob/ok fine"), "{code} {out}");
    assert!(!out.contains("leak"), "{out}");
    s.stop().await;
}

#[tokio::test]
async fn subscriptions_refused_or_filtered_with_flows_completed() {
    let s = setup(ACL).await;
    // Retained messages straight into mosquitto, QoS 1 and 2, allowed and forbidden.
    for (topic, qos) in [
        ("secret/a", "1"),
        ("secret/b", "2"),
        ("devices/x", "1"),
        ("secret/c", "2"),
        ("devices/y", "2"),
    ] {
        let r = client(
            "mosquitto_pub",
            s.upstream_port,
            &["-q", qos, "-r", "-t", topic, "-m", topic],
        )
        .await;
        assert_eq!(r.0, 0, "{}", r.1);
    }
    // bob may not read anything: `#` is refused (SUBACK 0x80).
    let (_, out) = client(
        "mosquitto_sub",
        s.proxy_port,
        &["-u", "bob", "-P", "secret", "-t", "#", "-W", "3"],
    )
    .await;
    assert!(
        out.contains("All subscription requests were denied"),
        "{out}"
    );
    // alice subscribes to `#` at QoS 2: gets the devices/ topics only; the forbidden ones
    // are dropped and acknowledged by the proxy (else mosquitto, with one inflight
    // message, would stall and devices/y would never come).
    let (_, out) = client(
        "mosquitto_sub",
        s.proxy_port,
        &[
            "-u", "alice", "-P", "secret", "-t", "#", "-q", "2", "-v", "-C", "2", "-W", "10",
        ],
    )
    .await;
    assert!(out.contains("devices/x devices/x"), "{out}");
    assert!(out.contains("devices/y devices/y"), "{out}");
    assert!(!out.contains("secret"), "{out}");
    // `$SYS/#` yields nothing either way; a mixed SUBSCRIBE keeps its order.
    let (_, out) = client(
        "mosquitto_sub",
        s.proxy_port,
        &[
            "-u",
            "alice",
            "-P",
            "secret",
            "-t",
            "secret/#",
            "-t",
            "devices/x",
            "-v",
            "-C",
            "1",
            "-W",
            "10",
            "-d",
        ],
    )
    .await;
    assert!(out.contains("devices/x devices/x"), "{out}");
    assert!(
        out.contains("Subscribed (mid: 1): 128, 1") || out.contains("128, 0"),
        "{out}"
    );
    s.stop().await;
}

#[tokio::test]
async fn mqtt5_denials_carry_reason_codes() {
    let s = setup(ACL).await;
    // PUBACK 0x87 for a denied QoS 1 publish: mosquitto_pub reports it.
    let (_, out) = client(
        "mosquitto_pub",
        s.proxy_port,
        &[
            "-V", "mqttv5", "-u", "bob", "-P", "secret", "-q", "1", "-t", "secret/x", "-m", "x",
            "-d",
        ],
    )
    .await;
    assert!(out.contains("PUBACK") && out.contains("135"), "{out}");
    // SUBACK 0x87 per refused filter, granted ones keep their QoS.
    let (_, out) = client(
        "mosquitto_sub",
        s.proxy_port,
        &[
            "-V",
            "mqttv5",
            "-u",
            "alice",
            "-P",
            "secret",
            "-t",
            "secret/#",
            "-t",
            "devices/#",
            "-q",
            "1",
            "-d",
            "-W",
            "2",
        ],
    )
    .await;
    assert!(out.contains("Subscribed (mid: 1): 135, 1"), "{out}");
    s.stop().await;
}

#[tokio::test]
async fn tls_clients_are_forwarded_to_a_plain_upstream() {
    let s = setup_with(ACL, Front::Tls).await;
    let ca = s.dir.path().join("cert.pem").display().to_string();
    let tls = |port: u16| {
        ["-h", "localhost", "-p", &port.to_string(), "--cafile", &ca].map(str::to_owned)
    };
    let run = |args: Vec<String>| async move {
        let out = Command::new(args[0].clone())
            .args(&args[1..])
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let mut pub_ok = vec!["mosquitto_pub".to_owned()];
    pub_ok.extend(tls(s.proxy_port));
    pub_ok.extend(
        [
            "-u",
            "bob",
            "-P",
            "secret",
            "-q",
            "1",
            "-r",
            "-t",
            "devices/bob/tls",
            "-m",
            "via-tls",
        ]
        .map(str::to_owned),
    );
    let (code, out) = run(pub_ok).await;
    assert_eq!(code, Some(0), "{out}");
    let (_, out) = client(
        "mosquitto_sub",
        s.upstream_port,
        &["-t", "devices/#", "-v", "-C", "1", "-W", "5"],
    )
    .await;
    assert!(out.contains("devices/bob/tls via-tls"), "{out}");
    s.stop().await;
}

/// An MQTT 3.1.1 packet: first byte, remaining length (< 128 here), body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first, u8::try_from(body.len()).unwrap()];
    p.extend_from_slice(body);
    p
}

fn mqtt_string(s: &str) -> Vec<u8> {
    let mut v = u16::try_from(s.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

#[tokio::test]
async fn websocket_clients_are_authenticated_and_forwarded() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::Message;

    let s = setup_with(ACL, Front::Ws).await;
    let port = s.proxy_port;
    let connect = |path: &'static str| async move {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut request = format!("ws://127.0.0.1{path}")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        tokio_tungstenite::client_async(request, tcp).await
    };
    // Another path: 404, nothing forwarded.
    let err = connect("/other").await.unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    let (mut ws, _) = connect("/mqtt").await.unwrap();
    // CONNECT as bob (user name + password), clean session, keep-alive 60.
    let mut body = mqtt_string("MQTT");
    body.extend_from_slice(&[4, 0xc2, 0, 60]);
    body.extend(mqtt_string("ws-bob"));
    body.extend(mqtt_string("bob"));
    body.extend(mqtt_string("secret"));
    ws.send(Message::Binary(packet(0x10, &body))).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .unwrap();
    assert!(
        matches!(&reply, Some(Ok(Message::Binary(b))) if b[..] == [0x20, 2, 0, 0]),
        "{reply:?}"
    );
    // A retained QoS 1 PUBLISH bob may write, split over two frames.
    let mut body = mqtt_string("devices/bob/ws");
    body.extend_from_slice(&[0, 7]);
    body.extend_from_slice(b"via-ws");
    let publish = packet(0x33, &body);
    ws.send(Message::Binary(publish[..4].to_vec()))
        .await
        .unwrap();
    ws.send(Message::Binary(publish[4..].to_vec()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .unwrap();
    assert!(
        matches!(&reply, Some(Ok(Message::Binary(b))) if b[..] == [0x40, 2, 0, 7]),
        "{reply:?}"
    );
    let (_, out) = client(
        "mosquitto_sub",
        s.upstream_port,
        &["-t", "devices/#", "-v", "-C", "1", "-W", "5"],
    )
    .await;
    assert!(out.contains("devices/bob/ws via-ws"), "{out}");
    s.stop().await;
}
