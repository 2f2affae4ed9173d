//! On-disk encoding of WAL files: the file header and record frames (pure, no I/O).

use bytes::Bytes;

/// First eight bytes of every WAL file (log or snapshot).
pub(crate) const MAGIC: [u8; 8] = *b"MQGWAL\r\n";

/// Format version written by this build; files with another version are refused.
pub(crate) const VERSION: u32 = 1;

/// Length of the file header: magic, version, kind, generation, record count, crc32.
pub(crate) const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 4;

/// Length of a record frame's header: `len (u32 LE) | crc32 (u32 LE)`.
pub(crate) const FRAME_HEADER_LEN: usize = 8;

/// Largest record payload accepted by `append`/`compact` and believed on recovery.
///
/// Room for any MQTT packet (at most 256 MiB − 1) plus 64 KiB of the caller's own metadata.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024 + 64 * 1024;

/// What a WAL file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `log-<gen>.bin`: records appended after snapshot `<gen>`.
    Log,
    /// `snapshot-<gen>.bin`: the compacted state of generation `<gen>`.
    Snapshot,
}

impl FileKind {
    fn code(self) -> u32 {
        match self {
            FileKind::Log => 1,
            FileKind::Snapshot => 2,
        }
    }

    fn from_code(code: u32) -> Option<FileKind> {
        match code {
            1 => Some(FileKind::Log),
            2 => Some(FileKind::Snapshot),
            _ => None,
        }
    }
}

/// The decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Log or snapshot.
    pub(crate) kind: FileKind,
    /// Generation; must match the number in the file name.
    pub(crate) generation: u64,
    /// Number of records in a snapshot (lets recovery notice a short one); 0 for a log.
    pub(crate) records: u64,
}

/// Why a header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Fewer than `HEADER_LEN` bytes.
    Short,
    /// The magic bytes are wrong: not a WAL file.
    BadMagic,
    /// The header checksum does not match.
    BadCrc,
    /// A format version this build does not read.
    Version(u32),
    /// An unknown file kind code.
    Kind(u32),
}

impl Header {
    /// Encodes the header, its crc32 covering every byte before it.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.kind.code().to_le_bytes());
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..32].copy_from_slice(&self.records.to_le_bytes());
        let crc = crc32fast::hash(&out[..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the header at the start of `buf`.
    pub(crate) fn decode(buf: &[u8]) -> Result<Header, HeaderError> {
        let head = buf.get(..HEADER_LEN).ok_or(HeaderError::Short)?;
        if head[0..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if crc32fast::hash(&head[..32]) != le_u32(&head[32..36]) {
            return Err(HeaderError::BadCrc);
        }
        let version = le_u32(&head[8..12]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let code = le_u32(&head[12..16]);
        let kind = FileKind::from_code(code).ok_or(HeaderError::Kind(code))?;
        Ok(Header {
            kind,
            generation: le_u64(&head[16..24]),
            records: le_u64(&head[24..32]),
        })
    }
}

/// Appends one frame (`len | crc32(len bytes ++ payload) | payload`) to `out`.
///
/// The caller guarantees `payload.len() <= MAX_RECORD_BYTES` (which fits a u32).
pub(crate) fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&frame_header(payload));
    out.extend_from_slice(payload);
}

/// The `len | crc32` header of the frame holding `payload` (same precondition).
pub(crate) fn frame_header(payload: &[u8]) -> [u8; FRAME_HEADER_LEN] {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = frame_crc(len, payload).to_le_bytes();
    [
        len[0], len[1], len[2], len[3], crc[0], crc[1], crc[2], crc[3],
    ]
}

/// Size of the frame holding a payload of `payload_len` bytes.
pub(crate) fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

fn frame_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    hasher.finalize()
}

/// How a scan of frames ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte belonged to a valid frame.
    Clean,
    /// The bytes from `offset` on are a damaged last frame or trailing garbage with no valid
    /// frame after it: what a crash or power loss in the middle of a write leaves.
    TornTail {
        /// File offset of the first byte that is not part of a valid frame.
        offset: usize,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The frame at `offset` is damaged but a valid frame follows it: the file was damaged
    /// after it was written (bit rot, a bad sector), not by a torn write.
    Corrupt {
        /// File offset of the damaged frame.
        offset: usize,
        /// What was wrong with it.
        reason: &'static str,
    },
}

/// The result of scanning a run of frames.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The payloads of the valid frames, in order, copied out of the file buffer.
    pub(crate) records: Vec<Bytes>,
    /// Offset just past the last valid frame: where the file is truncated to.
    pub(crate) valid_len: usize,
    /// Whether and why the scan stopped before the end of `data`.
    pub(crate) end: ScanEnd,
}

