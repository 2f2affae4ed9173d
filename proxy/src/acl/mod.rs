//! Topic access control in mosquitto's `acl_file` format, evaluated as mosquitto does for
//! PUBLISH (write) and delivery (read), plus a SUBSCRIBE check mosquitto lacks.
//!
//! # Evaluation (mosquitto's rules)
//! The client's list is its user's `topic` rules (the anonymous list, before any `user`
//! line, for clients without a user name; nothing for a user absent from the file). In
//! that list a matching `deny` wins, else a matching rule whose access includes the
//! action allows. Otherwise the `pattern` rules are tried the same way, with whole-level
//! `%u`/`%c` substituted (patterns using `%u` are skipped for clients without a user
//! name). Nothing matched: denied. A `$`-topic is only matched by rules starting with `$`.
//! Stricter than mosquitto: patterns never apply to a client whose id or user name
//! contains `+`, `#` (as mosquitto) or `/` (which would reach into another client's
//! subtree), and writing to `$SYS` is never allowed.
//!
//! # SUBSCRIBE (our addition)
//! For `$share/<group>/<filter>` the inner filter is checked. A filter without wildcards
//! is granted iff reading that topic is allowed. A wildcard filter is refused if a `deny`
//! rule of the list that decides covers every topic of the filter, or if no rule granting
//! read has a topic in common with it; otherwise it is granted, and each delivery is
//! still checked topic by topic, so a filter broader than the grants (`#`, `+/+`) never
//! leaks a topic the client may not read.

mod filter;
mod from_config;
mod parse;

use std::collections::HashMap;
use std::path::Path;

use mqgate_protocol::topic::{matches, parse_shared};

use crate::error::Error;

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages (delivery, subscribe).
    Read,
    /// Publish.
    Write,
    /// Both.
    ReadWrite,
    /// Nothing: an explicit refusal checked before any allowing rule.
    Deny,
}

impl Access {
    fn allows(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Access::ReadWrite, _) | (Access::Read, Action::Read) | (Access::Write, Action::Write)
        )
    }
}

/// The operation asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Receiving a message on a topic.
    Read,
    /// Publishing to a topic.
    Write,
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The access granted or denied.
    pub access: Access,
    /// The topic filter as written (patterns before substitution).
    pub topic: String,
    /// 1-based line number in the file, or 1-based index of the `[[acl.rule]]` table.
    pub line: usize,
    /// Where the rule was written.
    pub origin: RuleOrigin,
}

/// Where a rule was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOrigin {
    /// A line of the ACL file.
    File,
    /// An `[[acl.rule]]` table of the configuration.
    Config,
}

/// Which part of the file a deciding rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// A `topic` line before any `user` line.
    Anonymous,
    /// A `topic` line under `user`.
    User,
    /// A `pattern` line.
    Pattern,
}

/// An ACL answer and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Allowed or not.
    pub allowed: bool,
    /// The deciding rule; `None` when nothing matched (denied) or a built-in rule decided.
    pub rule: Option<(RuleSource, &'a Rule)>,
    /// Why, in words, for logs and `acl check`.
    pub reason: &'static str,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

/// The client an ACL question is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// User name, if any.
    pub username: Option<&'a str>,
    /// Client identifier.
    pub client_id: &'a str,
}

/// A rule with its topic made concrete for one client.
struct Effective<'a> {
    source: RuleSource,
    rule: &'a Rule,
    topic: String,
}

