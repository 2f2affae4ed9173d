//! MQTT 5 reason codes (spec §2.4), also used to express 3.x CONNACK and SUBACK codes.

use crate::packet::PacketType;

/// Every reason code defined by MQTT 5.0. Codes ≥ 0x80 are failures.
///
/// Several codes share the value 0x00 (Success, NormalDisconnection, GrantedQoS0);
/// the packet decides which name applies, so decoding picks the one valid there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReasonCode {
    /// 0x00 Success (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, AUTH).
    #[default]
    Success,
    /// 0x00 Normal disconnection (DISCONNECT).
    NormalDisconnection,
    /// 0x00 Granted QoS 0 (SUBACK).
    GrantedQoS0,
    /// 0x01 Granted QoS 1 (SUBACK).
    GrantedQoS1,
    /// 0x02 Granted QoS 2 (SUBACK).
    GrantedQoS2,
    /// 0x04 Disconnect with will message.
    DisconnectWithWillMessage,
    /// 0x10 No matching subscribers.
    NoMatchingSubscribers,
    /// 0x11 No subscription existed.
    NoSubscriptionExisted,
    /// 0x18 Continue authentication.
    ContinueAuthentication,
    /// 0x19 Re-authenticate.
    ReAuthenticate,
    /// 0x80 Unspecified error.
    UnspecifiedError,
    /// 0x81 Malformed packet.
    MalformedPacket,
    /// 0x82 Protocol error.
    ProtocolError,
    /// 0x83 Implementation specific error.
    ImplementationSpecificError,
    /// 0x84 Unsupported protocol version.
    UnsupportedProtocolVersion,
    /// 0x85 Client identifier not valid.
    ClientIdentifierNotValid,
    /// 0x86 Bad user name or password.
    BadUserNameOrPassword,
    /// 0x87 Not authorized.
    NotAuthorized,
    /// 0x88 Server unavailable.
    ServerUnavailable,
    /// 0x89 Server busy.
    ServerBusy,
    /// 0x8A Banned.
    Banned,
    /// 0x8B Server shutting down.
    ServerShuttingDown,
    /// 0x8C Bad authentication method.
    BadAuthenticationMethod,
    /// 0x8D Keep alive timeout.
    KeepAliveTimeout,
    /// 0x8E Session taken over.
    SessionTakenOver,
    /// 0x8F Topic filter invalid.
    TopicFilterInvalid,
    /// 0x90 Topic name invalid.
    TopicNameInvalid,
    /// 0x91 Packet identifier in use.
    PacketIdentifierInUse,
    /// 0x92 Packet identifier not found.
    PacketIdentifierNotFound,
    /// 0x93 Receive maximum exceeded.
    ReceiveMaximumExceeded,
    /// 0x94 Topic alias invalid.
    TopicAliasInvalid,
    /// 0x95 Packet too large.
    PacketTooLarge,
    /// 0x96 Message rate too high.
    MessageRateTooHigh,
    /// 0x97 Quota exceeded.
    QuotaExceeded,
    /// 0x98 Administrative action.
    AdministrativeAction,
    /// 0x99 Payload format invalid.
    PayloadFormatInvalid,
    /// 0x9A Retain not supported.
    RetainNotSupported,
    /// 0x9B QoS not supported.
    QoSNotSupported,
    /// 0x9C Use another server.
    UseAnotherServer,
    /// 0x9D Server moved.
    ServerMoved,
    /// 0x9E Shared subscriptions not supported.
    SharedSubscriptionsNotSupported,
    /// 0x9F Connection rate exceeded.
    ConnectionRateExceeded,
    /// 0xA0 Maximum connect time.
    MaximumConnectTime,
    /// 0xA1 Subscription identifiers not supported.
    SubscriptionIdentifiersNotSupported,
    /// 0xA2 Wildcard subscriptions not supported.
    WildcardSubscriptionsNotSupported,
}

