//! `[[acl.rule]]` tables turned into the same in-memory [`Acl`] the file parser builds.

use std::collections::HashMap;
use std::path::Path;

use mqgate_config::{AclAccess, AclRule};
use mqgate_protocol::topic::validate_topic_filter;
use tracing::warn;

use crate::acl::parse::has_substitution;
use crate::acl::{Access, Acl, Rule, RuleOrigin};
use crate::error::Error;

/// How errors and warnings name the rules' origin (with the 1-based table index).
const ORIGIN: &str = "[[acl.rule]]";

fn access(a: AclAccess) -> Access {
    match a {
        AclAccess::Read => Access::Read,
        AclAccess::Write => Access::Write,
        AclAccess::ReadWrite => Access::ReadWrite,
        AclAccess::Deny => Access::Deny,
    }
}

/// Builds the ACL of `rules`: each rule joins its user's list (`user`), the pattern list
/// (`pattern = true`) or the anonymous list (neither), in order, as the equivalent
/// `topic`/`pattern` lines would.
pub(super) fn build(rules: &[AclRule]) -> Result<Acl, Error> {
    let mut anonymous = Vec::new();
    let mut users: HashMap<String, Vec<Rule>> = HashMap::new();
    let mut patterns = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let index = i + 1;
        let err = |reason: String| Error::AclFile {
            path: Path::new(ORIGIN).to_path_buf(),
            line: index,
            reason,
        };
        validate_topic_filter(&r.topic)
            .map_err(|e| err(format!("invalid topic filter {:?}: {e}", r.topic)))?;
        let rule = Rule {
            access: access(r.access),
            topic: r.topic.clone(),
            line: index,
            origin: RuleOrigin::Config,
        };
        match (&r.user, r.pattern) {
            (Some(_), true) => {
                return Err(err("`user` and `pattern = true` exclude each other".into()))
            }
            (Some(user), false) if user.is_empty() => {
                return Err(err("empty user name".into()));
            }
            (Some(user), false) => users.entry(user.clone()).or_default().push(rule),
            (None, true) => {
                if !has_substitution(&r.topic) {
                    warn!(
                        rule = index,
                        topic = %r.topic,
                        "[[acl.rule]] pattern has no whole-level %c or %u; it applies to every client as written"
                    );
                }
                patterns.push(rule);
            }
            (None, false) => anonymous.push(rule),
        }
    }
    Ok(Acl {
        anonymous,
        users,
        patterns,
    })
}
