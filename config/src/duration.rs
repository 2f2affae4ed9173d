//! Human-readable durations ("30s", "5m", "1h30m", "250ms") for serde.
//!
//! Every duration in the configuration is written as a string of one or more
//! `<integer><unit>` groups, with units `ms`, `s`, `m`, `h` and `d`. `"0s"` is zero.

use std::time::Duration;

use serde::{de, Deserialize, Deserializer};

/// Parses a duration string such as `"30s"`, `"5m"`, `"1h30m"` or `"250ms"`.
///
/// Returns a message saying what was expected when the text is not a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || {
        format!(
            "invalid duration `{text}`, expected a number followed by a unit \
             (ms, s, m, h, d), e.g. \"30s\", \"5m\", \"1h30m\""
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(expected());
        }
        let (number, after) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| expected())?;
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.checked_mul(60).ok_or_else(expected)?),
            "h" => Duration::from_secs(value.checked_mul(3600).ok_or_else(expected)?),
            "d" => Duration::from_secs(value.checked_mul(86_400).ok_or_else(expected)?),
            _ => return Err(expected()),
        };
        total = total.checked_add(part).ok_or_else(expected)?;
        rest = after;
    }
    Ok(total)
}

/// `#[serde(deserialize_with = "duration::deserialize")]` for `Duration` fields.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        for bad in ["", "30", "s", "5 minutes", "1.5s", "-1s", "3w"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(
                err.contains("expected a number followed by a unit"),
                "{bad}: {err}"
            );
        }
    }
}
