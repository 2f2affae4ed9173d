//! Incremental, strict decoding and exact encoding of MQTT packets.

use bytes::{Buf, BytesMut};

use crate::decode;
use crate::encode;
use crate::error::Error;
use crate::packet::{Packet, PacketType, ProtocolVersion};
use crate::wire::{read_varint, VarInt};

/// Decodes one packet from the front of `buf` if it is complete, removing its bytes.
///
/// Returns `Ok(None)` (consuming nothing) while the packet is incomplete. The declared
/// remaining length is checked against `max_packet_size` (total packet size, as MQTT 5
/// defines it) from the fixed header alone, before the body is buffered. A CONNECT packet
/// is decoded according to its own protocol level, whatever `version` says.
///
/// Strictness: every wire rule of the spec is enforced (see [`Error`]); variable byte
/// integers must be minimally encoded (MQTT-1.5.5-1, applied to 3.x too). MQTT 3.1
/// leniencies: client identifiers longer than 23 characters are accepted (as mosquitto
/// does), the CONNECT reserved bit and the CONNACK flags byte are not checked, DUP is
/// tolerated on QoS 0 PUBLISH and on PUBREL/SUBSCRIBE/UNSUBSCRIBE.
pub fn decode_packet(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let kind = decode::packet_type(first, version)?;
    let (remaining, len_bytes) = match read_varint(&buf[1..])? {
        VarInt::Complete(value, len) => (value, len),
        VarInt::Incomplete => return Ok(None),
    };
    let size = 1 + len_bytes + remaining;
    if size > max_packet_size {
        return Err(Error::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    if buf.len() < size {
        buf.reserve(size - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(size);
    frame.advance(1 + len_bytes);
    let version = if kind == PacketType::Connect {
        // Decoded per its own protocol level; `body` reads it.
        ProtocolVersion::V5
    } else {
        version
    };
    decode::body(first, kind, frame.freeze(), version).map(Some)
}

/// Appends the exact wire bytes of `packet` for `version` to `buf`.
///
/// The packet is checked first (reason codes and properties allowed in the packet and
/// version, packet identifiers, topic names and filters, string lengths, total size), and
/// nothing is written if it cannot be encoded. Fields the version has no room for are
/// not written: properties and reason codes of 3.x PUBACK-like packets, UNSUBACK and
/// DISCONNECT, subscription options other than QoS, the pkid of a QoS 0 PUBLISH, and
/// the session present flag in 3.1. CONNECT is written in its own `protocol` version.
/// MQTT 5 short forms are used whenever allowed: PUBACK/PUBREC/PUBREL/PUBCOMP and
/// DISCONNECT omit the reason code when it is 0x00 with no properties and the property
/// length when there are no properties; AUTH is empty for Success without properties.
pub fn encode_packet(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    encode::encode(packet, version, buf)
}

/// The number of bytes [`encode_packet`] writes for `packet` (fixed header included),
/// e.g. to respect a peer's Maximum Packet Size. Does not check the packet.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    encode::encoded_len(packet, version)
}

/// A `tokio_util` codec for one connection. It starts at 3.1.1 and switches to the
/// version of the first CONNECT it decodes (or the one set with [`MqttCodec::set_version`]).
#[derive(Debug, Clone)]
pub struct MqttCodec {
    version: ProtocolVersion,
    max_packet_size: usize,
}

impl MqttCodec {
    /// A codec that refuses incoming packets larger than `max_packet_size` bytes.
    pub fn new(max_packet_size: usize) -> MqttCodec {
        MqttCodec {
            version: ProtocolVersion::V3_1_1,
            max_packet_size,
        }
    }

    /// The protocol version in use.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Fixes the protocol version (client side, or after CONNECT).
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Changes the maximum incoming packet size.
    pub fn set_max_packet_size(&mut self, max: usize) {
        self.max_packet_size = max;
    }
}

impl tokio_util::codec::Decoder for MqttCodec {
    type Item = Packet;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, Error> {
        let packet = decode_packet(src, self.version, self.max_packet_size)?;
        if let Some(Packet::Connect(connect)) = &packet {
            self.version = connect.protocol;
        }
        Ok(packet)
    }
}

impl tokio_util::codec::Encoder<&Packet> for MqttCodec {
    type Error = Error;

    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), Error> {
        encode_packet(item, self.version, dst)
    }
}
