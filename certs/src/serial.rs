//! Random certificate serial numbers (RFC 5280: positive, at most 20 octets) and their hex form.

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{CertsError, Result};

/// Octets in a serial number: the RFC 5280 maximum.
const SERIAL_LEN: usize = 20;

/// Draws a fresh serial: 20 random octets, top bit cleared so the DER INTEGER stays positive
/// and within 20 octets, second bit set so it is never shortened by a leading zero.
pub(crate) fn random_serial() -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; SERIAL_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CertsError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(bytes)
}

/// Upper-case hex without separators, as `openssl x509 -serial` prints it.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Normalises a user-typed serial (any case, optional `0x` and `:` separators, leading zeros)
/// to the canonical form of [`to_hex`]; `None` if it is not hex.
pub fn normalize(input: &str) -> Option<String> {
    let s = input.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let mut out = trimmed.to_ascii_uppercase();
    if out.len() % 2 == 1 {
        out.insert(0, '0');
    }
    if out.is_empty() {
        out.push_str("00");
    }
    Some(out)
}

/// Parses canonical hex back into octets.
pub(crate) fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_20_octets_and_distinct() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert_eq!(a.len(), 20);
        assert_eq!(a[0] & 0x80, 0);
        assert_ne!(a[0], 0);
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trip_and_normalisation() {
        let s = vec![0x4a, 0x00, 0xff];
        assert_eq!(to_hex(&s), "4A00FF");
        assert_eq!(from_hex("4A00FF").unwrap(), s);
        assert_eq!(normalize("0x4a:00:ff").unwrap(), "4A00FF");
        assert_eq!(normalize("004a00ff").unwrap(), "4A00FF");
        assert_eq!(normalize("sensor9"), None);
        assert_eq!(from_hex("4"), None);
    }
}
