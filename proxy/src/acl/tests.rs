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
