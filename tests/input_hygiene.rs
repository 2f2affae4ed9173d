//! Input a client chooses that the MQTT spec allows but a gateway should not take:
//! control characters in names and topics, acknowledgements of the wrong kind, and
//! user names too long to remember. Each test is what a client observes of the real
//! `mqgate run`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::raw_client::{connect_packet, Client, WAIT};
use common::{add_password, Mqgate};
use mqgate_protocol::{
    LastWill, Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, ReasonCode,
};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// `mqgate run` on a loopback port with `config` (TOML) and its data in `dir`.
fn start(dir: &tempfile::TempDir, config: &str) -> Mqgate {
    Mqgate::start_with_toml(dir.path(), config)
}

fn publish(topic: &str, qos: QoS, pkid: u16) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from(topic),
        pkid,
        payload: Bytes::from_static(b"x"),
        properties: Properties::default(),
    })
}

/// The CONNACK reason for a CONNECT with `client_id`, `user` and a will on `will_topic`.
fn connack(
    gw: &Mqgate,
    version: ProtocolVersion,
    client_id: &str,
    user: Option<&str>,
    will_topic: Option<&str>,
) -> ReasonCode {
    let mut connect = connect_packet(version, client_id, true, user.map(|u| (u, "pw")));
    connect.will = will_topic.map(|t| LastWill {
        topic: Arc::from(t),
        payload: Bytes::from_static(b"w"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties::default(),
    });
    Client::connect_with(gw.addr, version, connect).1 .0
}

#[test]
fn control_characters_are_refused_in_connect_publish_and_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&dir, "");
    // CONNECT: client id, user name, will topic.
    assert_eq!(
        connack(&gw, V5, "dev\u{1}1", None, None),
        ReasonCode::ClientIdentifierNotValid
    );
    assert_eq!(
        connack(&gw, V3, "dev\n1", None, None),
        ReasonCode::ClientIdentifierNotValid
    );
    assert_eq!(
        connack(&gw, V5, "d1", Some("al\u{7}ice"), None),
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        connack(&gw, V3, "d1", Some("al\u{9b}ice"), None),
        ReasonCode::BadUserNameOrPassword
    );
    assert_eq!(
        connack(&gw, V5, "d1", None, Some("will/\u{1b}[2J")),
        ReasonCode::TopicNameInvalid
    );
    assert_eq!(
        connack(&gw, V3, "d1", None, Some("will/\u{7f}")),
        ReasonCode::NotAuthorized
    );
    // A client id that would clear an operator's terminal if logged as sent.
    assert_eq!(
        connack(&gw, V5, "dev\u{1b}[2J", None, None),
        ReasonCode::ClientIdentifierNotValid
    );
    // Nothing of that reached the log unescaped.
    assert!(
        !gw.logs().contains('\u{1b}'),
        "an escape sequence reached the log"
    );
    // SUBSCRIBE: the filter with a control character is refused, its neighbour granted.
    let (mut c5, ack) = Client::connect(gw.addr, V5, "c5", true, None);
    assert_eq!(ack.0, ReasonCode::Success);
    assert_eq!(
        c5.subscribe("t/\u{85}/#", QoS::AtLeastOnce),
        [ReasonCode::TopicFilterInvalid]
    );
    assert_eq!(
        c5.subscribe("t/ok/#", QoS::AtLeastOnce),
        [ReasonCode::GrantedQoS1]
    );
    let (mut c3, _) = Client::connect(gw.addr, V3, "c3", true, None);
    assert_eq!(
        c3.subscribe("t/\u{1f}", QoS::AtLeastOnce),
        [ReasonCode::UnspecifiedError]
    );
    // PUBLISH: MQTT 5 gets DISCONNECT 0x90, 3.1.1 is disconnected; nothing is delivered.
    c5.send(&publish("t/ok/\u{2}", QoS::AtLeastOnce, 1));
    match c5.recv(WAIT) {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::TopicNameInvalid),
        other => panic!("expected DISCONNECT 0x90, got {other:?}"),
    }
    c3.send(&publish("t/ok/\u{2}", QoS::AtLeastOnce, 1));
    assert!(
        c3.recv(WAIT).is_none() && c3.closed,
        "3.1.1 publisher not disconnected"
    );
    // Plain names still work end to end.
    let (mut sub, _) = Client::connect(gw.addr, V5, "sub", true, None);
    sub.subscribe("t/ok/#", QoS::AtLeastOnce);
    let (mut publisher, _) = Client::connect(gw.addr, V5, "pub", true, None);
    assert!(!publisher.publish("t/ok/é", "fine").is_failure());
    assert_eq!(sub.receive(1), ["fine"]);
}

