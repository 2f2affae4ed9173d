//! Subscriptions and who gets a message: the direct subscriptions (a trie of filters) and
//! the shared subscriptions `$share/<group>/<filter>`, where each message goes to one
//! member of the group (round-robin over connected members, else over all members).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use mqgate_protocol::topic::parse_shared;
use mqgate_protocol::{QoS, SubscriptionOptions};

use crate::trie::Trie;

/// What a subscription asks for, kept with each subscriber entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SubOpts {
    /// Granted (maximum) QoS.
    pub qos: QoS,
    /// MQTT 5 No Local: not sent the messages its own client published.
    pub no_local: bool,
    /// MQTT 5 Retain As Published: keep the publisher's retain flag.
    pub retain_as_published: bool,
    /// MQTT 5 subscription identifier; 0 when none.
    pub id: u32,
}

impl SubOpts {
    /// The options of a SUBSCRIBE entry with subscription identifier `id` (0 = none).
    pub fn new(options: &SubscriptionOptions, id: u32) -> SubOpts {
        SubOpts {
            qos: options.qos,
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            id,
        }
    }

    /// Plain options: only a QoS (MQTT 3.x).
    #[cfg(test)]
    pub fn qos(qos: QoS) -> SubOpts {
        SubOpts {
            qos,
            ..SubOpts::default()
        }
    }

    /// The options byte as on the wire (for persistence), retain handling left 0.
    pub fn to_byte(self) -> u8 {
        (self.qos as u8)
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
    }

    /// Reverses [`SubOpts::to_byte`].
    pub fn from_byte(byte: u8, id: u32) -> SubOpts {
        SubOpts {
            qos: QoS::from_u8(byte & 3).unwrap_or(QoS::AtLeastOnce),
            no_local: byte & 4 != 0,
            retain_as_published: byte & 8 != 0,
            id,
        }
    }
}

/// One share group of one filter: its members and the round-robin cursor.
#[derive(Debug)]
struct Group<T> {
    members: Vec<(u64, T, SubOpts)>,
    next: AtomicUsize,
}

/// Direct and shared subscriptions of every session, keyed by the session's `u64` id.
#[derive(Debug)]
pub(crate) struct Router<T> {
    direct: Trie<T, SubOpts>,
    /// Shared filters; the key is the group id.
    shared: Trie<(), ()>,
    groups: HashMap<u64, Group<T>>,
    group_ids: HashMap<(Box<str>, Box<str>), u64>,
    next_group: u64,
}

impl<T: Clone> Router<T> {
    /// No subscriptions.
    pub fn new() -> Router<T> {
        Router {
            direct: Trie::new(),
            shared: Trie::new(),
            groups: HashMap::new(),
            group_ids: HashMap::new(),
            next_group: 1,
        }
    }

    /// Number of subscriptions (a shared one counts once per member).
    pub fn len(&self) -> usize {
        self.direct.len() + self.groups.values().map(|g| g.members.len()).sum::<usize>()
    }

    /// Subscribes `key` to `filter` (direct or `$share/...`); true if it is new.
    pub fn insert(&mut self, filter: &str, key: u64, value: T, opts: SubOpts) -> bool {
        let Some(shared) = parse_shared(filter) else {
            return self.direct.insert(filter, key, value, opts);
        };
        let name = (Box::from(shared.group), Box::from(shared.filter));
        let gid = match self.group_ids.get(&name) {
            Some(gid) => *gid,
            None => {
                let gid = self.next_group;
                self.next_group += 1;
                self.shared.insert(shared.filter, gid, (), ());
                self.group_ids.insert(name, gid);
                gid
            }
        };
        let group = self.groups.entry(gid).or_insert_with(|| Group {
            members: Vec::new(),
            next: AtomicUsize::new(0),
        });
        if let Some(m) = group.members.iter_mut().find(|m| m.0 == key) {
            m.2 = opts;
            return false;
        }
        group.members.push((key, value, opts));
        true
    }

    /// Removes `key`'s subscription to `filter`; true if it existed.
    pub fn remove(&mut self, filter: &str, key: u64) -> bool {
        let Some(shared) = parse_shared(filter) else {
            return self.direct.remove(filter, key);
        };
        let name = (Box::from(shared.group), Box::from(shared.filter));
        let Some(&gid) = self.group_ids.get(&name) else {
            return false;
        };
        let Some(group) = self.groups.get_mut(&gid) else {
            return false;
        };
        let before = group.members.len();
        group.members.retain(|m| m.0 != key);
        let removed = group.members.len() != before;
        if group.members.is_empty() {
            self.groups.remove(&gid);
            self.group_ids.remove(&name);
            self.shared.remove(shared.filter, gid);
        }
        removed
    }

