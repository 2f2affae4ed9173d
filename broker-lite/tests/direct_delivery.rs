//! Direct delivery: a publisher at a low rate writes a delivery straight into an idle
//! subscriber's socket (`core::Direct`). Each test checks what the client sees, and that
//! the path it exercises was taken (the broker's counters).

mod support;

use std::time::Duration;

use mqgate_broker_lite::Stats;
use mqgate_protocol::{Connect, Packet, QoS};
use support::*;
use tokio::net::TcpSocket;

/// One message at a time (each PUBLISH alone in its read), every QoS: the subscriber
/// gets each once, in order, with the QoS flows complete, and most went out directly.
#[tokio::test]
async fn lone_publishes_reach_an_idle_subscriber_directly_in_order() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("d/#", QoS::ExactlyOnce).await;
    let mut publisher = Raw::connect(b.addr, "pub", true).await;
    let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for i in 0..60u16 {
        let q = qos[usize::from(i % 3)];
        publisher
            .publish_acked(&format!("d/{i}"), &i.to_be_bytes(), q, false, i + 1)
            .await;
        let p = sub.recv_publish().await;
        assert_eq!(&*p.topic, format!("d/{i}"));
        assert_eq!(&p.payload[..], &i.to_be_bytes());
        assert_eq!(p.qos, q);
        assert!(!p.dup);
        sub.ack(&p).await;
    }
    sub.expect_silence(Duration::from_millis(100)).await;
    let stats = b.handle.stats();
    let direct = Stats::get(&stats.deliveries_direct);
    assert!(direct > 0, "no delivery went out directly");
    assert_eq!(Stats::get(&stats.deliveries_direct_cut), 0);
    assert_eq!(Stats::get(&stats.messages_sent), 60);
    publisher.disconnect().await;
    sub.disconnect().await;
    b.shutdown().await;
}

/// A subscriber that stops reading: its socket fills, a direct write is cut short, and
/// the subscriber's connection writes the rest before anything else. Once it reads
/// again, every message arrives whole and in order (a write interleaved into the cut
/// packet would garble the stream and fail decoding).
#[tokio::test]
async fn a_direct_write_cut_short_is_finished_by_the_connection() {
    let b = TestBroker::start(settings()).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let stream = socket.connect(b.addr).await.unwrap();
    let mut sub = Raw::from_stream(stream);
    sub.send(&Packet::Connect(Connect {
        keep_alive: 0,
        ..connect_packet("slow-sub", true, 0, None)
    }))
    .await;
    assert!(matches!(sub.recv().await, Some(Packet::ConnAck(_))));
    sub.subscribe("big/#", QoS::AtMostOnce).await;
    let mut publisher = Raw::connect(b.addr, "pub", true).await;
    let stats = b.handle.stats();
    let payload = |i: u32| {
        let mut p = vec![(i % 251) as u8; 64 * 1024];
        p[..4].copy_from_slice(&i.to_be_bytes());
        p
    };
    // Publish one at a time until a direct write was cut short, then a few more (these
    // queue behind the rest).
    let mut sent = 0u32;
    let mut after_cut = 0;
    while after_cut < 3 {
        assert!(sent < 2000, "the subscriber's socket never filled");
        publisher
            .publish_acked("big/x", &payload(sent), QoS::AtLeastOnce, false, 1)
            .await;
        sent += 1;
        if Stats::get(&stats.deliveries_direct_cut) > 0 {
            after_cut += 1;
        }
        // Let the delivery go out before the next PUBLISH.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(Stats::get(&stats.deliveries_direct) > 0);
    for i in 0..sent {
        let p = sub.recv_publish().await;
        assert_eq!(&*p.topic, "big/x");
        assert_eq!(p.payload.len(), 64 * 1024, "message {i} cut");
        assert_eq!(p.payload[..4], i.to_be_bytes(), "message {i} out of order");
        assert!(p.payload[4..].iter().all(|&x| x == (i % 251) as u8));
    }
    sub.expect_silence(Duration::from_millis(100)).await;
    publisher.disconnect().await;
    sub.disconnect().await;
    b.shutdown().await;
}

/// A persistent subscriber whose idle connection lent its socket is taken over: later
/// messages go to the new connection only, and a message inflight on the old one is
/// resent on the new one.
#[tokio::test]
async fn a_takeover_moves_direct_delivery_to_the_new_connection() {
    let b = TestBroker::start(settings()).await;
    let mut old = Raw::connect(b.addr, "keeper", false).await;
    old.subscribe("k/#", QoS::AtLeastOnce).await;
    let mut publisher = Raw::connect(b.addr, "pub", true).await;
    publisher
        .publish_acked("k/1", b"one", QoS::AtLeastOnce, false, 1)
        .await;
    // Received, not acknowledged: inflight.
    let first = old.recv_publish().await;
    assert_eq!(&*first.topic, "k/1");
    let mut new = Raw::connect(b.addr, "keeper", false).await;
    old.expect_closed().await;
    let again = new.recv_publish().await;
    assert_eq!(&*again.topic, "k/1");
    assert!(again.dup);
    new.ack(&again).await;
    publisher
        .publish_acked("k/2", b"two", QoS::AtLeastOnce, false, 2)
        .await;
    let second = new.recv_publish().await;
    assert_eq!(&*second.topic, "k/2");
    new.ack(&second).await;
    new.expect_silence(Duration::from_millis(100)).await;
    assert!(Stats::get(&b.handle.stats().deliveries_direct) > 0);
    publisher.disconnect().await;
    new.disconnect().await;
    b.shutdown().await;
}
