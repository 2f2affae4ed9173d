//! Decode and encode throughput of a QoS 1 PUBLISH with a 64-byte payload, for MQTT
//! 3.1.1 and 5.0. Plain `std::time`, prints packets per second.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqgate_protocol::{
    decode_packet, encode_packet, Packet, Properties, ProtocolVersion, Publish, QoS,
};

const BATCH: usize = 10_000;
const RUN_FOR: Duration = Duration::from_secs(2);

fn publish(version: ProtocolVersion) -> Packet {
    let mut properties = Properties::default();
    if version.is_v5() {
        properties.message_expiry_interval = Some(3600);
    }
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: Arc::from("sensors/building-1/floor-2/temperature"),
        pkid: 4711,
        payload: Bytes::from(vec![0x5A; 64]),
        properties,
    })
}

/// Runs `f` (which handles BATCH packets) for about RUN_FOR; returns packets per second.
fn measure(mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let start = Instant::now();
    let mut packets = 0usize;
    while start.elapsed() < RUN_FOR {
        f();
        packets += BATCH;
    }
    packets as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let packet = publish(version);
        let mut one = BytesMut::new();
        encode_packet(&packet, version, &mut one).unwrap_or_else(|e| panic!("encode: {e}"));
        let stream: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * BATCH)
            .collect();

        let decode = measure(|| {
            let mut buf = BytesMut::from(&stream[..]);
            let mut n = 0;
            while let Ok(Some(p)) = decode_packet(&mut buf, version, 1 << 20) {
                black_box(&p);
                n += 1;
            }
            assert_eq!(n, BATCH);
        });

        let mut out = BytesMut::with_capacity(one.len() * BATCH);
        let encode = measure(|| {
            out.clear();
            for _ in 0..BATCH {
                if let Err(e) = encode_packet(black_box(&packet), version, &mut out) {
                    panic!("encode: {e}");
                }
            }
            black_box(&out);
        });

        println!(
            "{version:?} PUBLISH QoS1 64B payload ({} bytes on the wire): decode {:.0} packets/s, encode {:.0} packets/s",
            one.len(),
            decode,
            encode
        );
    }
}
