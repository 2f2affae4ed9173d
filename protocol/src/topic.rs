//! Topic names, topic filters and matching (spec §4.7), including `$share/<group>/<filter>`.

use crate::error::Error;

/// Longest UTF-8 string the wire format can carry.
const MAX_STRING_LEN: usize = 65_535;

/// The prefix of a shared subscription filter (MQTT 5 §4.8.2).
const SHARE_PREFIX: &str = "$share/";

/// Checks that `topic` is a valid topic name: non-empty, no `+` or `#`, no U+0000, at
/// most 65535 bytes.
pub fn validate_topic_name(topic: &str) -> Result<(), Error> {
    check_string(topic)?;
    if topic.is_empty() {
        return Err(Error::EmptyTopicName);
    }
    if topic.contains(['+', '#']) {
        return Err(Error::WildcardInTopicName);
    }
    Ok(())
}

/// Checks that `filter` is a valid topic filter (wildcards whole levels, `#` last), and,
/// for `$share/<group>/<filter>`, that the group and inner filter are valid.
pub fn validate_topic_filter(filter: &str) -> Result<(), Error> {
    check_string(filter)?;
    if filter.is_empty() {
        return Err(Error::EmptyTopicFilter);
    }
    match filter.strip_prefix(SHARE_PREFIX) {
        Some(rest) => {
            let Some((group, inner)) = rest.split_once('/') else {
                if rest.is_empty() {
                    return Err(Error::EmptyShareName);
                }
                return Err(Error::MissingSharedFilter);
            };
            if group.is_empty() {
                return Err(Error::EmptyShareName);
            }
            if group.contains(['+', '#']) {
                return Err(Error::WildcardInShareName);
            }
            if inner.is_empty() {
                return Err(Error::MissingSharedFilter);
            }
            validate_plain_filter(inner)
        }
        None => validate_plain_filter(filter),
    }
}

/// Length and U+0000 rules shared by names and filters.
fn check_string(s: &str) -> Result<(), Error> {
    if s.len() > MAX_STRING_LEN {
        return Err(Error::StringTooLong { len: s.len() });
    }
    if s.contains('\0') {
        return Err(Error::NullCharacterInString);
    }
    Ok(())
}

/// Wildcard placement rules of a non-shared, non-empty filter.
fn validate_plain_filter(filter: &str) -> Result<(), Error> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(Error::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(Error::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

/// A parsed `$share/<group>/<filter>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share group name.
    pub group: &'a str,
    /// The inner topic filter.
    pub filter: &'a str,
}

/// Splits a shared subscription filter; `None` if `filter` is not a `$share/...` filter.
///
/// This only splits at the first `/` after `$share/`; call [`validate_topic_filter`] to
/// check the parts.
pub fn parse_shared(filter: &str) -> Option<SharedFilter<'_>> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let (group, filter) = rest.split_once('/')?;
    Some(SharedFilter { group, filter })
}

/// True if the topic name `topic` matches the (valid, non-shared) filter `filter`.
/// Topics starting with `$` are not matched by a filter starting with `+` or `#`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
#[path = "topic_tests.rs"]
mod tests;
