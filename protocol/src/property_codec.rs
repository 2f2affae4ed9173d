//! Reading, checking, sizing and writing MQTT 5 property blocks (spec §2.2.2).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use crate::error::Error;
use crate::packet::PacketType;
use crate::properties::{Properties, PropertyContext, PropertyId};
use crate::topic::validate_topic_name;
use crate::wire::{self, Bound, Reader};

/// One property value, borrowed from a [`Properties`].
enum Value<'a> {
    Byte(u8),
    Two(u16),
    Four(u32),
    Var(u32),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

impl Value<'_> {
    /// Encoded size of the value (without the identifier byte).
    fn len(&self) -> usize {
        match self {
            Value::Byte(_) => 1,
            Value::Two(_) => 2,
            Value::Four(_) => 4,
            Value::Var(v) => wire::varint_len(*v as usize),
            Value::Str(s) => 2 + s.len(),
            Value::Bin(b) => 2 + b.len(),
            Value::Pair(k, v) => 4 + k.len() + v.len(),
        }
    }
}

/// Calls `f` for every property set in `props`, in identifier order.
fn for_each<'a>(
    props: &'a Properties,
    mut f: impl FnMut(PropertyId, Value<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    use PropertyId as P;
    use Value as V;
    if let Some(v) = props.payload_format_indicator {
        f(P::PayloadFormatIndicator, V::Byte(v))?;
    }
    if let Some(v) = props.message_expiry_interval {
        f(P::MessageExpiryInterval, V::Four(v))?;
    }
    if let Some(v) = &props.content_type {
        f(P::ContentType, V::Str(v))?;
    }
    if let Some(v) = &props.response_topic {
        f(P::ResponseTopic, V::Str(v))?;
    }
    if let Some(v) = &props.correlation_data {
        f(P::CorrelationData, V::Bin(v))?;
    }
    for v in &props.subscription_identifiers {
        f(P::SubscriptionIdentifier, V::Var(*v))?;
    }
    if let Some(v) = props.session_expiry_interval {
        f(P::SessionExpiryInterval, V::Four(v))?;
    }
    if let Some(v) = &props.assigned_client_identifier {
        f(P::AssignedClientIdentifier, V::Str(v))?;
    }
    if let Some(v) = props.server_keep_alive {
        f(P::ServerKeepAlive, V::Two(v))?;
    }
    if let Some(v) = &props.authentication_method {
        f(P::AuthenticationMethod, V::Str(v))?;
    }
    if let Some(v) = &props.authentication_data {
        f(P::AuthenticationData, V::Bin(v))?;
    }
    if let Some(v) = props.request_problem_information {
        f(P::RequestProblemInformation, V::Byte(v))?;
    }
    if let Some(v) = props.will_delay_interval {
        f(P::WillDelayInterval, V::Four(v))?;
    }
    if let Some(v) = props.request_response_information {
        f(P::RequestResponseInformation, V::Byte(v))?;
    }
    if let Some(v) = &props.response_information {
        f(P::ResponseInformation, V::Str(v))?;
    }
    if let Some(v) = &props.server_reference {
        f(P::ServerReference, V::Str(v))?;
    }
    if let Some(v) = &props.reason_string {
        f(P::ReasonString, V::Str(v))?;
    }
    if let Some(v) = props.receive_maximum {
        f(P::ReceiveMaximum, V::Two(v))?;
    }
    if let Some(v) = props.topic_alias_maximum {
        f(P::TopicAliasMaximum, V::Two(v))?;
    }
    if let Some(v) = props.topic_alias {
        f(P::TopicAlias, V::Two(v))?;
    }
    if let Some(v) = props.maximum_qos {
        f(P::MaximumQoS, V::Byte(v))?;
    }
    if let Some(v) = props.retain_available {
        f(P::RetainAvailable, V::Byte(v))?;
    }
    for (k, v) in &props.user_properties {
        f(P::UserProperty, V::Pair(k, v))?;
    }
    if let Some(v) = props.maximum_packet_size {
        f(P::MaximumPacketSize, V::Four(v))?;
    }
    if let Some(v) = props.wildcard_subscription_available {
        f(P::WildcardSubscriptionAvailable, V::Byte(v))?;
    }
    if let Some(v) = props.subscription_identifier_available {
        f(P::SubscriptionIdentifierAvailable, V::Byte(v))?;
    }
    if let Some(v) = props.shared_subscription_available {
        f(P::SharedSubscriptionAvailable, V::Byte(v))?;
    }
    Ok(())
}

