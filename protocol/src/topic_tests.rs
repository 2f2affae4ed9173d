//! Unit tests of topic name/filter validation and matching, including spec §4.7 examples.

use super::*;

#[test]
fn valid_topic_names() {
    for t in [
        "a",
        "/",
        "a/b",
        "/finance",
        "sport/tennis/player1",
        "$SYS/x",
        "a//b",
        " ",
    ] {
        assert!(validate_topic_name(t).is_ok(), "{t}");
    }
}

#[test]
fn invalid_topic_names() {
    assert!(matches!(
        validate_topic_name(""),
        Err(Error::EmptyTopicName)
    ));
    for t in ["+", "#", "a/+", "a/#", "a+b", "sport/tennis#"] {
        assert!(
            matches!(validate_topic_name(t), Err(Error::WildcardInTopicName)),
            "{t}"
        );
    }
    assert!(matches!(
        validate_topic_name("a\0b"),
        Err(Error::NullCharacterInString)
    ));
    let long = "a".repeat(65_536);
    assert!(matches!(
        validate_topic_name(&long),
        Err(Error::StringTooLong { len: 65_536 })
    ));
    assert!(validate_topic_name(&long[..65_535]).is_ok());
}

#[test]
fn valid_topic_filters() {
    for f in [
        "#",
        "+",
        "+/+",
        "/+",
        "sport/tennis/player1/#",
        "sport/#",
        "sport/tennis/#",
        "+/tennis/#",
        "sport/+/player1",
        "/",
        "a//b",
        "$SYS/#",
        "$share",
        "$share/group/a/b",
        "$share/g/#",
        "$share/g/+/x",
        "$share/g//",
    ] {
        assert!(validate_topic_filter(f).is_ok(), "{f}");
    }
}

#[test]
fn invalid_topic_filters() {
    assert!(matches!(
        validate_topic_filter(""),
        Err(Error::EmptyTopicFilter)
    ));
    for f in [
        "sport/tennis#",
        "sport/tennis/#/ranking",
        "#/a",
        "a/b#",
        "##",
    ] {
        assert!(
            matches!(
                validate_topic_filter(f),
                Err(Error::MisplacedMultiLevelWildcard)
            ),
            "{f}"
        );
    }
    for f in ["sport+", "a/+b", "++", "a/b+/c"] {
        assert!(
            matches!(
                validate_topic_filter(f),
                Err(Error::MisplacedSingleLevelWildcard)
            ),
            "{f}"
        );
    }
    assert!(matches!(
        validate_topic_filter("a\0"),
        Err(Error::NullCharacterInString)
    ));
}

#[test]
fn invalid_shared_filters() {
    assert!(matches!(
        validate_topic_filter("$share/"),
        Err(Error::EmptyShareName)
    ));
    assert!(matches!(
        validate_topic_filter("$share//a"),
        Err(Error::EmptyShareName)
    ));
    assert!(matches!(
        validate_topic_filter("$share/g"),
        Err(Error::MissingSharedFilter)
    ));
    assert!(matches!(
        validate_topic_filter("$share/g/"),
        Err(Error::MissingSharedFilter)
    ));
    assert!(matches!(
        validate_topic_filter("$share/+/a"),
        Err(Error::WildcardInShareName)
    ));
    assert!(matches!(
        validate_topic_filter("$share/g#/a"),
        Err(Error::WildcardInShareName)
    ));
    assert!(matches!(
        validate_topic_filter("$share/g/a#"),
        Err(Error::MisplacedMultiLevelWildcard)
    ));
    assert!(matches!(
        validate_topic_filter("$share/g/a+"),
        Err(Error::MisplacedSingleLevelWildcard)
    ));
}

#[test]
fn parse_shared_splits_at_first_slash() {
    assert_eq!(
        parse_shared("$share/g/a/b"),
        Some(SharedFilter {
            group: "g",
            filter: "a/b"
        })
    );
    assert_eq!(
        parse_shared("$share/g/#"),
        Some(SharedFilter {
            group: "g",
            filter: "#"
        })
    );
    assert_eq!(parse_shared("$share/g"), None);
    assert_eq!(parse_shared("$share"), None);
    assert_eq!(parse_shared("a/b"), None);
    assert_eq!(parse_shared("$SHARE/g/a"), None);
}

#[test]
fn spec_multi_level_examples() {
    // §4.7.1.2
    for t in [
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player1/score/wimbledon",
    ] {
        assert!(matches("sport/tennis/player1/#", t), "{t}");
    }
    assert!(matches("sport/#", "sport"));
    assert!(matches("#", "a/b/c"));
    assert!(matches("#", "/"));
    assert!(matches("a/#", "a/"));
    assert!(!matches("a/#", "b"));
    assert!(!matches("a/b/#", "a"));
}

#[test]
fn spec_single_level_examples() {
    // §4.7.1.3
    assert!(matches("sport/tennis/+", "sport/tennis/player1"));
    assert!(matches("sport/tennis/+", "sport/tennis/player2"));
    assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
    assert!(matches("sport/+", "sport/"));
    assert!(!matches("sport/+", "sport"));
    assert!(matches("+/+", "/finance"));
    assert!(matches("/+", "/finance"));
    assert!(!matches("+", "/finance"));
    assert!(matches("+/tennis/#", "sport/tennis/x/y"));
    assert!(matches("sport/+/player1", "sport/tennis/player1"));
    assert!(matches("+", "a"));
    assert!(!matches("+", "a/b"));
}

#[test]
fn spec_dollar_topics() {
    // §4.7.2
    assert!(!matches("#", "$SYS/monitor/Clients"));
    assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    assert!(matches("$SYS/#", "$SYS"));
    assert!(!matches("+", "$SYS"));
    assert!(matches("a/+", "a/$x"));
}

#[test]
fn exact_and_case_sensitive() {
    assert!(matches("a/b", "a/b"));
    assert!(!matches("a/b", "a/B"));
    assert!(!matches("ACCOUNTS", "Accounts"));
    assert!(!matches("a/b", "a/b/c"));
    assert!(!matches("a/b/c", "a/b"));
    assert!(matches("a//b", "a//b"));
    assert!(!matches("a/b", "a//b"));
    assert!(matches("/", "/"));
    assert!(matches("+/+", "/"));
    assert!(matches("a/+/c", "a//c"));
}
