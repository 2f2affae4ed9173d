//! Bad input: each offender is disconnected (will published where the spec says so) and
//! the broker keeps serving everyone else.

mod support;

use std::time::Duration;

use mqgate_broker_lite::BrokerSettings;
use mqgate_protocol::{Packet, QoS};
use support::*;

/// Connects an offender with a will, runs `offend`, asserts it is disconnected, that its
/// will arrives (or not), and that a bystander still gets service.
async fn check<F, Fut>(settings: BrokerSettings, will_expected: bool, offend: F)
where
    F: FnOnce(Raw) -> Fut,
    Fut: std::future::Future<Output = Raw>,
{
    let b = TestBroker::start(settings).await;
    let mut watcher = Raw::connect(b.addr, "watcher", true).await;
    watcher.subscribe("wills/#", QoS::AtMostOnce).await;
    let (offender, _) = Raw::connect_with(
        b.addr,
        connect_packet(
            "offender",
            true,
            2,
            Some(will("wills/offender", "bye", QoS::AtMostOnce, false)),
        ),
    )
    .await;
    let mut offender = offend(offender).await;
    offender.expect_closed().await;
    if will_expected {
        assert_eq!(watcher.recv_publish().await.payload, "bye");
    }
    let mut publ = Raw::connect(b.addr, "bystander", true).await;
    publ.publish_acked("wills/ok", b"still serving", QoS::AtLeastOnce, false, 1)
        .await;
    assert_eq!(watcher.recv_publish().await.payload, "still serving");
    b.shutdown().await;
}

#[tokio::test]
async fn garbage_bytes() {
    check(settings(), true, |mut r| async move {
        r.send_bytes(&[0x00, 0xff, 0xff, 0xff, 0xff, 0x7f]).await;
        r
    })
    .await;
}

#[tokio::test]
async fn garbage_instead_of_connect() {
    let b = TestBroker::start(settings()).await;
    let mut raw = Raw::open(b.addr).await;
    raw.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    raw.expect_closed().await;
    let ok = Raw::connect(b.addr, "after", true).await;
    ok.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn truncated_packet_then_silence_ends_by_keepalive() {
    check(settings(), true, |mut r| async move {
        // PUBLISH declaring 100 bytes, only 3 sent.
        r.send_bytes(&[0x30, 100, 0x00, 0x01, b'a']).await;
        r
    })
    .await;
}

#[tokio::test]
async fn truncated_connect_then_silence_ends_by_connect_timeout() {
    let b = TestBroker::start(settings()).await;
    let mut raw = Raw::open(b.addr).await;
    raw.send_bytes(&[0x10, 30, 0x00, 0x04, b'M']).await;
    raw.expect_closed().await;
    b.shutdown().await;
}

#[tokio::test]
async fn packet_over_max_size() {
    check(
        BrokerSettings {
            max_packet_size: 1024,
            ..settings()
        },
        true,
        |mut r| async move {
            r.send(&publish("big", &[7u8; 4096], QoS::AtMostOnce, false, 0))
                .await;
            r
        },
    )
    .await;
}

#[tokio::test]
async fn second_connect() {
    check(settings(), true, |mut r| async move {
        r.send(&Packet::Connect(connect_packet("offender", true, 2, None)))
            .await;
        r
    })
    .await;
}

#[tokio::test]
async fn publish_to_a_wildcard_topic() {
    check(settings(), true, |mut r| async move {
        // PUBLISH QoS 0, topic "a/+" (hand-encoded: the codec refuses to encode it).
        r.send_bytes(&[0x30, 7, 0x00, 0x03, b'a', b'/', b'+', b'h', b'i'])
            .await;
        r
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_in_a_topic() {
    check(settings(), true, |mut r| async move {
        r.send_bytes(&[0x30, 6, 0x00, 0x02, 0xc3, 0x28, b'h', b'i'])
            .await;
        r
    })
    .await;
}

#[tokio::test]
async fn subscribe_with_qos_3() {
    check(settings(), true, |mut r| async move {
        // SUBSCRIBE pkid 1, filter "a", options 0x03.
        r.send_bytes(&[0x82, 6, 0x00, 0x01, 0x00, 0x01, b'a', 0x03])
            .await;
        r
    })
    .await;
}

#[tokio::test]
async fn clean_disconnect_publishes_no_will() {
    check(settings(), false, |r| async move {
        let mut r = r;
        r.send(&Packet::Disconnect(Default::default())).await;
        r
    })
    .await;
}

#[tokio::test]
async fn keepalive_is_enforced_at_one_and_a_half_times() {
    let b = TestBroker::start(settings()).await;
    let (mut raw, _) = Raw::connect_with(b.addr, connect_packet("ka", true, 1, None)).await;
    let start = tokio::time::Instant::now();
    raw.expect_closed().await;
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "not before 1.5 x keepalive"
    );
    b.shutdown().await;
}
