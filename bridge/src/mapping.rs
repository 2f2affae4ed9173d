//! Topic rules with mosquitto's `topic pattern direction qos local_prefix remote_prefix`
//! semantics.
//!
//! * `out`: the bridge subscribes locally to `local_prefix + pattern`; a local message on
//!   `T` is published remotely on `remote_prefix + (T without local_prefix)`.
//! * `in`: the mirror image: subscribe remotely to `remote_prefix + pattern`, publish
//!   locally on `local_prefix + (T without remote_prefix)`.
//! * `both`: both. The rule's QoS is the subscription QoS: messages are downgraded to it.
//!
//! The first rule (in configuration order) whose filter matches a topic decides its mapping.

use mqgate_config::{Direction, TopicRule};
use mqgate_protocol::topic::{matches, validate_topic_filter};
use mqgate_protocol::QoS;

use crate::error::BridgeError;

/// One direction of one rule, ready to match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    /// The filter subscribed to on the source side (`prefix + pattern`).
    filter: String,
    /// Prefix stripped from source topics.
    from_prefix: String,
    /// Prefix added to destination topics.
    to_prefix: String,
    qos: QoS,
}

impl Route {
    fn map(&self, topic: &str) -> Option<(String, QoS)> {
        if !matches(&self.filter, topic) {
            return None;
        }
        let rest = topic.strip_prefix(self.from_prefix.as_str())?;
        let mapped = format!("{}{}", self.to_prefix, rest);
        (!mapped.is_empty()).then_some((mapped, self.qos))
    }
}

/// The compiled topic rules of one bridge.
#[derive(Debug, Clone, Default)]
pub struct TopicMap {
    out: Vec<Route>,
    inbound: Vec<Route>,
}

impl TopicMap {
    /// Compiles the rules; refuses a rule whose filter is not a valid MQTT filter or whose
    /// QoS is not 0, 1 or 2.
    pub fn new(rules: &[TopicRule]) -> Result<TopicMap, BridgeError> {
        let mut map = TopicMap::default();
        for rule in rules {
            let bad = |reason| BridgeError::Rule {
                topic: rule.topic.clone(),
                reason,
            };
            let qos = QoS::from_u8(rule.qos).ok_or_else(|| bad("qos must be 0, 1 or 2"))?;
            let local_filter = format!("{}{}", rule.local_prefix, rule.topic);
            let remote_filter = format!("{}{}", rule.remote_prefix, rule.topic);
            for filter in [&local_filter, &remote_filter] {
                validate_topic_filter(filter).map_err(|_| bad("not a valid topic filter"))?;
            }
            if matches!(rule.direction, Direction::Out | Direction::Both) {
                map.out.push(Route {
                    filter: local_filter.clone(),
                    from_prefix: rule.local_prefix.clone(),
                    to_prefix: rule.remote_prefix.clone(),
                    qos,
                });
            }
            if matches!(rule.direction, Direction::In | Direction::Both) {
                map.inbound.push(Route {
                    filter: remote_filter,
                    from_prefix: rule.remote_prefix.clone(),
                    to_prefix: rule.local_prefix.clone(),
                    qos,
                });
            }
        }
        Ok(map)
    }

    /// Filters (and QoS) the bridge subscribes to on the local broker: the `out` rules.
    pub fn local_subscriptions(&self) -> Vec<(String, QoS)> {
        dedup(&self.out)
    }

    /// Filters (and QoS) the bridge subscribes to on the remote broker: the `in` rules.
    pub fn remote_subscriptions(&self) -> Vec<(String, QoS)> {
        dedup(&self.inbound)
    }

    /// The remote topic and QoS cap of a local message, if an `out` rule covers it.
    pub fn outgoing(&self, local_topic: &str) -> Option<(String, QoS)> {
        self.out.iter().find_map(|r| r.map(local_topic))
    }

    /// The local topic and QoS cap of a remote message, if an `in` rule covers it.
    pub fn incoming(&self, remote_topic: &str) -> Option<(String, QoS)> {
        self.inbound.iter().find_map(|r| r.map(remote_topic))
    }

