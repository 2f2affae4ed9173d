//! ACL tests: parsing, mosquitto evaluation, SUBSCRIBE decisions and bypass attempts.

use super::*;

const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite sensors/alice/#
topic read sensors/+/temp
topic deny sensors/secret/#
topic write cmd/alice
topic $SYS/broker/clients/#

user bob
topic space/x

pattern readwrite devices/%c/#
pattern read users/%u/inbox
";

fn acl() -> Acl {
    Acl::parse(FILE, Path::new("acl")).unwrap()
}

fn who<'a>(user: Option<&'a str>, client: &'a str) -> Subject<'a> {
    Subject {
        username: user,
        client_id: client,
    }
}

fn can(acl: &Acl, user: Option<&str>, client: &str, topic: &str, action: Action) -> bool {
    acl.check(who(user, client), topic, action).allowed
}

fn sub(acl: &Acl, user: Option<&str>, client: &str, filter: &str) -> bool {
    acl.check_subscribe(who(user, client), filter).allowed
}

const R: Action = Action::Read;
const W: Action = Action::Write;

#[test]
fn topic_rules_per_user() {
    let a = acl();
    let alice = Some("alice");
    assert!(can(&a, alice, "c1", "sensors/alice/x", W));
    assert!(can(&a, alice, "c1", "sensors/alice/x", R));
    assert!(can(&a, alice, "c1", "sensors/bob/temp", R));
    assert!(
        !can(&a, alice, "c1", "sensors/bob/temp", W),
        "read-only rule"
    );
    assert!(can(&a, alice, "c1", "cmd/alice", W));
    assert!(!can(&a, alice, "c1", "cmd/alice", R), "write-only rule");
    assert!(!can(&a, alice, "c1", "other", R));
    // Anonymous rules do not apply to users, and vice versa.
    assert!(!can(&a, alice, "c1", "public/x", R));
    assert!(can(&a, None, "c1", "public/x", R));
    assert!(!can(&a, None, "c1", "public/x", W));
    assert!(!can(&a, None, "c1", "sensors/alice/x", R));
    // A user absent from the file gets only patterns.
    assert!(!can(&a, Some("eve"), "c1", "public/x", R));
}

#[test]
fn deny_comes_first() {
    let a = acl();
    // `sensors/+/temp` grants read, but the deny rule (written later) wins.
    assert!(!can(&a, Some("alice"), "c1", "sensors/secret/temp", R));
    let d = a.check(who(Some("alice"), "c1"), "sensors/secret/temp", R);
    assert_eq!(d.rule.map(|(_, r)| r.line), Some(7));
}

#[test]
fn patterns_substitute_client_and_user() {
    let a = acl();
    assert!(can(&a, Some("eve"), "dev7", "devices/dev7/status", W));
    assert!(!can(&a, Some("eve"), "dev7", "devices/dev8/status", W));
    assert!(can(&a, Some("eve"), "dev7", "users/eve/inbox", R));
    assert!(!can(&a, Some("eve"), "dev7", "users/bob/inbox", R));
    // %u patterns are skipped without a user name, %c ones still apply.
    assert!(!can(&a, None, "dev7", "users//inbox", R));
    assert!(can(&a, None, "dev7", "devices/dev7/x", R));
    // Patterns apply to listed users too.
    assert!(can(&a, Some("alice"), "dev9", "devices/dev9/x", W));
}

#[test]
fn patterns_refuse_wildcards_and_slashes_in_ids() {
    let a = acl();
    assert!(!can(&a, Some("eve"), "#", "devices/#/x", W));
    assert!(!can(&a, Some("eve"), "+", "devices/+/x", W));
    assert!(!can(&a, Some("e/ve"), "dev7", "devices/dev7/x", W));
    // `dev7/sub` would otherwise reach into dev7's subtree.
    assert!(!can(&a, Some("eve"), "dev7/sub", "devices/dev7/sub/x", W));
}

