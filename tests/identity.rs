//! Identity attacks against the real `mqgate run` with passwords and an ACL on: each
//! test tries to cross a boundary (another user's session, a reserved client id, a
//! share group, a revoked grant, hostile user names and client ids) and asserts what a
//! client observes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use common::raw_client::{hand_made_packet, put_string, Client, WAIT};
use common::{add_password, Mqgate};
use mqgate_protocol::{Connect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode};

const ACL: &str = "\
user alice
topic readwrite site/alice/#

user bob
topic readwrite site/bob/#

user w1
topic readwrite jobs/#

user w2
topic readwrite jobs/#

user eve
topic read site/eve/#
topic read jobs/public/#

pattern readwrite dev/%c/#
";

/// A gateway with passwords (alice, bob, w1, w2, eve; password = user + "-pw"), no
/// anonymous access and the ACL above, on a loopback TCP listener.
struct Gateway {
    mqgate: Mqgate,
    _dir: tempfile::TempDir,
    acl: std::path::PathBuf,
}

impl Gateway {
    fn start() -> Gateway {
        Gateway::start_with("")
    }

    /// With more lines for the `[acl]` table.
    fn start_with(acl_extra: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let passwords = dir.path().join("passwords");
        for user in ["alice", "bob", "w1", "w2", "eve"] {
            add_password(&passwords, user, &format!("{user}-pw"));
        }
        let acl = dir.path().join("acl");
        std::fs::write(&acl, ACL).unwrap();
        let config = dir.path().join("mqgate.toml");
        std::fs::write(
            &config,
            format!(
                "[auth]\npassword_file = {:?}\nallow_anonymous = false\n\
                 [auth.argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n\
                 [acl]\nfile = {:?}\n{acl_extra}\n",
                passwords.to_str().unwrap(),
                acl.to_str().unwrap()
            ),
        )
        .unwrap();
        let data = dir.path().join("data");
        let mqgate = Mqgate::start(&data, &["--config", config.to_str().unwrap()]);
        Gateway {
            mqgate,
            _dir: dir,
            acl,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.mqgate.addr
    }

    fn login(&self, version: ProtocolVersion, user: &str, client_id: &str, clean: bool) -> Client {
        let (client, ack) = Client::connect(
            self.addr(),
            version,
            client_id,
            clean,
            Some((user, &format!("{user}-pw"))),
        );
        assert_eq!(ack, (ReasonCode::Success, ack.1), "{user} as {client_id}");
        client
    }
}

/// bob leaves a persistent session with messages queued for it.
fn bob_with_queued_messages(gw: &Gateway, version: ProtocolVersion, n: usize) {
    let mut bob = gw.login(version, "bob", "bob", false);
    assert_eq!(
        bob.subscribe("site/bob/#", QoS::AtLeastOnce),
        [ReasonCode::GrantedQoS1]
    );
    bob.disconnect();
    let mut sender = gw.login(version, "bob", "bob-sender", true);
    for i in 0..n {
        assert_eq!(
            sender.publish("site/bob/inbox", &format!("for-bob-{i}")),
            ReasonCode::Success
        );
    }
    sender.disconnect();
}

fn takeover_is_refused(version: ProtocolVersion, refusal: ReasonCode) {
    let gw = Gateway::start();
    bob_with_queued_messages(&gw, version, 3);
    // alice asks for bob's client id, resuming and with a clean start.
    for clean in [false, true] {
        let (mut alice, ack) = Client::connect(
            gw.addr(),
            version,
            "bob",
            clean,
            Some(("alice", "alice-pw")),
        );
        assert_eq!(ack, (refusal, false), "alice as bob, clean = {clean}");
        assert!(
            alice.drain().is_empty(),
            "alice got bob's messages (clean = {clean})"
        );
    }
    // An anonymous claim (no credentials at all) is refused too.
    let (_, ack) = Client::connect(gw.addr(), version, "bob", false, None);
    assert_ne!(ack.0, ReasonCode::Success);
    // bob's session is untouched: present, with every queued message.
    let (mut bob, ack) = Client::connect(gw.addr(), version, "bob", false, Some(("bob", "bob-pw")));
    assert_eq!(ack, (ReasonCode::Success, true));
    let mut got = bob.receive(3);
    got.sort();
    assert_eq!(got, ["for-bob-0", "for-bob-1", "for-bob-2"]);
    assert!(gw
        .mqgate
        .wait_for_log("the client id is another identity's session", WAIT));
}

#[test]
fn another_user_cannot_take_over_a_persistent_session_3_1_1() {
    // 3.1.1 return code 5: not authorized.
    takeover_is_refused(ProtocolVersion::V3_1_1, ReasonCode::NotAuthorized);
}

#[test]
fn another_user_cannot_take_over_a_persistent_session_5() {
    takeover_is_refused(ProtocolVersion::V5, ReasonCode::NotAuthorized);
}

#[test]
fn another_user_cannot_kick_a_connected_client() {
    let gw = Gateway::start();
    let mut bob = gw.login(ProtocolVersion::V3_1_1, "bob", "bob-live", true);
    bob.subscribe("site/bob/#", QoS::AtLeastOnce);
    let (_, ack) = Client::connect(
        gw.addr(),
        ProtocolVersion::V3_1_1,
        "bob-live",
        true,
        Some(("alice", "alice-pw")),
    );
    assert_eq!(ack.0, ReasonCode::NotAuthorized);
    // bob is still connected and still receives.
    let mut sender = gw.login(ProtocolVersion::V3_1_1, "bob", "bob-sender", true);
    sender.publish("site/bob/x", "still-here");
    assert_eq!(bob.receive(1), ["still-here"]);
}

#[test]
fn the_bridge_client_id_is_reserved() {
    let gw = Gateway::start();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let (_, ack) = Client::connect(
            gw.addr(),
            version,
            "mqgate-bridge-cloud",
            false,
            Some(("alice", "alice-pw")),
        );
        assert_eq!(
            ack.0,
            ReasonCode::ClientIdentifierNotValid,
            "protocol {version:?}"
        );
    }
}

