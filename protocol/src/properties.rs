//! MQTT 5 properties (spec §2.2.2.2): one struct holding every property, plus the table
//! of which packet each property may appear in.

use std::sync::Arc;

use bytes::Bytes;

use crate::packet::PacketType;

/// The identifier byte of each MQTT 5 property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyId {
    /// 0x01 byte: PUBLISH, will.
    PayloadFormatIndicator = 0x01,
    /// 0x02 four-byte integer: PUBLISH, will.
    MessageExpiryInterval = 0x02,
    /// 0x03 UTF-8 string: PUBLISH, will.
    ContentType = 0x03,
    /// 0x08 UTF-8 string: PUBLISH, will.
    ResponseTopic = 0x08,
    /// 0x09 binary data: PUBLISH, will.
    CorrelationData = 0x09,
    /// 0x0B variable byte integer: PUBLISH, SUBSCRIBE.
    SubscriptionIdentifier = 0x0B,
    /// 0x11 four-byte integer: CONNECT, CONNACK, DISCONNECT.
    SessionExpiryInterval = 0x11,
    /// 0x12 UTF-8 string: CONNACK.
    AssignedClientIdentifier = 0x12,
    /// 0x13 two-byte integer: CONNACK.
    ServerKeepAlive = 0x13,
    /// 0x15 UTF-8 string: CONNECT, CONNACK, AUTH.
    AuthenticationMethod = 0x15,
    /// 0x16 binary data: CONNECT, CONNACK, AUTH.
    AuthenticationData = 0x16,
    /// 0x17 byte: CONNECT.
    RequestProblemInformation = 0x17,
    /// 0x18 four-byte integer: will.
    WillDelayInterval = 0x18,
    /// 0x19 byte: CONNECT.
    RequestResponseInformation = 0x19,
    /// 0x1A UTF-8 string: CONNACK.
    ResponseInformation = 0x1A,
    /// 0x1C UTF-8 string: CONNACK, DISCONNECT.
    ServerReference = 0x1C,
    /// 0x1F UTF-8 string: CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH.
    ReasonString = 0x1F,
    /// 0x21 two-byte integer: CONNECT, CONNACK.
    ReceiveMaximum = 0x21,
    /// 0x22 two-byte integer: CONNECT, CONNACK.
    TopicAliasMaximum = 0x22,
    /// 0x23 two-byte integer: PUBLISH.
    TopicAlias = 0x23,
    /// 0x24 byte: CONNACK.
    MaximumQoS = 0x24,
    /// 0x25 byte: CONNACK.
    RetainAvailable = 0x25,
    /// 0x26 UTF-8 string pair: every packet with properties; may repeat.
    UserProperty = 0x26,
    /// 0x27 four-byte integer: CONNECT, CONNACK.
    MaximumPacketSize = 0x27,
    /// 0x28 byte: CONNACK.
    WildcardSubscriptionAvailable = 0x28,
    /// 0x29 byte: CONNACK.
    SubscriptionIdentifierAvailable = 0x29,
    /// 0x2A byte: CONNACK.
    SharedSubscriptionAvailable = 0x2A,
}

impl PropertyId {
    /// The property with identifier `id`, if MQTT 5 defines one.
    pub fn from_u8(id: u8) -> Option<PropertyId> {
        use PropertyId::*;
        Some(match id {
            0x01 => PayloadFormatIndicator,
            0x02 => MessageExpiryInterval,
            0x03 => ContentType,
            0x08 => ResponseTopic,
            0x09 => CorrelationData,
            0x0B => SubscriptionIdentifier,
            0x11 => SessionExpiryInterval,
            0x12 => AssignedClientIdentifier,
            0x13 => ServerKeepAlive,
            0x15 => AuthenticationMethod,
            0x16 => AuthenticationData,
            0x17 => RequestProblemInformation,
            0x18 => WillDelayInterval,
            0x19 => RequestResponseInformation,
            0x1A => ResponseInformation,
            0x1C => ServerReference,
            0x1F => ReasonString,
            0x21 => ReceiveMaximum,
            0x22 => TopicAliasMaximum,
            0x23 => TopicAlias,
            0x24 => MaximumQoS,
            0x25 => RetainAvailable,
            0x26 => UserProperty,
            0x27 => MaximumPacketSize,
            0x28 => WildcardSubscriptionAvailable,
            0x29 => SubscriptionIdentifierAvailable,
            0x2A => SharedSubscriptionAvailable,
            _ => return None,
        })
    }

