//! One rejection test per wire rule, each asserting the specific error variant (and,
//! where it matters, the MQTT 5 reason code it maps to).

mod common;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::*;
use mqgate_protocol::*;

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn err(bytes: &[u8], v: ProtocolVersion) -> Error {
    match decode(bytes, v) {
        Err(e) => e,
        Ok(p) => panic!("{bytes:02x?} decoded to {p:?}"),
    }
}

macro_rules! rejects {
    ($bytes:expr, $v:expr, $pat:pat) => {{
        let e = err(&$bytes, $v);
        assert!(matches!(e, $pat), "got {e:?}");
        e
    }};
}

fn encode_err(p: &Packet, v: ProtocolVersion) -> Error {
    let mut buf = BytesMut::new();
    let Err(e) = encode_packet(p, v, &mut buf) else {
        panic!("{p:?} must not encode");
    };
    assert!(buf.is_empty(), "nothing may be written on error");
    e
}

/// A v3.1.1/v5 CONNECT body with the given flags byte and payload.
fn connect(level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, flags, 0, 60];
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(rest);
    let mut out = vec![0x10, body.len() as u8];
    out.extend(body);
    out
}

// ----- fixed header -----

#[test]
fn reserved_packet_type_0() {
    rejects!([0x00, 0], V311, Error::ReservedPacketType);
}

#[test]
fn reserved_flags_subscribe_unsubscribe_pubrel() {
    rejects!(
        [0x80, 6, 0, 1, 0, 1, b'a', 0],
        V311,
        Error::InvalidFixedHeaderFlags {
            packet: PacketType::Subscribe,
            flags: 0
        }
    );
    rejects!(
        [0xA0, 5, 0, 1, 0, 1, b'a'],
        V5,
        Error::InvalidFixedHeaderFlags {
            packet: PacketType::Unsubscribe,
            ..
        }
    );
    rejects!(
        [0x60, 2, 0, 1],
        V311,
        Error::InvalidFixedHeaderFlags {
            packet: PacketType::PubRel,
            ..
        }
    );
    rejects!(
        [0x41, 2, 0, 1],
        V311,
        Error::InvalidFixedHeaderFlags {
            packet: PacketType::PubAck,
            flags: 1
        }
    );
    rejects!(
        [0xC8, 0],
        V5,
        Error::InvalidFixedHeaderFlags {
            packet: PacketType::PingReq,
            ..
        }
    );
    let e = rejects!(
        [0x12, 0],
        V5,
        Error::InvalidFixedHeaderFlags {
            packet: PacketType::Connect,
            ..
        }
    );
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
}

#[test]
fn v31_tolerates_dup_on_pubrel() {
    assert_eq!(
        decode(&[0x6A, 2, 0, 1], V31).unwrap(),
        Packet::PubRel(PubAck::new(1))
    );
    rejects!([0x6A, 2, 0, 1], V311, Error::InvalidFixedHeaderFlags { .. });
}

#[test]
fn remaining_length_longer_than_4_bytes() {
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF][..]);
    let e = decode_packet(&mut buf, V311, usize::MAX).unwrap_err();
    assert!(matches!(e, Error::VariableByteIntegerTooLong), "{e:?}");
    // Detected as soon as the 4th continuation byte arrives.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x80][..]);
    assert!(matches!(
        decode_packet(&mut buf, V311, usize::MAX),
        Err(Error::VariableByteIntegerTooLong)
    ));
}

#[test]
fn non_minimal_variable_byte_integer() {
    // 0 encoded in two bytes.
    rejects!(
        [0xC0, 0x80, 0x00],
        V311,
        Error::NonMinimalVariableByteInteger
    );
    // Property length 0 in two bytes in a v5 PUBLISH.
    rejects!(
        [0x30, 5, 0, 1, b't', 0x80, 0x00],
        V5,
        Error::NonMinimalVariableByteInteger
    );
}

#[test]
fn truncated_body() {
    // PUBLISH declaring a topic longer than the remaining length.
    let e = rejects!([0x30, 3, 0, 5, b'a'], V311, Error::RemainingLengthTooShort);
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
    rejects!([0x40, 1, 0], V311, Error::RemainingLengthTooShort);
    // v5 CONNACK needs its property length.
    rejects!([0x20, 2, 0, 0], V5, Error::RemainingLengthTooShort);
}