#[test]
fn a_member_that_may_not_read_cannot_starve_a_share_group() {
    let gw = Gateway::start();
    let mut w1 = gw.login(ProtocolVersion::V5, "w1", "w1", true);
    let mut w2 = gw.login(ProtocolVersion::V5, "w2", "w2", true);
    // eve may read jobs/public/# only; she joins the workers' group on everything.
    let mut eve = gw.login(ProtocolVersion::V5, "eve", "eve", true);
    for c in [&mut w1, &mut w2] {
        assert_eq!(
            c.subscribe("$share/workers/jobs/#", QoS::AtLeastOnce),
            [ReasonCode::GrantedQoS1]
        );
    }
    let granted = eve.subscribe("$share/workers/jobs/#", QoS::AtLeastOnce);
    assert_eq!(granted.len(), 1);
    let mut publisher = gw.login(ProtocolVersion::V5, "w1", "w1-pub", true);
    let n = 30;
    for i in 0..n {
        assert_eq!(
            publisher.publish("jobs/secret", &format!("job-{i}")),
            ReasonCode::Success
        );
    }
    let mut got = w1.receive(1);
    got.extend(w2.drain());
    got.extend(w1.drain());
    got.sort();
    got.dedup();
    assert_eq!(got.len(), n, "the workers got {got:?}");
    assert!(eve.drain().is_empty(), "eve read jobs/secret");
}

#[test]
fn a_reload_that_removes_a_grant_stops_queued_messages() {
    let gw = Gateway::start();
    bob_with_queued_messages(&gw, ProtocolVersion::V3_1_1, 3);
    // The operator removes bob's grant and reloads.
    std::fs::write(&gw.acl, ACL.replace("topic readwrite site/bob/#", "")).unwrap();
    gw.mqgate.signal("HUP");
    assert!(gw.mqgate.wait_for_log("ACL file reloaded", WAIT));
    let (mut bob, ack) = Client::connect(
        gw.addr(),
        ProtocolVersion::V3_1_1,
        "bob",
        false,
        Some(("bob", "bob-pw")),
    );
    assert_eq!(ack, (ReasonCode::Success, true));
    assert!(bob.drain().is_empty(), "queued messages outlived the grant");
    assert!(gw
        .mqgate
        .wait_for_log("the client may no longer read it", WAIT));
}

