//! Exact encoding of packets: a checking pass that refuses anything the wire cannot
//! carry, a sizing pass, and an infallible writing pass that mirrors the sizing.

use bytes::{BufMut, BytesMut};

use crate::decode::fixed_flags;
use crate::error::Error;
use crate::packet::*;
use crate::properties::{Properties, PropertyContext};
use crate::property_codec;
use crate::reason::ReasonCode;
use crate::topic::{parse_shared, validate_topic_filter, validate_topic_name};
use crate::wire::{self, check_len, check_str, put_binary, put_str, put_varint};

/// The version a packet is written in: CONNECT carries its own.
fn effective(packet: &Packet, version: ProtocolVersion) -> ProtocolVersion {
    match packet {
        Packet::Connect(c) => c.protocol,
        _ => version,
    }
}

/// Checks, sizes and writes `packet`.
pub(crate) fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    let version = effective(packet, version);
    check(packet, version)?;
    let remaining = remaining_len(packet, version);
    if remaining > wire::MAX_VARINT {
        return Err(Error::EncodedPacketTooLarge { remaining });
    }
    buf.reserve(1 + wire::varint_len(remaining) + remaining);
    buf.put_u8(first_byte(packet));
    put_varint(buf, remaining);
    write_body(packet, version, buf);
    Ok(())
}

/// Total encoded size of `packet` (fixed header included), without checking it.
pub(crate) fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let remaining = remaining_len(packet, effective(packet, version));
    1 + wire::varint_len(remaining) + remaining
}

fn first_byte(packet: &Packet) -> u8 {
    let kind = packet.packet_type();
    let flags = match packet {
        Packet::Publish(p) => (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain),
        _ => fixed_flags(kind),
    };
    ((kind as u8) << 4) | flags
}

// ----- checking -----

fn check_props(
    props: &Properties,
    version: ProtocolVersion,
    packet: PacketType,
) -> Result<(), Error> {
    if version.is_v5() {
        property_codec::check(props, PropertyContext::Packet(packet))?;
    }
    Ok(())
}

fn check_pkid(pkid: u16) -> Result<(), Error> {
    if pkid == 0 {
        return Err(Error::ZeroPacketId);
    }
    Ok(())
}

fn check_reason(reason: ReasonCode, packet: PacketType) -> Result<(), Error> {
    if !reason.allowed_in(packet) {
        return Err(Error::InvalidReasonCode {
            packet,
            code: reason.value(),
        });
    }
    Ok(())
}

fn check(packet: &Packet, version: ProtocolVersion) -> Result<(), Error> {
    let kind = packet.packet_type();
    match packet {
        Packet::Connect(c) => check_connect(c),
        Packet::ConnAck(c) => {
            if version.is_v5() {
                check_reason(c.reason, kind)?;
            } else if c.reason.v3_connack_code().is_none() {
                return Err(Error::InvalidReasonCode {
                    packet: kind,
                    code: c.reason.value(),
                });
            }
            if c.session_present && c.reason.value() != 0 && version != ProtocolVersion::V3_1 {
                return Err(Error::SessionPresentWithFailure);
            }
            check_props(&c.properties, version, kind)
        }
        Packet::Publish(p) => {
            if p.dup && p.qos == QoS::AtMostOnce && version != ProtocolVersion::V3_1 {
                return Err(Error::DupWithQoS0);
            }
            if p.qos != QoS::AtMostOnce {
                check_pkid(p.pkid)?;
            }
            if !(version.is_v5() && p.topic.is_empty() && p.properties.topic_alias.is_some()) {
                validate_topic_name(&p.topic)?;
            }
            check_props(&p.properties, version, kind)
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            check_pkid(a.pkid)?;
            if version.is_v5() {
                check_reason(a.reason, kind)?;
            }
            check_props(&a.properties, version, kind)
        }
        Packet::Subscribe(s) => {
            check_pkid(s.pkid)?;
            if s.filters.is_empty() {
                return Err(Error::EmptySubscribe);
            }
            for f in &s.filters {
                validate_topic_filter(&f.filter)?;
                if version.is_v5() && f.options.no_local && parse_shared(&f.filter).is_some() {
                    return Err(Error::NoLocalOnSharedSubscription);
                }
            }
            check_props(&s.properties, version, kind)
        }
        Packet::SubAck(s) => {
            check_pkid(s.pkid)?;
            for r in &s.reasons {
                if version.is_v5() {
                    check_reason(*r, kind)?;
                } else if r.v3_suback_code().is_none() {
                    return Err(Error::InvalidReasonCode {
                        packet: kind,
                        code: r.value(),
                    });
                }
            }
            check_props(&s.properties, version, kind)
        }
        Packet::Unsubscribe(u) => {
            check_pkid(u.pkid)?;
            if u.filters.is_empty() {
                return Err(Error::EmptyUnsubscribe);
            }
            for f in &u.filters {
                validate_topic_filter(f)?;
            }
            check_props(&u.properties, version, kind)
        }
        Packet::UnsubAck(u) => {
            check_pkid(u.pkid)?;
            if version.is_v5() {
                for r in &u.reasons {
                    check_reason(*r, kind)?;
                }
            }
            check_props(&u.properties, version, kind)
        }
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => {
            if version.is_v5() {
                check_reason(d.reason, kind)?;
            }
            check_props(&d.properties, version, kind)
        }
        Packet::Auth(a) => {
            if !version.is_v5() {
                return Err(Error::AuthNotAllowed);
            }
            check_reason(a.reason, kind)?;
            check_props(&a.properties, version, kind)
        }
    }
}

