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

use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use common::pki::{ca_with_server, certs, client_config};
use common::raw_client::{connect_packet, Socket, WAIT};
use common::ssh::keygen;
use common::{wait_until, KillOnDrop, Mqgate};
use mqgate_protocol::{ProtocolVersion, QoS, ReasonCode};
use rustls::pki_types::ServerName;

/// A raw MQTT client over TLS or plain TCP (into an `ssh -L` tunnel).
type Client = common::raw_client::Client<Box<dyn Socket>>;

/// Every device writes and reads below its own name (certificate CN or SSH user).
const ACL: &str = "pattern readwrite sensors/%u/#\n";

/// The log line of a reload that disconnects a client.
const WITHDRAWN: &str = "disconnecting client: its credentials were withdrawn by a reload";

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
        ca_with_server(&certs_dir, "revocation test CA", Some("gateway"));
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
    fn tls(&self, device: &str) -> Result<Box<dyn Socket>, String> {
        let certs_dir = self.certs_dir();
        let devices = certs_dir.join("devices");
        let config = client_config(
            &certs_dir.join("ca.pem"),
            Some((
                &devices.join(format!("{device}.pem")),
                &devices.join(format!("{device}.key")),
            )),
        );
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tcp = TcpStream::connect(("127.0.0.1", self.tls_port)).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
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
            Ok(stream) => {
                let connect = connect_packet(version, client_id, clean, None);
                let (client, ack) = Client::connect_over(stream, version, connect);
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
        common::ssh::forward(&self.ssh_dir(), user, self.ssh_port, WAIT)
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
        let connect = connect_packet(version, client_id, clean, None);
        Client::connect_over(Box::new(tcp), version, connect)
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
    // withdrawn key. (mqgate closes that SSH connection at the first refused channel, so
    // `ssh -L` may have exited and its local port refuse the TCP connection: refused too.)
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let Ok(tcp) = TcpStream::connect(("127.0.0.1", local)) else {
            continue;
        };
        let connect = connect_packet(version, "dev-ssh", true, None);
        let (_, ack) = Client::connect_over(Box::new(tcp), version, connect);
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
        assert_eq!(
            a.subscribe("sensors/dev-a/#", QoS::AtLeastOnce),
            [ReasonCode::GrantedQoS1]
        );
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
            a.subscribe("sensors/dev-ssh-a/#", QoS::AtLeastOnce),
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
