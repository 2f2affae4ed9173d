//! MQTT 5 session state across an in-process restart on the same persistence directory:
//! session expiry keeps counting, message expiry stays absolute, properties of queued and
//! retained messages and subscription options come back.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqgate_broker_lite::{BrokerSettings, Durability, PersistenceSettings};
use mqgate_protocol::{Packet, Properties, Publish, QoS, SubscriptionOptions};
use support::*;

fn persistent(dir: &std::path::Path) -> BrokerSettings {
    let mut p = PersistenceSettings::new(dir);
    p.durability = Durability::Sync;
    BrokerSettings {
        persistence: Some(p),
        ..settings()
    }
}

fn pub5(topic: &str, payload: &'static str, retain: bool, props: Properties) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain,
        topic: Arc::from(topic),
        pkid: 1,
        payload: Bytes::from_static(payload.as_bytes()),
        properties: props,
    })
}

fn expiring(secs: u32) -> Properties {
    mqgate_protocol::PropertyValues {
        message_expiry_interval: Some(secs),
        ..mqgate_protocol::PropertyValues::default()
    }
    .into()
}

#[tokio::test]
async fn v5_session_state_survives_a_restart_and_expiry_stays_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(persistent(dir.path())).await;
    let no_local = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..SubscriptionOptions::default()
    };
    let (mut keep, _) = raw_v5(b.addr, connect_v5("keep", true, 600)).await;
    keep.request_suback(subscribe_v5("q/#", no_local, Some(9)))
        .await;
    keep.disconnect().await;
    let (mut short, _) = raw_v5(b.addr, connect_v5("short", true, 2)).await;
    short
        .request_suback(subscribe_v5("q/#", no_local, None))
        .await;
    short.disconnect().await;

    let (mut publ, _) = raw_v5(b.addr, connect_v5("pub", true, 0)).await;
    let rich: Properties = mqgate_protocol::PropertyValues {
        content_type: Some(Arc::from("text/plain")),
        correlation_data: Some(Bytes::from_static(b"id-1")),
        response_topic: Some(Arc::from("reply/here")),
        user_properties: vec![("z".into(), "1".into()), ("a".into(), "2".into())],
        message_expiry_interval: Some(600),
        payload_format_indicator: Some(1),
        ..mqgate_protocol::PropertyValues::default()
    }
    .into();
    for p in [
        pub5("q/a", "lasting", false, rich.clone()),
        pub5("q/b", "fleeting", false, expiring(1)),
        pub5("kept/r", "retained", true, rich.clone()),
        pub5("clock/t", "tick", true, expiring(3)),
    ] {
        publ.send(&p).await;
        assert!(matches!(publ.recv().await, Some(Packet::PubAck(_))));
    }
    b.shutdown().await;

    let b = TestBroker::start(persistent(dir.path())).await;
    // The retained clock expires at its absolute time, restart or not.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (mut probe, _) = raw_v5(b.addr, connect_v5("probe", true, 0)).await;
        probe.subscribe("clock/t", QoS::AtMostOnce).await;
        let got = probe.recv_within(Duration::from_millis(200)).await;
        probe.disconnect().await;
        if got.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "clock never expired"
        );
    }
    // More than 3 s since "short" went offline with a 2 s expiry: it is gone.
    let (c, ack) = raw_v5(b.addr, connect_v5("short", false, 2)).await;
    assert!(
        !ack.session_present,
        "session expiry counted across the restart"
    );
    c.disconnect().await;
    // "keep" is back with its queue; the 1 s message expired, the other keeps its
    // properties, its remaining expiry and the subscription identifier.
    let (mut keep, ack) = raw_v5(b.addr, connect_v5("keep", false, 600)).await;
    assert!(ack.session_present);
    let got = keep.recv_publish().await;
    assert_eq!(got.payload, "lasting");
    let g = &got.properties;
    assert_eq!(g.content_type, rich.content_type);
    assert_eq!(g.correlation_data, rich.correlation_data);
    assert_eq!(g.response_topic, rich.response_topic);
    assert_eq!(g.user_properties, rich.user_properties);
    assert_eq!(g.payload_format_indicator, Some(1));
    assert_eq!(g.subscription_identifiers, [9]);
    assert!(g
        .message_expiry_interval
        .is_some_and(|s| s <= 600 && s > 500));
    keep.ack(&got).await;
    keep.expect_silence(Duration::from_millis(300)).await;
    // The subscription kept its options (No Local) and identifier.
    keep.send(&pub5("q/self", "mine", false, Properties::default()))
        .await;
    assert!(matches!(keep.recv().await, Some(Packet::PubAck(_))));
    keep.expect_silence(Duration::from_millis(300)).await;
    let (mut r, _) = raw_v5(b.addr, connect_v5("reader", true, 0)).await;
    r.subscribe("kept/r", QoS::AtLeastOnce).await;
    let kept = r.recv_publish().await;
    assert!(kept.retain);
    assert_eq!(kept.properties.user_properties, rich.user_properties);
    assert_eq!(kept.properties.content_type, rich.content_type);
    b.shutdown().await;
}