/// The value rules of one property (ranges, non-zero, topic validity).
fn check_value(id: PropertyId, value: &Value<'_>) -> Result<(), Error> {
    use PropertyId as P;
    let out_of_range = |value: u32| Err(Error::PropertyValueOutOfRange { id, value });
    match (id, value) {
        (P::TopicAlias, Value::Two(0)) => Err(Error::TopicAliasZero),
        (P::ReceiveMaximum, Value::Two(0))
        | (P::MaximumPacketSize, Value::Four(0))
        | (P::SubscriptionIdentifier, Value::Var(0)) => out_of_range(0),
        (P::SubscriptionIdentifier, Value::Var(v)) if *v as usize > wire::MAX_VARINT => {
            out_of_range(*v)
        }
        (_, Value::Byte(v)) if *v > 1 => out_of_range(u32::from(*v)),
        (P::ResponseTopic, Value::Str(topic)) => {
            validate_topic_name(topic).map_err(|_| Error::InvalidResponseTopic)
        }
        (_, Value::Str(s)) => wire::check_str(s),
        (_, Value::Bin(b)) => wire::check_len(b.len()),
        (_, Value::Pair(k, v)) => {
            wire::check_str(k)?;
            wire::check_str(v)
        }
        _ => Ok(()),
    }
}

/// Rules about the whole block: at most one subscription identifier outside PUBLISH,
/// authentication data only with a method.
fn check_block(props: &Properties, context: PropertyContext) -> Result<(), Error> {
    if props.subscription_identifiers.len() > 1
        && context != PropertyContext::Packet(PacketType::Publish)
    {
        return Err(Error::DuplicateProperty {
            id: PropertyId::SubscriptionIdentifier,
        });
    }
    if props.authentication_data.is_some() && props.authentication_method.is_none() {
        return Err(Error::AuthenticationDataWithoutMethod);
    }
    Ok(())
}

/// Checks that `props` can be encoded in `context`; returns the block's content length.
pub(crate) fn check(props: &Properties, context: PropertyContext) -> Result<usize, Error> {
    let mut len = 0;
    for_each(props, |id, value| {
        if !id.allowed_in(context) {
            return Err(Error::PropertyNotAllowed { id, context });
        }
        check_value(id, &value)?;
        len += 1 + value.len();
        Ok(())
    })?;
    check_block(props, context)?;
    if len > wire::MAX_VARINT {
        return Err(Error::EncodedPacketTooLarge { remaining: len });
    }
    Ok(len)
}

/// Content length of the property block (without its own length prefix).
pub(crate) fn content_len(props: &Properties) -> usize {
    let mut len = 0;
    let _ = for_each(props, |_, value| {
        len += 1 + value.len();
        Ok(())
    });
    len
}

/// Length of the block including its variable byte integer length prefix.
pub(crate) fn block_len(props: &Properties) -> usize {
    let len = content_len(props);
    wire::varint_len(len) + len
}

/// Writes the property length and the properties (checked by [`check`] beforehand).
pub(crate) fn write(buf: &mut BytesMut, props: &Properties) {
    wire::put_varint(buf, content_len(props));
    let _ = for_each(props, |id, value| {
        buf.put_u8(id as u8);
        match value {
            Value::Byte(v) => buf.put_u8(v),
            Value::Two(v) => buf.put_u16(v),
            Value::Four(v) => buf.put_u32(v),
            Value::Var(v) => wire::put_varint(buf, v as usize),
            Value::Str(s) => wire::put_str(buf, s),
            Value::Bin(b) => wire::put_binary(buf, b),
            Value::Pair(k, v) => {
                wire::put_str(buf, k);
                wire::put_str(buf, v);
            }
        }
        Ok(())
    });
}

