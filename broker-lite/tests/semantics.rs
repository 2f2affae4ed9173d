//! End-to-end MQTT 3.1/3.1.1 semantics over real sockets against an in-process broker.

mod support;

use std::time::Duration;

use mqgate_broker_lite::BrokerSettings;
use mqgate_protocol::{Packet, ProtocolVersion, PubAck, QoS, ReasonCode};
use support::*;

const SHORT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn connect_levels_3_4_and_5_are_accepted_and_6_is_refused() {
    let b = TestBroker::start(settings()).await;
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let mut c = connect_packet("lvl", true, 30, None);
        c.protocol = version;
        let (raw, ack) = Raw::connect_with(b.addr, c).await;
        assert_eq!(ack.reason, ReasonCode::Success, "{version:?}");
        raw.disconnect().await;
    }
    let mut raw = Raw::open(b.addr).await;
    // CONNECT, protocol "MQTT" level 6.
    raw.send_bytes(&[0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 30])
        .await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::UnsupportedProtocolVersion),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    raw.expect_closed().await;
    b.shutdown().await;
}

#[tokio::test]
async fn empty_client_id_rules() {
    let b = TestBroker::start(settings()).await;
    let (raw, ack) = Raw::connect_with(b.addr, connect_packet("", true, 30, None)).await;
    assert_eq!(ack.reason, ReasonCode::Success);
    raw.disconnect().await;
    let (mut raw, ack) = Raw::connect_with(b.addr, connect_packet("", false, 30, None)).await;
    assert_eq!(ack.reason, ReasonCode::ClientIdentifierNotValid);
    raw.expect_closed().await;
    b.shutdown().await;
}

#[tokio::test]
async fn takeover_closes_the_old_connection_and_publishes_its_will() {
    let b = TestBroker::start(settings()).await;
    let mut watcher = Raw::connect(b.addr, "watcher", true).await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let (mut first, _) = Raw::connect_with(
        b.addr,
        connect_packet(
            "dup",
            true,
            30,
            Some(will("wills/dup", "gone", QoS::AtLeastOnce, false)),
        ),
    )
    .await;
    let second = Raw::connect(b.addr, "dup", true).await;
    first.expect_closed().await;
    let p = watcher.recv_publish().await;
    assert_eq!(&*p.topic, "wills/dup");
    assert_eq!(p.payload, "gone");
    second.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_sends_connect_is_dropped() {
    let b = TestBroker::start(settings()).await;
    let mut raw = Raw::open(b.addr).await;
    raw.expect_closed().await;
    b.shutdown().await;
}

#[tokio::test]
async fn qos_0_1_2_flows_in_both_directions() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    let ack = sub.subscribe("t/#", QoS::ExactlyOnce).await;
    assert_eq!(ack.reasons, [ReasonCode::GrantedQoS2]);
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publ.publish_acked("t/x", format!("m{i}").as_bytes(), qos, false, 10 + i as u16)
            .await;
        let p = sub.recv_publish().await;
        assert_eq!(p.qos, qos);
        assert_eq!(p.payload, format!("m{i}"));
        assert!(!p.retain);
        if qos != QoS::AtMostOnce {
            assert_ne!(p.pkid, 0);
        }
        sub.ack(&p).await;
    }
    b.shutdown().await;
}

#[tokio::test]
async fn qos_is_downgraded_to_the_granted_qos() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("d", QoS::AtMostOnce).await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("d", b"x", QoS::ExactlyOnce, false, 1)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(p.qos, QoS::AtMostOnce);
    b.shutdown().await;
}