    /// Appends the subscriptions that get a message on `topic`: every matching direct
    /// subscription, and one member of every matching share group, chosen among the
    /// members that may read it (`may_read`): the next connected one in round-robin
    /// order, as `online` tells, else the next one. A group with no member allowed to
    /// read the message gets nothing (no member can be starved by one that may not read).
    pub fn route(
        &self,
        topic: &str,
        out: &mut Vec<(u64, T, SubOpts)>,
        online: impl Fn(&T) -> bool,
        may_read: impl Fn(&T) -> bool,
    ) {
        self.direct.matches(topic, out);
        if self.groups.is_empty() {
            return;
        }
        let mut gids = Vec::new();
        self.shared.matches(topic, &mut gids);
        for (gid, (), ()) in gids {
            let Some(group) = self.groups.get(&gid) else {
                continue;
            };
            let n = group.members.len();
            if n == 0 {
                continue;
            }
            let start = group.next.fetch_add(1, Ordering::Relaxed);
            let mut first_allowed = None;
            for i in (0..n).map(|i| (start + i) % n) {
                let member = &group.members[i].1;
                if !may_read(member) {
                    continue;
                }
                if online(member) {
                    first_allowed = Some(i);
                    break;
                }
                first_allowed.get_or_insert(i);
            }
            if let Some(m) = first_allowed.and_then(|i| group.members.get(i)) {
                out.push(m.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(r: &Router<&'static str>, topic: &str, online: &[&str]) -> Vec<&'static str> {
        let mut out = Vec::new();
        r.route(topic, &mut out, |v| online.contains(v), |_| true);
        let mut names: Vec<_> = out.into_iter().map(|(_, v, _)| v).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn shared_groups_take_turns_and_prefer_connected_members() {
        let mut r = Router::new();
        let o = SubOpts::qos(QoS::AtLeastOnce);
        assert!(r.insert("$share/g/a/+", 1, "one", o));
        assert!(r.insert("$share/g/a/+", 2, "two", o));
        assert!(!r.insert("$share/g/a/+", 2, "two", o));
        assert!(r.insert("$share/h/a/#", 3, "three", o));
        assert!(r.insert("a/b", 4, "direct", o));
        assert_eq!(r.len(), 4);
        let all = ["one", "two", "three", "direct"];
        let first = routed(&r, "a/b", &all);
        let second = routed(&r, "a/b", &all);
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first.contains(&"three") && first.contains(&"direct"));
        let g1: Vec<_> = first
            .iter()
            .filter(|n| ["one", "two"].contains(n))
            .collect();
        let g2: Vec<_> = second
            .iter()
            .filter(|n| ["one", "two"].contains(n))
            .collect();
        assert_ne!(g1, g2, "round-robin within group g");
        for _ in 0..4 {
            assert!(routed(&r, "a/b", &["two", "three"]).contains(&"two"));
        }
        assert!(r.remove("$share/g/a/+", 1));
        assert!(r.remove("$share/g/a/+", 2));
        assert!(!r.remove("$share/g/a/+", 2));
        assert_eq!(routed(&r, "a/b", &all), ["direct", "three"]);
    }

    #[test]
    fn a_share_group_picks_only_members_that_may_read_the_message() {
        let mut r = Router::new();
        let o = SubOpts::qos(QoS::AtLeastOnce);
        r.insert("$share/workers/#", 1, "worker1", o);
        r.insert("$share/workers/#", 2, "intruder", o);
        r.insert("$share/workers/#", 3, "worker2", o);
        let online = |_: &&str| true;
        let may_read = |v: &&str| *v != "intruder";
        let mut picked = Vec::new();
        for _ in 0..30 {
            let mut out = Vec::new();
            r.route("jobs/1", &mut out, online, may_read);
            assert_eq!(out.len(), 1, "one member per group");
            picked.push(out[0].1);
        }
        assert!(!picked.contains(&"intruder"), "{picked:?}");
        assert!(picked.contains(&"worker1") && picked.contains(&"worker2"));
        // An allowed member that is offline still beats one that may not read.
        let mut out = Vec::new();
        r.route("jobs/1", &mut out, |v| *v == "intruder", may_read);
        assert_eq!(out.len(), 1);
        assert_ne!(out[0].1, "intruder");
        // Nobody may read: the group gets nothing.
        let mut out = Vec::new();
        r.route("jobs/1", &mut out, online, |_| false);
        assert!(out.is_empty());
    }

    #[test]
    fn options_byte_round_trips() {
        let o = SubOpts {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            id: 9,
        };
        assert_eq!(SubOpts::from_byte(o.to_byte(), 9), o);
    }
}
