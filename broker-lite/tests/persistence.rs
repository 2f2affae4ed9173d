//! Persistence across an in-process restart: sessions, subscriptions, queued and inflight
//! messages and retained messages come back from the write-ahead log.

mod support;

use mqgate_broker_lite::{BrokerSettings, Durability, PersistenceSettings};
use mqgate_protocol::{Packet, PubAck, QoS};
use support::*;

fn persistent(dir: &std::path::Path, durability: Durability) -> BrokerSettings {
    let mut p = PersistenceSettings::new(dir);
    p.durability = durability;
    BrokerSettings {
        persistence: Some(p),
        ..settings()
    }
}

#[tokio::test]
async fn queued_qos1_messages_survive_a_restart_all_delivered_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(persistent(dir.path(), Durability::Sync)).await;
    let mut sub = Raw::connect(b.addr, "device", false).await;
    sub.subscribe("telemetry/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    const N: usize = 200;
    for i in 0..N {
        publ.publish_acked(
            "telemetry/t",
            format!("{i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
            (i % 60000 + 1) as u16,
        )
        .await;
    }
    publ.publish_acked("state/r", b"retained", QoS::AtLeastOnce, true, 1)
        .await;
    b.shutdown().await;

    let b = TestBroker::start(persistent(dir.path(), Durability::Sync)).await;
    let (mut sub, ack) = Raw::connect_with(b.addr, connect_packet("device", false, 30, None)).await;
    assert!(ack.session_present, "session survived");
    let mut received = 0;
    for i in 0..N {
        let p = sub.recv_publish().await;
        assert_eq!(p.payload, format!("{i}"), "in order, none lost");
        sub.ack(&p).await;
        received += 1;
    }
    assert_eq!(received, N);
    // Subscriptions survived too: a new message is routed to the session.
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("telemetry/t", b"after", QoS::AtLeastOnce, false, 1)
        .await;
    assert_eq!(sub.recv_publish().await.payload, "after");
    let mut late = Raw::connect(b.addr, "late", true).await;
    late.subscribe("state/#", QoS::AtLeastOnce).await;
    let r = late.recv_publish().await;
    assert!(r.retain);
    assert_eq!(r.payload, "retained");
    b.shutdown().await;
}

#[tokio::test]
async fn inflight_qos2_and_incoming_qos2_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(persistent(dir.path(), Durability::Batch)).await;
    let mut sub = Raw::connect(b.addr, "s2", false).await;
    sub.subscribe("q2", QoS::ExactlyOnce).await;
    let mut publ = Raw::connect(b.addr, "p2", false).await;
    // An incoming QoS 2 PUBLISH not yet released by its publisher.
    publ.send(&publish("q2", b"exactly", QoS::ExactlyOnce, false, 9))
        .await;
    assert!(matches!(publ.recv().await, Some(Packet::PubRec(_))));
    let p = sub.recv_publish().await;
    sub.send(&Packet::PubRec(PubAck::new(p.pkid))).await;
    assert!(matches!(sub.recv().await, Some(Packet::PubRel(_))));
    drop(sub);
    drop(publ);
    b.shutdown().await;

    let b = TestBroker::start(persistent(dir.path(), Durability::Batch)).await;
    let (mut publ, ack) = Raw::connect_with(b.addr, connect_packet("p2", false, 30, None)).await;
    assert!(ack.session_present);
    // The publisher retries its PUBLISH with DUP: still not delivered twice.
    publ.send(&publish("q2", b"exactly", QoS::ExactlyOnce, false, 9))
        .await;
    assert!(matches!(publ.recv().await, Some(Packet::PubRec(_))));
    publ.send(&Packet::PubRel(PubAck::new(9))).await;
    assert!(matches!(publ.recv().await, Some(Packet::PubComp(_))));
    let (mut sub, ack) = Raw::connect_with(b.addr, connect_packet("s2", false, 30, None)).await;
    assert!(ack.session_present);
    match sub.recv().await {
        Some(Packet::PubRel(r)) => assert_eq!(r.pkid, p.pkid, "PUBREL resent with the same id"),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send(&Packet::PubComp(PubAck::new(p.pkid))).await;
    sub.expect_silence(std::time::Duration::from_millis(300))
        .await;
    b.shutdown().await;
}