#[test]
fn control_characters_are_accepted_when_the_site_allows_them() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&dir, "[broker]\nallow_control_characters = true\n");
    assert_eq!(
        connack(&gw, V5, "dev\u{1}1", None, Some("w/\u{7f}")),
        ReasonCode::Success
    );
    let (mut sub, _) = Client::connect(gw.addr, V5, "sub", true, None);
    assert_eq!(
        sub.subscribe("t/\u{85}/#", QoS::AtLeastOnce),
        [ReasonCode::GrantedQoS1]
    );
    let (mut publisher, _) = Client::connect(gw.addr, V3, "pub", true, None);
    assert_eq!(publisher.publish("t/\u{85}/x", "ctl"), ReasonCode::Success);
    assert_eq!(sub.receive(1), ["ctl"]);
}

/// A subscriber that got one delivery at `qos` and answers it with `answer`; returns
/// what the broker did next.
fn answer_delivery(
    version: ProtocolVersion,
    qos: QoS,
    answer: fn(u16) -> Packet,
) -> Option<Packet> {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&dir, "");
    let (mut sub, _) = Client::connect(gw.addr, version, "sub", true, None);
    sub.subscribe("a/b", qos);
    let (mut publisher, _) = Client::connect(gw.addr, version, "pub", true, None);
    publisher.send(&publish("a/b", qos, 7));
    let pkid = match sub.recv(WAIT) {
        Some(Packet::Publish(p)) => p.pkid,
        other => panic!("expected the delivery, got {other:?}"),
    };
    sub.send(&answer(pkid));
    let next = sub.recv(WAIT);
    assert!(
        gw.wait_for_log("protocol violation", WAIT),
        "no log line for the violation"
    );
    next
}

#[test]
fn an_acknowledgement_of_the_wrong_kind_is_a_protocol_error() {
    let pubcomp = |pkid| Packet::PubComp(PubAck::new(pkid));
    let puback = |pkid| Packet::PubAck(PubAck::new(pkid));
    let pubrec = |pkid| Packet::PubRec(PubAck::new(pkid));
    for (qos, answer) in [
        (QoS::AtLeastOnce, pubcomp as fn(u16) -> Packet),
        (QoS::AtLeastOnce, pubrec),
        (QoS::ExactlyOnce, puback),
        (QoS::ExactlyOnce, pubcomp),
    ] {
        // MQTT 5: DISCONNECT 0x82 (Protocol Error).
        match answer_delivery(V5, qos, answer) {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::ProtocolError),
            other => panic!("{qos:?}: expected DISCONNECT 0x82, got {other:?}"),
        }
        // 3.1.1: the connection is closed.
        assert_eq!(answer_delivery(V3, qos, answer), None, "{qos:?}");
    }
}

#[test]
fn a_user_name_over_the_limit_is_refused_and_named_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    add_password(&passwords, "alice", "alice-pw");
    let gw = start(
        &dir,
        &format!(
            "[auth]\npassword_file = {:?}\nallow_anonymous = false\nmax_username_bytes = 64\n\
             [auth.argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n",
            passwords.to_str().unwrap()
        ),
    );
    let long = "u".repeat(65);
    for password in [Some("x"), None] {
        let mut connect = connect_packet(V5, "long", true, None);
        connect.username = Some(long.clone());
        connect.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
        let (_, ack) = Client::connect_with(gw.addr, V5, connect);
        assert_eq!(
            ack.0,
            ReasonCode::BadUserNameOrPassword,
            "password {password:?}"
        );
    }
    assert!(gw.wait_for_log("max_username_bytes", WAIT));
    // The name itself is not logged.
    assert!(!gw.logs().contains(&long));
    let (_, ack) = Client::connect(gw.addr, V5, "alice", true, Some(("alice", "alice-pw")));
    assert_eq!(ack.0, ReasonCode::Success);
}
