//! Strict decoding of packet bodies, one function per packet type. The fixed header has
//! already been parsed and the body is complete.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Error;
use crate::packet::*;
use crate::properties::{Properties, PropertyContext};
use crate::property_codec;
use crate::reason::ReasonCode;
use crate::topic::{parse_shared, validate_topic_filter, validate_topic_name};
use crate::wire::{Bound, Reader};

/// The packet type of a first byte, with its flags checked (all but PUBLISH fix them).
pub(crate) fn packet_type(first: u8, version: ProtocolVersion) -> Result<PacketType, Error> {
    let flags = first & 0x0F;
    let packet = match first >> 4 {
        0 => return Err(Error::ReservedPacketType),
        1 => PacketType::Connect,
        2 => PacketType::ConnAck,
        3 => return Ok(PacketType::Publish),
        4 => PacketType::PubAck,
        5 => PacketType::PubRec,
        6 => PacketType::PubRel,
        7 => PacketType::PubComp,
        8 => PacketType::Subscribe,
        9 => PacketType::SubAck,
        10 => PacketType::Unsubscribe,
        11 => PacketType::UnsubAck,
        12 => PacketType::PingReq,
        13 => PacketType::PingResp,
        14 => PacketType::Disconnect,
        _ if version.is_v5() => PacketType::Auth,
        _ => return Err(Error::AuthNotAllowed),
    };
    let expected = fixed_flags(packet);
    // MQTT 3.1 let clients set DUP on a resent PUBREL/SUBSCRIBE/UNSUBSCRIBE.
    let v31_dup = version == ProtocolVersion::V3_1 && expected == 0b0010 && flags == 0b1010;
    if flags != expected && !v31_dup {
        return Err(Error::InvalidFixedHeaderFlags { packet, flags });
    }
    Ok(packet)
}

/// The fixed-header flags of every type except PUBLISH.
pub(crate) fn fixed_flags(packet: PacketType) -> u8 {
    match packet {
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
        _ => 0,
    }
}

/// Decodes the body of a packet whose first byte is `first`.
pub(crate) fn body(
    first: u8,
    packet: PacketType,
    body: Bytes,
    version: ProtocolVersion,
) -> Result<Packet, Error> {
    let mut r = Reader::new(body, Bound::Packet);
    let packet = match packet {
        PacketType::Connect => Packet::Connect(connect(&mut r)?),
        PacketType::ConnAck => Packet::ConnAck(connack(&mut r, version)?),
        PacketType::Publish => Packet::Publish(publish(first, &mut r, version)?),
        PacketType::PubAck => Packet::PubAck(puback(&mut r, packet, version)?),
        PacketType::PubRec => Packet::PubRec(puback(&mut r, packet, version)?),
        PacketType::PubRel => Packet::PubRel(puback(&mut r, packet, version)?),
        PacketType::PubComp => Packet::PubComp(puback(&mut r, packet, version)?),
        PacketType::Subscribe => Packet::Subscribe(subscribe(&mut r, version)?),
        PacketType::SubAck => Packet::SubAck(suback(&mut r, version)?),
        PacketType::Unsubscribe => Packet::Unsubscribe(unsubscribe(&mut r, version)?),
        PacketType::UnsubAck => Packet::UnsubAck(unsuback(&mut r, version)?),
        PacketType::PingReq => Packet::PingReq,
        PacketType::PingResp => Packet::PingResp,
        PacketType::Disconnect => Packet::Disconnect(disconnect(&mut r, version)?),
        PacketType::Auth => Packet::Auth(auth(&mut r)?),
    };
    r.finish()?;
    Ok(packet)
}

/// Reads a property block if `version` has them, else returns the empty set.
fn properties(
    r: &mut Reader,
    version: ProtocolVersion,
    packet: PacketType,
) -> Result<Properties, Error> {
    if version.is_v5() {
        property_codec::read(r, PropertyContext::Packet(packet))
    } else {
        Ok(Properties::default())
    }
}