/// Reads a property block (length prefix included) valid for `context`.
pub(crate) fn read(r: &mut Reader, context: PropertyContext) -> Result<Properties, Error> {
    let len = r.varint()?;
    let mut p = Reader::new(r.take(len)?, Bound::Properties);
    let mut props = Properties::default();
    let mut seen = 0u64;
    while p.remaining() > 0 {
        let raw = p.u8()?;
        let id = PropertyId::from_u8(raw).ok_or(Error::UnknownProperty { id: raw })?;
        if !id.allowed_in(context) {
            return Err(Error::PropertyNotAllowed { id, context });
        }
        let repeatable = id == PropertyId::UserProperty
            || (id == PropertyId::SubscriptionIdentifier
                && context == PropertyContext::Packet(PacketType::Publish));
        let bit = 1u64 << (id as u8);
        if !repeatable && seen & bit != 0 {
            return Err(Error::DuplicateProperty { id });
        }
        seen |= bit;
        read_one(&mut p, id, &mut props)?;
    }
    check_block(&props, context)?;
    Ok(props)
}

/// Reads the value of property `id`, checks it and stores it in `props`.
fn read_one(p: &mut Reader, id: PropertyId, props: &mut Properties) -> Result<(), Error> {
    use PropertyId as P;
    let byte = |p: &mut Reader| -> Result<u8, Error> {
        let v = p.u8()?;
        check_value(id, &Value::Byte(v))?;
        Ok(v)
    };
    let two = |p: &mut Reader| -> Result<u16, Error> {
        let v = p.u16()?;
        check_value(id, &Value::Two(v))?;
        Ok(v)
    };
    let four = |p: &mut Reader| -> Result<u32, Error> {
        let v = p.u32()?;
        check_value(id, &Value::Four(v))?;
        Ok(v)
    };
    match id {
        P::PayloadFormatIndicator => props.payload_format_indicator = Some(byte(p)?),
        P::MessageExpiryInterval => props.message_expiry_interval = Some(four(p)?),
        P::ContentType => props.content_type = Some(p.arc_str()?),
        P::ResponseTopic => {
            let topic: Arc<str> = p.arc_str()?;
            check_value(id, &Value::Str(&topic))?;
            props.response_topic = Some(topic);
        }
        P::CorrelationData => props.correlation_data = Some(p.binary()?),
        P::SubscriptionIdentifier => {
            let v = p.varint()? as u32;
            check_value(id, &Value::Var(v))?;
            props.subscription_identifiers.push(v);
        }
        P::SessionExpiryInterval => props.session_expiry_interval = Some(four(p)?),
        P::AssignedClientIdentifier => props.assigned_client_identifier = Some(p.string()?),
        P::ServerKeepAlive => props.server_keep_alive = Some(two(p)?),
        P::AuthenticationMethod => props.authentication_method = Some(p.string()?),
        P::AuthenticationData => props.authentication_data = Some(p.binary()?),
        P::RequestProblemInformation => props.request_problem_information = Some(byte(p)?),
        P::WillDelayInterval => props.will_delay_interval = Some(four(p)?),
        P::RequestResponseInformation => props.request_response_information = Some(byte(p)?),
        P::ResponseInformation => props.response_information = Some(p.string()?),
        P::ServerReference => props.server_reference = Some(p.string()?),
        P::ReasonString => props.reason_string = Some(p.string()?),
        P::ReceiveMaximum => props.receive_maximum = Some(two(p)?),
        P::TopicAliasMaximum => props.topic_alias_maximum = Some(two(p)?),
        P::TopicAlias => props.topic_alias = Some(two(p)?),
        P::MaximumQoS => props.maximum_qos = Some(byte(p)?),
        P::RetainAvailable => props.retain_available = Some(byte(p)?),
        P::UserProperty => {
            let k = p.string()?;
            let v = p.string()?;
            props.user_properties.push((k, v));
        }
        P::MaximumPacketSize => props.maximum_packet_size = Some(four(p)?),
        P::WildcardSubscriptionAvailable => props.wildcard_subscription_available = Some(byte(p)?),
        P::SubscriptionIdentifierAvailable => {
            props.subscription_identifier_available = Some(byte(p)?)
        }
        P::SharedSubscriptionAvailable => props.shared_subscription_available = Some(byte(p)?),
    }
    Ok(())
}
