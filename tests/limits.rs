//! Limits on what one client can make the broker hold (`[broker]`
//! `max_retained_messages`, `max_retained_bytes`, `max_subscriptions_per_client`): what a
//! client observes of the real `mqgate run` when it reaches them, what the log and
//! `$SYS` tell the operator, and that retained messages restored over a lowered limit
//! are kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw_client::{Client, WAIT};
use common::Mqgate;
use mqgate_protocol::{Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, ReasonCode};

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// `mqgate run` on a loopback port with `config` (TOML) and its data in `dir`.
fn start(dir: &tempfile::TempDir, config: &str) -> Mqgate {
    Mqgate::start_with_toml(dir.path(), config)
}

/// Publishes a retained message at QoS 1 and returns its PUBACK.
fn publish_retained(c: &mut Client, topic: &str, payload: &str) -> PubAck {
    let pkid = c.pkid();
    c.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: Arc::from(topic),
        pkid,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        properties: Properties::default(),
    }));
    loop {
        match c.recv(WAIT) {
            Some(Packet::PubAck(a)) if a.pkid == pkid => return a,
            Some(Packet::Publish(p)) => c.ack(&p),
            other => panic!("expected PUBACK for {topic}, got {other:?}"),
        }
    }
}

/// The retained messages a new subscriber to `filter` gets, as sorted `topic=payload`.
fn retained(gw: &Mqgate, filter: &str) -> Vec<String> {
    let (mut c, _) = Client::connect(gw.addr, V5, "reader", true, None);
    assert_eq!(
        c.subscribe(filter, QoS::AtLeastOnce),
        [ReasonCode::GrantedQoS1]
    );
    let mut got = Vec::new();
    while let Some(packet) = c.recv(common::raw_client::QUIET) {
        if let Packet::Publish(p) = packet {
            assert!(p.retain, "a live message reached the reader: {p:?}");
            c.ack(&p);
            let payload = String::from_utf8_lossy(&p.payload);
            got.push(format!("{}={payload}", p.topic));
        }
    }
    c.disconnect();
    got.sort();
    got
}

/// Waits until `$SYS/broker/<name>` reads `value` (published every `sys_interval`).
fn wait_for_sys(gw: &Mqgate, name: &str, value: &str) {
    let (mut c, _) = Client::connect(gw.addr, V5, "sys-reader", true, None);
    let topic = format!("$SYS/broker/{name}");
    assert_eq!(
        c.subscribe(&topic, QoS::AtMostOnce),
        [ReasonCode::GrantedQoS0]
    );
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(Packet::Publish(p)) = c.recv(Duration::from_millis(200)) {
            if p.payload == value.as_bytes() {
                return;
            }
            last = Some(p.payload);
        }
    }
    panic!("{topic} never read {value} (last: {last:?})");
}

#[test]
fn a_new_retained_topic_beyond_max_retained_messages_is_delivered_but_not_retained() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(
        &dir,
        "[broker]\nmax_retained_messages = 3\nsys_interval = \"1s\"\n",
    );
    // The broker's own retained $SYS topics (published at start) take no room.
    wait_for_sys(&gw, "retained messages/refused", "0");
    let (mut live, _) = Client::connect(gw.addr, V5, "live", true, None);
    live.subscribe("r/#", QoS::AtLeastOnce);
    let (mut p5, _) = Client::connect(gw.addr, V5, "pub5", true, None);
    for n in 1..=3 {
        let ack = publish_retained(&mut p5, &format!("r/{n}"), &format!("v{n}"));
        assert_eq!(ack.reason, ReasonCode::Success);
    }
    // MQTT 5: the 4th new topic gets 0x97 and a reason string naming the limit.
    let ack = publish_retained(&mut p5, "r/4", "v4");
    assert_eq!(ack.reason, ReasonCode::QuotaExceeded);
    let why = ack.properties.reason_string.clone().unwrap_or_default();
    assert!(why.contains("max_retained_messages"), "{why}");
    // MQTT 3.1.1: acknowledged as usual (as mosquitto would).
    let (mut p3, _) = Client::connect(gw.addr, V3, "pub3", true, None);
    assert_eq!(
        publish_retained(&mut p3, "r/5", "v5").reason,
        ReasonCode::Success
    );
    // Both were delivered to the subscriber all the same.
    assert_eq!(live.receive(5), ["v1", "v2", "v3", "v4", "v5"]);
    // Replacing an existing retained topic works at the limit.
    assert_eq!(
        publish_retained(&mut p5, "r/1", "v1-new").reason,
        ReasonCode::Success
    );
    assert_eq!(retained(&gw, "r/#"), ["r/1=v1-new", "r/2=v2", "r/3=v3"]);
    // Clearing one makes room for a new topic.
    assert_eq!(
        publish_retained(&mut p3, "r/2", "").reason,
        ReasonCode::Success
    );
    assert_eq!(
        publish_retained(&mut p5, "r/6", "v6").reason,
        ReasonCode::Success
    );
    assert_eq!(retained(&gw, "r/#"), ["r/1=v1-new", "r/3=v3", "r/6=v6"]);
    // The log names the limit and each client that hit it; $SYS counts the refusals.
    assert!(gw.wait_for_log("limit=\"max_retained_messages\"", WAIT));
    let logs = gw.logs();
    for client in ["client_id=pub5", "client_id=pub3"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("max_retained_messages") && l.contains(client)),
            "no refusal logged for {client}:\n{logs}"
        );
    }
    wait_for_sys(&gw, "retained messages/refused", "2");
}