#[test]
fn trailing_bytes_inside_remaining_length() {
    rejects!([0x40, 3, 0, 1, 0], V311, Error::TrailingBytes { count: 1 });
    rejects!([0xC0, 1, 0], V311, Error::TrailingBytes { count: 1 });
    rejects!([0xE0, 1, 0], V311, Error::TrailingBytes { count: 1 });
    rejects!([0x20, 3, 0, 0, 0], V311, Error::TrailingBytes { count: 1 });
    rejects!([0x20, 4, 0, 0, 0, 9], V5, Error::TrailingBytes { count: 1 });
    rejects!([0xB0, 3, 0, 1, 0], V311, Error::TrailingBytes { count: 1 });
}

#[test]
fn auth_only_in_v5() {
    rejects!([0xF0, 0], V311, Error::AuthNotAllowed);
    rejects!([0xF0, 0], V31, Error::AuthNotAllowed);
    let p = Packet::Auth(Auth {
        reason: ReasonCode::Success,
        properties: Properties::default(),
    });
    assert!(matches!(encode_err(&p, V311), Error::AuthNotAllowed));
}

// ----- strings -----

#[test]
fn invalid_utf8() {
    rejects!([0x30, 4, 0, 2, 0xC3, 0x28], V311, Error::InvalidUtf8);
    // An encoded surrogate U+D800 (ED A0 80).
    rejects!([0x30, 5, 0, 3, 0xED, 0xA0, 0x80], V5, Error::InvalidUtf8);
    // Overlong encoding of '/'.
    rejects!([0x30, 4, 0, 2, 0xC0, 0xAF], V311, Error::InvalidUtf8);
}

#[test]
fn null_character() {
    rejects!(
        [0x30, 5, 0, 3, b'a', 0, b'b'],
        V311,
        Error::NullCharacterInString
    );
}

#[test]
fn string_too_long_on_encode() {
    let c = Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 0,
        client_id: "x".repeat(65_536),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    assert!(matches!(
        encode_err(&Packet::Connect(c), V311),
        Error::StringTooLong { len: 65_536 }
    ));
}

#[test]
fn packet_too_large_to_encode() {
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: Arc::from("t"),
        pkid: 0,
        payload: Bytes::from(vec![0u8; 268_435_455]),
        properties: Properties::default(),
    });
    assert!(matches!(
        encode_err(&p, V311),
        Error::EncodedPacketTooLarge {
            remaining: 268_435_458
        }
    ));
}

// ----- packet identifiers and QoS -----

#[test]
fn zero_packet_id() {
    rejects!([0x32, 5, 0, 1, b't', 0, 0], V311, Error::ZeroPacketId);
    rejects!([0x40, 2, 0, 0], V311, Error::ZeroPacketId);
    rejects!([0x82, 6, 0, 0, 0, 1, b'a', 0], V311, Error::ZeroPacketId);
    rejects!([0xA2, 5, 0, 0, 0, 1, b'a'], V311, Error::ZeroPacketId);
    let p = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: Arc::from("t"),
        pkid: 0,
        payload: Bytes::new(),
        properties: Properties::default(),
    });
    assert!(matches!(encode_err(&p, V5), Error::ZeroPacketId));
}

#[test]
fn qos_3() {
    let e = rejects!([0x36, 5, 0, 1, b't', 0, 1], V5, Error::InvalidQoS);
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
    // Will QoS 3.
    rejects!(
        connect(4, 0x1E, &[0, 1, b'c', 0, 1, b't', 0, 0]),
        V311,
        Error::InvalidQoS
    );
    // Subscription QoS 3.
    rejects!([0x82, 6, 0, 1, 0, 1, b'a', 3], V311, Error::InvalidQoS);
}

#[test]
fn dup_with_qos0() {
    rejects!([0x38, 3, 0, 1, b't'], V311, Error::DupWithQoS0);
    rejects!([0x38, 4, 0, 1, b't', 0], V5, Error::DupWithQoS0);
    // MQTT 3.1 has no such rule.
    assert!(decode(&[0x38, 3, 0, 1, b't'], V31).is_ok());
}

// ----- topics -----

#[test]
fn wildcard_in_topic_name() {
    let e = rejects!([0x30, 4, 0, 1, b'+', 0], V5, Error::WildcardInTopicName);
    assert_eq!(e.reason_code(), ReasonCode::TopicNameInvalid);
    rejects!(
        [0x30, 5, 0, 3, b'a', b'/', b'#'],
        V311,
        Error::WildcardInTopicName
    );
    // Will topic.
    rejects!(
        connect(4, 0x06, &[0, 1, b'c', 0, 1, b'#', 0, 0]),
        V311,
        Error::WildcardInTopicName
    );
}