    /// Whether some local topic can be both forwarded out and received in, which is when
    /// the bridge must recognise its own inbound messages coming back from the local broker.
    pub fn has_overlap(&self) -> bool {
        !self.out.is_empty() && !self.inbound.is_empty()
    }
}

/// One subscription per distinct filter, with the highest QoS asked for it.
fn dedup(routes: &[Route]) -> Vec<(String, QoS)> {
    let mut subs: Vec<(String, QoS)> = Vec::new();
    for route in routes {
        match subs.iter_mut().find(|(f, _)| *f == route.filter) {
            Some((_, qos)) => *qos = (*qos).max(route.qos),
            None => subs.push((route.filter.clone(), route.qos)),
        }
    }
    subs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(topic: &str, direction: Direction, qos: u8, local: &str, remote: &str) -> TopicRule {
        TopicRule {
            topic: topic.into(),
            direction,
            qos,
            local_prefix: local.into(),
            remote_prefix: remote.into(),
        }
    }

    #[test]
    fn out_rule_strips_the_local_prefix_and_adds_the_remote_one() {
        let map =
            TopicMap::new(&[rule("sensors/#", Direction::Out, 1, "site/", "cloud/a/")]).unwrap();
        assert_eq!(
            map.local_subscriptions(),
            vec![("site/sensors/#".to_owned(), QoS::AtLeastOnce)]
        );
        assert!(map.remote_subscriptions().is_empty());
        assert_eq!(
            map.outgoing("site/sensors/t1"),
            Some(("cloud/a/sensors/t1".to_owned(), QoS::AtLeastOnce))
        );
        assert_eq!(map.outgoing("other/sensors/t1"), None);
        assert_eq!(map.incoming("cloud/a/sensors/t1"), None);
    }

    #[test]
    fn in_rule_is_the_mirror_image() {
        let map = TopicMap::new(&[rule("cmd/+", Direction::In, 2, "dev/", "fleet/x/")]).unwrap();
        assert_eq!(
            map.remote_subscriptions(),
            vec![("fleet/x/cmd/+".to_owned(), QoS::ExactlyOnce)]
        );
        assert_eq!(
            map.incoming("fleet/x/cmd/reboot"),
            Some(("dev/cmd/reboot".to_owned(), QoS::ExactlyOnce))
        );
        assert_eq!(map.outgoing("dev/cmd/reboot"), None);
    }

    #[test]
    fn empty_pattern_remaps_one_topic() {
        let map = TopicMap::new(&[rule("", Direction::Both, 0, "local/t", "remote/u")]).unwrap();
        assert_eq!(
            map.outgoing("local/t"),
            Some(("remote/u".to_owned(), QoS::AtMostOnce))
        );
        assert_eq!(
            map.incoming("remote/u"),
            Some(("local/t".to_owned(), QoS::AtMostOnce))
        );
        assert!(map.has_overlap());
    }

    #[test]
    fn hash_matching_the_bare_prefix_parent_still_maps() {
        let map = TopicMap::new(&[rule("#", Direction::Out, 1, "a/", "b/")]).unwrap();
        assert_eq!(
            map.outgoing("a/x"),
            Some(("b/x".to_owned(), QoS::AtLeastOnce))
        );
        // "a/#" matches "a" (the parent level) but "a" does not start with "a/".
        assert_eq!(map.outgoing("a"), None);
    }

    #[test]
    fn first_rule_wins_and_filters_are_deduplicated() {
        let map = TopicMap::new(&[
            rule("x/#", Direction::Out, 0, "", "one/"),
            rule("x/#", Direction::Out, 1, "", "two/"),
        ])
        .unwrap();
        assert_eq!(map.outgoing("x/y").unwrap().0, "one/x/y");
        assert_eq!(
            map.local_subscriptions(),
            vec![("x/#".to_owned(), QoS::AtLeastOnce)]
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(TopicMap::new(&[rule("a/#/b", Direction::Out, 1, "", "")]).is_err());
        assert!(TopicMap::new(&[rule("a", Direction::Out, 3, "", "")]).is_err());
        assert!(TopicMap::new(&[rule("", Direction::Out, 1, "", "")]).is_err());
    }
}
