//! Wire primitives (spec §1.5): a bounds-checked reader over a packet body and writers
//! for integers, variable byte integers, strings and binary data.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;

/// Largest value a variable byte integer can hold (4 bytes).
pub(crate) const MAX_VARINT: usize = 268_435_455;

/// Longest string or binary field.
pub(crate) const MAX_STRING_LEN: usize = 65_535;

/// Result of reading a variable byte integer from a possibly incomplete buffer.
pub(crate) enum VarInt {
    /// The value and how many bytes it took.
    Complete(usize, usize),
    /// More bytes are needed.
    Incomplete,
}

/// Reads a variable byte integer from the front of `bytes`, rejecting more than
/// 4 bytes and non-minimal encodings (MQTT-1.5.5-1: "MUST use the minimum number of
/// bytes"; we apply the 5.0 rule to 3.x too, as the 3.x encoding algorithm never
/// produces a trailing zero group).
pub(crate) fn read_varint(bytes: &[u8]) -> Result<VarInt, Error> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().enumerate() {
        if i == 4 {
            return Err(Error::VariableByteIntegerTooLong);
        }
        value |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(Error::NonMinimalVariableByteInteger);
            }
            return Ok(VarInt::Complete(value, i + 1));
        }
    }
    if bytes.len() >= 4 {
        return Err(Error::VariableByteIntegerTooLong);
    }
    Ok(VarInt::Incomplete)
}

/// Number of bytes the variable byte integer encoding of `value` takes.
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` (at most [`MAX_VARINT`], checked by callers) as a variable byte integer.
pub(crate) fn put_varint(buf: &mut BytesMut, mut value: usize) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Writes a length-prefixed UTF-8 string (length checked by callers).
pub(crate) fn put_str(buf: &mut BytesMut, s: &str) {
    put_binary(buf, s.as_bytes());
}

/// Writes length-prefixed binary data (length checked by callers).
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

/// Checks that a string or binary field fits its 2-byte length prefix.
pub(crate) fn check_len(len: usize) -> Result<(), Error> {
    if len > MAX_STRING_LEN {
        return Err(Error::StringTooLong { len });
    }
    Ok(())
}

/// Checks a string for encoding: length and U+0000.
pub(crate) fn check_str(s: &str) -> Result<(), Error> {
    check_len(s.len())?;
    if s.contains('\0') {
        return Err(Error::NullCharacterInString);
    }
    Ok(())
}

/// Which error a read past the end of a [`Reader`] produces.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bound {
    /// The packet body (remaining length).
    Packet,
    /// A property block (property length).
    Properties,
}

/// A bounds-checked cursor over a packet body; payload slices share its memory.
pub(crate) struct Reader {
    buf: Bytes,
    bound: Bound,
}

impl Reader {
    /// A reader over `buf`, reporting overruns according to `bound`.
    pub(crate) fn new(buf: Bytes, bound: Bound) -> Reader {
        Reader { buf, bound }
    }

    fn short(&self) -> Error {
        match self.bound {
            Bound::Packet => Error::RemainingLengthTooShort,
            Bound::Properties => Error::PropertyLengthTooShort,
        }
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails with [`Error::TrailingBytes`] unless everything was read.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        match self.buf.len() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes { count }),
        }
    }

    /// Takes the next `len` bytes without copying.
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, Error> {
        if len > self.buf.len() {
            return Err(self.short());
        }
        Ok(self.buf.split_to(len))
    }

    /// Takes everything that is left.
    pub(crate) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }

    /// A one-byte integer.
    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        let b = self.take(1)?;
        Ok(b[0])
    }

    /// A big-endian two-byte integer.
    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A big-endian four-byte integer.
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A variable byte integer.
    pub(crate) fn varint(&mut self) -> Result<usize, Error> {
        match read_varint(&self.buf)? {
            VarInt::Complete(value, len) => {
                let _ = self.buf.split_to(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(self.short()),
        }
    }

    /// Length-prefixed binary data, without copying.
    pub(crate) fn binary(&mut self) -> Result<Bytes, Error> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    /// A length-prefixed UTF-8 string (well-formed, no U+0000), converted by `f`.
    pub(crate) fn string_with<T>(&mut self, f: impl FnOnce(&str) -> T) -> Result<T, Error> {
        let raw = self.binary()?;
        let s = std::str::from_utf8(&raw).map_err(|_| Error::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(Error::NullCharacterInString);
        }
        Ok(f(s))
    }

    /// A length-prefixed UTF-8 string as an `Arc<str>`.
    pub(crate) fn arc_str(&mut self) -> Result<Arc<str>, Error> {
        self.string_with(|s: &str| -> Arc<str> { Arc::from(s) })
    }

    /// A length-prefixed UTF-8 string as a `String`.
    pub(crate) fn string(&mut self) -> Result<String, Error> {
        self.string_with(str::to_owned)
    }
}
