//! Withdrawn credentials and foreign client ids against the real `mqgate run`, with the
//! identities that do not come from a password: a device certificate from `mqgate certs`
//! (TLS listener, CN as user name, CRL) and an SSH key (ssh listener, `ssh -N -L`).
//!
//! * A reload (SIGHUP) after `certs revoke` disconnects the revoked device (MQTT 5
//!   DISCONNECT 0x87, 3.1.1: the connection closes) and leaves the others connected.
//! * A reload after an SSH key is removed from `authorized_keys` disconnects the MQTT
//!   connection that key opened.
//! * A device cannot take over another device's session by asking for its client id,
//!   over TLS or through an SSH tunnel: CONNACK 0x87 (5) / return code 5 (3.1.1), and
//!   the session is left as it was.
//!
//! Every test asserts what a client observes, with a raw MQTT client (`mqgate_protocol`'s
//! codec) over plain TCP (into `ssh -L`) or blocking rustls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{run_mqgate, Mqgate};
use mqgate_protocol::codec::{decode_packet, encode_packet};
use mqgate_protocol::{
    Connect, Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, RetainHandling,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How long a client waits for something it expects.
const WAIT: Duration = Duration::from_secs(10);
/// How long a client waits to be sure a delivery it must not get does not come.
const QUIET: Duration = Duration::from_millis(700);

/// Every device writes and reads below its own name (certificate CN or SSH user).
const ACL: &str = "pattern readwrite sensors/%u/#\n";

/// The log line of a reload that disconnects a client.
const WITHDRAWN: &str = "disconnecting client: its credentials were withdrawn by a reload";

// ---- processes and files -------------------------------------------------------------

/// `mqgate certs --dir DIR ARGS...`, which must succeed.
fn certs(dir: &Path, args: &[&str]) {
    let mut all = vec!["certs", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, out, err) = run_mqgate(&all);
    assert_eq!(code, 0, "mqgate certs {args:?}: {out}{err}");
}

/// `ssh-keygen` an ed25519 key at `path` with `comment`; returns the public key line.
fn keygen(path: &Path, comment: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen {}", path.display());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// A free loopback port (bound then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; returns whether it held.
fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// A child process killed on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A gateway with a TLS listener (`client_cert = "optional"`, the CN as user name,
/// client CA and CRL from `mqgate certs`), an ssh listener (one `authorized_keys` file,
/// the key comment is the user), a tcp listener, no anonymous access, and [`ACL`].
struct Site {
    gw: Mqgate,
    dir: tempfile::TempDir,
    tls_port: u16,
    ssh_port: u16,
}

impl Site {
    /// Issues a certificate for each of `devices` and a key for each of `ssh_users`.
    fn start(devices: &[&str], ssh_users: &[&str]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let (certs_dir, ssh_dir) = (dir.path().join("certs"), dir.path().join("ssh"));
        certs(&certs_dir, &["init", "--name", "revocation test CA"]);
        let server = [
            "issue-server",
            "--name",
            "gateway",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
        ];
        certs(&certs_dir, &server);
        for device in devices {
            certs(&certs_dir, &["issue-device", device]);
        }
        certs(&certs_dir, &["crl"]);

        std::fs::create_dir_all(&ssh_dir).unwrap();
        let mut authorized = String::new();
        for user in ssh_users {
            authorized.push_str(&keygen(&ssh_dir.join(user), user));
        }
        std::fs::write(ssh_dir.join("authorized_keys"), authorized).unwrap();
        let host_key = ssh_dir.join("ssh_host_ed25519_key");
        let host_pub = keygen(&host_key, "gateway");

        let acl = dir.path().join("acl");
        std::fs::write(&acl, ACL).unwrap();
        let config = dir.path().join("mqgate.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[[listener]]
kind = "tcp"
bind = "127.0.0.1:0"

[[listener]]
kind = "tls"
bind = "127.0.0.1:0"
[listener.tls]
cert = "{certs}/servers/gateway.pem"
key = "{certs}/servers/gateway.key"
client_ca = "{certs}/ca.pem"
crl = "{certs}/crl.pem"
client_cert = "optional"
use_identity_as_username = true

[[listener]]
kind = "ssh"
bind = "127.0.0.1:0"
[listener.ssh]
host_key = "{host_key}"
authorized_keys = "{ssh}/authorized_keys"

[auth]
allow_anonymous = false

[acl]
file = "{acl}"
"#,
                certs = certs_dir.display(),
                ssh = ssh_dir.display(),
                host_key = host_key.display(),
                acl = acl.display(),
            ),
        )
        .unwrap();
        let gw = Mqgate::start_with_config(&dir.path().join("data"), &config);
        let up = wait_until(WAIT, || {
            gw.listener("tls").is_some() && gw.listener("ssh").is_some()
        });
        assert!(up, "tls and ssh listeners not logged:\n{}", gw.logs());
        let tls_port = gw.listener("tls").unwrap().port();
        let ssh_port = gw.listener("ssh").unwrap().port();
        std::fs::write(
            ssh_dir.join("known_hosts"),
            format!("[127.0.0.1]:{ssh_port} {host_pub}"),
        )
        .unwrap();
        Site {
            gw,
            dir,
            tls_port,
            ssh_port,
        }
    }

    fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    fn ssh_dir(&self) -> PathBuf {
        self.dir.path().join("ssh")
    }

    /// A TLS connection presenting `device`'s certificate; `Err` if the handshake fails.
    fn tls(&self, device: &str) -> Result<Transport, String> {
        let certs_dir = self.certs_dir();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(certs_dir.join("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let devices = certs_dir.join("devices");
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(devices.join(format!("{device}.pem")))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_file(devices.join(format!("{device}.key"))).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tcp = TcpStream::connect(("127.0.0.1", self.tls_port)).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(Transport::Tls(Box::new(rustls::StreamOwned::new(
            conn, tcp,
        ))))
    }

    /// `device` over TLS with its certificate (no user name: the CN is the identity);
    /// returns the client and CONNACK's (reason, session present). The reason is
    /// `UnspecifiedError` if the connection failed or closed without a CONNACK.
    fn tls_connect(
        &self,
        version: ProtocolVersion,
        device: &str,
        client_id: &str,
        clean: bool,
    ) -> (Option<Client>, (ReasonCode, bool)) {
        match self.tls(device) {
            Ok(transport) => {
                let (client, ack) = Client::connect(transport, version, client_id, clean);
                (Some(client), ack)
            }
            Err(e) => {
                eprintln!("{device} as {client_id}: {e}");
                (None, (ReasonCode::UnspecifiedError, false))
            }
        }
    }

    /// Like [`Site::tls_connect`], which must succeed.
    fn tls_login(
        &self,
        version: ProtocolVersion,
        device: &str,
        client_id: &str,
        clean: bool,
    ) -> Client {
        let (client, ack) = self.tls_connect(version, device, client_id, clean);
        assert_eq!(
            ack.0,
            ReasonCode::Success,
            "{device} as {client_id}:\n{}",
            self.gw.logs()
        );
        client.unwrap()
    }

    /// `ssh -N -L 127.0.0.1:<free>:127.0.0.1:1883 USER@gateway` with USER's key;
    /// returns it and the local port once it listens, or the exit status if ssh exited.
    fn ssh_forward(&self, user: &str) -> Result<(KillOnDrop, u16), String> {
        let ssh_dir = self.ssh_dir();
        let local = free_port();
        let child = Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args(["-o", "ConnectTimeout=10", "-o", "ExitOnForwardFailure=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                ssh_dir.join("known_hosts").display()
            ))
            .arg("-i")
            .arg(ssh_dir.join(user))
            .args(["-p", &self.ssh_port.to_string(), "-N", "-L"])
            .arg(format!("127.0.0.1:{local}:127.0.0.1:1883"))
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let mut exited = None;
        let up = wait_until(WAIT, || {
            if let Some(status) = child.0.try_wait().unwrap() {
                exited = Some(status);
                return true;
            }
            TcpStream::connect(("127.0.0.1", local)).is_ok()
        });
        match exited {
            Some(status) => Err(format!("ssh as {user} exited: {status}")),
            None if up => Ok((child, local)),
            None => panic!("ssh -L as {user} did not open 127.0.0.1:{local}"),
        }
    }

    /// An MQTT connection into the tunnel on `local` (no user name: the SSH user is the
    /// identity); returns the client and CONNACK's (reason, session present).
    fn ssh_connect(
        &self,
        local: u16,
        version: ProtocolVersion,
        client_id: &str,
        clean: bool,
    ) -> (Client, (ReasonCode, bool)) {
        let tcp = TcpStream::connect(("127.0.0.1", local)).unwrap();
        Client::connect(Transport::Plain(tcp), version, client_id, clean)
    }

    /// Like [`Site::ssh_connect`], which must succeed.
    fn ssh_login(&self, local: u16, version: ProtocolVersion, client_id: &str) -> Client {
        let (client, ack) = self.ssh_connect(local, version, client_id, true);
        assert_eq!(
            ack.0,
            ReasonCode::Success,
            "{client_id} through 127.0.0.1:{local}:\n{}",
            self.gw.logs()
        );
        client
    }
}

// ---- a raw MQTT client ---------------------------------------------------------------

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Plain TCP (into an `ssh -L` tunnel) or TLS.
enum Transport {
    Plain(TcpStream),
    Tls(Box<Tls>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// A raw MQTT client: every byte under the test's control.
struct Client {
    stream: Transport,
    buf: BytesMut,
    version: ProtocolVersion,
    next_pkid: u16,
    /// The server closed the connection (or it failed), as opposed to a quiet timeout.
    closed: bool,
}

impl Client {
    /// Sends CONNECT without user name or password (the transport is the identity);
    /// returns the client and CONNACK's (reason, session present), the reason
    /// `UnspecifiedError` if the connection closed without a CONNACK.
    fn connect(
        stream: Transport,
        version: ProtocolVersion,
        client_id: &str,
        clean: bool,
    ) -> (Client, (ReasonCode, bool)) {
        let mut properties = Properties::default();
        if version.is_v5() && !clean {
            properties.session_expiry_interval = Some(3600);
        }
        let connect = Connect {
            protocol: version,
            clean_start: clean,
            keep_alive: 60,
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties,
        };
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
            version,
            next_pkid: 1,
            closed: false,
        };
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

    fn try_send(&mut self, packet: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode_packet(packet, self.version, &mut out).unwrap();
        self.stream.write_all(&out)?;
        self.stream.flush()
    }

    fn send(&mut self, packet: &Packet) {
        self.try_send(packet).unwrap();
    }

    /// The next packet within `timeout`; `None` on timeout or when the connection closed
    /// (then `closed` is set).
    fn recv(&mut self, timeout: Duration) -> Option<Packet> {
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
                .tcp()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => self.closed = true,
            }
        }
    }

    fn pkid(&mut self) -> u16 {
        let id = self.next_pkid;
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        id
    }

    /// Subscribes at QoS 1 and returns the SUBACK reasons.
    fn subscribe(&mut self, filter: &str) -> Vec<ReasonCode> {
        let pkid = self.pkid();
        self.send(&Packet::Subscribe(Subscribe {
            pkid,
            filters: vec![SubscribeFilter {
                filter: filter.to_owned(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
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
    fn publish(&mut self, topic: &str, payload: &str) -> ReasonCode {
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

    fn ack(&mut self, p: &Publish) {
        if p.qos == QoS::AtLeastOnce {
            self.send(&Packet::PubAck(PubAck::new(p.pkid)));
        }
    }

    /// Payloads of the deliveries that arrive until nothing came for `QUIET`.
    fn drain(&mut self) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(packet) = self.recv(QUIET) {
            if let Packet::Publish(p) = packet {
                self.ack(&p);
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
            }
        }
        got
    }

    /// Waits until `n` deliveries arrived (or `WAIT` passed); returns their payloads.
    fn receive(&mut self, n: usize) -> Vec<String> {
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
    fn expect_withdrawn(&mut self, who: &str, gw: &Mqgate) {
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

    fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Default::default()));
        // The server closes after a DISCONNECT: wait for it, so the session is offline
        // before the test goes on.
        let _ = self.recv(WAIT);
    }
}

/// A PUBACK that is not a failure (MQTT 5 says 0x10 when nobody subscribed).
fn assert_acked(reason: ReasonCode) {
    assert!(!reason.is_failure(), "PUBACK {reason:?}");
}

/// Removes `user`'s key line (its comment is the user) from `authorized_keys`.
fn remove_ssh_key(site: &Site, user: &str) {
    let keys = site.ssh_dir().join("authorized_keys");
    let text = std::fs::read_to_string(&keys).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| l.split_whitespace().nth(2) != Some(user))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(kept.lines().count() + 1, text.lines().count(), "{text}");
    std::fs::write(&keys, kept).unwrap();
}

// ---- tests -----------------------------------------------------------------------------

#[test]
fn a_revoked_certificate_is_disconnected_on_reload() {
    let site = Site::start(&["dev-a", "dev-b"], &[]);
    let mut a = site.tls_login(ProtocolVersion::V5, "dev-a", "dev-a", true);
    let mut a3 = site.tls_login(ProtocolVersion::V3_1_1, "dev-a", "dev-a-v3", true);
    let mut b = site.tls_login(ProtocolVersion::V5, "dev-b", "dev-b", true);
    assert_acked(a.publish("sensors/dev-a/t", "before"));
    assert_acked(b.publish("sensors/dev-b/t", "before"));

    // The operator revokes dev-a, writes the CRL the listener reads, and reloads.
    let certs_dir = site.certs_dir();
    certs(
        &certs_dir,
        &["revoke", "dev-a", "--reason", "key-compromise"],
    );
    certs(&certs_dir, &["crl"]);
    site.gw.signal("HUP");

    a.expect_withdrawn("dev-a (5)", &site.gw);
    a3.expect_withdrawn("dev-a (3.1.1)", &site.gw);
    assert!(site.gw.wait_for_log(WITHDRAWN, WAIT), "{}", site.gw.logs());

    // dev-a cannot come back with the revoked certificate, in either protocol version.
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let (_, ack) = site.tls_connect(version, "dev-a", "dev-a", true);
        assert_ne!(
            ack.0,
            ReasonCode::Success,
            "revoked dev-a reconnected ({version:?})\n{}",
            site.gw.logs()
        );
    }

    assert!(
        site.gw
            .wait_for_log("reason=client certificate revoked", WAIT),
        "{}",
        site.gw.logs()
    );

    // dev-b was never touched: its connection still gets PUBACKs.
    assert_acked(b.publish("sensors/dev-b/t", "after"));
}

#[test]
fn a_removed_ssh_key_is_disconnected_on_reload() {
    let site = Site::start(&[], &["dev-ssh", "dev-other"]);
    let (_tunnel, local) = site.ssh_forward("dev-ssh").unwrap();
    let (_other_tunnel, other_local) = site.ssh_forward("dev-other").unwrap();
    let mut dev = site.ssh_login(local, ProtocolVersion::V5, "dev-ssh");
    let mut dev3 = site.ssh_login(local, ProtocolVersion::V3_1_1, "dev-ssh-v3");
    let mut other = site.ssh_login(other_local, ProtocolVersion::V5, "dev-other");
    assert_acked(dev.publish("sensors/dev-ssh/t", "before"));

    // The operator removes dev-ssh's key line and reloads.
    remove_ssh_key(&site, "dev-ssh");
    site.gw.signal("HUP");

    dev.expect_withdrawn("dev-ssh (5)", &site.gw);
    dev3.expect_withdrawn("dev-ssh (3.1.1)", &site.gw);
    assert!(site.gw.wait_for_log(WITHDRAWN, WAIT), "{}", site.gw.logs());

    // The other SSH device keeps its connection.
    assert_acked(other.publish("sensors/dev-other/t", "after"));
    // A new SSH login with the removed key is refused.
    let again = site.ssh_forward("dev-ssh");
    assert!(again.is_err(), "the removed key logged in again");
}

#[test]
fn a_removed_ssh_key_cannot_reconnect_through_its_open_tunnel() {
    let site = Site::start(&[], &["dev-ssh"]);
    let (_tunnel, local) = site.ssh_forward("dev-ssh").unwrap();
    let mut dev = site.ssh_login(local, ProtocolVersion::V5, "dev-ssh");
    remove_ssh_key(&site, "dev-ssh");
    site.gw.signal("HUP");
    dev.expect_withdrawn("dev-ssh (5)", &site.gw);
    // The SSH connection authenticated before the reload is still up (only its MQTT
    // channel was closed): a device reconnecting through it must not be let in on the
    // withdrawn key.
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let (_, ack) = site.ssh_connect(local, version, "dev-ssh", true);
        assert_ne!(
            ack.0,
            ReasonCode::Success,
            "{version:?}: an MQTT connection through the old tunnel was accepted after the \
             key was removed\n{}",
            site.gw.logs()
        );
    }
}

#[test]
fn cross_user_takeover_over_tls_is_refused() {
    let site = Site::start(&["dev-a", "dev-b"], &[]);
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        // dev-a leaves a persistent session with a subscription.
        let mut a = site.tls_login(version, "dev-a", "dev-a", false);
        assert_eq!(a.subscribe("sensors/dev-a/#"), [ReasonCode::GrantedQoS1]);
        a.disconnect();
        // A message is queued for it while it is away.
        let queued = format!("queued-{version:?}");
        let mut sender = site.tls_login(version, "dev-a", "dev-a-pub", true);
        assert_eq!(
            sender.publish("sensors/dev-a/in", &queued),
            ReasonCode::Success
        );
        sender.disconnect();

        // dev-b, with its own valid certificate, asks for dev-a's client id: resuming
        // and with a clean start.
        for clean in [false, true] {
            let (b, ack) = site.tls_connect(version, "dev-b", "dev-a", clean);
            assert_eq!(
                ack,
                (ReasonCode::NotAuthorized, false),
                "dev-b as dev-a, {version:?}, clean = {clean}\n{}",
                site.gw.logs()
            );
            let got = b.map(|mut b| b.drain()).unwrap_or_default();
            assert!(got.is_empty(), "dev-b got dev-a's messages: {got:?}");
        }

        // dev-a's session is untouched: present, with the queued message.
        let (a, ack) = site.tls_connect(version, "dev-a", "dev-a", false);
        assert_eq!(ack, (ReasonCode::Success, true), "{version:?}");
        let mut a = a.unwrap();
        assert_eq!(a.receive(1), [queued]);
        a.disconnect();
    }
    assert!(site
        .gw
        .wait_for_log("the client id is another identity's session", WAIT));
}

#[test]
fn cross_user_takeover_over_ssh_is_refused() {
    let site = Site::start(&[], &["dev-ssh-a", "dev-ssh-b"]);
    let (_tunnel_a, a_local) = site.ssh_forward("dev-ssh-a").unwrap();
    let (_tunnel_b, b_local) = site.ssh_forward("dev-ssh-b").unwrap();
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        // dev-ssh-a leaves a persistent session with a subscription.
        let (mut a, ack) = site.ssh_connect(a_local, version, "dev-ssh-a", false);
        assert_eq!(ack.0, ReasonCode::Success, "{}", site.gw.logs());
        assert_eq!(
            a.subscribe("sensors/dev-ssh-a/#"),
            [ReasonCode::GrantedQoS1]
        );
        a.disconnect();
        let queued = format!("queued-{version:?}");
        let mut sender = site.ssh_login(a_local, version, "dev-ssh-a-pub");
        assert_eq!(
            sender.publish("sensors/dev-ssh-a/in", &queued),
            ReasonCode::Success
        );
        sender.disconnect();

        // dev-ssh-b, through its own tunnel, asks for dev-ssh-a's client id.
        for clean in [false, true] {
            let (mut b, ack) = site.ssh_connect(b_local, version, "dev-ssh-a", clean);
            assert_eq!(
                ack,
                (ReasonCode::NotAuthorized, false),
                "dev-ssh-b as dev-ssh-a, {version:?}, clean = {clean}\n{}",
                site.gw.logs()
            );
            let got = b.drain();
            assert!(
                got.is_empty(),
                "dev-ssh-b got dev-ssh-a's messages: {got:?}"
            );
        }

        // dev-ssh-a's session is untouched.
        let (mut a, ack) = site.ssh_connect(a_local, version, "dev-ssh-a", false);
        assert_eq!(ack, (ReasonCode::Success, true), "{version:?}");
        assert_eq!(a.receive(1), [queued]);
        a.disconnect();
    }
    assert!(site
        .gw
        .wait_for_log("the client id is another identity's session", WAIT));
}
