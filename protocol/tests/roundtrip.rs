//! Property test: `decode(encode(p)) == p` for generated packets of every type and
//! version (only what is valid for that version is generated), plus encoded_len.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use mqgate_protocol::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 é€😀\\-_]{0,8}"
}

fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

fn topic() -> impl Strategy<Value = String> {
    "[a-z$é/ ]{1,12}"
}

fn filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        Just("a".to_string()),
        Just(String::new()),
        Just("+".to_string()),
        "[a-zé]{1,4}"
    ];
    (vec(level, 1..4), any::<bool>(), of("[a-z]{1,4}")).prop_map(|(levels, hash, share)| {
        let mut f = levels.join("/");
        if hash {
            f.push_str("/#");
        }
        if f.is_empty() {
            f.push('a');
        }
        match share {
            Some(group) => format!("$share/{group}/{f}"),
            None => f,
        }
    })
}

fn pkid() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn bit() -> impl Strategy<Value = Option<u8>> {
    of(0u8..=1)
}

/// Any properties with valid values; [`restrict`] keeps those allowed in a context.
fn any_properties() -> impl Strategy<Value = Properties> {
    let a = (
        bit(),
        of(any::<u32>()),
        of(text()),
        of(topic()),
        of(bin()),
        vec(1u32..=268_435_455, 0..3),
        of(any::<u32>()),
        of(text()),
        of(any::<u16>()),
        of(text()),
        of(bin()),
        bit(),
    );
    let b = (
        of(any::<u32>()),
        bit(),
        of(text()),
        of(text()),
        of(text()),
        of(1..=u16::MAX),
        of(any::<u16>()),
        of(1..=u16::MAX),
        bit(),
        bit(),
        vec((text(), text()), 0..3),
        of(1..=u32::MAX),
    );
    let c = (bit(), bit(), bit());
    (a, b, c).prop_map(|(a, b, c)| {
        mqgate_protocol::PropertyValues {
            payload_format_indicator: a.0,
            message_expiry_interval: a.1,
            content_type: a.2.map(Arc::from),
            response_topic: a.3.map(Arc::from),
            correlation_data: a.4,
            subscription_identifiers: a.5,
            session_expiry_interval: a.6,
            assigned_client_identifier: a.7,
            server_keep_alive: a.8,
            authentication_method: a.9,
            authentication_data: a.10,
            request_problem_information: a.11,
            will_delay_interval: b.0,
            request_response_information: b.1,
            response_information: b.2,
            server_reference: b.3,
            reason_string: b.4,
            receive_maximum: b.5,
            topic_alias_maximum: b.6,
            topic_alias: b.7,
            maximum_qos: b.8,
            retain_available: b.9,
            user_properties: b.10,
            maximum_packet_size: b.11,
            wildcard_subscription_available: c.0,
            subscription_identifier_available: c.1,
            shared_subscription_available: c.2,
        }
        .into()
    })
}

/// Clears every property not allowed in `ctx` (and fixes block-level rules).
fn restrict(mut p: Properties, ctx: PropertyContext) -> Properties {
    let ok = |id: PropertyId| id.allowed_in(ctx);
    macro_rules! keep {
        ($field:ident, $id:ident) => {
            if !ok(PropertyId::$id) {
                p.$field = Default::default();
            }
        };
    }
    keep!(payload_format_indicator, PayloadFormatIndicator);
    keep!(message_expiry_interval, MessageExpiryInterval);
    keep!(content_type, ContentType);
    keep!(response_topic, ResponseTopic);
    keep!(correlation_data, CorrelationData);
    keep!(subscription_identifiers, SubscriptionIdentifier);
    keep!(session_expiry_interval, SessionExpiryInterval);
    keep!(assigned_client_identifier, AssignedClientIdentifier);
    keep!(server_keep_alive, ServerKeepAlive);
    keep!(authentication_method, AuthenticationMethod);
    keep!(authentication_data, AuthenticationData);
    keep!(request_problem_information, RequestProblemInformation);
    keep!(will_delay_interval, WillDelayInterval);
    keep!(request_response_information, RequestResponseInformation);
    keep!(response_information, ResponseInformation);
    keep!(server_reference, ServerReference);
    keep!(reason_string, ReasonString);
    keep!(receive_maximum, ReceiveMaximum);
    keep!(topic_alias_maximum, TopicAliasMaximum);
    keep!(topic_alias, TopicAlias);
    keep!(maximum_qos, MaximumQoS);
    keep!(retain_available, RetainAvailable);
    keep!(user_properties, UserProperty);
    keep!(maximum_packet_size, MaximumPacketSize);
    keep!(
        wildcard_subscription_available,
        WildcardSubscriptionAvailable
    );
    keep!(
        subscription_identifier_available,
        SubscriptionIdentifierAvailable
    );
    keep!(shared_subscription_available, SharedSubscriptionAvailable);
    if ctx != PropertyContext::Packet(PacketType::Publish) {
        p.subscription_identifiers.truncate(1);
    }
    if p.authentication_method.is_none() {
        p.authentication_data = None;
    }
    p
}

