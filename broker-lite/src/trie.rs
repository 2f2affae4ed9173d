//! The subscription trie: topic filters split into levels, matched against topic names
//! with `+` and `#` (MQTT 3.1.1 §4.7), where `$`-topics are not matched by a leading
//! wildcard.

use std::collections::HashMap;
use std::str::Split;

/// Subscribers of type `T`, each identified by a `u64` key and carrying options `O`
/// (e.g. the granted QoS), indexed by topic filter.
#[derive(Debug)]
pub(crate) struct Trie<T, O> {
    root: Node<T, O>,
    len: usize,
}

#[derive(Debug)]
struct Node<T, O> {
    children: HashMap<Box<str>, Node<T, O>>,
    subscribers: Vec<(u64, T, O)>,
}

impl<T, O> Default for Node<T, O> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            subscribers: Vec::new(),
        }
    }
}

impl<T: Clone, O: Copy> Trie<T, O> {
    /// An empty trie.
    pub fn new() -> Trie<T, O> {
        Trie {
            root: Node::default(),
            len: 0,
        }
    }

    /// Number of (filter, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Subscribes `key` to the valid `filter` with options `opts`, replacing earlier ones.
    /// Returns true if the subscription is new.
    pub fn insert(&mut self, filter: &str, key: u64, value: T, opts: O) -> bool {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        if let Some(existing) = node.subscribers.iter_mut().find(|s| s.0 == key) {
            existing.2 = opts;
            return false;
        }
        node.subscribers.push((key, value, opts));
        self.len += 1;
        true
    }

    /// Removes `key`'s subscription to `filter`; true if it existed. Empty branches are pruned.
    pub fn remove(&mut self, filter: &str, key: u64) -> bool {
        let removed = Self::remove_in(&mut self.root, filter.split('/'), key);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_in(node: &mut Node<T, O>, mut levels: Split<'_, char>, key: u64) -> bool {
        match levels.next() {
            None => {
                let before = node.subscribers.len();
                node.subscribers.retain(|s| s.0 != key);
                node.subscribers.len() != before
            }
            Some(level) => {
                let Some(child) = node.children.get_mut(level) else {
                    return false;
                };
                let removed = Self::remove_in(child, levels, key);
                if child.subscribers.is_empty() && child.children.is_empty() {
                    node.children.remove(level);
                }
                removed
            }
        }
    }

    /// Appends every subscription matching the topic name `topic` to `out` (a subscriber
    /// with several matching filters appears once per filter).
    pub fn matches(&self, topic: &str, out: &mut Vec<(u64, T, O)>) {
        let dollar = topic.starts_with('$');
        Self::collect(&self.root, topic.split('/'), !dollar, out);
    }

    fn collect(
        node: &Node<T, O>,
        mut levels: Split<'_, char>,
        wildcards: bool,
        out: &mut Vec<(u64, T, O)>,
    ) {
        match levels.next() {
            None => {
                out.extend(node.subscribers.iter().cloned());
                // "a/#" also matches "a".
                if let Some(hash) = node.children.get("#") {
                    out.extend(hash.subscribers.iter().cloned());
                }
            }
            Some(level) => {
                if wildcards {
                    if let Some(hash) = node.children.get("#") {
                        out.extend(hash.subscribers.iter().cloned());
                    }
                    if let Some(plus) = node.children.get("+") {
                        Self::collect(plus, levels.clone(), true, out);
                    }
                }
                if let Some(child) = node.children.get(level) {
                    Self::collect(child, levels, true, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mqgate_protocol::QoS;

    use super::*;

    fn matched(trie: &Trie<&'static str, QoS>, topic: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        trie.matches(topic, &mut out);
        let mut names: Vec<_> = out.into_iter().map(|(_, v, _)| v).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn wildcards_match_as_the_spec_says() {
        let mut t = Trie::new();
        t.insert("a/b", 1, "exact", QoS::AtMostOnce);
        t.insert("a/+", 2, "plus", QoS::AtMostOnce);
        t.insert("a/#", 3, "hash", QoS::AtMostOnce);
        t.insert("#", 4, "all", QoS::AtMostOnce);
        t.insert("+/+/c", 5, "pluses", QoS::AtMostOnce);
        assert_eq!(matched(&t, "a/b"), ["all", "exact", "hash", "plus"]);
        assert_eq!(matched(&t, "a"), ["all", "hash"]);
        assert_eq!(matched(&t, "a/b/c"), ["all", "hash", "pluses"]);
        assert_eq!(matched(&t, "a/"), ["all", "hash", "plus"]);
        assert_eq!(matched(&t, "b"), ["all"]);
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        let mut t = Trie::new();
        t.insert("#", 1, "all", QoS::AtMostOnce);
        t.insert("+/broker/uptime", 2, "plus", QoS::AtMostOnce);
        t.insert("$SYS/#", 3, "sys", QoS::AtMostOnce);
        assert_eq!(matched(&t, "$SYS/broker/uptime"), ["sys"]);
        assert_eq!(matched(&t, "x/broker/uptime"), ["all", "plus"]);
    }

    #[test]
    fn insert_replaces_qos_and_remove_prunes() {
        let mut t = Trie::new();
        assert!(t.insert("a/b", 1, "x", QoS::AtMostOnce));
        assert!(!t.insert("a/b", 1, "x", QoS::ExactlyOnce));
        assert_eq!(t.len(), 1);
        let mut out = Vec::new();
        t.matches("a/b", &mut out);
        assert_eq!(out[0].2, QoS::ExactlyOnce);
        assert!(t.remove("a/b", 1));
        assert!(!t.remove("a/b", 1));
        assert!(t.root.children.is_empty(), "empty branch pruned");
        assert_eq!(t.len(), 0);
    }
}
