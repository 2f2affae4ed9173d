//! MQTT 5 bad input: each offence gets the DISCONNECT (or, inside CONNECT, the CONNACK)
//! with the reason code the spec prescribes, and the broker keeps serving others.

mod support;

use bytes::Bytes;
use mqgate_broker_lite::BrokerSettings;
use mqgate_protocol::{Auth, Packet, Properties, PubAck, Publish, QoS, ReasonCode};
use std::sync::Arc;
use support::*;

fn v5_publish(topic: &str, qos: QoS, pkid: u16, properties: Properties) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from(topic),
        pkid,
        payload: Bytes::from_static(b"x"),
        properties,
    })
}

/// Connects an MQTT 5 offender, runs `offend`, expects DISCONNECT `code`, then checks that
/// another client is still served.
async fn expect_reason<F, Fut>(settings: BrokerSettings, code: ReasonCode, offend: F)
where
    F: FnOnce(Raw) -> Fut,
    Fut: std::future::Future<Output = Raw>,
{
    let b = TestBroker::start(settings).await;
    let (offender, _) = raw_v5(b.addr, connect_v5("offender", true, 0)).await;
    let mut offender = offend(offender).await;
    assert_eq!(offender.expect_disconnect().await, code);
    let (mut ok, _) = raw_v5(b.addr, connect_v5("ok", true, 0)).await;
    ok.send(&Packet::PingReq).await;
    assert_eq!(ok.recv().await, Some(Packet::PingResp));
    b.shutdown().await;
}

#[tokio::test]
async fn topic_alias_zero_is_0x94() {
    expect_reason(
        settings(),
        ReasonCode::TopicAliasInvalid,
        |mut r| async move {
            // PUBLISH QoS 0, topic "t", Topic Alias 0, payload "x".
            r.send_bytes(&[0x30, 8, 0, 1, b't', 3, 0x23, 0, 0, b'x'])
                .await;
            r
        },
    )
    .await;
}

