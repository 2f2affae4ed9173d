//! End-to-end MQTT 5 semantics with raw codec clients (every property under control).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqgate_broker_lite::{
    AllowAll, AuthFuture, Authorizer, BrokerSettings, ClientInfo, ConnectRequest, Identity, Stats,
};
use mqgate_protocol::{
    Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling,
    SubscriptionOptions, Unsubscribe,
};
use support::*;

const SHORT: Duration = Duration::from_millis(300);

fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

fn pub5(topic: &str, payload: &'static str, qos: QoS, retain: bool, props: Properties) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: Arc::from(topic),
        pkid: if qos == QoS::AtMostOnce { 0 } else { 1 },
        payload: Bytes::from_static(payload.as_bytes()),
        properties: props,
    })
}

/// Polls, with fresh clean subscribers, until no retained message is on `topic`: a
/// clock for "the expiry interval has passed" that needs no sleep.
async fn wait_until_retained_gone(b: &TestBroker, topic: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (mut probe, _) = raw_v5(b.addr, connect_v5("probe", true, 0)).await;
        probe.subscribe(topic, QoS::AtMostOnce).await;
        let got = probe.recv_within(Duration::from_millis(200)).await;
        probe.disconnect().await;
        if got.is_err() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "retained message never expired"
        );
    }
}

#[tokio::test]
async fn connack_carries_the_negotiated_properties() {
    let s = BrokerSettings {
        receive_maximum: 7,
        topic_alias_maximum: 3,
        max_packet_size: 4096,
        max_keep_alive: 30,
        response_information: Some("responses/".into()),
        ..settings()
    };
    let b = TestBroker::start(s).await;
    let mut c = connect_v5("", true, 0);
    c.keep_alive = 0;
    c.properties.request_response_information = Some(1);
    let (c, ack) = raw_v5(b.addr, c).await;
    let p = &ack.properties;
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.topic_alias_maximum, Some(3));
    assert_eq!(p.maximum_packet_size, Some(4096));
    assert_eq!(p.server_keep_alive, Some(30));
    assert_eq!(p.response_information.as_deref(), Some("responses/"));
    assert!(p
        .assigned_client_identifier
        .as_deref()
        .is_some_and(|id| id.starts_with("auto-")));
    c.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn properties_are_forwarded_unchanged_and_in_order() {
    let b = TestBroker::start(settings()).await;
    let (mut sub, _) = raw_v5(b.addr, connect_v5("sub", true, 0)).await;
    sub.request_suback(subscribe_v5("req/#", opts(QoS::AtLeastOnce), Some(42)))
        .await;
    let (mut publ, _) = raw_v5(b.addr, connect_v5("pub", true, 0)).await;
    let props: Properties = mqgate_protocol::PropertyValues {
        payload_format_indicator: Some(1),
        content_type: Some(Arc::from("application/json")),
        response_topic: Some(Arc::from("resp/pub")),
        correlation_data: Some(Bytes::from_static(b"\x00corr")),
        user_properties: vec![
            ("b".into(), "2".into()),
            ("a".into(), "1".into()),
            ("b".into(), "3".into()),
        ],
        message_expiry_interval: Some(600),
        ..mqgate_protocol::PropertyValues::default()
    }
    .into();
    publ.send(&pub5("req/x", "{}", QoS::AtLeastOnce, false, props.clone()))
        .await;
    match publ.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let got = sub.recv_publish().await;
    let g = &got.properties;
    assert_eq!(g.payload_format_indicator, Some(1));
    assert_eq!(g.content_type, props.content_type);
    assert_eq!(g.response_topic, props.response_topic);
    assert_eq!(g.correlation_data, props.correlation_data);
    assert_eq!(g.user_properties, props.user_properties);
    assert_eq!(g.subscription_identifiers, [42]);
    let left = g.message_expiry_interval.unwrap();
    assert!((590..=600).contains(&left), "{left}");
    b.shutdown().await;
}