impl ReasonCode {
    /// The code's byte value.
    pub fn value(self) -> u8 {
        use ReasonCode::*;
        match self {
            Success | NormalDisconnection | GrantedQoS0 => 0x00,
            GrantedQoS1 => 0x01,
            GrantedQoS2 => 0x02,
            DisconnectWithWillMessage => 0x04,
            NoMatchingSubscribers => 0x10,
            NoSubscriptionExisted => 0x11,
            ContinueAuthentication => 0x18,
            ReAuthenticate => 0x19,
            UnspecifiedError => 0x80,
            MalformedPacket => 0x81,
            ProtocolError => 0x82,
            ImplementationSpecificError => 0x83,
            UnsupportedProtocolVersion => 0x84,
            ClientIdentifierNotValid => 0x85,
            BadUserNameOrPassword => 0x86,
            NotAuthorized => 0x87,
            ServerUnavailable => 0x88,
            ServerBusy => 0x89,
            Banned => 0x8A,
            ServerShuttingDown => 0x8B,
            BadAuthenticationMethod => 0x8C,
            KeepAliveTimeout => 0x8D,
            SessionTakenOver => 0x8E,
            TopicFilterInvalid => 0x8F,
            TopicNameInvalid => 0x90,
            PacketIdentifierInUse => 0x91,
            PacketIdentifierNotFound => 0x92,
            ReceiveMaximumExceeded => 0x93,
            TopicAliasInvalid => 0x94,
            PacketTooLarge => 0x95,
            MessageRateTooHigh => 0x96,
            QuotaExceeded => 0x97,
            AdministrativeAction => 0x98,
            PayloadFormatInvalid => 0x99,
            RetainNotSupported => 0x9A,
            QoSNotSupported => 0x9B,
            UseAnotherServer => 0x9C,
            ServerMoved => 0x9D,
            SharedSubscriptionsNotSupported => 0x9E,
            ConnectionRateExceeded => 0x9F,
            MaximumConnectTime => 0xA0,
            SubscriptionIdentifiersNotSupported => 0xA1,
            WildcardSubscriptionsNotSupported => 0xA2,
        }
    }

    /// True for codes ≥ 0x80.
    pub fn is_failure(self) -> bool {
        self.value() >= 0x80
    }

    /// The SUBACK code granting `qos`.
    pub fn granted(qos: crate::QoS) -> ReasonCode {
        match qos {
            crate::QoS::AtMostOnce => ReasonCode::GrantedQoS0,
            crate::QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            crate::QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        }
    }
}

impl ReasonCode {
    /// The MQTT 5 code with byte value `value` as it is named in a `packet`, if the spec
    /// allows that value there (0x00 becomes Success, NormalDisconnection or GrantedQoS0).
    pub fn from_byte(value: u8, packet: PacketType) -> Option<ReasonCode> {
        let code = match value {
            0x00 => match packet {
                PacketType::Disconnect => ReasonCode::NormalDisconnection,
                PacketType::SubAck => ReasonCode::GrantedQoS0,
                _ => ReasonCode::Success,
            },
            other => from_nonzero(other)?,
        };
        code.allowed_in(packet).then_some(code)
    }

    /// True if MQTT 5 allows this code in a `packet` (the name must be the one used
    /// there; a value-equal code of another name is accepted, as it encodes the same).
    pub fn allowed_in(self, packet: PacketType) -> bool {
        let v = self.value();
        match packet {
            PacketType::ConnAck => matches!(
                v,
                0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
            ),
            PacketType::PubAck | PacketType::PubRec => {
                matches!(
                    v,
                    0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
                )
            }
            PacketType::PubRel | PacketType::PubComp => matches!(v, 0x00 | 0x92),
            PacketType::SubAck => matches!(
                v,
                0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
            ),
            PacketType::UnsubAck => {
                matches!(v, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91)
            }
            PacketType::Disconnect => matches!(
                v,
                0x00 | 0x04
                    | 0x80..=0x83
                    | 0x87
                    | 0x89
                    | 0x8B
                    | 0x8D..=0x90
                    | 0x93..=0xA2
            ),
            PacketType::Auth => matches!(v, 0x00 | 0x18 | 0x19),
            _ => false,
        }
    }