/// A CONNECT written byte by byte (the codec refuses to encode a NUL in a string):
/// clean session, keep alive 60, user name and password.
fn hand_made_connect(
    version: ProtocolVersion,
    client_id: &str,
    user: &[u8],
    password: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    put_string(&mut body, b"MQTT");
    body.push(if version.is_v5() { 5 } else { 4 });
    body.push(0b1100_0010);
    body.extend_from_slice(&60u16.to_be_bytes());
    if version.is_v5() {
        body.push(0); // no properties
    }
    put_string(&mut body, client_id.as_bytes());
    put_string(&mut body, user);
    put_string(&mut body, password);
    hand_made_packet(0x10, &body)
}

#[test]
fn hostile_user_names_are_refused_and_the_gateway_stays_up() {
    let gw = Gateway::start();
    let long = vec![b'u'; 64 * 1024 - 1];
    let names: [&[u8]; 6] = [b"a/b", b"+", b"#", b"a\0b", &long, b""];
    // One attempt per name, alternating protocol versions: each failure is throttled.
    for (i, name) in names.into_iter().enumerate() {
        let version = if i % 2 == 0 {
            ProtocolVersion::V3_1_1
        } else {
            ProtocolVersion::V5
        };
        let mut client = Client::new(TcpStream::connect(gw.addr()).unwrap(), version);
        let bytes = hand_made_connect(version, "hostile", name, b"whatever");
        client.stream.write_all(&bytes).unwrap();
        let shown = String::from_utf8_lossy(&name[..name.len().min(8)]).into_owned();
        match client.recv(WAIT) {
            Some(Packet::ConnAck(a)) => {
                assert_ne!(a.reason, ReasonCode::Success, "user name {shown:?}")
            }
            // A malformed CONNECT (NUL) may be closed without a CONNACK.
            None => {}
            Some(other) => panic!("user name {shown:?}: {other:?}"),
        }
    }
    // Still serving real users.
    let mut alice = gw.login(ProtocolVersion::V3_1_1, "alice", "alice", true);
    assert_eq!(alice.publish("site/alice/ok", "x"), ReasonCode::Success);
}

#[test]
fn client_ids_with_wildcards_gain_nothing_from_percent_c_patterns() {
    let gw = Gateway::start();
    let mut victim = gw.login(ProtocolVersion::V5, "bob", "sensor1", true);
    assert_eq!(
        victim.subscribe("dev/sensor1/#", QoS::AtLeastOnce),
        [ReasonCode::GrantedQoS1]
    );
    for id in ["+", "#", "..", "a/b"] {
        let mut attacker = gw.login(ProtocolVersion::V5, "alice", id, true);
        // `pattern readwrite dev/%c/#` must not become dev/+/# or dev/#/#.
        let reason = attacker.publish("dev/sensor1/cmd", &format!("from-{id}"));
        assert_eq!(reason, ReasonCode::NotAuthorized, "client id {id:?}");
        attacker.disconnect();
    }
    // An empty client id gets an assigned one, and no grant from the pattern either.
    let mut anon_id = gw.login(ProtocolVersion::V5, "alice", "", true);
    assert_eq!(
        anon_id.publish("dev/sensor1/cmd", "from-empty"),
        ReasonCode::NotAuthorized
    );
    assert!(victim.drain().is_empty());
}

