//! Packets checked byte for byte against the specs' examples and hand-written encodings.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use mqgate_protocol::*;

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn publish(topic: &str, qos: QoS, pkid: u16, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from(topic),
        pkid,
        payload: Bytes::from_static(payload),
        properties: Properties::default(),
    }
}

#[test]
fn remaining_length_encodings() {
    // Spec §2.2.3 / §1.5.5 table boundaries, checked through PUBLISH sizes.
    for (rl, header) in [
        (0usize, vec![0x30u8, 0x00]),
        (127, vec![0x30, 0x7F]),
        (128, vec![0x30, 0x80, 0x01]),
        (16_383, vec![0x30, 0xFF, 0x7F]),
        (16_384, vec![0x30, 0x80, 0x80, 0x01]),
        (2_097_151, vec![0x30, 0xFF, 0xFF, 0x7F]),
        (2_097_152, vec![0x30, 0x80, 0x80, 0x80, 0x01]),
        (268_435_455, vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F]),
    ] {
        if rl < 3 {
            // A PUBLISH needs at least 3 bytes (topic "a"); check the header parsing alone.
            let mut buf = bytes::BytesMut::from(&header[..]);
            let r = decode_packet(&mut buf, V311, MAX);
            assert!(matches!(r, Err(Error::RemainingLengthTooShort)), "{r:?}");
            continue;
        }
        if rl > 3_000_000 {
            // Only check the header: the body would be 256 MiB.
            let mut buf = bytes::BytesMut::from(&header[..]);
            assert!(decode_packet(&mut buf, V311, usize::MAX).unwrap().is_none());
            assert_eq!(buf.len(), header.len());
            let big = Packet::Publish(publish("a", QoS::AtMostOnce, 0, b""));
            let Packet::Publish(mut p) = big else {
                unreachable!()
            };
            p.payload = Bytes::from(vec![0u8; rl - 3]);
            assert_eq!(encoded_len(&Packet::Publish(p), V311), header.len() + rl);
            continue;
        }
        let mut p = publish("a", QoS::AtMostOnce, 0, b"");
        p.payload = Bytes::from(vec![7u8; rl - 3]);
        let bytes = encode(&Packet::Publish(p.clone()), V311);
        assert_eq!(&bytes[..header.len()], &header[..], "rl {rl}");
        assert_eq!(bytes.len(), header.len() + rl);
        assert_eq!(decode(&bytes, V311).unwrap(), Packet::Publish(p));
    }
}

