//! Idle TCP connections park (their task ends, the socket waits in the parking set) and
//! come back for everything that concerns them: input, deliveries, the keep-alive
//! timeout, takeover and shutdown.

mod support;

use std::time::Instant;

use mqgate_broker_lite::{BrokerSettings, Stats};
use mqgate_protocol::{Packet, PubAck, QoS, ReasonCode};
use support::*;

/// Waits (bounded) until `n` connections are parked.
async fn parked(b: &TestBroker, n: u64) {
    let deadline = Instant::now() + WAIT;
    while Stats::get(&b.handle.stats().connections_parked) < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} connections parked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_parked_subscriber_gets_deliveries_and_acks_flow() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("t/#", QoS::AtLeastOnce).await;
    let mut publisher = Raw::connect(b.addr, "pub", true).await;
    parked(&b, 2).await;
    for i in 0..3u16 {
        publisher
            .publish_acked(&format!("t/{i}"), b"x", QoS::AtLeastOnce, false, i + 1)
            .await;
        let p = sub.recv_publish().await;
        assert_eq!(&*p.topic, format!("t/{i}"));
        sub.ack(&p).await;
        // Both park again once idle, and come back for the next message.
        parked(&b, 2).await;
    }
    publisher.disconnect().await;
    sub.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_parked_connection_answers_pingreq() {
    let b = TestBroker::start(settings()).await;
    let mut c = Raw::connect(b.addr, "pinger", true).await;
    parked(&b, 1).await;
    c.send(&Packet::PingReq).await;
    assert!(matches!(c.recv().await, Some(Packet::PingResp)));
    c.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_parked_connection_times_out_and_its_will_is_published() {
    let b = TestBroker::start(settings()).await;
    let mut watcher = Raw::connect(b.addr, "watcher", true).await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let (mut silent, _) = Raw::connect_with(
        b.addr,
        connect_packet(
            "silent",
            true,
            1,
            Some(will("wills/silent", "timed out", QoS::AtLeastOnce, false)),
        ),
    )
    .await;
    parked(&b, 2).await;
    let p = watcher.recv_publish().await;
    assert_eq!(&*p.topic, "wills/silent");
    assert_eq!(p.payload, "timed out");
    silent.expect_closed().await;
    watcher.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_parked_connection_is_taken_over() {
    let b = TestBroker::start(settings()).await;
    let mut watcher = Raw::connect(b.addr, "watcher", true).await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let (mut first, _) = Raw::connect_with(
        b.addr,
        connect_packet(
            "dup",
            false,
            60,
            Some(will("wills/dup", "gone", QoS::AtLeastOnce, false)),
        ),
    )
    .await;
    parked(&b, 2).await;
    let second = Raw::connect(b.addr, "dup", false).await;
    first.expect_closed().await;
    let p = watcher.recv_publish().await;
    assert_eq!(&*p.topic, "wills/dup");
    second.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_qos2_flow_completes_across_parking() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("q", QoS::ExactlyOnce).await;
    let mut publisher = Raw::connect(b.addr, "pub", true).await;
    publisher
        .send(&publish("q", b"once", QoS::ExactlyOnce, false, 7))
        .await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(a)) if a.pkid == 7));
    // The publisher parks between PUBREC and PUBREL (nothing to do until the client
    // answers); the subscriber parks once its QoS 2 delivery completes.
    let p = sub.recv_publish().await;
    assert_eq!(p.payload, "once");
    sub.ack(&p).await;
    parked(&b, 2).await;
    publisher.send(&Packet::PubRel(PubAck::new(7))).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubComp(a)) if a.pkid == 7));
    publisher.disconnect().await;
    sub.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn shutdown_disconnects_parked_mqtt5_clients() {
    let b = TestBroker::start(BrokerSettings { ..settings() }).await;
    let (mut c, _) = raw_v5(b.addr, connect_v5("v5", true, 0)).await;
    parked(&b, 1).await;
    let TestBroker { broker, stop, .. } = b;
    stop.cancel();
    let shutdown = tokio::spawn(async move {
        if let Some(broker) = broker {
            broker.shutdown().await;
        }
    });
    assert_eq!(c.expect_disconnect().await, ReasonCode::ServerShuttingDown);
    shutdown.await.unwrap();
}