/// A packet identifier that must be non-zero.
fn pkid(r: &mut Reader) -> Result<u16, Error> {
    match r.u16()? {
        0 => Err(Error::ZeroPacketId),
        id => Ok(id),
    }
}

/// A v5 reason code byte valid in `packet`.
fn reason(r: &mut Reader, packet: PacketType) -> Result<ReasonCode, Error> {
    let code = r.u8()?;
    ReasonCode::from_byte(code, packet).ok_or(Error::InvalidReasonCode { packet, code })
}

/// The protocol version named by a CONNECT's protocol name and level.
fn protocol(name: &str, level: u8) -> Result<ProtocolVersion, Error> {
    match (name, level) {
        ("MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        ("MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        ("MQTT", 5) => Ok(ProtocolVersion::V5),
        ("MQTT" | "MQIsdp", level) => Err(Error::UnsupportedProtocolVersion { level }),
        (name, level) => Err(Error::InvalidProtocolName {
            name: name.to_owned(),
            level,
        }),
    }
}

fn connect(r: &mut Reader) -> Result<Connect, Error> {
    let name = r.string()?;
    let level = r.u8()?;
    let version = protocol(&name, level)?;
    let flags = r.u8()?;
    // 3.1 has no reserved-bit rule; mosquitto also checks it only for 3.1.1 and 5.0.
    if flags & 0x01 != 0 && version != ProtocolVersion::V3_1 {
        return Err(Error::ConnectReservedFlag);
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = QoS::from_u8((flags >> 3) & 0x03).ok_or(Error::InvalidQoS)?;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(Error::WillFlagsWithoutWill);
    }
    if password_flag && !username_flag && !version.is_v5() {
        return Err(Error::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = properties(r, version, PacketType::Connect)?;
    // 3.1 limits client ids to 23 characters; like mosquitto we accept longer ones.
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if version.is_v5() {
            property_codec::read(r, PropertyContext::Will)?
        } else {
            Properties::default()
        };
        let topic: Arc<str> = r.arc_str()?;
        validate_topic_name(&topic)?;
        let payload = r.binary()?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol: version,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn connack(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck, Error> {
    let flags = r.u8()?;
    // In 3.1 this byte is reserved and unused: ignore it.
    let session_present = match version {
        ProtocolVersion::V3_1 => false,
        _ if flags & 0xFE != 0 => return Err(Error::ConnAckReservedFlags { flags }),
        _ => flags & 0x01 != 0,
    };
    let code = r.u8()?;
    let packet = PacketType::ConnAck;
    let reason = if version.is_v5() {
        ReasonCode::from_byte(code, packet)
    } else {
        ReasonCode::from_v3_connack_code(code)
    }
    .ok_or(Error::InvalidReasonCode { packet, code })?;
    if session_present && reason.value() != 0 {
        return Err(Error::SessionPresentWithFailure);
    }
    let properties = properties(r, version, packet)?;
    Ok(ConnAck {
        session_present,
        reason,
        properties,
    })
}

fn publish(first: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Publish, Error> {
    let dup = first & 0x08 != 0;
    let qos = QoS::from_u8((first >> 1) & 0x03).ok_or(Error::InvalidQoS)?;
    let retain = first & 0x01 != 0;
    if dup && qos == QoS::AtMostOnce && version != ProtocolVersion::V3_1 {
        return Err(Error::DupWithQoS0);
    }
    let topic: Arc<str> = r.arc_str()?;
    let pkid = if qos == QoS::AtMostOnce { 0 } else { pkid(r)? };
    let properties = properties(r, version, PacketType::Publish)?;
    if !(topic.is_empty() && properties.topic_alias.is_some()) {
        validate_topic_name(&topic)?;
    }
    let payload = r.rest();
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        pkid,
        payload,
        properties,
    })
}

fn puback(r: &mut Reader, packet: PacketType, version: ProtocolVersion) -> Result<PubAck, Error> {
    let pkid = pkid(r)?;
    let mut ack = PubAck::new(pkid);
    if version.is_v5() && r.remaining() > 0 {
        ack.reason = reason(r, packet)?;
        if r.remaining() > 0 {
            ack.properties = property_codec::read(r, PropertyContext::Packet(packet))?;
        }
    }
    Ok(ack)
}

/// The options byte of one SUBSCRIBE entry.
fn subscription_options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, Error> {
    let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
    if byte & reserved != 0 {
        return Err(Error::SubscriptionOptionsReservedBits { options: byte });
    }
    let qos = QoS::from_u8(byte & 0x03).ok_or(Error::InvalidQoS)?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(Error::InvalidRetainHandling),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn subscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Subscribe, Error> {
    let pkid = pkid(r)?;
    let properties = properties(r, version, PacketType::Subscribe)?;
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        let filter = r.string()?;
        validate_topic_filter(&filter)?;
        let options = subscription_options(r.u8()?, version)?;
        if options.no_local && parse_shared(&filter).is_some() {
            return Err(Error::NoLocalOnSharedSubscription);
        }
        filters.push(SubscribeFilter { filter, options });
    }
    if filters.is_empty() {
        return Err(Error::EmptySubscribe);
    }
    Ok(Subscribe {
        pkid,
        filters,
        properties,
    })
}

fn suback(r: &mut Reader, version: ProtocolVersion) -> Result<SubAck, Error> {
    let pkid = pkid(r)?;
    let packet = PacketType::SubAck;
    let properties = properties(r, version, packet)?;
    let mut reasons = Vec::with_capacity(r.remaining());
    while r.remaining() > 0 {
        let code = r.u8()?;
        let reason = if version.is_v5() {
            ReasonCode::from_byte(code, packet)
        } else {
            ReasonCode::from_v3_suback_code(code)
        };
        reasons.push(reason.ok_or(Error::InvalidReasonCode { packet, code })?);
    }
    Ok(SubAck {
        pkid,
        reasons,
        properties,
    })
}

fn unsubscribe(r: &mut Reader, version: ProtocolVersion) -> Result<Unsubscribe, Error> {
    let pkid = pkid(r)?;
    let properties = properties(r, version, PacketType::Unsubscribe)?;
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        let filter = r.string()?;
        validate_topic_filter(&filter)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(Error::EmptyUnsubscribe);
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        properties,
    })
}

fn unsuback(r: &mut Reader, version: ProtocolVersion) -> Result<UnsubAck, Error> {
    let pkid = pkid(r)?;
    let packet = PacketType::UnsubAck;
    let properties = properties(r, version, packet)?;
    let mut reasons = Vec::new();
    if version.is_v5() {
        while r.remaining() > 0 {
            reasons.push(reason(r, packet)?);
        }
    }
    Ok(UnsubAck {
        pkid,
        reasons,
        properties,
    })
}

fn disconnect(r: &mut Reader, version: ProtocolVersion) -> Result<Disconnect, Error> {
    let mut disconnect = Disconnect {
        reason: ReasonCode::NormalDisconnection,
        properties: Properties::default(),
    };
    if version.is_v5() && r.remaining() > 0 {
        disconnect.reason = reason(r, PacketType::Disconnect)?;
        if r.remaining() > 0 {
            disconnect.properties =
                property_codec::read(r, PropertyContext::Packet(PacketType::Disconnect))?;
        }
    }
    Ok(disconnect)
}

fn auth(r: &mut Reader) -> Result<Auth, Error> {
    let mut auth = Auth {
        reason: ReasonCode::Success,
        properties: Properties::default(),
    };
    if r.remaining() > 0 {
        auth.reason = reason(r, PacketType::Auth)?;
        if r.remaining() > 0 {
            auth.properties = property_codec::read(r, PropertyContext::Packet(PacketType::Auth))?;
        }
    }
    Ok(auth)
}