/// Properties for `ctx` in version `v` (none before 5.0).
fn props(v: ProtocolVersion, ctx: PropertyContext) -> BoxedStrategy<Properties> {
    if v.is_v5() {
        any_properties().prop_map(move |p| restrict(p, ctx)).boxed()
    } else {
        Just(Properties::default()).boxed()
    }
}

fn pprops(v: ProtocolVersion, t: PacketType) -> BoxedStrategy<Properties> {
    props(v, PropertyContext::Packet(t))
}

/// A v5 reason code valid in `t`, by trying every byte value.
fn reason(t: PacketType) -> BoxedStrategy<ReasonCode> {
    let codes: Vec<ReasonCode> = (0..=255u8)
        .filter_map(|b| ReasonCode::from_byte(b, t))
        .collect();
    proptest::sample::select(codes).boxed()
}

fn connect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let will = (
        topic(),
        bin(),
        qos(),
        any::<bool>(),
        props(v, PropertyContext::Will),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| LastWill {
            topic: Arc::from(topic),
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        "[a-zA-Z0-9]{0,30}",
        of(will),
        of(text()),
        of(bin()),
        pprops(v, PacketType::Connect),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                let password = if username.is_none() && !v.is_v5() {
                    None
                } else {
                    password
                };
                Packet::Connect(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
        .boxed()
}

fn connack(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let reasons: BoxedStrategy<ReasonCode> = if v.is_v5() {
        reason(PacketType::ConnAck)
    } else {
        (0u8..=5)
            .prop_filter_map("3.x code", ReasonCode::from_v3_connack_code)
            .boxed()
    };
    (any::<bool>(), reasons, pprops(v, PacketType::ConnAck))
        .prop_map(move |(sp, reason, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: sp && reason.value() == 0 && v != ProtocolVersion::V3_1,
                reason,
                properties,
            })
        })
        .boxed()
}

fn publish(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic(),
        any::<bool>(),
        pkid(),
        bin(),
        pprops(v, PacketType::Publish),
    )
        .prop_map(
            move |(dup, qos, retain, topic, alias_only, pkid, payload, properties)| {
                let alias_only = alias_only && properties.topic_alias.is_some();
                Packet::Publish(Publish {
                    dup: dup && (qos != QoS::AtMostOnce || v == ProtocolVersion::V3_1),
                    qos,
                    retain,
                    topic: Arc::from(if alias_only { "" } else { topic.as_str() }),
                    pkid: if qos == QoS::AtMostOnce { 0 } else { pkid },
                    payload,
                    properties,
                })
            },
        )
        .boxed()
}

fn ack(v: ProtocolVersion, t: PacketType) -> BoxedStrategy<PubAck> {
    let reasons = if v.is_v5() {
        reason(t)
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (pkid(), reasons, pprops(v, t))
        .prop_map(|(pkid, reason, properties)| PubAck {
            pkid,
            reason,
            properties,
        })
        .boxed()
}

fn options(v: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    if !v.is_v5() {
        return qos()
            .prop_map(|qos| SubscriptionOptions {
                qos,
                ..Default::default()
            })
            .boxed();
    }
    let rh = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (qos(), any::<bool>(), any::<bool>(), rh)
        .prop_map(
            |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                qos,
                no_local,
                retain_as_published,
                retain_handling,
            },
        )
        .boxed()
}

