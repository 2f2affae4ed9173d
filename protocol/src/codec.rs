//! Incremental, strict decoding and exact encoding of MQTT packets.

use bytes::BytesMut;

use crate::error::Error;
use crate::packet::{Packet, ProtocolVersion};

/// Decodes one packet from the front of `buf` if it is complete, removing its bytes.
///
/// Returns `Ok(None)` (consuming nothing) while the packet is incomplete. The declared
/// remaining length is checked against `max_packet_size` (total packet size, as MQTT 5
/// defines it) from the fixed header alone, before the body is buffered. A CONNECT packet
/// is decoded according to its own protocol level, whatever `version` says.
pub fn decode_packet(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, Error> {
    let _ = (buf, version, max_packet_size);
    unimplemented!("protocol helper")
}

/// Appends the exact wire bytes of `packet` for `version` to `buf`.
pub fn encode_packet(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    let _ = (packet, version, buf);
    unimplemented!("protocol helper")
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
