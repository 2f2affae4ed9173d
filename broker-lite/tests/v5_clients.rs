//! MQTT 5 interoperability with real clients: `rumqttc::v5` and mosquitto_pub /
//! mosquitto_sub `-V mqttv5`.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use mqgate_protocol::{QoS, SubscriptionOptions};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet as RPacket, PublishProperties};
use rumqttc::v5::mqttbytes::QoS as RQoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use support::*;
use tokio::process::Command;

fn client(id: &str, b: &TestBroker, alias_max: Option<u16>) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", b.addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_topic_alias_max(alias_max);
    AsyncClient::new(opts, 100)
}

/// Polls `events` until `f` returns a value (bounded by WAIT).
async fn poll_until<T>(events: &mut EventLoop, mut f: impl FnMut(Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.poll().await.unwrap();
            if let Some(v) = f(event) {
                return v;
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_properties_aliases_and_no_local() {
    let b = TestBroker::start(settings()).await;
    let (sub, mut sub_events) = client("rsub", &b, Some(4));
    poll_until(&mut sub_events, |e| {
        matches!(e, Event::Incoming(RPacket::ConnAck(_))).then_some(())
    })
    .await;
    let mut filter = Filter::new("rc/#", RQoS::AtLeastOnce);
    filter.nolocal = true;
    sub.subscribe_many([filter]).await.unwrap();
    poll_until(&mut sub_events, |e| {
        matches!(e, Event::Incoming(RPacket::SubAck(_))).then_some(())
    })
    .await;
    // Its own message is not echoed (No Local).
    sub.publish("rc/own", RQoS::AtLeastOnce, false, "own")
        .await
        .unwrap();

    let (publ, mut pub_events) = client("rpub", &b, None);
    let props = |alias| PublishProperties {
        user_properties: vec![("b".into(), "1".into()), ("a".into(), "2".into())],
        content_type: Some("text/plain".into()),
        correlation_data: Some(Bytes::from_static(b"c-1")),
        response_topic: Some("rc-reply/x".into()),
        topic_alias: alias,
        ..PublishProperties::default()
    };
    publ.publish_with_properties("rc/x", RQoS::AtLeastOnce, false, "one", props(Some(1)))
        .await
        .unwrap();
    publ.publish_with_properties("", RQoS::AtLeastOnce, false, "two", props(Some(1)))
        .await
        .unwrap();
    tokio::spawn(async move { while pub_events.poll().await.is_ok() {} });

    let mut got = Vec::new();
    while got.len() < 2 {
        let p = poll_until(&mut sub_events, |e| match e {
            Event::Incoming(RPacket::Publish(p)) => Some(p),
            _ => None,
        })
        .await;
        got.push(p);
    }
    for (p, payload) in got.iter().zip(["one", "two"]) {
        assert_eq!(p.payload, payload);
        assert_eq!(p.topic, "rc/x", "rumqttc resolved the broker's alias");
        let props = p.properties.as_ref().unwrap();
        assert_eq!(props.user_properties, props_order());
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert_eq!(props.response_topic.as_deref(), Some("rc-reply/x"));
        assert_eq!(props.correlation_data.as_deref(), Some(&b"c-1"[..]));
    }
    assert_eq!(
        got[1].properties.as_ref().unwrap().topic_alias,
        Some(1),
        "second delivery used the outbound alias"
    );
    b.shutdown().await;
}

fn props_order() -> Vec<(String, String)> {
    vec![("b".into(), "1".into()), ("a".into(), "2".into())]
}

#[tokio::test]
async fn mosquitto_v5_clients_see_properties_both_ways() {
    let b = TestBroker::start(settings()).await;
    let port = b.addr.port().to_string();
    // mosquitto_pub -> raw MQTT 5 subscriber.
    let (mut raw, _) = raw_v5(b.addr, connect_v5("raw", true, 0)).await;
    raw.request_suback(subscribe_v5(
        "ms/#",
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriptionOptions::default()
        },
        Some(11),
    ))
    .await;
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1"])
        .args(["-t", "ms/a", "-m", "hello", "-r"])
        .args(["-D", "publish", "user-property", "k", "v"])
        .args(["-D", "publish", "user-property", "k", "w"])
        .args(["-D", "publish", "content-type", "text/plain"])
        .args(["-D", "publish", "message-expiry-interval", "60"])
        .args(["-D", "connect", "session-expiry-interval", "60"])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let p = raw.recv_publish().await;
    assert_eq!(p.payload, "hello");
    assert_eq!(
        p.properties.user_properties,
        [
            ("k".to_owned(), "v".to_owned()),
            ("k".to_owned(), "w".to_owned())
        ]
    );
    assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.properties.subscription_identifiers, [11]);
    raw.ack(&p).await;

    // The retained copy -> mosquitto_sub -V mqttv5, properties printed with -F.
    let out = tokio::time::timeout(
        WAIT,
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1"])
            .args(["-t", "ms/#", "-C", "1"])
            .args(["-D", "subscribe", "subscription-identifier", "7"])
            .args(["-F", "%t|%p|%P|%C|%S|%r|%E"])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(
        &fields[..6],
        ["ms/a", "hello", "k:v k:w", "text/plain", "7", "1"],
        "{line}"
    );
    let left: u32 = fields[6].parse().unwrap();
    assert!((50..=60).contains(&left), "{line}");
    b.shutdown().await;
}