#[test]
fn dollar_topics_need_dollar_rules_and_sys_is_never_writable() {
    let all = Acl::parse(
        "user root\ntopic readwrite #\ntopic readwrite $SYS/#\n",
        Path::new("a"),
    )
    .unwrap();
    assert!(can(&all, Some("root"), "c", "a/b", R));
    assert!(can(&all, Some("root"), "c", "$SYS/broker/load", R));
    assert!(!can(&all, Some("root"), "c", "$SYS/broker/load", W));
    let hash_only = Acl::parse("user u\ntopic #\n", Path::new("a")).unwrap();
    assert!(!can(&hash_only, Some("u"), "c", "$SYS/broker/load", R));
    assert!(!sub(&hash_only, Some("u"), "c", "$SYS/#"));
    assert!(!can(&hash_only, Some("u"), "c", "$internal/x", W));
    let a = acl();
    assert!(can(
        &a,
        Some("alice"),
        "c",
        "$SYS/broker/clients/connected",
        R
    ));
    assert!(!can(
        &a,
        Some("alice"),
        "c",
        "$SYS/broker/clients/connected",
        W
    ));
    assert!(!can(&a, Some("alice"), "c", "$SYS/broker/load", R));
}

#[test]
fn subscribe_exact_and_wildcard_filters() {
    let a = acl();
    let alice = Some("alice");
    // Exact filters: the read decision for that topic.
    assert!(sub(&a, alice, "c", "sensors/bob/temp"));
    assert!(!sub(&a, alice, "c", "cmd/alice"), "write-only topic");
    assert!(!sub(&a, alice, "c", "sensors/secret/temp"));
    // Broader than the grants: granted, deliveries filtered.
    assert!(sub(&a, alice, "c", "#"));
    assert!(sub(&a, alice, "c", "+/+/temp"));
    assert!(sub(&a, alice, "c", "sensors/#"));
    // Nothing readable under it: refused.
    assert!(!sub(&a, alice, "c", "cmd/#"));
    assert!(
        !sub(&a, alice, "c", "sensors/secret/#"),
        "covered by a deny"
    );
    assert!(!sub(&a, Some("eve"), "c", "sensors/#"));
    assert!(
        !sub(&a, None, "c", "cmd/+"),
        "anonymous reads public/# and devices/c/# only"
    );
    assert!(sub(&a, None, "c", "+/+/temp"), "overlaps devices/c/#");
    assert!(sub(&a, None, "c", "public/+"));
}

#[test]
fn shared_subscriptions_check_the_inner_filter() {
    let a = acl();
    assert!(sub(&a, Some("alice"), "c", "$share/g/sensors/alice/#"));
    assert!(!sub(&a, Some("alice"), "c", "$share/g/cmd/#"));
    assert!(
        sub(&a, Some("eve"), "c", "$share/g/#"),
        "overlaps devices/c/#"
    );
    assert!(!sub(&a, Some("eve"), "c", "$share/g/cmd/#"));
    assert!(
        !sub(&a, Some("eve"), "c", "$share/sensors/alice/#"),
        "group is not a topic level"
    );
}

#[test]
fn trailing_slash_and_case_are_distinct_topics() {
    let a = Acl::parse("user u\ntopic read a/b\n", Path::new("a")).unwrap();
    assert!(can(&a, Some("u"), "c", "a/b", R));
    assert!(!can(&a, Some("u"), "c", "a/b/", R));
    assert!(!can(&a, Some("u"), "c", "A/b", R));
    assert!(!can(&a, Some("u"), "c", "/a/b", R));
    assert!(!sub(&a, Some("u"), "c", "a/b/"));
    assert!(!sub(&a, Some("u"), "c", "A/+"));
}

#[test]
fn parser_follows_mosquitto() {
    let a = acl();
    // Rest of the line is the topic when access is given.
    assert_eq!(a.users["bob"][0].topic, "space/x");
    assert_eq!(a.users["bob"][0].access, Access::ReadWrite);
    let t = Acl::parse("user bob\ntopic read has space/x  \n", Path::new("a")).unwrap();
    assert_eq!(t.users["bob"][0].topic, "has space/x");
    // Tabs are not separators; a lone topic defaults to readwrite.
    let t = Acl::parse("topic a/b\n", Path::new("a")).unwrap();
    assert_eq!(t.anonymous[0].access, Access::ReadWrite);
    // Without an access keyword the topic may not contain spaces.
    assert!(Acl::parse("topic has space\n", Path::new("a")).is_err());
}