#[test]
fn empty_topic_name() {
    rejects!([0x30, 2, 0, 0], V311, Error::EmptyTopicName);
    let e = rejects!([0x30, 3, 0, 0, 0], V5, Error::EmptyTopicName);
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
    // Allowed with a topic alias in 5.0.
    assert!(decode(&[0x30, 6, 0, 0, 3, 0x23, 0, 1], V5).is_ok());
}

#[test]
fn misplaced_wildcards_in_filters() {
    let e = rejects!(
        [0x82, 7, 0, 1, 0, 2, b'a', b'#', 0],
        V311,
        Error::MisplacedMultiLevelWildcard
    );
    assert_eq!(e.reason_code(), ReasonCode::TopicFilterInvalid);
    rejects!(
        [0x82, 9, 0, 1, 0, 4, b'#', b'/', b'a', b'b', 0],
        V311,
        Error::MisplacedMultiLevelWildcard
    );
    rejects!(
        [0x82, 7, 0, 1, 0, 2, b'a', b'+', 0],
        V311,
        Error::MisplacedSingleLevelWildcard
    );
    rejects!(
        [0xA2, 6, 0, 1, 0, 2, b'a', b'+'],
        V311,
        Error::MisplacedSingleLevelWildcard
    );
    rejects!([0x82, 5, 0, 1, 0, 0, 0], V311, Error::EmptyTopicFilter);
}

fn subscribe_with(filter: &str, options: u8, v: ProtocolVersion) -> Vec<u8> {
    let mut body = vec![0, 1];
    if v.is_v5() {
        body.push(0);
    }
    body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    body.extend_from_slice(filter.as_bytes());
    body.push(options);
    let mut out = vec![0x82, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn invalid_shared_subscriptions() {
    rejects!(
        subscribe_with("$share//a", 0, V5),
        V5,
        Error::EmptyShareName
    );
    rejects!(
        subscribe_with("$share/g+/a", 0, V5),
        V5,
        Error::WildcardInShareName
    );
    rejects!(
        subscribe_with("$share/g", 0, V5),
        V5,
        Error::MissingSharedFilter
    );
    rejects!(
        subscribe_with("$share/g/a#", 0, V5),
        V5,
        Error::MisplacedMultiLevelWildcard
    );
    assert!(decode(&subscribe_with("$share/g/a/#", 0, V5), V5).is_ok());
}

// ----- SUBSCRIBE / UNSUBSCRIBE -----

#[test]
fn empty_subscribe_and_unsubscribe() {
    let e = rejects!([0x82, 2, 0, 1], V311, Error::EmptySubscribe);
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
    rejects!([0x82, 3, 0, 1, 0], V5, Error::EmptySubscribe);
    rejects!([0xA2, 2, 0, 1], V311, Error::EmptyUnsubscribe);
    rejects!([0xA2, 3, 0, 1, 0], V5, Error::EmptyUnsubscribe);
    let p = Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: vec![],
        properties: Properties::default(),
    });
    assert!(matches!(encode_err(&p, V5), Error::EmptySubscribe));
}

#[test]
fn subscription_options_reserved_bits() {
    rejects!(
        subscribe_with("a", 0x04, V311),
        V311,
        Error::SubscriptionOptionsReservedBits { options: 0x04 }
    );
    let e = rejects!(
        subscribe_with("a", 0x40, V5),
        V5,
        Error::SubscriptionOptionsReservedBits { .. }
    );
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
}

#[test]
fn retain_handling_3() {
    rejects!(
        subscribe_with("a", 0x30, V5),
        V5,
        Error::InvalidRetainHandling
    );
}

#[test]
fn no_local_on_shared_subscription() {
    let e = rejects!(
        subscribe_with("$share/g/a", 0x04, V5),
        V5,
        Error::NoLocalOnSharedSubscription
    );
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
    assert!(decode(&subscribe_with("a", 0x04, V5), V5).is_ok());
}

// ----- CONNECT / CONNACK -----

#[test]
fn connect_reserved_flag() {
    rejects!(
        connect(4, 0x03, &[0, 1, b'c']),
        V311,
        Error::ConnectReservedFlag
    );
    let e = rejects!(
        connect(5, 0x01, &[0, 1, b'c']),
        V5,
        Error::ConnectReservedFlag
    );
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
}