impl Acl {
    /// Parses mosquitto ACL text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Acl, Error> {
        parse::parse(text, origin)
    }

    /// Reads and parses an ACL file.
    pub fn load(path: &Path) -> Result<Acl, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Acl::parse(&text, path)
    }

    /// Builds an ACL from `[[acl.rule]]` tables; the result is the ACL the equivalent
    /// file would give (the rules in order, each in its user's, the anonymous or the
    /// pattern list).
    pub fn from_config(rules: &[mqgate_config::AclRule]) -> Result<Acl, Error> {
        from_config::build(rules)
    }

    /// Appends `other`'s rules to this ACL's, list by list (anonymous, each user's,
    /// patterns), as if `other`'s lines followed this file's. Since a matching `deny`
    /// is checked before any allowing rule, the order only changes which rule is
    /// reported, never the decision.
    pub fn merge(mut self, other: Acl) -> Acl {
        self.anonymous.extend(other.anonymous);
        for (user, rules) in other.users {
            self.users.entry(user).or_default().extend(rules);
        }
        self.patterns.extend(other.patterns);
        self
    }

    /// True when the ACL has no rule and names no user.
    pub fn is_empty(&self) -> bool {
        self.anonymous.is_empty() && self.users.is_empty() && self.patterns.is_empty()
    }

    /// The two lists consulted for `who`, in order: its own `topic` list, then the
    /// patterns (`None` for the patterns when they may not apply to this client).
    fn lists<'a>(&'a self, who: Subject<'_>) -> (Vec<Effective<'a>>, Option<Vec<Effective<'a>>>) {
        let (source, own) = match who.username {
            Some(u) => (RuleSource::User, self.users.get(u).map(Vec::as_slice)),
            None => (RuleSource::Anonymous, Some(self.anonymous.as_slice())),
        };
        let own = own
            .unwrap_or_default()
            .iter()
            .map(|rule| Effective {
                source,
                rule,
                topic: rule.topic.clone(),
            })
            .collect();
        if self.patterns.is_empty() {
            return (own, Some(Vec::new()));
        }
        let bad = |s: &str| s.contains(['+', '#', '/']);
        if who.client_id.is_empty() || bad(who.client_id) || who.username.is_some_and(bad) {
            return (own, None);
        }
        let patterns = self
            .patterns
            .iter()
            .filter_map(|rule| {
                let mut uses_user = false;
                let topic: Vec<&str> = rule
                    .topic
                    .split('/')
                    .map(|l| match l {
                        "%c" => who.client_id,
                        "%u" => {
                            uses_user = true;
                            who.username.unwrap_or_default()
                        }
                        other => other,
                    })
                    .collect();
                if uses_user && who.username.is_none() {
                    return None;
                }
                Some(Effective {
                    source: RuleSource::Pattern,
                    rule,
                    topic: topic.join("/"),
                })
            })
            .collect();
        (own, Some(patterns))
    }

    /// May `who` perform `action` on the topic name `topic`?
    pub fn check(&self, who: Subject<'_>, topic: &str, action: Action) -> Decision<'_> {
        if action == Action::Write && is_sys(topic) {
            return denied("$SYS is never writable");
        }
        let (own, patterns) = self.lists(who);
        if let Some(d) = decide(&own, |f| matches(f, topic), action) {
            return d;
        }
        let Some(patterns) = patterns else {
            return denied("patterns do not apply: client id or user name contains + # or /");
        };
        decide(&patterns, |f| matches(f, topic), action)
            .unwrap_or_else(|| denied("no rule matches"))
    }

    /// May `who` subscribe to `filter` (see the module documentation for the rule)?
    pub fn check_subscribe(&self, who: Subject<'_>, filter: &str) -> Decision<'_> {
        let inner = parse_shared(filter).map_or(filter, |s| s.filter);
        if !filter::has_wildcard(inner) {
            return self.check(who, inner, Action::Read);
        }
        let (own, patterns) = self.lists(who);
        if let Some(d) = decide_filter(&own, inner) {
            return d;
        }
        let Some(patterns) = patterns else {
            return denied("patterns do not apply: client id or user name contains + # or /");
        };
        decide_filter(&patterns, inner)
            .unwrap_or_else(|| denied("no rule grants reading any topic of this filter"))
    }
}

impl Acl {
    /// The SUBSCRIBE decision of `[acl] strict = true`: a filter is granted only if one
    /// read rule of the deciding list covers every topic of it and no deny rule of that
    /// list shares a topic with it. A filter that only overlaps the grants is refused
    /// (the default [`Acl::check_subscribe`] grants it and narrows at delivery).
    pub fn check_subscribe_strict(&self, who: Subject<'_>, filter: &str) -> Decision<'_> {
        let inner = parse_shared(filter).map_or(filter, |s| s.filter);
        if !filter::has_wildcard(inner) {
            return self.check(who, inner, Action::Read);
        }
        let (own, patterns) = self.lists(who);
        if let Some(d) = decide_filter_strict(&own, inner) {
            return d;
        }
        let Some(patterns) = patterns else {
            return denied("patterns do not apply: client id or user name contains + # or /");
        };
        decide_filter_strict(&patterns, inner)
            .unwrap_or_else(|| denied("no rule grants reading any topic of this filter"))
    }
}

/// The strict SUBSCRIBE variant of [`decide_filter`]: `None` when no rule of `list`
/// shares a topic with `filter` (the next list decides).
fn decide_filter_strict<'a>(list: &[Effective<'a>], filter: &str) -> Option<Decision<'a>> {
    if let Some(e) = list
        .iter()
        .find(|e| e.rule.access == Access::Deny && filter::intersects(&e.topic, filter))
    {
        return Some(Decision {
            allowed: false,
            rule: Some((e.source, e.rule)),
            reason: "strict: a deny rule shares topics with the filter",
        });
    }
    if let Some(e) = list
        .iter()
        .find(|e| e.rule.access.allows(Action::Read) && filter::covers(&e.topic, filter))
    {
        return Some(Decision {
            allowed: true,
            rule: Some((e.source, e.rule)),
            reason: "allowed by rule",
        });
    }
    list.iter()
        .find(|e| e.rule.access.allows(Action::Read) && filter::intersects(&e.topic, filter))
        .map(|e| Decision {
            allowed: false,
            rule: Some((e.source, e.rule)),
            reason: "strict: the filter reaches beyond the read grants",
        })
}