#[tokio::test]
async fn topic_alias_above_the_maximum_is_0x94() {
    let s = BrokerSettings {
        topic_alias_maximum: 2,
        ..settings()
    };
    expect_reason(s, ReasonCode::TopicAliasInvalid, |mut r| async move {
        let props = mqgate_protocol::PropertyValues {
            topic_alias: Some(3),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into();
        r.send(&v5_publish("t", QoS::AtMostOnce, 0, props)).await;
        r
    })
    .await;
}

#[tokio::test]
async fn unknown_topic_alias_is_0x82() {
    expect_reason(settings(), ReasonCode::ProtocolError, |mut r| async move {
        let props = mqgate_protocol::PropertyValues {
            topic_alias: Some(1),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into();
        r.send(&v5_publish("", QoS::AtMostOnce, 0, props)).await;
        r
    })
    .await;
}

#[tokio::test]
async fn property_in_the_wrong_packet_is_0x81() {
    expect_reason(
        settings(),
        ReasonCode::MalformedPacket,
        |mut r| async move {
            // PUBLISH QoS 0, topic "t", with a Session Expiry Interval property.
            r.send_bytes(&[0x30, 10, 0, 1, b't', 5, 0x11, 0, 0, 0, 1, b'x'])
                .await;
            r
        },
    )
    .await;
}

#[tokio::test]
async fn subscription_identifier_in_a_client_publish_is_0x82() {
    expect_reason(settings(), ReasonCode::ProtocolError, |mut r| async move {
        let props = mqgate_protocol::PropertyValues {
            subscription_identifiers: vec![7],
            ..mqgate_protocol::PropertyValues::default()
        }
        .into();
        r.send(&v5_publish("t", QoS::AtMostOnce, 0, props)).await;
        r
    })
    .await;
}

#[tokio::test]
async fn more_publishes_in_flight_than_the_receive_maximum_is_0x93() {
    let s = BrokerSettings {
        receive_maximum: 2,
        ..settings()
    };
    expect_reason(s, ReasonCode::ReceiveMaximumExceeded, |mut r| async move {
        // Three QoS 1 PUBLISHes in one write: the third arrives before any PUBACK.
        let mut bytes = bytes::BytesMut::new();
        for pkid in 1..=3 {
            let p = v5_publish("t", QoS::AtLeastOnce, pkid, Properties::default());
            mqgate_protocol::encode_packet(&p, mqgate_protocol::ProtocolVersion::V5, &mut bytes)
                .unwrap();
        }
        r.send_bytes(&bytes).await;
        r
    })
    .await;
}

#[tokio::test]
async fn packets_within_the_receive_maximum_are_fine() {
    let s = BrokerSettings {
        receive_maximum: 2,
        ..settings()
    };
    let b = TestBroker::start(s).await;
    let (mut c, ack) = raw_v5(b.addr, connect_v5("c", true, 0)).await;
    assert_eq!(ack.properties.receive_maximum, Some(2));
    for round in 0..3u16 {
        for i in 1..=2 {
            let pkid = round * 2 + i;
            c.send(&v5_publish(
                "t",
                QoS::AtLeastOnce,
                pkid,
                Properties::default(),
            ))
            .await;
        }
        for _ in 0..2 {
            assert!(matches!(c.recv().await, Some(Packet::PubAck(_))));
        }
    }
    b.shutdown().await;
}

#[tokio::test]
async fn packet_above_the_maximum_packet_size_is_0x95() {
    let s = BrokerSettings {
        max_packet_size: 64,
        ..settings()
    };
    expect_reason(s, ReasonCode::PacketTooLarge, |mut r| async move {
        r.send(&publish("t", &[0u8; 100], QoS::AtMostOnce, false, 0))
            .await;
        r
    })
    .await;
}

#[tokio::test]
async fn auth_without_a_method_is_0x82() {
    expect_reason(settings(), ReasonCode::ProtocolError, |mut r| async move {
        r.send(&Packet::Auth(Auth {
            reason: ReasonCode::ReAuthenticate,
            properties: mqgate_protocol::PropertyValues {
                authentication_method: Some("SCRAM-SHA-1".into()),
                ..mqgate_protocol::PropertyValues::default()
            }
            .into(),
        }))
        .await;
        r
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_with_payload_format_1_is_0x99() {
    let b = TestBroker::start(settings()).await;
    let (mut c, _) = raw_v5(b.addr, connect_v5("c", true, 0)).await;
    let props: Properties = mqgate_protocol::PropertyValues {
        payload_format_indicator: Some(1),
        ..mqgate_protocol::PropertyValues::default()
    }
    .into();
    let mut p = v5_publish("t", QoS::AtLeastOnce, 1, props.clone());
    if let Packet::Publish(p) = &mut p {
        p.payload = Bytes::from_static(&[0xff, 0xfe]);
    }
    c.send(&p).await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::PayloadFormatInvalid),
        other => panic!("expected PUBACK 0x99, got {other:?}"),
    }
    if let Packet::Publish(p) = &mut p {
        p.qos = QoS::AtMostOnce;
        p.pkid = 0;
    }
    c.send(&p).await;
    assert_eq!(
        c.expect_disconnect().await,
        ReasonCode::PayloadFormatInvalid
    );
    b.shutdown().await;
}

#[tokio::test]
async fn receive_maximum_0_in_connect_is_refused_with_0x82() {
    let b = TestBroker::start(settings()).await;
    let mut raw = Raw::open(b.addr).await;
    raw.version = mqgate_protocol::ProtocolVersion::V5;
    // CONNECT v5, clean start, keep alive 60, Receive Maximum 0, client id "c".
    raw.send_bytes(&[
        0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 3, 0x21, 0, 0, 0, 1, b'c',
    ])
    .await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::ProtocolError),
        other => panic!("expected CONNACK 0x82, got {other:?}"),
    }
    raw.expect_closed().await;
    b.shutdown().await;
}

#[tokio::test]
async fn unknown_authentication_method_is_refused_with_0x8c() {
    let b = TestBroker::start(settings()).await;
    let mut c = connect_v5("c", true, 0);
    c.properties.authentication_method = Some("SCRAM-SHA-1".into());
    let (mut raw, ack) = Raw::connect_with(b.addr, c).await;
    assert_eq!(ack.reason, ReasonCode::BadAuthenticationMethod);
    assert!(!ack.session_present);
    raw.expect_closed().await;
    b.shutdown().await;
}

#[tokio::test]
async fn disconnect_raising_a_zero_session_expiry_is_0x82() {
    expect_reason(settings(), ReasonCode::ProtocolError, |mut r| async move {
        r.send(&Packet::Disconnect(mqgate_protocol::Disconnect {
            reason: ReasonCode::NormalDisconnection,
            properties: mqgate_protocol::PropertyValues {
                session_expiry_interval: Some(60),
                ..mqgate_protocol::PropertyValues::default()
            }
            .into(),
        }))
        .await;
        r
    })
    .await;
}

#[tokio::test]
async fn unknown_pubrel_gets_pubcomp_0x92() {
    let b = TestBroker::start(settings()).await;
    let (mut c, _) = raw_v5(b.addr, connect_v5("c", true, 0)).await;
    c.send(&Packet::PubRel(PubAck::new(9))).await;
    match c.recv().await {
        Some(Packet::PubComp(a)) => assert_eq!(a.reason, ReasonCode::PacketIdentifierNotFound),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    b.shutdown().await;
}
