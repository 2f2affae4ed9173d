//! The one error type of the protocol crate: every wire rule that can be broken has its
//! own variant, and each maps to the MQTT 5 reason code the spec prescribes.

use crate::packet::PacketType;
use crate::properties::{PropertyContext, PropertyId};
use crate::reason::ReasonCode;

/// A decode or encode failure. Variants name the rule that was broken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The declared remaining length exceeds the configured maximum packet size.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total packet size declared by the fixed header.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// I/O error from the underlying stream (only via `tokio_util::codec`).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    // ----- fixed header and framing -----
    /// Packet type 0 is reserved and never valid.
    #[error("packet type 0 is reserved")]
    ReservedPacketType,
    /// The low nibble of the first byte differs from what the spec fixes for this type.
    #[error("reserved fixed header flags {flags:#06b} are invalid for {packet:?}")]
    InvalidFixedHeaderFlags {
        /// The packet type.
        packet: PacketType,
        /// The flags found.
        flags: u8,
    },
    /// A variable byte integer (e.g. the remaining length) is longer than 4 bytes.
    #[error("variable byte integer longer than 4 bytes")]
    VariableByteIntegerTooLong,
    /// A variable byte integer does not use the minimum number of bytes (MQTT-1.5.5-1).
    #[error("variable byte integer not minimally encoded")]
    NonMinimalVariableByteInteger,
    /// The packet's fields run past its declared remaining length (truncated body).
    #[error("declared remaining length shorter than contents")]
    RemainingLengthTooShort,
    /// Bytes are left inside the remaining length after the packet's last field.
    #[error("{count} trailing bytes after the end of the packet")]
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// AUTH is an MQTT 5 packet; type 15 is reserved in 3.1 and 3.1.1.
    #[error("AUTH packet is only valid in MQTT 5")]
    AuthNotAllowed,

    // ----- data types -----
    /// A UTF-8 string field is not well-formed UTF-8 (this includes encoded surrogates).
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    /// A UTF-8 string field contains U+0000.
    #[error("string contains the null character U+0000")]
    NullCharacterInString,
    /// A string or binary field longer than 65,535 bytes cannot be encoded.
    #[error("string or binary data of {len} bytes exceeds 65535 bytes")]
    StringTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A packet whose remaining length would exceed 268,435,455 bytes cannot be encoded.
    #[error("remaining length {remaining} exceeds 268435455 bytes")]
    EncodedPacketTooLarge {
        /// The remaining length the packet would need.
        remaining: usize,
    },
    /// A packet identifier is 0 where a non-zero one is required.
    #[error("packet identifier must be non-zero")]
    ZeroPacketId,
    /// QoS value 3 (both QoS bits set).
    #[error("QoS 3 is not a valid QoS")]
    InvalidQoS,

    // ----- CONNECT / CONNACK -----
    /// The protocol name is neither `MQTT` nor `MQIsdp` (or does not fit the level).
    #[error("unknown protocol name {name:?} (level {level})")]
    InvalidProtocolName {
        /// The name sent.
        name: String,
        /// The level sent.
        level: u8,
    },
    /// The protocol level is not 3, 4 or 5 (or does not fit the name).
    #[error("unsupported protocol level {level}")]
    UnsupportedProtocolVersion {
        /// The level sent.
        level: u8,
    },
    /// The CONNECT flags' reserved bit 0 is set (MQTT-3.1.2-3).
    #[error("CONNECT reserved flag bit is set")]
    ConnectReservedFlag,
    /// Will QoS or will retain is set while the will flag is not (MQTT-3.1.2-11/13/15).
    #[error("will QoS or will retain set without the will flag")]
    WillFlagsWithoutWill,
    /// The password flag is set without the user name flag (3.1 and 3.1.1, MQTT-3.1.2-22).
    #[error("password flag set without user name flag")]
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags bits 7..1 are reserved and must be 0.
    #[error("CONNACK reserved acknowledge flags set: {flags:#04x}")]
    ConnAckReservedFlags {
        /// The flags byte.
        flags: u8,
    },
    /// CONNACK with a failure code must not set session present (MQTT-3.2.2-4 / 3.2.2-6).
    #[error("CONNACK session present set with a failure code")]
    SessionPresentWithFailure,

    // ----- reason codes -----
    /// A reason/return code byte that is not defined for this packet (and version).
    #[error("reason code {code:#04x} is not valid in {packet:?}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The byte found (or, when encoding, the code's value).
        code: u8,
    },

    // ----- PUBLISH -----
    /// A QoS 0 PUBLISH has the DUP flag set (MQTT-3.3.1-2, 3.1.1 and 5.0).
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,

    // ----- topics -----
    /// A topic name is empty (allowed only in MQTT 5 PUBLISH with a topic alias).
    #[error("topic name is empty")]
    EmptyTopicName,
    /// A topic name contains `+` or `#`.
    #[error("topic name contains a wildcard character")]
    WildcardInTopicName,
    /// A topic filter is empty.
    #[error("topic filter is empty")]
    EmptyTopicFilter,
    /// `#` is not alone in its level or not the last level.
    #[error("'#' must occupy a whole level and be the last level of the filter")]
    MisplacedMultiLevelWildcard,
    /// `+` is not alone in its level.
    #[error("'+' must occupy a whole level of the filter")]
    MisplacedSingleLevelWildcard,
    /// `$share/` with an empty share name.
    #[error("shared subscription has an empty share name")]
    EmptyShareName,
    /// The share name contains `+` or `#`.
    #[error("shared subscription share name contains a wildcard")]
    WildcardInShareName,
    /// `$share/<group>` without `/<filter>`, or with an empty filter.
    #[error("shared subscription has no topic filter after the share name")]
    MissingSharedFilter,

    // ----- SUBSCRIBE / UNSUBSCRIBE -----
    /// SUBSCRIBE without any topic filter (MQTT-3.8.3-2).
    #[error("SUBSCRIBE contains no topic filter")]
    EmptySubscribe,
    /// UNSUBSCRIBE without any topic filter (MQTT-3.10.3-2).
    #[error("UNSUBSCRIBE contains no topic filter")]
    EmptyUnsubscribe,
    /// Reserved bits of the subscription options byte are set (MQTT-3.8.3-5).
    #[error("subscription options reserved bits set: {options:#04x}")]
    SubscriptionOptionsReservedBits {
        /// The options byte.
        options: u8,
    },
    /// Retain handling value 3.
    #[error("retain handling 3 is not valid")]
    InvalidRetainHandling,
    /// No Local set on a shared subscription (MQTT-3.8.3-4).
    #[error("no local set on a shared subscription")]
    NoLocalOnSharedSubscription,

    // ----- properties -----
    /// A property identifier that MQTT 5 does not define.
    #[error("unknown property identifier {id:#04x}")]
    UnknownProperty {
        /// The identifier byte.
        id: u8,
    },
    /// A property that may appear only once appears again.
    #[error("property {id:?} appears more than once")]
    DuplicateProperty {
        /// The property.
        id: PropertyId,
    },
    /// A property that is not allowed in this packet (or will).
    #[error("property {id:?} is not allowed in {context:?}")]
    PropertyNotAllowed {
        /// The property.
        id: PropertyId,
        /// Where it appeared.
        context: PropertyContext,
    },
    /// A property's value is out of its range (0 where non-zero is required, or a
    /// byte property other than 0/1).
    #[error("property {id:?} value {value} is out of range")]
    PropertyValueOutOfRange {
        /// The property.
        id: PropertyId,
        /// The value found.
        value: u32,
    },
    /// Topic Alias 0 (MQTT-3.3.2-8).
    #[error("topic alias 0 is not allowed")]
    TopicAliasZero,
    /// A Response Topic containing wildcards or empty (MQTT-3.3.2-14).
    #[error("response topic is not a valid topic name")]
    InvalidResponseTopic,
    /// Authentication Data without Authentication Method.
    #[error("authentication data without authentication method")]
    AuthenticationDataWithoutMethod,
    /// A value inside the property block runs past the property length.
    #[error("property length shorter than the properties")]
    PropertyLengthTooShort,
}