    /// The MQTT 3.x CONNACK return code (0..=5) for this code, if it has one.
    pub fn v3_connack_code(self) -> Option<u8> {
        match self {
            ReasonCode::Success => Some(0),
            ReasonCode::UnsupportedProtocolVersion => Some(1),
            ReasonCode::ClientIdentifierNotValid => Some(2),
            ReasonCode::ServerUnavailable => Some(3),
            ReasonCode::BadUserNameOrPassword => Some(4),
            ReasonCode::NotAuthorized => Some(5),
            _ => None,
        }
    }

    /// The code for MQTT 3.x CONNACK return code `code` (0..=5).
    pub fn from_v3_connack_code(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => ReasonCode::Success,
            1 => ReasonCode::UnsupportedProtocolVersion,
            2 => ReasonCode::ClientIdentifierNotValid,
            3 => ReasonCode::ServerUnavailable,
            4 => ReasonCode::BadUserNameOrPassword,
            5 => ReasonCode::NotAuthorized,
            _ => return None,
        })
    }

    /// The MQTT 3.x SUBACK return code for this code: 0, 1, 2 or 0x80.
    pub fn v3_suback_code(self) -> Option<u8> {
        match self {
            ReasonCode::GrantedQoS0 | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => {
                Some(self.value())
            }
            ReasonCode::UnspecifiedError => Some(0x80),
            _ => None,
        }
    }

    /// The code for MQTT 3.x SUBACK return code `code`.
    pub fn from_v3_suback_code(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => ReasonCode::GrantedQoS0,
            1 => ReasonCode::GrantedQoS1,
            2 => ReasonCode::GrantedQoS2,
            0x80 => ReasonCode::UnspecifiedError,
            _ => return None,
        })
    }
}

/// The unique code of a non-zero byte value.
fn from_nonzero(value: u8) -> Option<ReasonCode> {
    use ReasonCode::*;
    Some(match value {
        0x01 => GrantedQoS1,
        0x02 => GrantedQoS2,
        0x04 => DisconnectWithWillMessage,
        0x10 => NoMatchingSubscribers,
        0x11 => NoSubscriptionExisted,
        0x18 => ContinueAuthentication,
        0x19 => ReAuthenticate,
        0x80 => UnspecifiedError,
        0x81 => MalformedPacket,
        0x82 => ProtocolError,
        0x83 => ImplementationSpecificError,
        0x84 => UnsupportedProtocolVersion,
        0x85 => ClientIdentifierNotValid,
        0x86 => BadUserNameOrPassword,
        0x87 => NotAuthorized,
        0x88 => ServerUnavailable,
        0x89 => ServerBusy,
        0x8A => Banned,
        0x8B => ServerShuttingDown,
        0x8C => BadAuthenticationMethod,
        0x8D => KeepAliveTimeout,
        0x8E => SessionTakenOver,
        0x8F => TopicFilterInvalid,
        0x90 => TopicNameInvalid,
        0x91 => PacketIdentifierInUse,
        0x92 => PacketIdentifierNotFound,
        0x93 => ReceiveMaximumExceeded,
        0x94 => TopicAliasInvalid,
        0x95 => PacketTooLarge,
        0x96 => MessageRateTooHigh,
        0x97 => QuotaExceeded,
        0x98 => AdministrativeAction,
        0x99 => PayloadFormatInvalid,
        0x9A => RetainNotSupported,
        0x9B => QoSNotSupported,
        0x9C => UseAnotherServer,
        0x9D => ServerMoved,
        0x9E => SharedSubscriptionsNotSupported,
        0x9F => ConnectionRateExceeded,
        0xA0 => MaximumConnectTime,
        0xA1 => SubscriptionIdentifiersNotSupported,
        0xA2 => WildcardSubscriptionsNotSupported,
        _ => return None,
    })
}