#[tokio::test]
async fn inflight_window_holds_back_messages_until_acked() {
    let b = TestBroker::start(BrokerSettings {
        max_inflight: 2,
        ..settings()
    })
    .await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("w", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    for i in 0..3u16 {
        publ.publish_acked("w", &[i as u8], QoS::AtLeastOnce, false, i + 1)
            .await;
    }
    let p1 = sub.recv_publish().await;
    let _p2 = sub.recv_publish().await;
    sub.expect_silence(SHORT).await;
    sub.send(&Packet::PubAck(PubAck::new(p1.pkid))).await;
    let p3 = sub.recv_publish().await;
    assert_eq!(p3.payload[..], [2]);
    b.shutdown().await;
}

#[tokio::test]
async fn unacked_messages_are_resent_with_dup_on_reconnect() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "persist", false).await;
    sub.subscribe("r", QoS::ExactlyOnce).await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("r", b"one", QoS::AtLeastOnce, false, 1)
        .await;
    publ.publish_acked("r", b"two", QoS::ExactlyOnce, false, 2)
        .await;
    let a = sub.recv_publish().await;
    let c = sub.recv_publish().await;
    assert!(!a.dup && !c.dup);
    // PUBREC for the QoS 2 one: after reconnect the broker must resend PUBREL, not PUBLISH.
    sub.send(&Packet::PubRec(PubAck::new(c.pkid))).await;
    assert!(matches!(sub.recv().await, Some(Packet::PubRel(r)) if r.pkid == c.pkid));
    drop(sub);
    let (mut sub, ack) =
        Raw::connect_with(b.addr, connect_packet("persist", false, 30, None)).await;
    assert!(ack.session_present);
    let again = sub.recv_publish().await;
    assert!(again.dup);
    assert_eq!(again.pkid, a.pkid);
    assert_eq!(again.payload, "one");
    assert!(matches!(sub.recv().await, Some(Packet::PubRel(r)) if r.pkid == c.pkid));
    b.shutdown().await;
}

#[tokio::test]
async fn qos2_duplicate_before_pubrel_is_delivered_once() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("q2", QoS::ExactlyOnce).await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.send(&publish("q2", b"once", QoS::ExactlyOnce, false, 5))
        .await;
    assert!(matches!(publ.recv().await, Some(Packet::PubRec(_))));
    let mut dup = publish("q2", b"once", QoS::ExactlyOnce, false, 5);
    if let Packet::Publish(p) = &mut dup {
        p.dup = true;
    }
    publ.send(&dup).await;
    assert!(matches!(publ.recv().await, Some(Packet::PubRec(_))));
    publ.send(&Packet::PubRel(PubAck::new(5))).await;
    assert!(matches!(publ.recv().await, Some(Packet::PubComp(_))));
    let p = sub.recv_publish().await;
    sub.ack(&p).await;
    sub.expect_silence(SHORT).await;
    b.shutdown().await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    let ack = sub
        .subscribe_many(&[
            ("a/+", QoS::AtMostOnce),
            ("a/#", QoS::ExactlyOnce),
            ("a/b", QoS::AtLeastOnce),
        ])
        .await;
    assert_eq!(ack.reasons.len(), 3);
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("a/b", b"x", QoS::ExactlyOnce, false, 1)
        .await;
    let p = sub.recv_publish().await;
    assert_eq!(p.qos, QoS::ExactlyOnce);
    sub.ack(&p).await;
    sub.expect_silence(SHORT).await;
    publ.publish_acked("a", b"parent", QoS::AtMostOnce, false, 0)
        .await;
    assert_eq!(sub.recv_publish().await.payload, "parent", "a/# matches a");
    b.shutdown().await;
}

#[tokio::test]
async fn sys_topics_are_published_and_not_matched_by_hash() {
    let b = TestBroker::start(BrokerSettings {
        sys_interval: Duration::from_millis(100),
        ..settings()
    })
    .await;
    let mut all = Raw::connect(b.addr, "all", true).await;
    all.subscribe("#", QoS::AtMostOnce).await;
    let mut sys = Raw::connect(b.addr, "sys", true).await;
    sys.subscribe("$SYS/broker/uptime", QoS::AtMostOnce).await;
    let p = sys.recv_publish().await;
    assert!(p.payload.ends_with(b" seconds"), "{:?}", p.payload);
    sys.subscribe("$SYS/broker/clients/connected", QoS::AtMostOnce)
        .await;
    // The retained value may predate the second client; a later one must say 2.
    loop {
        let p = sys.recv_publish().await;
        if &*p.topic == "$SYS/broker/clients/connected" && p.payload == "2" {
            break;
        }
    }
    all.expect_silence(SHORT).await;
    b.shutdown().await;
}

