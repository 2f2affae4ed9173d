//! Tests of [`Security`] through the `Authorizer` API: logins, anonymous access,
//! transport identities, ACL per operation, bypass attempts and reload.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mqgate_broker_lite::{UsernamePolicy, WillRequest};
use mqgate_protocol::{ProtocolVersion, QoS};

use super::*;
use crate::password::Argon2Cost;

const SEVEN: &str = "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==";

fn settings() -> VerifierSettings {
    VerifierSettings {
        cost: Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        min_rejection_time: Duration::from_millis(1),
        rehash_on_login: false,
        ..VerifierSettings::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    acl_path: PathBuf,
    sec: Security,
}

fn fixture(acl: &str, anonymous: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, format!("alice:{SEVEN}\ndevice1:{SEVEN}\n")).unwrap();
    let acl_path = dir.path().join("acl");
    std::fs::write(&acl_path, acl).unwrap();
    let sec = Security::new(Some(pw), Some(acl_path.clone()), anonymous, settings()).unwrap();
    Fixture {
        _dir: dir,
        acl_path,
        sec,
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

async fn login(
    sec: &Security,
    transport_user: Option<&str>,
    user: Option<&str>,
    pw: Option<&str>,
) -> Result<Option<String>, ReasonCode> {
    let identity = Identity {
        peer: peer(),
        transport_user: transport_user.map(str::to_owned),
        username_policy: UsernamePolicy::Replace,
        credential: Default::default(),
    };
    let pw = pw.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    let req = ConnectRequest {
        client_id: "c1",
        username: user,
        password: pw.as_ref(),
        protocol: ProtocolVersion::V3_1_1,
        will: None,
    };
    sec.authenticate(&identity, req).await
}

fn client(user: Option<&str>, id: &str) -> ClientInfo {
    ClientInfo {
        client_id: id.to_owned(),
        username: user.map(str::to_owned),
        peer: peer(),
        credential: Default::default(),
    }
}

const ACL: &str = "user alice\ntopic readwrite a/#\ntopic read $SYS/#\nuser device1\ntopic write telemetry/device1/#\n";

#[tokio::test]
async fn logins() {
    let f = fixture(ACL, false);
    assert_eq!(
        login(&f.sec, None, Some("alice"), Some("secret")).await,
        Ok(Some("alice".into()))
    );
    assert_eq!(
        login(&f.sec, None, Some("alice"), Some("nope")).await,
        Err(ReasonCode::BadUserNameOrPassword)
    );
    assert_eq!(
        login(&f.sec, None, Some("ghost"), Some("secret")).await,
        Err(ReasonCode::BadUserNameOrPassword)
    );
    assert_eq!(
        login(&f.sec, None, Some("alice"), None).await,
        Err(ReasonCode::BadUserNameOrPassword)
    );
    assert_eq!(
        login(&f.sec, None, None, None).await,
        Err(ReasonCode::NotAuthorized)
    );
    // A certificate CN needs no password.
    assert_eq!(
        login(&f.sec, Some("device1"), None, None).await,
        Ok(Some("device1".into()))
    );
    assert_eq!(
        login(&f.sec, Some("device1"), Some("alice"), None).await,
        Ok(Some("device1".into())),
        "the transport identity wins over the CONNECT user name"
    );
    let open = fixture(ACL, true);
    assert_eq!(login(&open.sec, None, None, None).await, Ok(None));
}

#[tokio::test]
async fn acl_per_operation_and_bypass_attempts() {
    let f = fixture(ACL, false);
    let s = &f.sec;
    let alice = client(Some("alice"), "c1");
    let dev = client(Some("device1"), "d1");
    assert!(s.authorize_publish(&alice, "a/b", QoS::AtLeastOnce, false));
    assert!(!s.authorize_publish(&alice, "b/c", QoS::AtMostOnce, false));
    assert!(
        !s.authorize_publish(&alice, "b/c", QoS::AtMostOnce, true),
        "retained too"
    );
    // Wildcards, NUL in a publish topic.
    assert!(!s.authorize_publish(&alice, "a/#", QoS::AtMostOnce, false));
    assert!(!s.authorize_publish(&alice, "a/+", QoS::AtMostOnce, false));
    assert!(!s.authorize_publish(&alice, "a/\0x", QoS::AtMostOnce, false));
    assert!(!s.authorize_publish(&alice, "$SYS/broker/x", QoS::AtMostOnce, false));
    // Subscriptions.
    assert!(s.authorize_subscribe(&alice, "#", QoS::AtMostOnce));
    assert!(s.authorize_subscribe(&alice, "$SYS/#", QoS::AtMostOnce));
    assert!(
        !s.authorize_subscribe(&dev, "#", QoS::AtMostOnce),
        "device1 may not read anything"
    );
    assert!(!s.authorize_subscribe(&dev, "+/+", QoS::AtMostOnce));
    assert!(!s.authorize_subscribe(&dev, "$SYS/#", QoS::AtMostOnce));
    assert!(!s.authorize_subscribe(&dev, "$share/g/#", QoS::AtMostOnce));
    assert!(!s.authorize_subscribe(&dev, "telemetry/device1/#", QoS::AtMostOnce));
    assert!(
        !s.authorize_subscribe(&alice, "a/#/b", QoS::AtMostOnce),
        "invalid filter"
    );
    // Deliveries through alice's broad `#`.
    assert!(s.authorize_delivery(&alice, "a/x"));
    assert!(!s.authorize_delivery(&alice, "telemetry/device1/t"));
    assert!(!s.authorize_delivery(&alice, "A/x"), "case differs");
    assert!(s.authorize_delivery(&alice, "$SYS/broker/load"));
}

#[tokio::test]
async fn reload_applies_to_next_operation_and_keeps_old_on_error() {
    let f = fixture(ACL, false);
    let alice = client(Some("alice"), "c1");
    assert!(f.sec.authorize_delivery(&alice, "a/x"));
    std::fs::write(&f.acl_path, "user alice\ntopic read b/#\n").unwrap();
    f.sec.reload().unwrap();
    assert!(
        !f.sec.authorize_delivery(&alice, "a/x"),
        "existing client, new rules"
    );
    assert!(f.sec.authorize_delivery(&alice, "b/x"));
    assert!(!f
        .sec
        .authorize_publish(&alice, "a/x", QoS::AtMostOnce, false));
    std::fs::write(&f.acl_path, "user alice\nbogus line\n").unwrap();
    let e = f.sec.reload().unwrap_err().to_string();
    assert!(e.contains(":2:"), "{e}");
    assert!(f.sec.authorize_delivery(&alice, "b/x"), "old rules kept");
}

#[tokio::test]
async fn no_acl_allows_all_but_sys_writes() {
    let sec = Security::new(None, None, true, settings()).unwrap();
    let c = client(None, "c");
    assert_eq!(
        login(&sec, None, Some("anyone"), Some("x")).await,
        Ok(Some("anyone".into()))
    );
    assert!(sec.authorize_publish(&c, "x/y", QoS::AtMostOnce, false));
    assert!(!sec.authorize_publish(&c, "$SYS/x", QoS::AtMostOnce, false));
    assert!(sec.authorize_subscribe(&c, "#", QoS::AtMostOnce));
    assert!(sec.authorize_delivery(&c, "x"));
    let closed = Security::new(None, None, false, settings()).unwrap();
    assert_eq!(
        login(&closed, None, Some("anyone"), Some("x")).await,
        Err(ReasonCode::NotAuthorized)
    );
}

/// A Security built from `[auth]`/`[acl]` TOML (anonymous allowed, no password file).
fn from_toml(text: &str) -> Security {
    let config = mqgate_config::Config::from_toml_str(text, "t.toml").unwrap();
    Security::from_config(&config.auth, &config.acl).unwrap()
}

#[tokio::test]
async fn toml_rules_and_file_rules_give_the_same_decisions_and_survive_reload() {
    // The same rule set three ways: all in the file, all in TOML, split between both.
    let file_text = "topic read public/#\nuser alice\ntopic readwrite a/#\ntopic deny a/secret\ntopic read $SYS/#\npattern write devices/%c/#\n";
    let toml_rules = r#"
[[acl.rule]]
topic = "public/#"
access = "read"
[[acl.rule]]
user = "alice"
topic = "a/#"
[[acl.rule]]
user = "alice"
topic = "a/secret"
access = "deny"
[[acl.rule]]
user = "alice"
topic = "$SYS/#"
access = "read"
[[acl.rule]]
pattern = true
topic = "devices/%c/#"
access = "write"
"#;
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.acl");
    std::fs::write(&full, file_text).unwrap();
    let half = dir.path().join("half.acl");
    std::fs::write(&half, "user alice\ntopic readwrite a/#\n").unwrap();
    let head = "[auth]\nallow_anonymous = true\n[acl]\n";
    let by_file = from_toml(&format!("{head}file = {full:?}\n"));
    let by_toml = from_toml(&format!("{head}{toml_rules}"));
    let split_rules = r#"
[[acl.rule]]
topic = "public/#"
access = "read"
[[acl.rule]]
user = "alice"
topic = "a/secret"
access = "deny"
[[acl.rule]]
user = "alice"
topic = "$SYS/#"
access = "read"
[[acl.rule]]
pattern = true
topic = "devices/%c/#"
access = "write"
"#;
    let split = from_toml(&format!("{head}file = {half:?}\n{split_rules}"));
    // (user, client, topic, action, expected)
    let table: &[(Option<&str>, &str, &str, &str, bool)] = &[
        (None, "c", "public/x", "read", true),
        (None, "c", "public/x", "write", false),
        (None, "c", "public/#", "subscribe", true),
        (None, "c", "a/x", "read", false),
        (Some("alice"), "c", "a/x", "write", true),
        (Some("alice"), "c", "a/x", "read", true),
        (Some("alice"), "c", "a/secret", "read", false),
        (Some("alice"), "c", "a/secret", "write", false),
        (Some("alice"), "c", "a/#", "subscribe", true),
        (Some("alice"), "c", "$SYS/#", "subscribe", true),
        (Some("alice"), "c", "$SYS/x", "write", false),
        (Some("alice"), "c", "public/x", "read", false),
        (Some("alice"), "dev1", "devices/dev1/t", "write", true),
        (Some("alice"), "dev1", "devices/dev2/t", "write", false),
        (Some("bob"), "dev1", "devices/dev1/t", "write", true),
        (Some("bob"), "dev1", "devices/dev1/t", "read", false),
        (Some("bob"), "dev1", "#", "subscribe", false),
        (Some("bob"), "dev/1", "devices/dev/1/t", "write", false),
    ];
    let decide = |s: &Security, user: Option<&str>, id: &str, topic: &str, action: &str| {
        let c = client(user, id);
        match action {
            "read" => s.authorize_delivery(&c, topic),
            "write" => s.authorize_publish(&c, topic, QoS::AtMostOnce, false),
            _ => s.authorize_subscribe(&c, topic, QoS::AtMostOnce),
        }
    };
    for &(user, id, topic, action, expected) in table {
        for (name, s) in [("file", &by_file), ("toml", &by_toml), ("split", &split)] {
            assert_eq!(
                decide(s, user, id, topic, action),
                expected,
                "{name}: {user:?} {id} {action} {topic}"
            );
        }
    }
    // SIGHUP: the file is re-read, the TOML rules stay.
    std::fs::write(&half, "user alice\ntopic read b/#\n").unwrap();
    split.reload().unwrap();
    let alice = client(Some("alice"), "c");
    assert!(!split.authorize_delivery(&alice, "a/x"), "file rule gone");
    assert!(split.authorize_delivery(&alice, "b/x"), "new file rule");
    assert!(
        split.authorize_delivery(&alice, "$SYS/x"),
        "TOML rule kept after reload"
    );
    assert!(split.authorize_delivery(&client(None, "c"), "public/x"));
    // TOML rules alone (no file): reload has nothing to re-read and keeps them.
    by_toml.reload().unwrap();
    assert!(by_toml.authorize_delivery(&alice, "a/x"));
}

#[test]
fn disconnect_on_denied_publish_comes_from_config() {
    let head = "[auth]\nallow_anonymous = true\n";
    assert!(!from_toml(head).disconnect_on_denied_publish());
    assert!(from_toml(&format!(
        "{head}[acl]\ndisconnect_on_denied_publish = true\n"
    ))
    .disconnect_on_denied_publish());
    assert!(!Security::new(None, None, true, settings())
        .unwrap()
        .disconnect_on_denied_publish());
}

#[tokio::test]
async fn forbidden_will_topic_is_refused_at_connect() {
    let f = fixture(ACL, false);
    let identity = Identity::new(peer());
    let pw = Bytes::from_static(b"secret");
    let req = ConnectRequest {
        client_id: "c1",
        username: Some("alice"),
        password: Some(&pw),
        protocol: ProtocolVersion::V5,
        will: None,
    };
    let will = |topic| {
        Some(Will {
            topic,
            qos: QoS::AtLeastOnce,
            retain: true,
        })
    };
    let connect = |w| f.sec.authenticate_with_will(&identity, req, w);
    assert_eq!(connect(None).await, Ok(Some("alice".into())));
    assert_eq!(connect(will("a/last-will")).await, Ok(Some("alice".into())));
    for forbidden in ["b/last-will", "$SYS/x", "a/#", "telemetry/device1/x"] {
        assert_eq!(
            connect(will(forbidden)).await,
            Err(ReasonCode::NotAuthorized),
            "{forbidden}"
        );
    }
    // Authentication failures still come first, with their own code.
    let bad = Bytes::from_static(b"wrong");
    let req_bad = ConnectRequest {
        password: Some(&bad),
        ..req
    };
    assert_eq!(
        f.sec
            .authenticate_with_will(&identity, req_bad, will("a/x"))
            .await,
        Err(ReasonCode::BadUserNameOrPassword)
    );
    // The will is checked under the identity the client ends up with: a certificate CN.
    let cert = Identity::with_user(
        peer(),
        "device1".into(),
        UsernamePolicy::Replace,
        Default::default(),
    );
    let anon = ConnectRequest {
        username: None,
        password: None,
        ..req
    };
    assert_eq!(
        f.sec
            .authenticate_with_will(&cert, anon, will("telemetry/device1/gone"))
            .await,
        Ok(Some("device1".into()))
    );
    assert_eq!(
        f.sec.authenticate_with_will(&cert, anon, will("a/x")).await,
        Err(ReasonCode::NotAuthorized)
    );
}

#[tokio::test]
async fn a_transport_user_is_the_identity_and_a_conflicting_connect_name_is_refused_when_it_must_match(
) {
    let sec = Security::new(None, None, false, VerifierSettings::default()).unwrap();
    let ssh = |claimed: Option<&'static str>, policy| {
        let identity = Identity::with_user(peer(), "sensor7".into(), policy, Default::default());
        let sec = &sec;
        async move {
            let req = ConnectRequest {
                client_id: "c1",
                username: claimed,
                password: None,
                protocol: ProtocolVersion::V3_1_1,
                will: None,
            };
            sec.authenticate(&identity, req).await
        }
    };
    let must = UsernamePolicy::MustMatch;
    assert_eq!(ssh(None, must).await, Ok(Some("sensor7".into())));
    assert_eq!(ssh(Some("sensor7"), must).await, Ok(Some("sensor7".into())));
    assert_eq!(
        ssh(Some("admin"), must).await,
        Err(ReasonCode::NotAuthorized)
    );
    let replace = UsernamePolicy::Replace;
    assert_eq!(
        ssh(Some("admin"), replace).await,
        Ok(Some("sensor7".into()))
    );
}

#[tokio::test]
async fn a_forbidden_will_topic_in_connect_request_is_refused_through_the_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite status/#\n").unwrap();
    let sec = Security::new(None, Some(acl), true, VerifierSettings::default()).unwrap();
    let identity = Identity::new(peer());
    let request = |topic| ConnectRequest {
        client_id: "c1",
        username: None,
        password: None,
        protocol: ProtocolVersion::V3_1_1,
        will: Some(WillRequest {
            topic,
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
    };
    assert_eq!(
        sec.authenticate(&identity, request("status/c1")).await,
        Ok(None)
    );
    assert_eq!(
        sec.authenticate(&identity, request("alarms/c1")).await,
        Err(ReasonCode::NotAuthorized)
    );
}
