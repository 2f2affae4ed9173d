//! Relations between two topic filters used at SUBSCRIBE: whether one covers every topic
//! of the other, and whether they have a topic in common. Both follow the matching rule
//! that a filter starting with a wildcard never matches a `$`-topic.

/// Whether the first levels rule out `$`-topics for one filter that the other requires.
fn dollar_conflict(wild_side: &str, literal_side: &str) -> bool {
    wild_side.starts_with(['+', '#']) && literal_side.starts_with('$')
}

/// True if every topic matching `filter` also matches `rule`.
pub fn covers(rule: &str, filter: &str) -> bool {
    if dollar_conflict(rule, filter) {
        return false;
    }
    let mut r = rule.split('/');
    let mut f = filter.split('/');
    loop {
        match (r.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(a), Some(b)) if a == b && a != "+" && a != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True if some topic name matches both filters.
pub fn intersects(a: &str, b: &str) -> bool {
    if dollar_conflict(a, b) || dollar_conflict(b, a) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether a filter contains a wildcard level.
pub fn has_wildcard(filter: &str) -> bool {
    filter.split('/').any(|l| l == "+" || l == "#")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_cases() {
        assert!(covers("#", "a/b/#"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/+/c", "a/+/c"));
        assert!(covers("a/+", "a/b"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/+", "a/b/c"));
        assert!(!covers("#", "$SYS/#"));
        assert!(covers("$SYS/#", "$SYS/broker/+"));
    }

    #[test]
    fn intersects_cases() {
        assert!(intersects("#", "a/b"));
        assert!(intersects("a/+/c", "a/b/#"));
        assert!(intersects("a/#", "a"));
        assert!(intersects("+/x", "y/+"));
        assert!(!intersects("a/b", "a/c"));
        assert!(!intersects("a/+", "a/b/c"));
        assert!(!intersects("#", "$SYS/#"));
        assert!(!intersects("+/+", "$SYS/x"));
        assert!(intersects("$SYS/#", "$SYS/broker/load"));
        assert!(
            !intersects("a/b", "a/b/"),
            "trailing slash is another level"
        );
        assert!(!intersects("A/b", "a/b"), "case matters");
    }
}