#[tokio::test]
async fn publish_acks_carry_reason_codes() {
    struct DenyPrivate;
    impl Authorizer for DenyPrivate {
        fn authenticate<'a>(&'a self, i: &'a Identity, r: ConnectRequest<'a>) -> AuthFuture<'a> {
            AllowAll.authenticate(i, r)
        }
        fn authorize_publish(&self, _: &ClientInfo, topic: &str, _: QoS, _: bool) -> bool {
            !topic.starts_with("private")
        }
        fn authorize_subscribe(&self, _: &ClientInfo, filter: &str, _: QoS) -> bool {
            !filter.starts_with("private")
        }
        fn authorize_delivery(&self, _: &ClientInfo, _: &str) -> bool {
            true
        }
    }
    let b = TestBroker::start_with(settings(), Arc::new(DenyPrivate)).await;
    let (mut c, _) = raw_v5(b.addr, connect_v5("c", true, 0)).await;
    c.send(&pub5(
        "nobody/here",
        "x",
        QoS::AtLeastOnce,
        false,
        Properties::default(),
    ))
    .await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::NoMatchingSubscribers),
        other => panic!("expected PUBACK 0x10, got {other:?}"),
    }
    c.send(&pub5(
        "private/x",
        "x",
        QoS::AtLeastOnce,
        false,
        Properties::default(),
    ))
    .await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.reason, ReasonCode::NotAuthorized);
            assert!(
                a.properties.reason_string.is_some(),
                "problem information asked"
            );
        }
        other => panic!("expected PUBACK 0x87, got {other:?}"),
    }
    c.send(&pub5(
        "private/x",
        "x",
        QoS::ExactlyOnce,
        false,
        Properties::default(),
    ))
    .await;
    match c.recv().await {
        Some(Packet::PubRec(a)) => assert_eq!(a.reason, ReasonCode::NotAuthorized),
        other => panic!("expected PUBREC 0x87, got {other:?}"),
    }
    let mut both = subscribe_v5("ok/#", opts(QoS::AtLeastOnce), None);
    if let Packet::Subscribe(s) = &mut both {
        s.filters.push(mqgate_protocol::SubscribeFilter {
            filter: "private/#".into(),
            options: opts(QoS::AtLeastOnce),
        });
    }
    let ack = c.request_suback(both).await;
    assert_eq!(
        ack.reasons,
        [ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized]
    );
    c.send(&Packet::Unsubscribe(Unsubscribe {
        pkid: 3,
        filters: vec!["ok/#".into(), "never/#".into()],
        properties: Properties::default(),
    }))
    .await;
    match c.recv().await {
        Some(Packet::UnsubAck(a)) => assert_eq!(
            a.reasons,
            [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
        ),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    c.disconnect().await;
    // No problem information asked: no reason string.
    let mut quiet = connect_v5("quiet", true, 0);
    quiet.properties.request_problem_information = Some(0);
    let (mut q, _) = raw_v5(b.addr, quiet).await;
    q.send(&pub5(
        "private/x",
        "x",
        QoS::AtLeastOnce,
        false,
        Properties::default(),
    ))
    .await;
    match q.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.reason, ReasonCode::NotAuthorized);
            assert_eq!(a.properties.reason_string, None);
        }
        other => panic!("expected PUBACK 0x87, got {other:?}"),
    }
    b.shutdown().await;
}

