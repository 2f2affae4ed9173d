//! Parsing mosquitto's `acl_file` syntax: `user`, `topic` and `pattern` lines, access
//! `read|write|readwrite|deny`, `#` comments in column 0, line-numbered errors.

use std::collections::HashMap;
use std::path::Path;

use mqgate_protocol::topic::validate_topic_filter;
use tracing::warn;

use crate::acl::{Access, Acl, Rule, RuleOrigin};
use crate::error::Error;

fn access_of(token: &str) -> Option<Access> {
    match token {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        "readwrite" => Some(Access::ReadWrite),
        "deny" => Some(Access::Deny),
        _ => None,
    }
}

/// True when a pattern topic has a whole `%c` or `%u` level.
pub(super) fn has_substitution(topic: &str) -> bool {
    topic.split('/').any(|l| l == "%c" || l == "%u")
}

/// `strtok(" ")`: the next space-separated token and the rest (leading spaces skipped).
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    match s.split_once(' ') {
        Some((t, rest)) => Some((t, rest.trim_start_matches(' '))),
        None => Some((s, "")),
    }
}

/// Parses ACL file text; `origin` names the file in errors and warnings.
pub fn parse(text: &str, origin: &Path) -> Result<Acl, Error> {
    let mut anonymous = Vec::new();
    let mut users: HashMap<String, Vec<Rule>> = HashMap::new();
    let mut patterns = Vec::new();
    let mut current_user: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |reason: String| Error::AclFile {
            path: origin.to_path_buf(),
            line: line_no,
            reason,
        };
        let line = raw.trim_end();
        if line.starts_with('#') {
            continue;
        }
        let Some((keyword, rest)) = token(line) else {
            continue;
        };
        match keyword {
            "user" => {
                let name = rest.trim();
                if name.is_empty() {
                    return Err(err("missing user name".into()));
                }
                users.entry(name.to_owned()).or_default();
                current_user = Some(name.to_owned());
            }
            "topic" | "pattern" => {
                let Some((first, after)) = token(rest) else {
                    return Err(err(format!("{keyword} without a topic")));
                };
                let (access, topic) = if after.trim().is_empty() {
                    (Access::ReadWrite, first)
                } else {
                    let access = access_of(first).ok_or_else(|| {
                        err(format!(
                            "invalid access {first:?} (expected read, write, readwrite or deny)"
                        ))
                    })?;
                    (access, after.trim())
                };
                validate_topic_filter(topic)
                    .map_err(|e| err(format!("invalid topic filter {topic:?}: {e}")))?;
                let rule = Rule {
                    access,
                    topic: topic.to_owned(),
                    line: line_no,
                    origin: RuleOrigin::File,
                };
                if keyword == "pattern" {
                    if !has_substitution(topic) {
                        warn!(
                            file = %origin.display(), line = line_no,
                            "ACL pattern has no whole-level %c or %u; it applies to every client as written"
                        );
                    }
                    patterns.push(rule);
                } else {
                    match &current_user {
                        Some(u) => users.entry(u.clone()).or_default().push(rule),
                        None => anonymous.push(rule),
                    }
                }
            }
            other => return Err(err(format!("invalid line (unknown keyword {other:?})"))),
        }
    }
    Ok(Acl {
        anonymous,
        users,
        patterns,
    })
}