/// One frame decoded at an offset.
enum Frame<'a> {
    Valid(&'a [u8]),
    /// Cut short by the end of the data.
    Incomplete(&'static str),
    /// Complete but wrong; `next` is where the following frame would start if the length
    /// field is intact.
    Bad {
        reason: &'static str,
        next: Option<usize>,
    },
}

fn decode_frame(data: &[u8], pos: usize) -> Frame<'_> {
    let Some(head) = data.get(pos..pos + FRAME_HEADER_LEN) else {
        return Frame::Incomplete("partial frame header");
    };
    let len_bytes = [head[0], head[1], head[2], head[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_RECORD_BYTES {
        return Frame::Bad {
            reason: "record length exceeds the maximum",
            next: None,
        };
    }
    let start = pos + FRAME_HEADER_LEN;
    let Some(payload) = data.get(start..start + len) else {
        return Frame::Incomplete("partial record payload");
    };
    if frame_crc(len_bytes, payload) != le_u32(&head[4..8]) {
        return Frame::Bad {
            reason: "record checksum mismatch",
            next: Some(start + len),
        };
    }
    Frame::Valid(payload)
}

/// Decodes frames from `data[start..]` until the end or the first invalid frame.
///
/// A bad frame counts as mid-file corruption only if the frame right after it (located
/// through its length field) is valid; otherwise it is treated as a torn tail. Either way
/// the valid records before it are returned and `valid_len` points at it.
pub(crate) fn scan_frames(data: &[u8], start: usize) -> Scan {
    let mut records = Vec::new();
    let mut pos = start;
    let end = loop {
        if pos >= data.len() {
            break ScanEnd::Clean;
        }
        match decode_frame(data, pos) {
            Frame::Valid(payload) => {
                records.push(Bytes::copy_from_slice(payload));
                pos += frame_len(payload.len());
            }
            Frame::Incomplete(reason) => {
                break ScanEnd::TornTail {
                    offset: pos,
                    reason,
                }
            }
            Frame::Bad { reason, next } => {
                let followed_by_valid = next
                    .filter(|&next| next < data.len())
                    .is_some_and(|next| matches!(decode_frame(data, next), Frame::Valid(_)));
                break if followed_by_valid {
                    ScanEnd::Corrupt {
                        offset: pos,
                        reason,
                    }
                } else {
                    ScanEnd::TornTail {
                        offset: pos,
                        reason,
                    }
                };
            }
        }
    };
    Scan {
        records,
        valid_len: pos.min(data.len()),
        end,
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    u32::from_le_bytes(buf)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_frame(&mut out, p);
        }
        out
    }

    #[test]
    fn header_round_trips() {
        let header = Header {
            kind: FileKind::Snapshot,
            generation: 42,
            records: 7,
        };
        assert_eq!(Header::decode(&header.encode()), Ok(header));
    }

    #[test]
    fn header_errors_are_classified() {
        let mut bytes = Header {
            kind: FileKind::Log,
            generation: 1,
            records: 0,
        }
        .encode();
        assert_eq!(Header::decode(&bytes[..10]), Err(HeaderError::Short));
        bytes[17] ^= 1;
        assert_eq!(Header::decode(&bytes), Err(HeaderError::BadCrc));
        bytes[0] = b'X';
        assert_eq!(Header::decode(&bytes), Err(HeaderError::BadMagic));
    }

    #[test]
    fn header_with_other_version_is_refused() {
        let mut bytes = Header {
            kind: FileKind::Log,
            generation: 1,
            records: 0,
        }
        .encode();
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..32]);
        bytes[32..36].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Header::decode(&bytes), Err(HeaderError::Version(2)));
    }

    #[test]
    fn scan_reads_all_frames_including_empty_ones() {
        let data = frames(&[b"one", b"", b"three"]);
        let scan = scan_frames(&data, 0);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(scan.valid_len, data.len());
        assert_eq!(scan.records, vec![&b"one"[..], b"", b"three"]);
    }

    #[test]
    fn zero_filled_tail_is_torn_not_a_record() {
        let mut data = frames(&[b"one"]);
        let good = data.len();
        data.extend_from_slice(&[0u8; 64]);
        let scan = scan_frames(&data, 0);
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.valid_len, good);
        assert!(matches!(scan.end, ScanEnd::TornTail { offset, .. } if offset == good));
    }

    #[test]
    fn bad_frame_followed_by_a_good_one_is_corruption() {
        let mut data = frames(&[b"one", b"two", b"three"]);
        let second = frame_len(3);
        data[second + FRAME_HEADER_LEN] ^= 0xff;
        let scan = scan_frames(&data, 0);
        assert_eq!(scan.records, vec![&b"one"[..]]);
        assert!(matches!(scan.end, ScanEnd::Corrupt { offset, .. } if offset == second));
    }

    #[test]
    fn oversized_length_field_stops_the_scan() {
        let mut data = frames(&[b"one"]);
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(&[0u8; 4]);
        let scan = scan_frames(&data, 0);
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.end, ScanEnd::TornTail { .. }));
    }
}