#[test]
fn a_retained_message_beyond_max_retained_bytes_is_not_retained() {
    let dir = tempfile::tempdir().unwrap();
    // Topic plus payload: "b/1" + 10 bytes = 13.
    let gw = start(&dir, "[broker]\nmax_retained_bytes = 20\n");
    let (mut p, _) = Client::connect(gw.addr, V5, "pub", true, None);
    let ok = |a: PubAck| !a.reason.is_failure();
    assert!(ok(publish_retained(&mut p, "b/1", "0123456789")));
    // A new topic that does not fit.
    let ack = publish_retained(&mut p, "b/2", "0123456789");
    assert_eq!(ack.reason, ReasonCode::QuotaExceeded);
    // Growing the existing one: within the limit yes, beyond it no.
    assert!(ok(publish_retained(&mut p, "b/1", "0123456789abcdef")));
    let ack = publish_retained(&mut p, "b/1", "0123456789abcdefgh");
    assert_eq!(ack.reason, ReasonCode::QuotaExceeded);
    assert_eq!(retained(&gw, "b/#"), ["b/1=0123456789abcdef"]);
    assert!(gw.wait_for_log("limit=\"max_retained_bytes\"", WAIT));
    assert!(gw.logs().contains("client_id=pub"));
}

#[test]
fn a_new_subscription_beyond_max_subscriptions_per_client_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(
        &dir,
        "[broker]\nmax_subscriptions_per_client = 2\nsys_interval = \"1s\"\n",
    );
    for (version, id, refused) in [
        (V5, "sub5", ReasonCode::QuotaExceeded),
        (V3, "sub3", ReasonCode::UnspecifiedError),
    ] {
        let (mut c, _) = Client::connect(gw.addr, version, id, true, None);
        assert_eq!(
            c.subscribe("a/#", QoS::AtLeastOnce),
            [ReasonCode::GrantedQoS1]
        );
        assert_eq!(
            c.subscribe("b", QoS::AtLeastOnce),
            [ReasonCode::GrantedQoS1]
        );
        assert_eq!(c.subscribe("c", QoS::AtLeastOnce), [refused], "{id}");
        // Re-subscribing (new options) is not a new subscription.
        assert_eq!(
            c.subscribe("a/#", QoS::AtMostOnce),
            [ReasonCode::GrantedQoS0]
        );
        // The refused filter delivers nothing; the granted ones do.
        let (mut p, _) = Client::connect(gw.addr, V3, "pub", true, None);
        p.publish("c", "not for you");
        p.publish("b", "yours");
        assert_eq!(c.receive(1), ["yours"]);
        assert!(c.drain().is_empty());
        // Room again after an UNSUBSCRIBE.
        let pkid = c.pkid();
        c.send(&Packet::Unsubscribe(mqgate_protocol::Unsubscribe {
            pkid,
            filters: vec!["b".into()],
            properties: Properties::default(),
        }));
        assert!(matches!(c.recv(WAIT), Some(Packet::UnsubAck(_))));
        assert_eq!(
            c.subscribe("c", QoS::AtLeastOnce),
            [ReasonCode::GrantedQoS1]
        );
    }
    assert!(gw.wait_for_log("limit=\"max_subscriptions_per_client\"", WAIT));
    let logs = gw.logs();
    for client in ["client_id=sub5", "client_id=sub3"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("max_subscriptions_per_client") && l.contains(client)),
            "no refusal logged for {client}:\n{logs}"
        );
    }
    wait_for_sys(&gw, "subscriptions/refused", "2");
}

#[test]
fn retained_messages_restored_over_a_lowered_limit_are_kept_and_new_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(&dir, "");
    let (mut p, _) = Client::connect(gw.addr, V3, "pub", true, None);
    for n in 1..=3 {
        publish_retained(&mut p, &format!("r/{n}"), &format!("v{n}"));
    }
    p.disconnect();
    assert!(gw.terminate().success());
    drop(gw);
    let gw = start(&dir, "[broker]\nmax_retained_messages = 2\n");
    assert!(gw.wait_for_log("retained messages restored exceed", WAIT));
    assert_eq!(retained(&gw, "r/#"), ["r/1=v1", "r/2=v2", "r/3=v3"]);
    let (mut p, _) = Client::connect(gw.addr, V5, "pub", true, None);
    let ack = publish_retained(&mut p, "r/4", "v4");
    assert_eq!(ack.reason, ReasonCode::QuotaExceeded);
    assert!(!publish_retained(&mut p, "r/3", "v3-new")
        .reason
        .is_failure());
    assert_eq!(retained(&gw, "r/#"), ["r/1=v1", "r/2=v2", "r/3=v3-new"]);
    assert_eq!(
        gw.logs()
            .matches("retained messages restored exceed")
            .count(),
        1
    );
}
