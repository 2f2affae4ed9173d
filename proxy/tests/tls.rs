//! TLS listener tests with real peers (`openssl s_client`, `mosquitto_pub`/`mosquitto_sub`)
//! and certificates generated at runtime with rcgen: handshake and ALPN, client
//! certificates (missing, foreign CA, revoked, expired), CN as user name checked by the
//! ACL, plaintext on the TLS port, a stalled handshake, and reload.

// Test helpers outside #[test] functions may panic on setup failures.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mqgate_broker_lite::{Broker, BrokerSettings};
use mqgate_config::{ClientCertMode, CrlNextUpdate, TlsListenerConfig};
use mqgate_proxy::password::{Argon2Cost, VerifierSettings};
use mqgate_proxy::tls::{serve_tls_with, TlsAcceptorSource, TlsServeOptions};
use mqgate_proxy::Security;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

// ---- log capture -------------------------------------------------------------------

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> Arc<Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("info")
            .with_writer(move || Capture(b.clone()))
            .init();
        buf
    })
    .clone()
}

/// Waits (bounded) until a log line contains all of `needles`.
async fn wait_for_log(needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "no log line with {needles:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- PKI ---------------------------------------------------------------------------

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    let pem = cert.pem();
    Ca {
        issuer: Issuer::new(p, key),
        pem,
    }
}