impl Error {
    /// The MQTT 5 reason code for a DISCONNECT (or CONNACK) caused by this error.
    pub fn reason_code(&self) -> ReasonCode {
        use Error::*;
        match self {
            PacketTooLarge { .. } | EncodedPacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Io(_) => ReasonCode::UnspecifiedError,
            ReservedPacketType
            | InvalidFixedHeaderFlags { .. }
            | VariableByteIntegerTooLong
            | NonMinimalVariableByteInteger
            | RemainingLengthTooShort
            | TrailingBytes { .. }
            | InvalidUtf8
            | NullCharacterInString
            | StringTooLong { .. }
            | InvalidQoS
            | ConnectReservedFlag
            | WillFlagsWithoutWill
            | ConnAckReservedFlags { .. }
            | InvalidReasonCode { .. }
            | DupWithQoS0
            | SubscriptionOptionsReservedBits { .. }
            | UnknownProperty { .. }
            | PropertyNotAllowed { .. }
            | PropertyLengthTooShort => ReasonCode::MalformedPacket,
            AuthNotAllowed
            | ZeroPacketId
            | PasswordWithoutUsername
            | SessionPresentWithFailure
            | EmptyTopicName
            | EmptySubscribe
            | EmptyUnsubscribe
            | InvalidRetainHandling
            | NoLocalOnSharedSubscription
            | DuplicateProperty { .. }
            | PropertyValueOutOfRange { .. }
            | InvalidResponseTopic
            | AuthenticationDataWithoutMethod => ReasonCode::ProtocolError,
            InvalidProtocolName { .. } | UnsupportedProtocolVersion { .. } => {
                ReasonCode::UnsupportedProtocolVersion
            }
            WildcardInTopicName => ReasonCode::TopicNameInvalid,
            EmptyTopicFilter
            | MisplacedMultiLevelWildcard
            | MisplacedSingleLevelWildcard
            | EmptyShareName
            | WildcardInShareName
            | MissingSharedFilter => ReasonCode::TopicFilterInvalid,
            TopicAliasZero => ReasonCode::TopicAliasInvalid,
        }
    }

    /// True if the error concerns the protocol name or level of a CONNECT: the server
    /// should answer CONNACK 0x01 (3.x) or 0x84 (5.0) before closing.
    pub fn is_unsupported_protocol(&self) -> bool {
        matches!(
            self,
            Error::InvalidProtocolName { .. } | Error::UnsupportedProtocolVersion { .. }
        )
    }
}