#[test]
fn will_flags_without_will() {
    rejects!(
        connect(4, 0x08, &[0, 1, b'c']),
        V311,
        Error::WillFlagsWithoutWill
    );
    rejects!(
        connect(4, 0x20, &[0, 1, b'c']),
        V311,
        Error::WillFlagsWithoutWill
    );
}

#[test]
fn password_without_username() {
    rejects!(
        connect(4, 0x42, &[0, 1, b'c', 0, 1, b'p']),
        V311,
        Error::PasswordWithoutUsername
    );
    // Allowed in 5.0.
    let Packet::Connect(c) = decode(&connect(5, 0x42, &[0, 1, b'c', 0, 1, b'p']), V5).unwrap()
    else {
        panic!()
    };
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
    assert_eq!(c.username, None);
}

#[test]
fn unknown_protocol_name_and_level() {
    let e = rejects!(
        connect(6, 0x02, &[0, 1, b'c']),
        V311,
        Error::UnsupportedProtocolVersion { level: 6 }
    );
    assert_eq!(e.reason_code(), ReasonCode::UnsupportedProtocolVersion);
    assert!(e.is_unsupported_protocol());
    // "MQTT" with level 3 (3.1 uses "MQIsdp").
    rejects!(
        connect(3, 0x02, &[0, 1, b'c']),
        V311,
        Error::UnsupportedProtocolVersion { level: 3 }
    );
    let bytes = [
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'X', 4, 2, 0, 60, 0, 1, b'c',
    ];
    let e = rejects!(bytes, V311, Error::InvalidProtocolName { level: 4, .. });
    assert!(e.is_unsupported_protocol());
}

#[test]
fn connack_rules() {
    rejects!(
        [0x20, 2, 0x02, 0],
        V311,
        Error::ConnAckReservedFlags { flags: 2 }
    );
    rejects!([0x20, 2, 1, 5], V311, Error::SessionPresentWithFailure);
    rejects!(
        [0x20, 2, 0, 6],
        V311,
        Error::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: 6
        }
    );
    rejects!(
        [0x20, 3, 0, 0x10, 0],
        V5,
        Error::InvalidReasonCode { code: 0x10, .. }
    );
    let p = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::Banned,
        properties: Properties::default(),
    });
    assert!(matches!(
        encode_err(&p, V311),
        Error::InvalidReasonCode { code: 0x8A, .. }
    ));
}

#[test]
fn invalid_reason_codes() {
    rejects!(
        [0x40, 3, 0, 1, 0x92],
        V5,
        Error::InvalidReasonCode {
            packet: PacketType::PubAck,
            code: 0x92
        }
    );
    rejects!(
        [0x90, 3, 0, 1, 3],
        V311,
        Error::InvalidReasonCode {
            packet: PacketType::SubAck,
            code: 3
        }
    );
    rejects!(
        [0xE0, 1, 0x01],
        V5,
        Error::InvalidReasonCode {
            packet: PacketType::Disconnect,
            ..
        }
    );
    rejects!(
        [0xF0, 1, 0x04],
        V5,
        Error::InvalidReasonCode {
            packet: PacketType::Auth,
            ..
        }
    );
    let p = Packet::SubAck(SubAck {
        pkid: 1,
        reasons: vec![ReasonCode::NotAuthorized],
        properties: Properties::default(),
    });
    assert!(matches!(
        encode_err(&p, V311),
        Error::InvalidReasonCode { .. }
    ));
}

// ----- properties -----

/// A v5 DISCONNECT (reason 0) carrying the given property bytes.
fn disconnect_props(props: &[u8]) -> Vec<u8> {
    let mut out = vec![0xE0, (props.len() + 2) as u8, 0, props.len() as u8];
    out.extend_from_slice(props);
    out
}

/// A v5 PUBLISH QoS 0 on topic "t" carrying the given property bytes.
fn publish_props(props: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30, (props.len() + 4) as u8, 0, 1, b't', props.len() as u8];
    out.extend_from_slice(props);
    out
}

#[test]
fn unknown_property() {
    rejects!(
        disconnect_props(&[0x05, 0]),
        V5,
        Error::UnknownProperty { id: 0x05 }
    );
}

