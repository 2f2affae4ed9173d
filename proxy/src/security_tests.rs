//! Tests of [`Security`] through the `Authorizer` API: logins, anonymous access,
//! transport identities, ACL per operation, bypass attempts and reload.

use std::net::SocketAddr;

use bytes::Bytes;
use mqgate_protocol::ProtocolVersion;

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
    };
    let pw = pw.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    let req = ConnectRequest {
        client_id: "c1",
        username: user,
        password: pw.as_ref(),
        protocol: ProtocolVersion::V3_1_1,
    };
    sec.authenticate(&identity, req).await
}

fn client(user: Option<&str>, id: &str) -> ClientInfo {
    ClientInfo {
        client_id: id.to_owned(),
        username: user.map(str::to_owned),
        peer: peer(),
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