#[test]
fn connect_311_spec_example() {
    // §3.1.2.10 variable header example: name MQTT, level 4, flags 0xCE, keep alive 10.
    let c = Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 10,
        client_id: "id".into(),
        will: Some(LastWill {
            topic: Arc::from("w"),
            payload: Bytes::from_static(b"x"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: Properties::default(),
    };
    let mut expected = vec![0x10, 26, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xCE, 0, 10];
    expected.extend_from_slice(&[
        0, 2, b'i', b'd', 0, 1, b'w', 0, 1, b'x', 0, 1, b'u', 0, 1, b'p',
    ]);
    assert_wire(&Packet::Connect(c), V311, &expected);
}

#[test]
fn connect_31_minimal() {
    let c = Connect {
        protocol: V31,
        clean_start: true,
        keep_alive: 60,
        client_id: "a".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    let expected = [
        0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60, 0, 1, b'a',
    ];
    assert_wire(&Packet::Connect(c), V311, &expected);
}

#[test]
fn connect_v5_with_properties() {
    let c = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 30,
        client_id: "c".into(),
        will: None,
        username: None,
        password: None,
        properties: mqgate_protocol::PropertyValues {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(20),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into(),
    };
    let expected = [
        0x10, 22, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30, // variable header
        8, 0x11, 0, 0, 0x0E, 0x10, 0x21, 0, 20, // properties
        0, 1, b'c',
    ];
    assert_wire(&Packet::Connect(c), V5, &expected);
}

#[test]
fn connack_all_versions() {
    let ok = ConnAck {
        session_present: true,
        reason: ReasonCode::Success,
        properties: Properties::default(),
    };
    assert_wire(&Packet::ConnAck(ok.clone()), V311, &[0x20, 2, 1, 0]);
    assert_wire(&Packet::ConnAck(ok), V5, &[0x20, 3, 1, 0, 0]);
    let refused = ConnAck {
        session_present: false,
        reason: ReasonCode::NotAuthorized,
        properties: Properties::default(),
    };
    assert_wire(&Packet::ConnAck(refused.clone()), V311, &[0x20, 2, 0, 5]);
    assert_wire(&Packet::ConnAck(refused), V5, &[0x20, 3, 0, 0x87, 0]);
}

#[test]
fn publish_bytes() {
    let p = publish("a/b", QoS::AtLeastOnce, 10, b"hi");
    assert_wire(
        &Packet::Publish(p.clone()),
        V311,
        &[0x32, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i'],
    );
    assert_wire(
        &Packet::Publish(p),
        V5,
        &[0x32, 10, 0, 3, b'a', b'/', b'b', 0, 10, 0, b'h', b'i'],
    );
    let mut q0 = publish("t", QoS::AtMostOnce, 0, b"");
    q0.retain = true;
    assert_wire(&Packet::Publish(q0), V311, &[0x31, 3, 0, 1, b't']);
}

#[test]
fn publish_v5_topic_alias_empty_topic() {
    let mut p = publish("", QoS::AtMostOnce, 0, b"x");
    p.properties.topic_alias = Some(3);
    assert_wire(
        &Packet::Publish(p),
        V5,
        &[0x30, 7, 0, 0, 3, 0x23, 0, 3, b'x'],
    );
}

#[test]
fn subscribe_bytes() {
    let s = Subscribe {
        pkid: 1,
        filters: vec![
            SubscribeFilter {
                filter: "a/+".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..Default::default()
                },
            },
            SubscribeFilter {
                filter: "#".into(),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..Default::default()
                },
            },
        ],
        properties: Properties::default(),
    };
    assert_wire(
        &Packet::Subscribe(s.clone()),
        V311,
        &[0x82, 12, 0, 1, 0, 3, b'a', b'/', b'+', 1, 0, 1, b'#', 2],
    );
    let mut s5 = s;
    s5.filters[0].options.no_local = true;
    s5.filters[0].options.retain_as_published = true;
    s5.filters[0].options.retain_handling = RetainHandling::DoNotSend;
    s5.properties.subscription_identifiers = vec![200];
    assert_wire(
        &Packet::Subscribe(s5),
        V5,
        &[
            0x82, 16, 0, 1, 3, 0x0B, 0xC8, 0x01, 0, 3, b'a', b'/', b'+', 0x2D, 0, 1, b'#', 2,
        ],
    );
}

#[test]
fn acks_and_short_forms() {
    assert_wire(&Packet::PubAck(PubAck::new(7)), V311, &[0x40, 2, 0, 7]);
    assert_wire(&Packet::PubRel(PubAck::new(7)), V311, &[0x62, 2, 0, 7]);
    assert_wire(&Packet::PubAck(PubAck::new(7)), V5, &[0x40, 2, 0, 7]);
    let mut rec = PubAck::new(9);
    rec.reason = ReasonCode::NoMatchingSubscribers;
    assert_wire(&Packet::PubRec(rec.clone()), V5, &[0x50, 3, 0, 9, 0x10]);
    rec.properties.reason_string = Some("r".into());
    assert_wire(
        &Packet::PubRec(rec),
        V5,
        &[0x50, 8, 0, 9, 0x10, 4, 0x1F, 0, 1, b'r'],
    );
    // Success with a property keeps the reason byte.
    let mut comp = PubAck::new(1);
    comp.properties.user_properties = vec![("k".into(), "v".into())];
    assert_wire(
        &Packet::PubComp(comp),
        V5,
        &[0x70, 11, 0, 1, 0, 7, 0x26, 0, 1, b'k', 0, 1, b'v'],
    );
    // Decoding the long forms of Success.
    assert_eq!(
        decode(&[0x40, 3, 0, 7, 0], V5).unwrap(),
        Packet::PubAck(PubAck::new(7))
    );
    assert_eq!(
        decode(&[0x40, 4, 0, 7, 0, 0], V5).unwrap(),
        Packet::PubAck(PubAck::new(7))
    );
}

#[test]
fn suback_unsubscribe_unsuback() {
    let s = SubAck {
        pkid: 1,
        reasons: vec![
            ReasonCode::GrantedQoS0,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ],
        properties: Properties::default(),
    };
    assert_wire(
        &Packet::SubAck(s.clone()),
        V311,
        &[0x90, 5, 0, 1, 0, 2, 0x80],
    );
    assert_wire(&Packet::SubAck(s), V5, &[0x90, 6, 0, 1, 0, 0, 2, 0x80]);
    let u = Unsubscribe {
        pkid: 2,
        filters: vec!["a".into()],
        properties: Properties::default(),
    };
    assert_wire(
        &Packet::Unsubscribe(u.clone()),
        V311,
        &[0xA2, 5, 0, 2, 0, 1, b'a'],
    );
    assert_wire(&Packet::Unsubscribe(u), V5, &[0xA2, 6, 0, 2, 0, 0, 1, b'a']);
    let ua = UnsubAck {
        pkid: 2,
        reasons: vec![],
        properties: Properties::default(),
    };
    assert_wire(&Packet::UnsubAck(ua), V311, &[0xB0, 2, 0, 2]);
    let ua5 = UnsubAck {
        pkid: 2,
        reasons: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
        properties: Properties::default(),
    };
    assert_wire(&Packet::UnsubAck(ua5), V5, &[0xB0, 5, 0, 2, 0, 0, 0x11]);
}

#[test]
fn ping_disconnect_auth() {
    assert_wire(&Packet::PingReq, V311, &[0xC0, 0]);
    assert_wire(&Packet::PingResp, V5, &[0xD0, 0]);
    assert_wire(&Packet::Disconnect(Disconnect::default()), V311, &[0xE0, 0]);
    assert_wire(&Packet::Disconnect(Disconnect::default()), V5, &[0xE0, 0]);
    let d = Disconnect {
        reason: ReasonCode::DisconnectWithWillMessage,
        properties: Properties::default(),
    };
    assert_wire(&Packet::Disconnect(d), V5, &[0xE0, 1, 4]);
    let d = Disconnect {
        reason: ReasonCode::ServerMoved,
        properties: mqgate_protocol::PropertyValues {
            server_reference: Some("s".into()),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into(),
    };
    assert_wire(
        &Packet::Disconnect(d),
        V5,
        &[0xE0, 6, 0x9D, 4, 0x1C, 0, 1, b's'],
    );
    let a = Auth {
        reason: ReasonCode::Success,
        properties: Properties::default(),
    };
    assert_wire(&Packet::Auth(a), V5, &[0xF0, 0]);
    let a = Auth {
        reason: ReasonCode::ContinueAuthentication,
        properties: mqgate_protocol::PropertyValues {
            authentication_method: Some("m".into()),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into(),
    };
    assert_wire(
        &Packet::Auth(a.clone()),
        V5,
        &[0xF0, 6, 0x18, 4, 0x15, 0, 1, b'm'],
    );
    // AUTH reason without property length is accepted.
    let short = Auth {
        reason: ReasonCode::ReAuthenticate,
        properties: Properties::default(),
    };
    assert_eq!(decode(&[0xF0, 1, 0x19], V5).unwrap(), Packet::Auth(short));
}

#[test]
fn zero_names_follow_the_packet() {
    assert_eq!(
        decode(&[0xE0, 1, 0], V5).unwrap(),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::NormalDisconnection,
            properties: Properties::default()
        })
    );
    let Packet::SubAck(s) = decode(&[0x90, 4, 0, 1, 0, 0], V5).unwrap() else {
        panic!()
    };
    assert_eq!(s.reasons, vec![ReasonCode::GrantedQoS0]);
    let Packet::ConnAck(c) = decode(&[0x20, 3, 0, 0, 0], V5).unwrap() else {
        panic!()
    };
    assert_eq!(c.reason, ReasonCode::Success);
}