#[test]
fn duplicate_property() {
    let e = rejects!(
        disconnect_props(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]),
        V5,
        Error::DuplicateProperty {
            id: PropertyId::SessionExpiryInterval
        }
    );
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
    // Subscription identifier twice in SUBSCRIBE.
    let bytes = [0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0];
    rejects!(
        bytes,
        V5,
        Error::DuplicateProperty {
            id: PropertyId::SubscriptionIdentifier
        }
    );
    // ...but allowed in PUBLISH, and user properties may repeat.
    let Packet::Publish(p) = decode(&publish_props(&[0x0B, 1, 0x0B, 2]), V5).unwrap() else {
        panic!()
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
    let up = [0x26, 0, 1, b'k', 0, 1, b'v', 0x26, 0, 1, b'k', 0, 1, b'w'];
    let Packet::Disconnect(d) = decode(&disconnect_props(&up), V5).unwrap() else {
        panic!()
    };
    assert_eq!(d.properties.user_properties.len(), 2);
}

#[test]
fn property_not_allowed_in_packet() {
    let e = rejects!(
        disconnect_props(&[0x23, 0, 1]),
        V5,
        Error::PropertyNotAllowed {
            id: PropertyId::TopicAlias,
            context: PropertyContext::Packet(PacketType::Disconnect)
        }
    );
    assert_eq!(e.reason_code(), ReasonCode::MalformedPacket);
    // Will delay interval is a will property, not a CONNECT property.
    let mut bytes = vec![
        0x10, 18, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 5, 0x18, 0, 0, 0, 1,
    ];
    bytes.extend_from_slice(&[0, 1, b'c']);
    bytes[1] = (bytes.len() - 2) as u8;
    rejects!(
        bytes,
        V5,
        Error::PropertyNotAllowed {
            id: PropertyId::WillDelayInterval,
            ..
        }
    );
    // Encoding refuses too.
    let mut d = Disconnect::default();
    d.properties.topic_alias = Some(1);
    assert!(matches!(
        encode_err(&Packet::Disconnect(d), V5),
        Error::PropertyNotAllowed { .. }
    ));
}

#[test]
fn property_values_out_of_range() {
    let connect_with = |props: &[u8]| {
        let mut bytes = vec![
            0x10,
            0,
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            2,
            0,
            60,
            props.len() as u8,
        ];
        bytes.extend_from_slice(props);
        bytes.extend_from_slice(&[0, 1, b'c']);
        bytes[1] = (bytes.len() - 2) as u8;
        bytes
    };
    rejects!(
        connect_with(&[0x21, 0, 0]),
        V5,
        Error::PropertyValueOutOfRange {
            id: PropertyId::ReceiveMaximum,
            value: 0
        }
    );
    rejects!(
        connect_with(&[0x27, 0, 0, 0, 0]),
        V5,
        Error::PropertyValueOutOfRange {
            id: PropertyId::MaximumPacketSize,
            value: 0
        }
    );
    rejects!(
        connect_with(&[0x17, 2]),
        V5,
        Error::PropertyValueOutOfRange {
            id: PropertyId::RequestProblemInformation,
            value: 2
        }
    );
    rejects!(
        publish_props(&[0x01, 2]),
        V5,
        Error::PropertyValueOutOfRange {
            id: PropertyId::PayloadFormatIndicator,
            value: 2
        }
    );
    let e = rejects!(
        publish_props(&[0x0B, 0]),
        V5,
        Error::PropertyValueOutOfRange {
            id: PropertyId::SubscriptionIdentifier,
            value: 0
        }
    );
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
}

#[test]
fn topic_alias_zero() {
    let e = rejects!(publish_props(&[0x23, 0, 0]), V5, Error::TopicAliasZero);
    assert_eq!(e.reason_code(), ReasonCode::TopicAliasInvalid);
}

#[test]
fn response_topic_with_wildcard() {
    rejects!(
        publish_props(&[0x08, 0, 1, b'#']),
        V5,
        Error::InvalidResponseTopic
    );
}

#[test]
fn authentication_data_without_method() {
    rejects!(
        [0xF0, 6, 0x18, 4, 0x16, 0, 1, b'x'],
        V5,
        Error::AuthenticationDataWithoutMethod
    );
}

#[test]
fn property_runs_past_property_length() {
    // Property length 2 but a four-byte integer property.
    let bytes = [0xE0, 8, 0, 2, 0x11, 0, 0, 0, 0, 0];
    rejects!(bytes, V5, Error::PropertyLengthTooShort);
}

#[test]
fn packet_too_large_maps_to_0x95() {
    let e = Error::PacketTooLarge { size: 10, max: 5 };
    assert_eq!(e.reason_code(), ReasonCode::PacketTooLarge);
}