#[tokio::test]
async fn retained_messages_follow_3_1_1() {
    let b = TestBroker::start(settings()).await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("ret/a", b"kept", QoS::AtLeastOnce, true, 1)
        .await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("ret/+", QoS::AtLeastOnce).await;
    let p = sub.recv_publish().await;
    assert!(p.retain, "retained-on-subscribe delivery has retain set");
    assert_eq!(p.payload, "kept");
    sub.ack(&p).await;
    publ.publish_acked("ret/a", b"live", QoS::AtLeastOnce, true, 2)
        .await;
    let p = sub.recv_publish().await;
    assert!(
        !p.retain,
        "delivery to an established subscription has retain clear"
    );
    sub.ack(&p).await;
    publ.publish_acked("ret/a", b"", QoS::AtLeastOnce, true, 3)
        .await;
    let p = sub.recv_publish().await;
    assert!(p.payload.is_empty());
    sub.ack(&p).await;
    let mut late = Raw::connect(b.addr, "late", true).await;
    late.subscribe("ret/#", QoS::AtLeastOnce).await;
    late.expect_silence(SHORT).await;
    b.shutdown().await;
}

#[tokio::test]
async fn will_on_keepalive_timeout_with_retain_and_qos() {
    let b = TestBroker::start(settings()).await;
    let (mut dead, _) = Raw::connect_with(
        b.addr,
        connect_packet(
            "sleepy",
            true,
            1,
            Some(will("w/sleepy", "ka", QoS::AtLeastOnce, true)),
        ),
    )
    .await;
    dead.expect_closed().await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("w/#", QoS::ExactlyOnce).await;
    let p = sub.recv_publish().await;
    assert_eq!(p.payload, "ka");
    assert!(
        p.retain,
        "will retain respected: it is a retained message now"
    );
    assert_eq!(p.qos, QoS::AtLeastOnce, "will QoS respected");
    b.shutdown().await;
}

#[tokio::test]
async fn will_when_tcp_is_cut_but_not_after_disconnect() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "sub", true).await;
    sub.subscribe("w/#", QoS::AtLeastOnce).await;
    let (cut, _) = Raw::connect_with(
        b.addr,
        connect_packet(
            "cut",
            true,
            60,
            Some(will("w/cut", "lost", QoS::AtMostOnce, false)),
        ),
    )
    .await;
    drop(cut);
    let p = sub.recv_publish().await;
    assert_eq!(p.payload, "lost");
    let (clean, _) = Raw::connect_with(
        b.addr,
        connect_packet(
            "clean",
            true,
            60,
            Some(will("w/clean", "no", QoS::AtMostOnce, false)),
        ),
    )
    .await;
    clean.disconnect().await;
    sub.expect_silence(SHORT).await;
    b.shutdown().await;
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queues_in_order() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "keeper", false).await;
    sub.subscribe("q/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("q/0", b"qos0", QoS::AtMostOnce, false, 0)
        .await;
    for i in 1..=5u16 {
        publ.publish_acked("q/1", format!("{i}").as_bytes(), QoS::AtLeastOnce, false, i)
            .await;
    }
    let (mut sub, ack) = Raw::connect_with(b.addr, connect_packet("keeper", false, 30, None)).await;
    assert!(ack.session_present);
    for i in 1..=5 {
        let p = sub.recv_publish().await;
        assert_eq!(
            p.payload,
            format!("{i}"),
            "in order; QoS 0 not queued by default"
        );
        sub.ack(&p).await;
    }
    sub.expect_silence(SHORT).await;
    b.shutdown().await;
}