    /// True if the property may appear in `context` (spec §2.2.2.2 table).
    pub fn allowed_in(self, context: PropertyContext) -> bool {
        use PacketType as T;
        use PropertyContext::{Packet as P, Will};
        use PropertyId::*;
        match self {
            PayloadFormatIndicator
            | MessageExpiryInterval
            | ContentType
            | ResponseTopic
            | CorrelationData => matches!(context, P(T::Publish) | Will),
            SubscriptionIdentifier => matches!(context, P(T::Publish) | P(T::Subscribe)),
            SessionExpiryInterval => {
                matches!(context, P(T::Connect) | P(T::ConnAck) | P(T::Disconnect))
            }
            AssignedClientIdentifier
            | ServerKeepAlive
            | ResponseInformation
            | MaximumQoS
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => context == P(T::ConnAck),
            AuthenticationMethod | AuthenticationData => {
                matches!(context, P(T::Connect) | P(T::ConnAck) | P(T::Auth))
            }
            RequestProblemInformation | RequestResponseInformation => context == P(T::Connect),
            WillDelayInterval => context == Will,
            ServerReference => matches!(context, P(T::ConnAck) | P(T::Disconnect)),
            ReasonString => matches!(
                context,
                P(T::ConnAck)
                    | P(T::PubAck)
                    | P(T::PubRec)
                    | P(T::PubRel)
                    | P(T::PubComp)
                    | P(T::SubAck)
                    | P(T::UnsubAck)
                    | P(T::Disconnect)
                    | P(T::Auth)
            ),
            ReceiveMaximum | TopicAliasMaximum | MaximumPacketSize => {
                matches!(context, P(T::Connect) | P(T::ConnAck))
            }
            TopicAlias => context == P(T::Publish),
            UserProperty => !matches!(context, P(T::PingReq) | P(T::PingResp)),
        }
    }
}

/// Where a property block appears: a packet, or the will properties of a CONNECT
/// (which have their own set of allowed properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    /// The properties of a packet of this type.
    Packet(PacketType),
    /// The will properties inside a CONNECT payload.
    Will,
}

/// The MQTT 5 properties of one packet (or of a will), as [`PropertyValues`] behind one
/// pointer that is null when none is set.
///
/// Every MQTT 3.1/3.1.1 packet, and most MQTT 5 ones, has no properties: this keeps a
/// `Publish` at 64 B instead of 384 B, and a stored message small. Reading a property
/// goes through `Deref` (an empty set reads as [`PropertyValues::EMPTY`]); writing one
/// through `DerefMut` allocates the values on the first write. Two sets are equal when
/// their values are, whether or not the values were allocated.
#[derive(Clone, Default)]
pub struct Properties(Option<Box<PropertyValues>>);

impl Properties {
    /// True if no property is set.
    pub fn is_empty(&self) -> bool {
        self.0
            .as_deref()
            .is_none_or(|v| *v == PropertyValues::EMPTY)
    }

    /// Takes a property out with `take` (e.g. `|v| v.topic_alias.take()`) without
    /// allocating when none is set (unlike going through `DerefMut`), and frees the
    /// values if that left them empty.
    pub fn take<T>(&mut self, take: impl FnOnce(&mut PropertyValues) -> Option<T>) -> Option<T> {
        let values = self.0.as_deref_mut()?;
        let taken = take(values);
        if *values == PropertyValues::EMPTY {
            self.0 = None;
        }
        taken
    }
}

/// What an empty [`Properties`] reads as.
static NO_VALUES: PropertyValues = PropertyValues::EMPTY;

impl std::ops::Deref for Properties {
    type Target = PropertyValues;