#[test]
fn parse_errors_have_line_numbers() {
    for (text, line, what) in [
        ("user a\nfoo bar\n", 2, "unknown keyword"),
        ("topic\n", 1, "without a topic"),
        ("\n\ntopic reed a/b\n", 3, "invalid access"),
        ("user\n", 1, "missing user"),
        ("topic read a/#/b\n", 1, "invalid topic filter"),
        ("pattern write a+/b\n", 1, "invalid topic filter"),
        ("  # indented comment\n", 1, "unknown keyword"),
    ] {
        let e = Acl::parse(text, Path::new("acl")).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("acl:{line}:")) && e.contains(what),
            "{text:?}: {e}"
        );
    }
}

/// [`FILE`]'s rules as `[[acl.rule]]` tables.
const TOML_RULES: &str = r#"
[[acl.rule]]
topic = "public/#"
access = "read"

[[acl.rule]]
user = "alice"
topic = "sensors/alice/#"
access = "readwrite"
[[acl.rule]]
user = "alice"
topic = "sensors/+/temp"
access = "read"
[[acl.rule]]
user = "alice"
topic = "sensors/secret/#"
access = "deny"
[[acl.rule]]
user = "alice"
topic = "cmd/alice"
access = "write"
[[acl.rule]]
user = "alice"
topic = "$SYS/broker/clients/#"

[[acl.rule]]
user = "bob"
topic = "space/x"

[[acl.rule]]
pattern = true
topic = "devices/%c/#"
access = "readwrite"
[[acl.rule]]
pattern = true
topic = "users/%u/inbox"
access = "read"
"#;

fn toml_acl(text: &str) -> Acl {
    let config = mqgate_config::Config::from_toml_str(text, "t.toml").unwrap();
    Acl::from_config(&config.acl.rules).unwrap()
}

/// (user, client, topic or filter, action; `None` = subscribe) cases covering every list.
const CASES: &[(Option<&str>, &str, &str, Option<Action>)] = &[
    (None, "c1", "public/x", Some(R)),
    (None, "c1", "public/x", Some(W)),
    (None, "c1", "sensors/alice/x", Some(R)),
    (None, "c1", "public/#", None),
    (None, "dev7", "devices/dev7/x", Some(W)),
    (None, "dev7", "users//inbox", Some(R)),
    (Some("alice"), "c1", "sensors/alice/x", Some(W)),
    (Some("alice"), "c1", "sensors/bob/temp", Some(R)),
    (Some("alice"), "c1", "sensors/bob/temp", Some(W)),
    (Some("alice"), "c1", "sensors/secret/temp", Some(R)),
    (Some("alice"), "c1", "sensors/secret/#", None),
    (Some("alice"), "c1", "sensors/#", None),
    (Some("alice"), "c1", "cmd/alice", Some(W)),
    (Some("alice"), "c1", "cmd/alice", Some(R)),
    (Some("alice"), "c1", "public/x", Some(R)),
    (Some("alice"), "c1", "$SYS/broker/clients/n", Some(R)),
    (Some("alice"), "c1", "$SYS/broker/clients/n", Some(W)),
    (Some("alice"), "c1", "#", None),
    (Some("alice"), "c1", "$SYS/#", None),
    (Some("bob"), "b", "space/x", Some(W)),
    (Some("bob"), "b", "space/y", Some(R)),
    (Some("bob"), "b", "users/bob/inbox", Some(R)),
    (Some("bob"), "b", "users/alice/inbox", Some(R)),
    (Some("eve"), "dev7", "devices/dev7/status", Some(W)),
    (Some("eve"), "dev7", "devices/dev8/status", Some(W)),
    (Some("eve"), "dev/7", "devices/dev/7/status", Some(W)),
    (Some("eve"), "dev7", "$share/g/devices/dev7/#", None),
    (Some("eve"), "dev7", "public/x", Some(R)),
];