/// Issues a leaf: `(cert pem, key pem)`.
fn leaf(ca: &Ca, cn: &str, serial: u64, server: bool, expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = if server {
        CertificateParams::new(vec!["localhost".to_owned()]).unwrap()
    } else {
        CertificateParams::default()
    };
    if server {
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    p.extended_key_usages = vec![if server {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    }];
    let now = OffsetDateTime::now_utc();
    if expired {
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
    } else {
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(30);
    }
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn crl(ca: &Ca, revoked: &[u64]) -> String {
    crl_until(
        ca,
        revoked,
        OffsetDateTime::now_utc() + time::Duration::days(7),
    )
}

/// A CRL revoking `revoked` whose next update is `next_update`.
fn crl_until(ca: &Ca, revoked: &[u64], next_update: OffsetDateTime) -> String {
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::days(30),
        next_update,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|&s| RevokedCertParams {
                serial_number: SerialNumber::from(s),
                revocation_time: now - time::Duration::hours(1),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(&ca.issuer).unwrap().pem().unwrap()
}

struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// CA, server cert, client certs: device1 (good), device2 (revoked), device3 (expired),
/// rogue (foreign CA); password file with alice/secret; ACL.
fn pki() -> Pki {
    let good = ca("test CA");
    let foreign = ca("foreign CA");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &good.pem).unwrap();
    let (c, k) = leaf(&good, "server", 1, true, false);
    let pki = Pki { dir, ca: good };
    pki.write("server.pem", &c);
    pki.write("server.key", &k);
    for (name, serial, expired) in [
        ("device1", 10, false),
        ("device2", 11, false),
        ("device3", 12, true),
    ] {
        let (c, k) = leaf(&pki.ca, name, serial, false, expired);
        pki.write(&format!("{name}.pem"), &c);
        pki.write(&format!("{name}.key"), &k);
    }
    let (c, k) = leaf(&foreign, "rogue", 13, false, false);
    pki.write("rogue.pem", &c);
    pki.write("rogue.key", &k);
    pki.write("crl.pem", &crl(&pki.ca, &[11]));
    pki.write(
        "passwd",
        "alice:$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==\n",
    );
    pki.write(
        "acl",
        "user device1\ntopic readwrite devices/device1/#\nuser alice\ntopic read devices/#\n",
    );
    pki
}

// ---- server ------------------------------------------------------------------------

struct Server {
    port: u16,
    source: Arc<TlsAcceptorSource>,
    stop: CancellationToken,
    broker: Option<Broker>,
}

impl Server {
    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
    }
}

async fn start(pki: &Pki, mode: ClientCertMode, handshake_timeout: Duration) -> Server {
    start_with(pki, mode, handshake_timeout, CrlNextUpdate::Enforce).await
}

async fn start_with(
    pki: &Pki,
    mode: ClientCertMode,
    handshake_timeout: Duration,
    crl_next_update: CrlNextUpdate,
) -> Server {
    logs();
    let security = Security::new(
        Some(pki.path("passwd")),
        Some(pki.path("acl")),
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
    let broker = Broker::start(BrokerSettings::default(), Arc::new(security))
        .await
        .unwrap();
    let cfg = TlsListenerConfig {
        cert: Some(pki.path("server.pem")),
        key: Some(pki.path("server.key")),
        client_ca: Some(pki.path("ca.pem")),
        crl: Some(pki.path("crl.pem")),
        client_cert: mode,
        use_identity_as_username: true,
        alpn: vec!["mqtt".into()],
        crl_next_update,
        ..TlsListenerConfig::default()
    };
    let source = Arc::new(TlsAcceptorSource::new(cfg).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn(serve_tls_with(
        listener,
        source.clone(),
        broker.handle(),
        stop.clone(),
        TlsServeOptions {
            handshake_timeout,
            max_connections: 100,
        },
    ));
    Server {
        port,
        source,
        stop,
        broker: Some(broker),
    }
}

// ---- clients -----------------------------------------------------------------------

/// `openssl s_client` with stdin closed; returns (success, stdout+stderr).
async fn s_client(port: u16, extra: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn tls_args(pki: &Pki, cert: Option<&str>) -> Vec<String> {
    let mut v = vec!["--cafile".into(), pki.path("ca.pem").display().to_string()];
    if let Some(c) = cert {
        v.push("--cert".into());
        v.push(pki.path(&format!("{c}.pem")).display().to_string());
        v.push("--key".into());
        v.push(pki.path(&format!("{c}.key")).display().to_string());
    }
    v
}

async fn mosquitto(bin: &str, port: u16, tls: &[String], args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(bin);
    cmd.args(["-h", "localhost", "-p", &port.to_string(), "-V", "mqttv311"])
        .args(tls)
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
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

fn p(path: &Path) -> String {
    path.display().to_string()
}

// ---- tests -------------------------------------------------------------------------

#[tokio::test]
async fn handshake_alpn_and_tls12() {
    let pki = pki();
    let server = start(&pki, ClientCertMode::Optional, Duration::from_secs(10)).await;
    let ca = p(&pki.path("ca.pem"));
    let (ok, out) = s_client(
        server.port,
        &["-CAfile", &ca, "-alpn", "mqtt", "-verify_return_error"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("ALPN protocol: mqtt"), "{out}");
    assert!(out.contains("Verify return code: 0"), "{out}");
    let (ok, out) = s_client(
        server.port,
        &["-CAfile", &ca, "-tls1_2", "-verify_return_error"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("TLSv1.2"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn cn_becomes_username_and_acl_applies() {
    let pki = pki();
    let server = start(&pki, ClientCertMode::Optional, Duration::from_secs(10)).await;
    let dev1 = tls_args(&pki, Some("device1"));
    let none = tls_args(&pki, None);
    // device1 (no password: the certificate is its identity) may publish under its own tree.
    let (code, out) = mosquitto(
        "mosquitto_pub",
        server.port,
        &dev1,
        &["-t", "devices/device1/state", "-m", "ok", "-r", "-q", "1"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    // ...but a retained publish elsewhere is acknowledged and dropped (3.1.1).
    let (code, out) = mosquitto(
        "mosquitto_pub",
        server.port,
        &dev1,
        &["-t", "devices/device9/state", "-m", "leak", "-r", "-q", "1"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    wait_for_log(&["access denied", "devices/device9/state", "device1"]).await;
    // alice (password over TLS, no certificate) reads devices/#: sees device1's message.
    let (code, out) = mosquitto(
        "mosquitto_sub",
        server.port,
        &none,
        &[
            "-u",
            "alice",
            "-P",
            "secret",
            "-t",
            "devices/device1/state",
            "-C",
            "1",
            "-W",
            "10",
        ],
    )
    .await;
    assert_eq!((code, out.trim()), (0, "ok"));
    // Nothing was stored on the forbidden topic.
    let (code, out) = mosquitto(
        "mosquitto_sub",
        server.port,
        &none,
        &[
            "-u",
            "alice",
            "-P",
            "secret",
            "-t",
            "devices/device9/state",
            "-C",
            "1",
            "-W",
            "2",
        ],
    )
    .await;
    assert_ne!(code, 0, "no retained message expected: {out}");
    assert!(!out.contains("leak"));
    // Wrong password over TLS is refused.
    let (code, out) = mosquitto(
        "mosquitto_pub",
        server.port,
        &none,
        &["-u", "alice", "-P", "nope", "-t", "devices/x", "-m", "x"],
    )
    .await;
    assert_ne!(code, 0, "{out}");
    server.stop().await;
}

#[tokio::test]
async fn bad_client_certificates_are_refused_and_logged() {
    let pki = pki();
    let server = start(&pki, ClientCertMode::Required, Duration::from_secs(10)).await;
    let ca = p(&pki.path("ca.pem"));
    // No certificate at all.
    // (With TLS 1.3 the client may finish before the server's alert arrives, so the
    // refusal is checked in the server's log.)
    let _ = s_client(server.port, &["-CAfile", &ca]).await;
    wait_for_log(&[
        "TLS handshake failed",
        "client certificate required but none presented",
    ])
    .await;
    // Foreign CA, revoked, expired: each a refusal with its reason.
    for (who, reason) in [
        ("rogue", "not issued by the configured CA"),
        ("device2", "client certificate revoked"),
        ("device3", "client certificate expired"),
    ] {
        let args = tls_args(&pki, Some(who));
        let (code, out) = mosquitto(
            "mosquitto_pub",
            server.port,
            &args,
            &["-t", "devices/x", "-m", "x"],
        )
        .await;
        assert_ne!(code, 0, "{who}: {out}");
        let line = wait_for_log(&["TLS handshake failed", reason]).await;
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
    }
    // The good certificate still works.
    let args = tls_args(&pki, Some("device1"));
    let (code, out) = mosquitto(
        "mosquitto_pub",
        server.port,
        &args,
        &["-t", "devices/device1/x", "-m", "x", "-q", "1"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    server.stop().await;
}

#[tokio::test]
async fn plaintext_and_stalled_handshakes_break_nothing() {
    let pki = pki();
    let server = start(&pki, ClientCertMode::Optional, Duration::from_millis(500)).await;
    // A stalled peer: connects, sends nothing.
    let stalled = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    // Plaintext MQTT CONNECT on the TLS port.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    plain
        .write_all(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0])
        .await
        .unwrap();
    wait_for_log(&["TLS handshake failed", "plaintext on the TLS port"]).await;
    // While the stalled one waits, a real client gets through.
    let ca = p(&pki.path("ca.pem"));
    let (ok, out) = s_client(server.port, &["-CAfile", &ca, "-verify_return_error"]).await;
    assert!(ok, "{out}");
    wait_for_log(&["TLS handshake failed", "handshake timed out"]).await;
    drop(stalled);
    server.stop().await;
}

#[tokio::test]
async fn reload_keeps_old_config_on_bad_files_and_picks_up_new_ones() {
    let pki = pki();
    let server = start(&pki, ClientCertMode::Required, Duration::from_secs(10)).await;
    let dev1 = tls_args(&pki, Some("device1"));
    let pub_dev1 = || {
        mosquitto(
            "mosquitto_pub",
            server.port,
            &dev1,
            &["-t", "devices/device1/x", "-m", "x"],
        )
    };
    assert_eq!(pub_dev1().await.0, 0);
    // A broken CRL: reload fails, the old configuration stays.
    let good_crl = std::fs::read_to_string(pki.path("crl.pem")).unwrap();
    std::fs::write(pki.path("crl.pem"), "garbage").unwrap();
    assert!(server.source.reload().is_err());
    assert_eq!(pub_dev1().await.0, 0);
    drop(good_crl);
    // A new CRL revoking device1 (serial 10): the next handshake is refused.
    pki.write("crl.pem", &crl(&pki.ca, &[10, 11]));
    server.source.reload().unwrap();
    let (code, out) = pub_dev1().await;
    assert_ne!(code, 0, "{out}");
    wait_for_log(&["TLS handshake failed", "client certificate revoked"]).await;
    server.stop().await;
}

#[tokio::test]
async fn a_crl_past_its_next_update_refuses_every_certificate_unless_ignored() {
    let pki = pki();
    let stale = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let dev1 = tls_args(&pki, Some("device1"));
    let pub_dev1 = |port| {
        let dev1 = dev1.clone();
        async move {
            mosquitto(
                "mosquitto_pub",
                port,
                &dev1,
                &["-t", "devices/device1/x", "-m", "x"],
            )
            .await
        }
    };
    // Enforced (the default): a stale CRL lets no certificate in, not even device1's.
    let server = start(&pki, ClientCertMode::Required, Duration::from_secs(10)).await;
    assert_eq!(pub_dev1(server.port).await.0, 0);
    assert!(!server.source.is_revoked(&[10]) && server.source.is_revoked(&[11]));
    pki.write("crl.pem", &crl_until(&pki.ca, &[11], stale));
    server.source.reload().unwrap();
    let (code, out) = pub_dev1(server.port).await;
    assert_ne!(code, 0, "{out}");
    wait_for_log(&["TLS handshake failed", "the CRL is past its next update"]).await;
    server.stop().await;
    // Ignored: the stale CRL still revokes device2 and lets device1 in.
    let server = start_with(
        &pki,
        ClientCertMode::Required,
        Duration::from_secs(10),
        CrlNextUpdate::Ignore,
    )
    .await;
    assert_eq!(pub_dev1(server.port).await.0, 0);
    assert!(server.source.is_revoked(&[11]));
    server.stop().await;
}