fn check_connect(c: &Connect) -> Result<(), Error> {
    let version = c.protocol;
    check_str(&c.client_id)?;
    if let Some(will) = &c.will {
        validate_topic_name(&will.topic)?;
        check_len(will.payload.len())?;
        if version.is_v5() {
            property_codec::check(&will.properties, PropertyContext::Will)?;
        }
    }
    if let Some(username) = &c.username {
        check_str(username)?;
    }
    if let Some(password) = &c.password {
        check_len(password.len())?;
        if c.username.is_none() && !version.is_v5() {
            return Err(Error::PasswordWithoutUsername);
        }
    }
    check_props(&c.properties, version, PacketType::Connect)
}

// ----- sizing -----

fn props_len(props: &Properties, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        property_codec::block_len(props)
    } else {
        0
    }
}

/// Size of the optional "reason code + properties" tail of PUBACK-like packets and
/// DISCONNECT: nothing when Success without properties, the code alone without
/// properties, else both.
fn tail_len(reason: ReasonCode, props: &Properties) -> usize {
    if props.is_empty() {
        usize::from(reason.value() != 0)
    } else {
        1 + property_codec::block_len(props)
    }
}

fn remaining_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => {
            let mut len = 2 + version.protocol_name().len() + 1 + 1 + 2;
            len += props_len(&c.properties, version);
            len += 2 + c.client_id.len();
            if let Some(w) = &c.will {
                len += props_len(&w.properties, version);
                len += 2 + w.topic.len() + 2 + w.payload.len();
            }
            len += c.username.as_ref().map_or(0, |u| 2 + u.len());
            len += c.password.as_ref().map_or(0, |p| 2 + p.len());
            len
        }
        Packet::ConnAck(c) => 2 + props_len(&c.properties, version),
        Packet::Publish(p) => {
            let pkid = if p.qos == QoS::AtMostOnce { 0 } else { 2 };
            2 + p.topic.len() + pkid + props_len(&p.properties, version) + p.payload.len()
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            2 + if v5 {
                tail_len(a.reason, &a.properties)
            } else {
                0
            }
        }
        Packet::Subscribe(s) => {
            let filters: usize = s.filters.iter().map(|f| 3 + f.filter.len()).sum();
            2 + props_len(&s.properties, version) + filters
        }
        Packet::SubAck(s) => 2 + props_len(&s.properties, version) + s.reasons.len(),
        Packet::Unsubscribe(u) => {
            let filters: usize = u.filters.iter().map(|f| 2 + f.len()).sum();
            2 + props_len(&u.properties, version) + filters
        }
        Packet::UnsubAck(u) => {
            2 + if v5 {
                property_codec::block_len(&u.properties) + u.reasons.len()
            } else {
                0
            }
        }
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => {
            if v5 {
                tail_len(d.reason, &d.properties)
            } else {
                0
            }
        }
        Packet::Auth(a) => {
            if a.reason.value() == 0 && a.properties.is_empty() {
                0
            } else {
                1 + property_codec::block_len(&a.properties)
            }
        }
    }
}