    fn deref(&self) -> &PropertyValues {
        self.0.as_deref().unwrap_or(&NO_VALUES)
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut PropertyValues {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<PropertyValues> for Properties {
    fn from(values: PropertyValues) -> Properties {
        if values == PropertyValues::EMPTY {
            Properties(None)
        } else {
            Properties(Some(Box::new(values)))
        }
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Properties) -> bool {
        **self == **other
    }
}

impl Eq for Properties {}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// All MQTT 5 properties of one packet (or of a will). `None`/empty means absent.
///
/// Which fields may be set depends on the packet; the decoder rejects a property in the
/// wrong packet, and the encoder refuses to write one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropertyValues {
    /// 0x01: 0 = unspecified bytes, 1 = UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// 0x02: lifetime of the message in seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03: MIME type of the payload.
    pub content_type: Option<Arc<str>>,
    /// 0x08: topic for a response.
    pub response_topic: Option<Arc<str>>,
    /// 0x09: correlation data for a response.
    pub correlation_data: Option<Bytes>,
    /// 0x0B: subscription identifiers (at most one in SUBSCRIBE, several in PUBLISH); 1..=268,435,455.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11: session expiry in seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12: client id assigned by the server.
    pub assigned_client_identifier: Option<String>,
    /// 0x13: keep alive imposed by the server.
    pub server_keep_alive: Option<u16>,
    /// 0x15: enhanced authentication method.
    pub authentication_method: Option<String>,
    /// 0x16: enhanced authentication data.
    pub authentication_data: Option<Bytes>,
    /// 0x17: 0 or 1.
    pub request_problem_information: Option<u8>,
    /// 0x18: will delay in seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19: 0 or 1.
    pub request_response_information: Option<u8>,
    /// 0x1A: basis for response topics.
    pub response_information: Option<String>,
    /// 0x1C: another server to use.
    pub server_reference: Option<String>,
    /// 0x1F: human readable reason.
    pub reason_string: Option<String>,
    /// 0x21: receive maximum, non-zero.
    pub receive_maximum: Option<u16>,
    /// 0x22: topic alias maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: topic alias, non-zero.
    pub topic_alias: Option<u16>,
    /// 0x24: 0 or 1.
    pub maximum_qos: Option<u8>,
    /// 0x25: 0 or 1.
    pub retain_available: Option<u8>,
    /// 0x26: user properties, in order; names may repeat.
    pub user_properties: Vec<(String, String)>,
    /// 0x27: maximum packet size, non-zero.
    pub maximum_packet_size: Option<u32>,
    /// 0x28: 0 or 1.
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29: 0 or 1.
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A: 0 or 1.
    pub shared_subscription_available: Option<u8>,
}

impl PropertyValues {
    /// No property set.
    pub const EMPTY: PropertyValues = PropertyValues {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, Publish};

    /// Packets are moved by value through decoding and dispatch, and a `Publish`'s fields
    /// live on in every stored message: properties behind one pointer keep both small
    /// (with the values inline, `Publish` was 384 B and `Packet` 800 B; now 64 B and 160 B).
    #[test]
    fn packets_stay_small_without_properties() {
        assert_eq!(std::mem::size_of::<Properties>(), 8);
        let publish = std::mem::size_of::<Publish>();
        assert!(publish <= 64, "Publish is {publish} B");
        let packet = std::mem::size_of::<Packet>();
        assert!(packet <= 160, "Packet is {packet} B");
    }

    // The assignments go through `DerefMut` (the point of the test), not to fields of a
    // `Default` value that an initializer could set.
    #[allow(clippy::field_reassign_with_default)]
    #[test]
    fn an_empty_set_equals_an_allocated_empty_set() {
        let mut written = Properties::default();
        written.topic_alias = Some(3);
        written.topic_alias = None;
        assert!(written.is_empty());
        assert_eq!(written, Properties::default());
        let mut other = Properties::default();
        other.topic_alias = Some(3);
        assert_ne!(other, Properties::default());
        assert!(!other.is_empty());
    }

    #[test]
    fn taking_from_an_empty_set_allocates_nothing() {
        let mut none = Properties::default();
        assert_eq!(none.take(|v| v.topic_alias.take()), None);
        assert!(none.0.is_none());
        let mut one: Properties = PropertyValues {
            topic_alias: Some(7),
            ..PropertyValues::default()
        }
        .into();
        assert_eq!(one.take(|v| v.topic_alias.take()), Some(7));
        assert!(one.0.is_none(), "emptied values are freed");
        let mut two: Properties = PropertyValues {
            topic_alias: Some(7),
            content_type: Some("text/plain".into()),
            ..PropertyValues::default()
        }
        .into();
        assert_eq!(two.take(|v| v.topic_alias.take()), Some(7));
        assert_eq!(two.content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn values_convert_to_a_set_and_read_back() {
        let set: Properties = PropertyValues {
            reason_string: Some("why".into()),
            ..PropertyValues::default()
        }
        .into();
        assert_eq!(set.reason_string.as_deref(), Some("why"));
        let none: Properties = PropertyValues::default().into();
        assert!(none.is_empty());
        assert!(none.0.is_none(), "empty values are not allocated");
    }
}