#[tokio::test]
async fn no_local_retain_as_published_and_retain_handling() {
    let b = TestBroker::start(settings()).await;
    let (mut me, _) = raw_v5(b.addr, connect_v5("me", true, 0)).await;
    let no_local = SubscriptionOptions {
        qos: QoS::AtMostOnce,
        no_local: true,
        ..SubscriptionOptions::default()
    };
    me.request_suback(subscribe_v5("nl/t", no_local, None))
        .await;
    me.send(&pub5(
        "nl/t",
        "mine",
        QoS::AtMostOnce,
        false,
        Properties::default(),
    ))
    .await;
    let (mut other, _) = raw_v5(b.addr, connect_v5("other", true, 0)).await;
    other
        .send(&pub5(
            "nl/t",
            "theirs",
            QoS::AtMostOnce,
            false,
            Properties::default(),
        ))
        .await;
    assert_eq!(
        me.recv_publish().await.payload,
        "theirs",
        "own message not echoed"
    );

    // Retained message, then subscriptions with each retain handling.
    other
        .send(&pub5(
            "r/t",
            "kept",
            QoS::AtLeastOnce,
            true,
            Properties::default(),
        ))
        .await;
    assert!(matches!(other.recv().await, Some(Packet::PubAck(_))));
    let rap = SubscriptionOptions {
        qos: QoS::AtMostOnce,
        retain_as_published: true,
        ..SubscriptionOptions::default()
    };
    let mut send_if_new = opts(QoS::AtMostOnce);
    send_if_new.retain_handling = RetainHandling::SendIfNew;
    let mut never = opts(QoS::AtMostOnce);
    never.retain_handling = RetainHandling::DoNotSend;
    let (mut s, _) = raw_v5(b.addr, connect_v5("s", true, 0)).await;
    s.request_suback(subscribe_v5("r/#", send_if_new, None))
        .await;
    let first = s.recv_publish().await;
    assert!(first.retain && first.payload == "kept");
    s.request_suback(subscribe_v5("r/#", send_if_new, None))
        .await;
    s.request_suback(subscribe_v5("r/+", never, None)).await;
    s.expect_silence(SHORT).await;
    s.request_suback(subscribe_v5("r/t", opts(QoS::AtMostOnce), None))
        .await;
    assert_eq!(
        s.recv_publish().await.payload,
        "kept",
        "handling 0 always sends"
    );
    s.request_suback(subscribe_v5("r/t", rap, None)).await;
    assert!(s.recv_publish().await.retain);
    // A live retained publish: the flag is kept only with Retain As Published.
    other
        .send(&pub5(
            "r/t",
            "live",
            QoS::AtMostOnce,
            true,
            Properties::default(),
        ))
        .await;
    let live = s.recv_publish().await;
    assert_eq!(live.payload, "live");
    assert!(live.retain, "one merged delivery, Retain As Published wins");
    let (mut plain, _) = raw_v5(b.addr, connect_v5("plain", true, 0)).await;
    let mut no_retained = opts(QoS::AtMostOnce);
    no_retained.retain_handling = RetainHandling::DoNotSend;
    plain
        .request_suback(subscribe_v5("r/t", no_retained, None))
        .await;
    other
        .send(&pub5(
            "r/t",
            "again",
            QoS::AtMostOnce,
            true,
            Properties::default(),
        ))
        .await;
    assert!(!plain.recv_publish().await.retain);
    b.shutdown().await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_with_every_identifier() {
    let b = TestBroker::start(settings()).await;
    let (mut s, _) = raw_v5(b.addr, connect_v5("s", true, 0)).await;
    s.request_suback(subscribe_v5("a/+", opts(QoS::AtMostOnce), Some(1)))
        .await;
    s.request_suback(subscribe_v5("a/#", opts(QoS::AtLeastOnce), Some(2)))
        .await;
    let mut p = Raw::connect(b.addr, "p311", true).await;
    p.publish_acked("a/b", b"x", QoS::AtLeastOnce, false, 1)
        .await;
    let got = s.recv_publish().await;
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let mut ids = got.properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    s.expect_silence(SHORT).await;
    b.shutdown().await;
}

#[tokio::test]
async fn shared_subscriptions_split_messages_and_skip_retained() {
    let b = TestBroker::start(settings()).await;
    let mut publ = Raw::connect(b.addr, "publ", true).await;
    publ.publish_acked("jobs/1", b"retained", QoS::AtLeastOnce, true, 1)
        .await;
    let (mut w1, _) = raw_v5(b.addr, connect_v5("w1", true, 0)).await;
    w1.request_suback(subscribe_v5(
        "$share/g/jobs/+",
        opts(QoS::AtLeastOnce),
        None,
    ))
    .await;
    // A 3.1.1 member of the same group (mosquitto allows it).
    let mut w2 = Raw::connect(b.addr, "w2", true).await;
    w2.subscribe("$share/g/jobs/+", QoS::AtLeastOnce).await;
    let (mut watcher, _) = raw_v5(b.addr, connect_v5("watcher", true, 0)).await;
    watcher
        .request_suback(subscribe_v5(
            "$share/other/jobs/#",
            opts(QoS::AtMostOnce),
            None,
        ))
        .await;
    w1.expect_silence(SHORT).await;
    w2.expect_silence(Duration::from_millis(1)).await;
    for i in 0..10u16 {
        publ.publish_acked(
            "jobs/1",
            format!("{i}").as_bytes(),
            QoS::AtLeastOnce,
            false,
            i + 2,
        )
        .await;
    }
    let mut seen = Vec::new();
    for _ in 0..10 {
        assert!(watcher.recv_publish().await.payload.len() == 1);
    }
    let mut n1 = 0;
    let mut n2 = 0;
    while seen.len() < 10 {
        tokio::select! {
            p = w1.recv_publish() => { w1.ack(&p).await; n1 += 1; seen.push(p.payload); }
            p = w2.recv_publish() => { w2.ack(&p).await; n2 += 1; seen.push(p.payload); }
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10, "each message to exactly one member");
    assert!(n1 > 0 && n2 > 0, "both members served: {n1} / {n2}");
    w1.expect_silence(SHORT).await;
    w2.expect_silence(Duration::from_millis(1)).await;
    b.shutdown().await;
}

#[tokio::test]
async fn mixed_versions_keep_qos_and_retain_and_drop_properties_for_3_1_1() {
    let b = TestBroker::start(settings()).await;
    let mut old = Raw::connect(b.addr, "old", true).await;
    old.subscribe("mix/#", QoS::ExactlyOnce).await;
    let (mut new, _) = raw_v5(b.addr, connect_v5("new", true, 0)).await;
    new.request_suback(subscribe_v5("mix/#", opts(QoS::ExactlyOnce), Some(5)))
        .await;
    let props = mqgate_protocol::PropertyValues {
        user_properties: vec![("k".into(), "v".into())],
        content_type: Some(Arc::from("text/plain")),
        ..mqgate_protocol::PropertyValues::default()
    }
    .into();
    new.send(&pub5("mix/a", "from5", QoS::AtLeastOnce, false, props))
        .await;
    let got = old.recv_publish().await;
    assert_eq!(
        (got.qos, got.payload.as_ref()),
        (QoS::AtLeastOnce, &b"from5"[..])
    );
    assert!(got.properties.is_empty());
    old.ack(&got).await;
    // Its own PUBACK and its own copy, in either order.
    let mut mine = None;
    for _ in 0..2 {
        match new.recv().await {
            Some(Packet::PubAck(_)) => {}
            Some(Packet::Publish(p)) => mine = Some(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mine = mine.unwrap();
    assert_eq!(mine.properties.user_properties.len(), 1);
    new.ack(&mine).await;
    let mut old_pub = Raw::connect(b.addr, "old-pub", true).await;
    old_pub
        .publish_acked("mix/b", b"from311", QoS::ExactlyOnce, true, 9)
        .await;
    let got = new.recv_publish().await;
    assert_eq!(got.qos, QoS::ExactlyOnce);
    assert_eq!(got.properties.subscription_identifiers, [5]);
    assert!(!got.retain);
    b.shutdown().await;
}

#[tokio::test]
async fn topic_aliases_work_both_ways() {
    let b = TestBroker::start(settings()).await;
    let mut c = connect_v5("sub", true, 0);
    c.properties.topic_alias_maximum = Some(1);
    let (mut sub, _) = raw_v5(b.addr, c).await;
    sub.request_suback(subscribe_v5("al/#", opts(QoS::AtMostOnce), None))
        .await;
    let (mut publ, _) = raw_v5(b.addr, connect_v5("pub", true, 0)).await;
    let alias = |a| {
        mqgate_protocol::PropertyValues {
            topic_alias: Some(a),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into()
    };
    // Inbound: define alias 1, then use it with an empty topic.
    publ.send(&pub5("al/one", "1", QoS::AtMostOnce, false, alias(1)))
        .await;
    publ.send(&pub5("", "2", QoS::AtMostOnce, false, alias(1)))
        .await;
    publ.send(&pub5(
        "al/two",
        "3",
        QoS::AtMostOnce,
        false,
        Properties::default(),
    ))
    .await;
    // Outbound: the broker defines alias 1 for al/one, reuses it, sends al/two in full.
    let m1 = sub.recv_publish().await;
    assert_eq!((&*m1.topic, m1.properties.topic_alias), ("al/one", Some(1)));
    let m2 = sub.recv_publish().await;
    assert_eq!((&*m2.topic, m2.properties.topic_alias), ("", Some(1)));
    assert_eq!(m2.payload, "2");
    let m3 = sub.recv_publish().await;
    assert_eq!((&*m3.topic, m3.properties.topic_alias), ("al/two", None));
    b.shutdown().await;
}

#[tokio::test]
async fn packets_above_the_client_maximum_are_dropped_and_counted() {
    // An inflight window of 1: the dropped QoS 1 message must count as delivered, or the
    // next one would never be sent.
    let s = BrokerSettings {
        max_inflight: 1,
        ..settings()
    };
    let b = TestBroker::start(s).await;
    let mut c = connect_v5("small", true, 0);
    c.properties.maximum_packet_size = Some(64);
    let (mut sub, _) = raw_v5(b.addr, c).await;
    sub.request_suback(subscribe_v5("big/#", opts(QoS::AtLeastOnce), None))
        .await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("big/a", &[7u8; 200], QoS::AtLeastOnce, false, 1)
        .await;
    publ.publish_acked("big/a", b"small", QoS::AtLeastOnce, false, 2)
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(got.payload, "small");
    sub.ack(&got).await;
    assert_eq!(Stats::get(&b.handle.stats().packets_too_large), 1);
    b.shutdown().await;
}

#[tokio::test]
async fn message_expiry_applies_to_retained_and_queued_messages() {
    let b = TestBroker::start(settings()).await;
    let (mut s, _) = raw_v5(b.addr, connect_v5("offline", true, 300)).await;
    s.request_suback(subscribe_v5("exp/#", opts(QoS::AtLeastOnce), None))
        .await;
    s.disconnect().await;
    let (mut publ, _) = raw_v5(b.addr, connect_v5("pub", true, 0)).await;
    let expiring = mqgate_protocol::PropertyValues {
        message_expiry_interval: Some(1),
        ..mqgate_protocol::PropertyValues::default()
    }
    .into();
    publ.send(&pub5("exp/r", "short", QoS::AtLeastOnce, true, expiring))
        .await;
    assert!(matches!(publ.recv().await, Some(Packet::PubAck(_))));
    publ.send(&pub5(
        "exp/q",
        "lasting",
        QoS::AtLeastOnce,
        false,
        Properties::default(),
    ))
    .await;
    assert!(matches!(publ.recv().await, Some(Packet::PubAck(_))));
    // The retained copy is sent with the time left, while it lasts.
    let (mut early, _) = raw_v5(b.addr, connect_v5("early", true, 0)).await;
    early
        .request_suback(subscribe_v5("exp/r", opts(QoS::AtMostOnce), None))
        .await;
    let r = early.recv_publish().await;
    assert_eq!(r.properties.message_expiry_interval, Some(1));
    wait_until_retained_gone(&b, "exp/r").await;
    // The queued copy of the expired message is never delivered; the other one is.
    let (mut s, ack) = raw_v5(b.addr, connect_v5("offline", false, 300)).await;
    assert!(ack.session_present);
    let got = s.recv_publish().await;
    assert_eq!(got.payload, "lasting");
    s.ack(&got).await;
    s.expect_silence(SHORT).await;
    assert!(Stats::get(&b.handle.stats().messages_expired) >= 2);
    b.shutdown().await;
}

#[tokio::test]
async fn server_disconnects_carry_reason_codes() {
    let b = TestBroker::start(settings()).await;
    let (mut first, _) = raw_v5(b.addr, connect_v5("dup", true, 0)).await;
    let (_second, _) = raw_v5(b.addr, connect_v5("dup", true, 0)).await;
    assert_eq!(
        first.expect_disconnect().await,
        ReasonCode::SessionTakenOver
    );
    let mut c = connect_v5("ka", true, 0);
    c.keep_alive = 1;
    let (mut idle, _) = raw_v5(b.addr, c).await;
    assert_eq!(idle.expect_disconnect().await, ReasonCode::KeepAliveTimeout);
    let (mut last, _) = raw_v5(b.addr, connect_v5("last", true, 0)).await;
    let stop = tokio::spawn(async move { b.shutdown().await });
    assert_eq!(
        last.expect_disconnect().await,
        ReasonCode::ServerShuttingDown
    );
    stop.await.unwrap();
}

#[tokio::test]
async fn session_expiry_ends_the_session_after_the_interval() {
    let b = TestBroker::start(settings()).await;
    let (mut c, ack) = raw_v5(b.addr, connect_v5("exp", true, 1)).await;
    assert!(!ack.session_present);
    c.request_suback(subscribe_v5("se/#", opts(QoS::AtLeastOnce), None))
        .await;
    c.disconnect().await;
    let (c, ack) = raw_v5(b.addr, connect_v5("exp", false, 1)).await;
    assert!(ack.session_present, "resumed within the interval");
    // Expiry 0 at this connection: the session ends at disconnect.
    c.disconnect().await;
    let (c, ack) = raw_v5(b.addr, connect_v5("exp", false, 0)).await;
    assert!(ack.session_present);
    c.disconnect().await;
    let (c, ack) = raw_v5(b.addr, connect_v5("exp", false, 1)).await;
    assert!(!ack.session_present, "expiry 0 ended it at the disconnect");
    c.disconnect().await;
    // Wait (without sleeping) until more than the 1 s interval has passed.
    let (mut clock, _) = raw_v5(b.addr, connect_v5("clock", true, 0)).await;
    let two = mqgate_protocol::PropertyValues {
        message_expiry_interval: Some(2),
        ..mqgate_protocol::PropertyValues::default()
    }
    .into();
    clock
        .send(&pub5("clock/t", "tick", QoS::AtMostOnce, true, two))
        .await;
    clock.disconnect().await;
    wait_until_retained_gone(&b, "clock/t").await;
    let (c, ack) = raw_v5(b.addr, connect_v5("exp", false, 1)).await;
    assert!(!ack.session_present, "the session expired");
    c.disconnect().await;
    b.shutdown().await;
}

#[tokio::test]
async fn will_delay_is_cancelled_by_a_resume_and_capped_by_session_expiry() {
    let b = TestBroker::start(settings()).await;
    let (mut watcher, _) = raw_v5(b.addr, connect_v5("watcher", true, 0)).await;
    watcher
        .request_suback(subscribe_v5("will/#", opts(QoS::AtMostOnce), None))
        .await;
    let with_will = |id: &str, delay: u32, expiry: u32, clean: bool| {
        let mut c = connect_v5(id, clean, expiry);
        let mut w = will(&format!("will/{id}"), "gone", QoS::AtMostOnce, false);
        w.properties.will_delay_interval = Some(delay);
        c.will = Some(w);
        c
    };
    // Delay 1 s, resumed at once: never published.
    let (c, _) = raw_v5(b.addr, with_will("resumed", 1, 60, true)).await;
    drop(c);
    let (back, ack) = raw_v5(b.addr, connect_v5("resumed", false, 60)).await;
    assert!(ack.session_present);
    // Delay 1 s, not resumed: published after the delay.
    let (c, _) = raw_v5(b.addr, with_will("late", 1, 60, true)).await;
    drop(c);
    let got = watcher.recv_publish().await;
    assert_eq!(&*got.topic, "will/late");
    // Delay 600 s but session expiry 1 s: published when the session ends.
    let (c, _) = raw_v5(b.addr, with_will("capped", 600, 1, true)).await;
    drop(c);
    let got = watcher.recv_publish().await;
    assert_eq!(&*got.topic, "will/capped");
    // DISCONNECT 0x04 publishes the will at once.
    let (mut c, _) = raw_v5(b.addr, with_will("asked", 0, 0, true)).await;
    c.send(&Packet::Disconnect(mqgate_protocol::Disconnect {
        reason: ReasonCode::DisconnectWithWillMessage,
        properties: Properties::default(),
    }))
    .await;
    assert_eq!(&*watcher.recv_publish().await.topic, "will/asked");
    watcher.expect_silence(SHORT).await;
    drop(back);
    b.shutdown().await;
}

#[tokio::test]
async fn v5_works_over_an_in_process_duplex_stream() {
    let b = TestBroker::start(settings()).await;
    let (client, server) = tokio::io::duplex(64 * 1024);
    let handle = b.handle.clone();
    tokio::spawn(async move {
        handle
            .serve_connection(server, Identity::new("127.0.0.1:1".parse().unwrap()))
            .await
    });
    let mut bridge = DuplexClient::new(client, ProtocolVersion::V5);
    let mut c = connect_v5("bridge", true, 0);
    c.properties.topic_alias_maximum = Some(0);
    bridge.send(&Packet::Connect(c)).await;
    assert!(matches!(bridge.recv().await, Some(Packet::ConnAck(_))));
    let no_local = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        ..SubscriptionOptions::default()
    };
    bridge.send(&subscribe_v5("up/#", no_local, None)).await;
    assert!(matches!(bridge.recv().await, Some(Packet::SubAck(_))));
    bridge
        .send(&pub5(
            "up/x",
            "echo?",
            QoS::AtMostOnce,
            false,
            Properties::default(),
        ))
        .await;
    let mut dev = Raw::connect(b.addr, "device", true).await;
    dev.publish_acked("up/x", b"from device", QoS::AtMostOnce, true, 0)
        .await;
    match bridge.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!(p.payload, "from device", "own message not echoed");
            assert!(p.retain, "retain as published");
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    b.shutdown().await;
}

/// Receives `n` QoS 1 PUBLISHes without acknowledging them, then expects nothing more.
async fn take_unacked(c: &mut Raw, n: usize) -> Vec<Publish> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        let p = c.recv_publish().await;
        assert_eq!(p.qos, QoS::AtLeastOnce);
        got.push(p);
    }
    c.expect_silence(SHORT).await;
    got
}

#[tokio::test]
async fn the_window_towards_a_v5_client_is_its_receive_maximum() {
    let b = TestBroker::start(BrokerSettings {
        max_inflight: 20,
        ..settings()
    })
    .await;
    let mut c = connect_v5("rm100", true, 0);
    c.properties.receive_maximum = Some(100);
    let (mut v5, _) = raw_v5(b.addr, c).await;
    v5.request_suback(subscribe_v5("win/#", opts(QoS::AtLeastOnce), None))
        .await;
    let mut v3 = Raw::connect(b.addr, "v311", true).await;
    v3.subscribe("win/#", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    for i in 0..120u16 {
        publ.publish_acked("win/a", &i.to_be_bytes(), QoS::AtLeastOnce, false, i + 1)
            .await;
    }
    // MQTT 5: 100 unacknowledged, then the broker waits; one PUBACK lets one more out.
    let held = take_unacked(&mut v5, 100).await;
    v5.ack(&held[0]).await;
    let next = v5.recv_publish().await;
    assert_eq!(next.payload[..], 100u16.to_be_bytes());
    // MQTT 3.1.1: max_inflight applies.
    let held = take_unacked(&mut v3, 20).await;
    v3.ack(&held[0]).await;
    let next = v3.recv_publish().await;
    assert_eq!(next.payload[..], 20u16.to_be_bytes());
    b.shutdown().await;
}

#[tokio::test]
async fn a_v5_client_without_receive_maximum_is_not_held_to_max_inflight() {
    let b = TestBroker::start(BrokerSettings {
        max_inflight: 20,
        ..settings()
    })
    .await;
    let (mut v5, _) = raw_v5(b.addr, connect_v5("norm", true, 0)).await;
    v5.request_suback(subscribe_v5("win/#", opts(QoS::AtLeastOnce), None))
        .await;
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    for i in 0..50u16 {
        publ.publish_acked("win/b", &i.to_be_bytes(), QoS::AtLeastOnce, false, i + 1)
            .await;
    }
    take_unacked(&mut v5, 50).await;
    b.shutdown().await;
}