/// One case's outcome: allowed, reason, and the deciding rule's list, access and topic.
type Outcome = (bool, &'static str, Option<(RuleSource, Access, String)>);

fn decisions(acl: &Acl) -> Vec<Outcome> {
    CASES
        .iter()
        .map(|&(user, client, topic, action)| {
            let d = match action {
                Some(a) => acl.check(who(user, client), topic, a),
                None => acl.check_subscribe(who(user, client), topic),
            };
            let rule = d.rule.map(|(s, r)| (s, r.access, r.topic.clone()));
            (d.allowed, d.reason, rule)
        })
        .collect()
}

#[test]
fn toml_rules_decide_exactly_as_the_file() {
    let file = acl();
    let toml = toml_acl(TOML_RULES);
    let (a, b) = (decisions(&file), decisions(&toml));
    for (i, case) in CASES.iter().enumerate() {
        assert_eq!(a[i], b[i], "case {case:?}");
    }
    // The table exercises both outcomes.
    assert!(a.iter().any(|d| d.0) && a.iter().any(|d| !d.0));
    // Same lists, differing only in where each rule was written.
    let d = toml.check(who(Some("alice"), "c1"), "sensors/secret/x", R);
    let rule = d.rule.map(|(_, r)| r.clone());
    assert_eq!(
        rule.map(|r| (r.origin, r.line)),
        Some((RuleOrigin::Config, 4)),
        "the 4th [[acl.rule]] table"
    );
}

#[test]
fn file_and_toml_rules_combine() {
    // Half the rules in the file, half in TOML: the same decisions as all in the file.
    let file_half = Acl::parse(
        "topic read public/#\nuser alice\ntopic readwrite sensors/alice/#\ntopic read sensors/+/temp\npattern readwrite devices/%c/#\n",
        Path::new("acl"),
    )
    .unwrap();
    let toml_half = toml_acl(
        r#"
[[acl.rule]]
user = "alice"
topic = "sensors/secret/#"
access = "deny"
[[acl.rule]]
user = "alice"
topic = "cmd/alice"
access = "write"
[[acl.rule]]
user = "alice"
topic = "$SYS/broker/clients/#"
[[acl.rule]]
user = "bob"
topic = "space/x"
[[acl.rule]]
pattern = true
topic = "users/%u/inbox"
access = "read"
"#,
    );
    let merged = file_half.merge(toml_half);
    let all: Vec<_> = decisions(&acl()).into_iter().map(|d| d.0).collect();
    let got: Vec<_> = decisions(&merged).into_iter().map(|d| d.0).collect();
    assert_eq!(got, all);
    // A TOML deny overrides a file grant of the same user.
    assert!(!can(&merged, Some("alice"), "c1", "sensors/secret/temp", R));
}

#[test]
fn toml_rule_errors_name_the_table() {
    let rule = |user: Option<&str>, pattern: bool, topic: &str| mqgate_config::AclRule {
        user: user.map(str::to_owned),
        pattern,
        topic: topic.to_owned(),
        access: mqgate_config::AclAccess::Read,
    };
    let e = Acl::from_config(&[rule(None, false, "ok"), rule(None, false, "a/#/b")])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("[[acl.rule]]:2: invalid topic filter"), "{e}");
    let e = Acl::from_config(&[rule(Some("u"), true, "a/%u")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("exclude each other"), "{e}");
}

#[test]
fn strict_subscribe_grants_only_filters_inside_one_read_grant() {
    let acl = acl();
    let strict = |user: Option<&str>, client: &str, filter: &str| {
        acl.check_subscribe_strict(who(user, client), filter)
            .allowed
    };
    let alice = Some("alice");
    // Inside a grant: granted in both modes.
    for filter in ["sensors/alice/#", "sensors/alice/+/x", "sensors/alice/t"] {
        assert!(strict(alice, "c", filter), "{filter}");
        assert!(sub(&acl, alice, "c", filter), "{filter}");
    }
    // Overlapping but reaching beyond the grants: the default narrows, strict refuses.
    for filter in ["sensors/#", "#", "+/alice/#", "sensors/+/+"] {
        assert!(sub(&acl, alice, "c", filter), "default {filter}");
        assert!(!strict(alice, "c", filter), "strict {filter}");
    }
    // Inside a grant but sharing topics with a deny rule (sensors/secret/temp): the
    // default grants and filters at delivery, strict refuses.
    assert!(sub(&acl, alice, "c", "sensors/+/temp"));
    assert!(!strict(alice, "c", "sensors/+/temp"));
    // Shared subscriptions are judged by their inner filter; patterns still apply.
    assert!(strict(alice, "c", "$share/g/sensors/alice/#"));
    assert!(!strict(alice, "c", "$share/g/sensors/#"));
    assert!(strict(None, "dev1", "devices/dev1/#"));
    assert!(!strict(None, "dev1", "devices/+/#"));
    assert!(!strict(None, "+", "devices/+/#"));
    // No grant at all: refused in both modes.
    assert!(!strict(Some("bob"), "c", "sensors/#"));
}
