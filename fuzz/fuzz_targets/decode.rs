//! Feeds arbitrary bytes to `decode_packet` for every protocol version with a small
//! maximum packet size, and checks that whatever decodes re-encodes to an equal packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqgate_protocol::{decode_packet, encode_packet, encoded_len, ProtocolVersion};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            match decode_packet(&mut buf, version, MAX) {
                Ok(Some(packet)) => {
                    assert!(buf.len() < before, "a decoded packet consumed nothing");
                    // CONNECT is encoded in its own version.
                    let v = match &packet {
                        mqgate_protocol::Packet::Connect(c) => c.protocol,
                        _ => version,
                    };
                    let mut out = BytesMut::new();
                    encode_packet(&packet, v, &mut out).expect("a decoded packet must encode");
                    assert_eq!(out.len(), encoded_len(&packet, v));
                    let again = decode_packet(&mut out, v, usize::MAX)
                        .expect("re-encoded packet must decode")
                        .expect("re-encoded packet must be complete");
                    assert!(out.is_empty());
                    assert_eq!(again, packet);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete packet consumed bytes");
                    break;
                }
                Err(_) => break,
            }
        }
    }
});