fn subscribe(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let entry = (filter(), options(v)).prop_map(|(filter, mut options)| {
        if filter.starts_with("$share/") {
            options.no_local = false;
        }
        SubscribeFilter { filter, options }
    });
    (pkid(), vec(entry, 1..4), pprops(v, PacketType::Subscribe))
        .prop_map(|(pkid, filters, properties)| {
            Packet::Subscribe(Subscribe {
                pkid,
                filters,
                properties,
            })
        })
        .boxed()
}

fn suback(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let reasons = if v.is_v5() {
        reason(PacketType::SubAck)
    } else {
        proptest::sample::select(vec![0u8, 1, 2, 0x80])
            .prop_filter_map("3.x code", ReasonCode::from_v3_suback_code)
            .boxed()
    };
    (pkid(), vec(reasons, 1..4), pprops(v, PacketType::SubAck))
        .prop_map(|(pkid, reasons, properties)| {
            Packet::SubAck(SubAck {
                pkid,
                reasons,
                properties,
            })
        })
        .boxed()
}

fn unsubscribe(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    (
        pkid(),
        vec(filter(), 1..4),
        pprops(v, PacketType::Unsubscribe),
    )
        .prop_map(|(pkid, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                pkid,
                filters,
                properties,
            })
        })
        .boxed()
}

fn unsuback(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let reasons = if v.is_v5() {
        vec(reason(PacketType::UnsubAck), 1..4).boxed()
    } else {
        Just(vec![]).boxed()
    };
    (pkid(), reasons, pprops(v, PacketType::UnsubAck))
        .prop_map(|(pkid, reasons, properties)| {
            Packet::UnsubAck(UnsubAck {
                pkid,
                reasons,
                properties,
            })
        })
        .boxed()
}

fn disconnect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let reasons = if v.is_v5() {
        reason(PacketType::Disconnect)
    } else {
        Just(ReasonCode::NormalDisconnection).boxed()
    };
    (reasons, pprops(v, PacketType::Disconnect))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
        .boxed()
}

fn auth() -> BoxedStrategy<Packet> {
    (
        reason(PacketType::Auth),
        pprops(ProtocolVersion::V5, PacketType::Auth),
    )
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
        .boxed()
}

fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut all = vec![
        connect(v),
        connack(v),
        publish(v),
        ack(v, PacketType::PubAck).prop_map(Packet::PubAck).boxed(),
        ack(v, PacketType::PubRec).prop_map(Packet::PubRec).boxed(),
        ack(v, PacketType::PubRel).prop_map(Packet::PubRel).boxed(),
        ack(v, PacketType::PubComp)
            .prop_map(Packet::PubComp)
            .boxed(),
        subscribe(v),
        suback(v),
        unsubscribe(v),
        unsuback(v),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(v),
    ];
    if v.is_v5() {
        all.push(auth());
    }
    proptest::strategy::Union::new(all).boxed()
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| packet(v).prop_map(move |p| (v, p)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn decode_encode_round_trip((v, p) in versioned_packet()) {
        let bytes = encode(&p, v);
        prop_assert_eq!(bytes.len(), encoded_len(&p, v));
        let back = decode(&bytes, v).unwrap();
        prop_assert_eq!(back, p);
    }

    #[test]
    fn split_anywhere_decodes_the_same((v, p) in versioned_packet(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&p, v);
        let cut = cut.index(bytes.len());
        let mut buf = bytes::BytesMut::from(&bytes[..cut]);
        if cut < bytes.len() {
            prop_assert!(decode_packet(&mut buf, v, MAX).unwrap().is_none());
            prop_assert_eq!(buf.len(), cut);
        }
        buf.extend_from_slice(&bytes[cut..]);
        prop_assert_eq!(decode_packet(&mut buf, v, MAX).unwrap(), Some(p));
        prop_assert!(buf.is_empty());
    }
}