#[test]
fn a_reload_that_removes_a_user_disconnects_its_live_connections() {
    let gw = Gateway::start();
    let mut bob = gw.login(ProtocolVersion::V5, "bob", "bob-v5", true);
    let mut bob3 = gw.login(ProtocolVersion::V3_1_1, "bob", "bob-v3", true);
    let mut alice = gw.login(ProtocolVersion::V5, "alice", "alice-v5", true);
    let passwords = gw._dir.path().join("passwords");
    let out = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .args(["passwd", "delete", passwords.to_str().unwrap(), "bob"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gw.mqgate.signal("HUP");
    // MQTT 5: DISCONNECT 0x87; 3.1.1: the connection closes.
    match bob.recv(WAIT) {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::NotAuthorized),
        other => panic!("bob (5.0) got {other:?}"),
    }
    assert!(bob3.recv(WAIT).is_none(), "bob (3.1.1) still connected");
    // alice keeps her connection.
    let reason = alice.publish("site/alice/x", "still");
    assert!(!reason.is_failure(), "{reason:?}");
    let (_, ack) = Client::connect(
        gw.addr(),
        ProtocolVersion::V5,
        "bob-again",
        true,
        Some(("bob", "bob-pw")),
    );
    assert_ne!(ack.0, ReasonCode::Success);
}

#[test]
fn strict_acl_refuses_what_the_default_narrows() {
    let gw = Gateway::start_with("strict = true");
    let mut alice = gw.login(ProtocolVersion::V5, "alice", "alice-strict", true);
    // A filter overlapping her grant (site/alice/#) but reaching beyond it: refused.
    assert_eq!(
        alice.subscribe("site/#", QoS::AtLeastOnce),
        [ReasonCode::NotAuthorized]
    );
    assert_eq!(
        alice.subscribe("#", QoS::AtLeastOnce),
        [ReasonCode::NotAuthorized]
    );
    assert_eq!(
        alice.subscribe("site/alice/+", QoS::AtLeastOnce),
        [ReasonCode::GrantedQoS1]
    );
    // Denied publishes: 0x87 at QoS 1, `$` topics included; DISCONNECT 0x87 at QoS 0.
    for topic in ["site/bob/x", "$SYS/broker/fake", "$internal/x"] {
        assert_eq!(
            alice.publish(topic, "no"),
            ReasonCode::NotAuthorized,
            "{topic}"
        );
    }
    alice.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: Arc::from("site/bob/x"),
        pkid: 0,
        payload: Bytes::from_static(b"no"),
        properties: Properties::default(),
    }));
    match alice.recv(WAIT) {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::NotAuthorized),
        other => panic!("expected DISCONNECT 0x87, got {other:?}"),
    }
    // 3.1.1: a refused filter gets 0x80, a denied publish closes the connection.
    let mut alice3 = gw.login(ProtocolVersion::V3_1_1, "alice", "alice-strict3", true);
    assert_eq!(
        alice3.subscribe("site/#", QoS::AtLeastOnce),
        [ReasonCode::UnspecifiedError]
    );
    let pkid = alice3.pkid();
    alice3.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: Arc::from("site/bob/x"),
        pkid,
        payload: Bytes::from_static(b"no"),
        properties: Properties::default(),
    }));
    assert!(alice3.recv(WAIT).is_none(), "3.1.1 client not disconnected");
    // A will on a topic she may not write: CONNECT refused.
    let mut connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "alice-will".into(),
        will: Some(mqgate_protocol::LastWill {
            topic: Arc::from("site/bob/will"),
            payload: Bytes::from_static(b"w"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        }),
        username: Some("alice".into()),
        password: Some(Bytes::from_static(b"alice-pw")),
        properties: Properties::default(),
    };
    let (_, ack) = Client::connect_with(gw.addr(), ProtocolVersion::V5, connect.clone());
    assert_eq!(ack.0, ReasonCode::NotAuthorized);
    connect.protocol = ProtocolVersion::V3_1_1;
    let (_, ack) = Client::connect_with(gw.addr(), ProtocolVersion::V3_1_1, connect);
    assert_eq!(ack.0, ReasonCode::NotAuthorized);
}

#[test]
fn the_default_acl_narrows_an_overlapping_filter_at_delivery() {
    let gw = Gateway::start();
    let mut alice = gw.login(ProtocolVersion::V5, "alice", "alice-wide", true);
    assert_eq!(
        alice.subscribe("site/#", QoS::AtLeastOnce),
        [ReasonCode::GrantedQoS1]
    );
    let mut bob = gw.login(ProtocolVersion::V5, "bob", "bob-pub", true);
    bob.publish("site/bob/x", "for-bob");
    let mut alice_pub = gw.login(ProtocolVersion::V5, "alice", "alice-pub", true);
    alice_pub.publish("site/alice/x", "for-alice");
    assert_eq!(alice.receive(1), ["for-alice"]);
    assert!(alice.drain().is_empty());
}
