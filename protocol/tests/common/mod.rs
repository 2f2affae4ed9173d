//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: failing loudly is the point

use bytes::BytesMut;
use mqgate_protocol::{decode_packet, encode_packet, Error, Packet, ProtocolVersion};

/// Generous maximum used when size is not under test.
pub const MAX: usize = 1 << 28;

/// Encodes `p` for `v` into a fresh buffer.
pub fn encode(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_packet(p, v, &mut buf).unwrap();
    buf.to_vec()
}

/// Decodes exactly one packet from `bytes`, which must be consumed entirely.
pub fn decode(bytes: &[u8], v: ProtocolVersion) -> Result<Packet, Error> {
    let mut buf = BytesMut::from(bytes);
    let p = decode_packet(&mut buf, v, MAX)?.expect("complete packet");
    assert!(buf.is_empty(), "bytes left after the packet");
    Ok(p)
}

/// Asserts that `p` encodes to `bytes` and `bytes` decode to `p`.
pub fn assert_wire(p: &Packet, v: ProtocolVersion, bytes: &[u8]) {
    assert_eq!(encode(p, v), bytes, "encoding of {p:?}");
    assert_eq!(&decode(bytes, v).unwrap(), p, "decoding of {bytes:02x?}");
    assert_eq!(mqgate_protocol::encoded_len(p, v), bytes.len());
}