// ----- writing -----

fn write_props(buf: &mut BytesMut, props: &Properties, version: ProtocolVersion) {
    if version.is_v5() {
        property_codec::write(buf, props);
    }
}

fn write_tail(buf: &mut BytesMut, reason: ReasonCode, props: &Properties) {
    if props.is_empty() {
        if reason.value() != 0 {
            buf.put_u8(reason.value());
        }
    } else {
        buf.put_u8(reason.value());
        property_codec::write(buf, props);
    }
}

fn write_body(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => write_connect(c, buf),
        Packet::ConnAck(c) => {
            let session_present = c.session_present && version != ProtocolVersion::V3_1;
            buf.put_u8(u8::from(session_present));
            let code = if v5 {
                Some(c.reason.value())
            } else {
                c.reason.v3_connack_code()
            };
            buf.put_u8(code.unwrap_or(0x80));
            write_props(buf, &c.properties, version);
        }
        Packet::Publish(p) => {
            put_str(buf, &p.topic);
            if p.qos != QoS::AtMostOnce {
                buf.put_u16(p.pkid);
            }
            write_props(buf, &p.properties, version);
            buf.put_slice(&p.payload);
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            buf.put_u16(a.pkid);
            if v5 {
                write_tail(buf, a.reason, &a.properties);
            }
        }
        Packet::Subscribe(s) => {
            buf.put_u16(s.pkid);
            write_props(buf, &s.properties, version);
            for f in &s.filters {
                put_str(buf, &f.filter);
                buf.put_u8(options_byte(&f.options, v5));
            }
        }
        Packet::SubAck(s) => {
            buf.put_u16(s.pkid);
            write_props(buf, &s.properties, version);
            for r in &s.reasons {
                let code = if v5 {
                    Some(r.value())
                } else {
                    r.v3_suback_code()
                };
                buf.put_u8(code.unwrap_or(0x80));
            }
        }
        Packet::Unsubscribe(u) => {
            buf.put_u16(u.pkid);
            write_props(buf, &u.properties, version);
            for f in &u.filters {
                put_str(buf, f);
            }
        }
        Packet::UnsubAck(u) => {
            buf.put_u16(u.pkid);
            if v5 {
                property_codec::write(buf, &u.properties);
                for r in &u.reasons {
                    buf.put_u8(r.value());
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v5 {
                write_tail(buf, d.reason, &d.properties);
            }
        }
        Packet::Auth(a) => {
            if a.reason.value() != 0 || !a.properties.is_empty() {
                buf.put_u8(a.reason.value());
                property_codec::write(buf, &a.properties);
            }
        }
    }
}

fn options_byte(o: &SubscriptionOptions, v5: bool) -> u8 {
    let qos = o.qos as u8;
    if !v5 {
        return qos;
    }
    qos | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4)
}

fn write_connect(c: &Connect, buf: &mut BytesMut) {
    let version = c.protocol;
    put_str(buf, version.protocol_name());
    buf.put_u8(version.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(w) = &c.will {
        flags |= 0x04 | ((w.qos as u8) << 3) | (u8::from(w.retain) << 5);
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    write_props(buf, &c.properties, version);
    put_str(buf, &c.client_id);
    if let Some(w) = &c.will {
        write_props(buf, &w.properties, version);
        put_str(buf, &w.topic);
        put_binary(buf, &w.payload);
    }
    if let Some(u) = &c.username {
        put_str(buf, u);
    }
    if let Some(p) = &c.password {
        put_binary(buf, p);
    }
}
