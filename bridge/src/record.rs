//! The bridge queue's records in the write-ahead log (format version 1).
//!
//! Every record starts with a tag byte; integers are little-endian:
//!
//! ```text
//! 1 Enqueued  seq u64 | enqueued_at_ms u64 | qos u8 | retain u8 | topic_len u16 | topic | payload
//! 2 Removed   seq u64          (acknowledged upstream, or dropped)
//! 3 Released  seq u64          (QoS 2: PUBREC received, PUBREL is what remains to send)
//! 4 NextSeq   seq u64          (in snapshots: the next sequence number to hand out)
//! 5 Shifted   delta_ms i64     (the wall clock jumped: every message queued before the
//!                               record has its enqueued_at_ms moved by delta_ms)
//! 6 Capped    at_ms u64        (recovered under a clock behind the stamps: every message
//!                               queued before the record stamped after at_ms is restamped at_ms)
//! ```
//!
//! Tags 5 and 6 keep `max_age` away from clock jumps ([`crate::clock`]). They appear in logs
//! only, never in snapshots (a snapshot holds the corrected stamps). An older build that
//! does not know them skips them as undecodable (with an error log) and judges ages by the
//! uncorrected stamps.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mqgate_protocol::QoS;
use std::sync::Arc;

use crate::error::BridgeError;

/// A message waiting in the queue, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in the queue; also determines the upstream packet identifier.
    pub seq: u64,
    /// When it was accepted, in milliseconds since the Unix epoch.
    pub enqueued_at_ms: u64,
    /// QoS towards the upstream.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Remote topic (already mapped).
    pub topic: Arc<str>,
    /// Payload.
    pub payload: Bytes,
}

/// One record of the queue's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A message was accepted.
    Enqueued(StoredMessage),
    /// A message left the queue.
    Removed(u64),
    /// The upstream sent PUBREC for a QoS 2 message.
    Released(u64),
    /// The next sequence number (snapshots only).
    NextSeq(u64),
    /// The wall clock jumped by this many milliseconds: the `enqueued_at_ms` of every
    /// message queued before this record moves by as much (logs only).
    Shifted(i64),
    /// Recovery found the wall clock at this time, behind some stamps: every message queued
    /// before this record and stamped later is restamped at it (logs only).
    Capped(u64),
}

const ENQUEUED: u8 = 1;
const REMOVED: u8 = 2;
const RELEASED: u8 = 3;
const NEXT_SEQ: u8 = 4;
const SHIFTED: u8 = 5;
const CAPPED: u8 = 6;

impl Record {
    /// The record's bytes.
    pub fn encode(&self) -> Bytes {
        match self {
            Record::Enqueued(m) => {
                let mut buf = BytesMut::with_capacity(21 + m.topic.len() + m.payload.len());
                buf.put_u8(ENQUEUED);
                buf.put_u64_le(m.seq);
                buf.put_u64_le(m.enqueued_at_ms);
                buf.put_u8(m.qos as u8);
                buf.put_u8(u8::from(m.retain));
                // Topic names are at most 65535 bytes (MQTT), so the cast cannot truncate.
                buf.put_u16_le(m.topic.len() as u16);
                buf.put_slice(m.topic.as_bytes());
                buf.put_slice(&m.payload);
                buf.freeze()
            }
            Record::Removed(seq) => short(REMOVED, *seq),
            Record::Released(seq) => short(RELEASED, *seq),
            Record::NextSeq(seq) => short(NEXT_SEQ, *seq),
            // Two's complement: decoding casts back.
            Record::Shifted(delta_ms) => short(SHIFTED, *delta_ms as u64),
            Record::Capped(at_ms) => short(CAPPED, *at_ms),
        }
    }

    /// Parses a record; payloads share `bytes` without copying.
    pub fn decode(mut bytes: Bytes) -> Result<Record, BridgeError> {
        let short = BridgeError::BadRecord("truncated");
        if bytes.remaining() < 9 {
            return Err(short);
        }
        let tag = bytes.get_u8();
        let seq = bytes.get_u64_le();
        match tag {
            ENQUEUED => {
                if bytes.remaining() < 12 {
                    return Err(short);
                }
                let enqueued_at_ms = bytes.get_u64_le();
                let qos = QoS::from_u8(bytes.get_u8()).ok_or(BridgeError::BadRecord("qos"))?;
                let retain = bytes.get_u8() != 0;
                let topic_len = usize::from(bytes.get_u16_le());
                if bytes.remaining() < topic_len {
                    return Err(short);
                }
                let topic = std::str::from_utf8(&bytes[..topic_len])
                    .map_err(|_| BridgeError::BadRecord("topic is not UTF-8"))?
                    .into();
                bytes.advance(topic_len);
                Ok(Record::Enqueued(StoredMessage {
                    seq,
                    enqueued_at_ms,
                    qos,
                    retain,
                    topic,
                    payload: bytes,
                }))
            }
            REMOVED => Ok(Record::Removed(seq)),
            RELEASED => Ok(Record::Released(seq)),
            NEXT_SEQ => Ok(Record::NextSeq(seq)),
            SHIFTED => Ok(Record::Shifted(seq as i64)),
            CAPPED => Ok(Record::Capped(seq)),
            _ => Err(BridgeError::BadRecord("unknown tag")),
        }
    }
}

fn short(tag: u8, seq: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(9);
    buf.put_u8(tag);
    buf.put_u64_le(seq);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = [
            Record::Enqueued(StoredMessage {
                seq: 42,
                enqueued_at_ms: 1_700_000_000_000,
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: "a/b".into(),
                payload: Bytes::from_static(b"\x00payload"),
            }),
            Record::Removed(7),
            Record::Released(8),
            Record::NextSeq(9),
            Record::Shifted(-365 * 86_400_000),
            Record::Shifted(i64::MAX),
            Record::Capped(1_700_000_000_000),
        ];
        for record in records {
            assert_eq!(Record::decode(record.encode()).unwrap(), record);
        }
    }

    #[test]
    fn damaged_records_are_errors() {
        assert!(Record::decode(Bytes::from_static(b"\x02\x00")).is_err());
        assert!(Record::decode(Bytes::from_static(b"\x09\0\0\0\0\0\0\0\0")).is_err());
        let mut enq = BytesMut::from(&b"\x01"[..]);
        enq.put_u64_le(1);
        enq.put_u64_le(1);
        enq.put_u8(3);
        enq.put_u8(0);
        enq.put_u16_le(0);
        assert!(Record::decode(enq.freeze()).is_err());
    }
}
