//! Incremental decoding: packets split at every byte, several packets in one buffer,
//! and the maximum packet size enforced from the fixed header alone.

mod common;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::*;
use mqgate_protocol::*;
use tokio_util::codec::{Decoder, Encoder};

fn sample_packets(v: ProtocolVersion) -> Vec<Packet> {
    let mut publish = Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: Arc::from("sensors/t1"),
        pkid: 42,
        payload: Bytes::from(vec![0xAB; 300]),
        properties: Properties::default(),
    };
    if v.is_v5() {
        publish.properties.message_expiry_interval = Some(60);
        publish.properties.user_properties = vec![("a".into(), "b".into())];
    }
    vec![
        Packet::Connect(Connect {
            protocol: v,
            clean_start: false,
            keep_alive: 5,
            client_id: "client".into(),
            will: None,
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"pw")),
            properties: Properties::default(),
        }),
        Packet::Publish(publish),
        Packet::PubRel(PubAck::new(42)),
        Packet::Subscribe(Subscribe {
            pkid: 3,
            filters: vec![SubscribeFilter {
                filter: "a/#".into(),
                options: SubscriptionOptions::default(),
            }],
            properties: Properties::default(),
        }),
        Packet::PingReq,
        Packet::Disconnect(Disconnect::default()),
    ]
}

#[test]
fn split_at_every_byte() {
    for v in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        for p in sample_packets(v) {
            let bytes = encode(&p, v);
            for cut in 0..bytes.len() {
                let mut buf = BytesMut::from(&bytes[..cut]);
                assert_eq!(decode_packet(&mut buf, v, MAX).unwrap(), None, "cut {cut}");
                assert_eq!(buf.len(), cut, "nothing consumed while incomplete");
                buf.extend_from_slice(&bytes[cut..]);
                assert_eq!(decode_packet(&mut buf, v, MAX).unwrap(), Some(p.clone()));
                assert!(buf.is_empty());
            }
        }
    }
}

#[test]
fn byte_by_byte_stream_of_several_packets() {
    let v = ProtocolVersion::V5;
    let packets = sample_packets(v);
    let stream: Vec<u8> = packets.iter().flat_map(|p| encode(p, v)).collect();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for b in stream {
        buf.extend_from_slice(&[b]);
        while let Some(p) = decode_packet(&mut buf, v, MAX).unwrap() {
            out.push(p);
        }
    }
    assert_eq!(out, packets);
    assert!(buf.is_empty());
}

#[test]
fn several_packets_in_one_buffer() {
    for v in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        let packets = sample_packets(v);
        let mut buf = BytesMut::new();
        for p in &packets {
            encode_packet(p, v, &mut buf).unwrap();
        }
        // Plus half of another packet.
        let extra = encode(&Packet::PingResp, v);
        buf.extend_from_slice(&extra[..1]);
        let mut out = Vec::new();
        while let Some(p) = decode_packet(&mut buf, v, MAX).unwrap() {
            out.push(p);
        }
        assert_eq!(out, packets);
        assert_eq!(&buf[..], &extra[..1]);
    }
}

#[test]
fn max_size_rejected_from_fixed_header_alone() {
    // PUBLISH declaring 200 remaining bytes: total 203 bytes, only the header present.
    let mut buf = BytesMut::from(&[0x30, 0xC8, 0x01][..]);
    let e = decode_packet(&mut buf, ProtocolVersion::V5, 202).unwrap_err();
    assert!(
        matches!(
            e,
            Error::PacketTooLarge {
                size: 203,
                max: 202
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.reason_code(), ReasonCode::PacketTooLarge);
    // Exactly at the limit it waits for the body, reserving only the declared size.
    let mut buf = BytesMut::from(&[0x30, 0xC8, 0x01][..]);
    assert_eq!(
        decode_packet(&mut buf, ProtocolVersion::V5, 203).unwrap(),
        None
    );
    assert!(buf.capacity() >= 203);
    assert_eq!(buf.len(), 3);
    // A 256 MiB declaration is refused without allocating.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let e = decode_packet(&mut buf, ProtocolVersion::V3_1_1, 1 << 20).unwrap_err();
    assert!(matches!(
        e,
        Error::PacketTooLarge {
            size: 268_435_460,
            ..
        }
    ));
    assert!(buf.capacity() < 1 << 20);
}

#[test]
fn payload_is_zero_copy() {
    let v = ProtocolVersion::V3_1_1;
    let Packet::Publish(p) = sample_packets(v).remove(1) else {
        panic!()
    };
    let mut buf = BytesMut::from(&encode(&Packet::Publish(p), v)[..]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let Some(Packet::Publish(p)) = decode_packet(&mut buf, v, MAX).unwrap() else {
        panic!()
    };
    let at = p.payload.as_ptr() as usize;
    assert!(
        at >= start && at < end,
        "payload points into the read buffer"
    );
}

#[test]
fn connect_decoded_by_its_own_level_and_codec_switches() {
    let mut codec = MqttCodec::new(MAX);
    assert_eq!(codec.version(), ProtocolVersion::V3_1_1);
    let mut buf = BytesMut::new();
    let v5 = sample_packets(ProtocolVersion::V5);
    encode_packet(&v5[0], ProtocolVersion::V3_1_1, &mut buf).unwrap();
    encode_packet(&v5[1], ProtocolVersion::V5, &mut buf).unwrap();
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(v5[0].clone()));
    assert_eq!(codec.version(), ProtocolVersion::V5);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(v5[1].clone()));
    let mut out = BytesMut::new();
    codec.encode(&v5[1], &mut out).unwrap();
    assert_eq!(&out[..], &encode(&v5[1], ProtocolVersion::V5)[..]);
}