fn is_sys(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
}

fn denied(reason: &'static str) -> Decision<'static> {
    Decision {
        allowed: false,
        rule: None,
        reason,
    }
}

/// mosquitto's list evaluation: a matching deny first, then a matching allowing rule.
fn decide<'a>(
    list: &[Effective<'a>],
    hit: impl Fn(&str) -> bool,
    action: Action,
) -> Option<Decision<'a>> {
    if let Some(e) = list
        .iter()
        .find(|e| e.rule.access == Access::Deny && hit(&e.topic))
    {
        return Some(Decision {
            allowed: false,
            rule: Some((e.source, e.rule)),
            reason: "deny rule",
        });
    }
    list.iter()
        .find(|e| e.rule.access.allows(action) && hit(&e.topic))
        .map(|e| Decision {
            allowed: true,
            rule: Some((e.source, e.rule)),
            reason: "allowed by rule",
        })
}

/// The SUBSCRIBE variant: a deny covering the whole filter refuses; a read grant
/// sharing a topic with it allows (deliveries are filtered later).
fn decide_filter<'a>(list: &[Effective<'a>], filter: &str) -> Option<Decision<'a>> {
    if let Some(e) = list
        .iter()
        .find(|e| e.rule.access == Access::Deny && filter::covers(&e.topic, filter))
    {
        return Some(Decision {
            allowed: false,
            rule: Some((e.source, e.rule)),
            reason: "deny rule covers the whole filter",
        });
    }
    list.iter()
        .find(|e| e.rule.access.allows(Action::Read) && filter::intersects(&e.topic, filter))
        .map(|e| Decision {
            allowed: true,
            rule: Some((e.source, e.rule)),
            reason: "a read rule overlaps the filter; deliveries are checked per topic",
        })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