#[tokio::test]
async fn offline_queue_is_bounded_and_can_include_qos0() {
    let b = TestBroker::start(BrokerSettings {
        max_queued_messages: 3,
        queue_qos0_messages: true,
        ..settings()
    })
    .await;
    let mut sub = Raw::connect(b.addr, "bounded", false).await;
    sub.subscribe("b", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("b", b"0", QoS::AtMostOnce, false, 0)
        .await;
    for i in 1..=4u16 {
        publ.publish_acked("b", format!("{i}").as_bytes(), QoS::AtLeastOnce, false, i)
            .await;
    }
    let mut sub = Raw::connect(b.addr, "bounded", false).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = sub.recv_publish().await;
        got.push(String::from_utf8(p.payload.to_vec()).unwrap());
        sub.ack(&p).await;
    }
    assert_eq!(
        got,
        ["0", "1", "2"],
        "the newest messages beyond the limit are dropped"
    );
    sub.expect_silence(SHORT).await;
    assert_eq!(
        mqgate_broker_lite::Stats::get(&b.handle.stats().messages_dropped),
        2,
        "drops are counted"
    );
    b.shutdown().await;
}

#[tokio::test]
async fn clean_session_discards_the_persistent_one() {
    let b = TestBroker::start(settings()).await;
    let mut sub = Raw::connect(b.addr, "c", false).await;
    sub.subscribe("x", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let (sub, ack) = Raw::connect_with(b.addr, connect_packet("c", true, 30, None)).await;
    assert!(!ack.session_present);
    sub.disconnect().await;
    let (mut sub, ack) = Raw::connect_with(b.addr, connect_packet("c", false, 30, None)).await;
    assert!(!ack.session_present);
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("x", b"gone", QoS::AtLeastOnce, false, 1)
        .await;
    sub.expect_silence(SHORT).await;
    b.shutdown().await;
}

#[tokio::test]
async fn max_connections_is_enforced() {
    let b = TestBroker::start(BrokerSettings {
        max_connections: 1,
        ..settings()
    })
    .await;
    let first = Raw::connect(b.addr, "one", true).await;
    let mut second = Raw::open(b.addr).await;
    second
        .send(&Packet::Connect(connect_packet("two", true, 30, None)))
        .await;
    assert!(second.recv().await.is_none(), "refused by closing");
    first.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn rumqttc_client_publishes_and_receives() {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions};
    let b = TestBroker::start(settings()).await;
    let mut opts = MqttOptions::new("rumq", "127.0.0.1", b.addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 10);
    client
        .subscribe("rq/#", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        let mut published = false;
        loop {
            match events.poll().await.unwrap() {
                Event::Incoming(Incoming::SubAck(_)) if !published => {
                    client
                        .publish("rq/1", rumqttc::QoS::AtLeastOnce, false, "hello")
                        .await
                        .unwrap();
                    published = true;
                }
                Event::Incoming(Incoming::Publish(p)) => break p,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.payload, "hello");
    assert_eq!(got.qos, rumqttc::QoS::AtLeastOnce);
    b.shutdown().await;
}

#[tokio::test]
async fn a_slow_subscriber_applies_backpressure_instead_of_dropping() {
    let b = TestBroker::start(BrokerSettings {
        max_inflight: 1,
        max_queued_messages: 5,
        ..settings()
    })
    .await;
    let mut sub = Raw::connect(b.addr, "slow", true).await;
    sub.subscribe("bp", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, "fast", true).await;
    const N: u16 = 20;
    for i in 1..=N {
        publ.send(&publish("bp", &i.to_be_bytes(), QoS::AtLeastOnce, false, i))
            .await;
    }
    // The subscriber acks nothing yet: the publisher gets only the acks that fit
    // (1 inflight + 5 queued + the one that crossed the limit), then is not read.
    let mut early = 0;
    while let Ok(Some(Packet::PubAck(_))) = publ.recv_within(SHORT).await {
        early += 1;
    }
    assert!(
        early < N as usize,
        "publisher was held back, got {early} acks"
    );
    for i in 1..=N {
        let p = sub.recv_publish().await;
        assert_eq!(p.payload[..], i.to_be_bytes(), "in order, nothing dropped");
        sub.ack(&p).await;
    }
    for _ in early..N as usize {
        assert!(matches!(publ.recv().await, Some(Packet::PubAck(_))));
    }
    assert_eq!(
        mqgate_broker_lite::Stats::get(&b.handle.stats().messages_dropped),
        0
    );
    b.shutdown().await;
}
