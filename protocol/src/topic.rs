//! Topic names, topic filters and matching (spec §4.7), including `$share/<group>/<filter>`.

use crate::error::Error;

/// Checks that `topic` is a valid topic name: non-empty, no `+` or `#`, at most 65535 bytes.
pub fn validate_topic_name(topic: &str) -> Result<(), Error> {
    let _ = topic;
    unimplemented!("protocol helper")
}

/// Checks that `filter` is a valid topic filter (wildcards whole levels, `#` last), and,
/// for `$share/<group>/<filter>`, that the group and inner filter are valid.
pub fn validate_topic_filter(filter: &str) -> Result<(), Error> {
    let _ = filter;
    unimplemented!("protocol helper")
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
pub fn parse_shared(filter: &str) -> Option<SharedFilter<'_>> {
    let _ = filter;
    unimplemented!("protocol helper")
}

/// True if the topic name `topic` matches the (valid, non-shared) filter `filter`.
/// Topics starting with `$` are not matched by a filter starting with `+` or `#`.
pub fn matches(filter: &str, topic: &str) -> bool {
    let _ = (filter, topic);
    unimplemented!("protocol helper")
}
