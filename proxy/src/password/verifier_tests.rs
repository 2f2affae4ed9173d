//! Tests of the verifier: good, bad and unknown users, the cache, refusal timing and
//! rehash-on-login of a mosquitto-made file.

use std::net::Ipv4Addr;

use super::*;

const SEVEN: &str = "$7$101$MDEyMzQ1Njc4OWFi$EO/lLlkeUgIiBaS8G8UK0ZMP1u508TA7Tl+AdJ1cEsmlbGyEPAERErpfq84j1kepISs0UzmcdL4ucgZ2uodxfQ==";
const SIX: &str = "$6$YWJjZGVmZ2hpamts$6i93SkOMf6fc41fymirTPrapd0oWBaT1tTlLItfP4seDAu6aexpm5rgu5nXJd6844jBYqiqRNRizDJXvI7dzHA==";
const ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn cheap() -> VerifierSettings {
    VerifierSettings {
        cost: Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        min_rejection_time: Duration::from_millis(50),
        ..VerifierSettings::default()
    }
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("passwd");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn good_bad_and_unknown_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &format!("alice:{SEVEN}\nbob:{SIX}\n"));
    let v = Verifier::load(
        &path,
        VerifierSettings {
            rehash_on_login: false,
            ..cheap()
        },
    )
    .unwrap();
    assert!(v.verify("alice", b"secret", ADDR).await);
    assert!(v.verify("bob", b"secret", ADDR).await);
    assert!(!v.verify("alice", b"wrong", ADDR).await);
    let before = v.hashes_run();
    assert!(!v.verify("mallory", b"secret", ADDR).await);
    assert_eq!(
        v.hashes_run(),
        before + 1,
        "an unknown user still costs a hash"
    );
}

#[tokio::test(start_paused = true)]
async fn refusals_take_the_minimum_time() {
    let v = Verifier::new(
        PasswordFile::parse(&format!("alice:{SEVEN}\n"), Path::new("pw")).unwrap(),
        None,
        cheap(),
    )
    .unwrap();
    for (user, pw) in [("alice", &b"bad"[..]), ("nobody", b"secret")] {
        let t0 = tokio::time::Instant::now();
        assert!(!v.verify(user, pw, ADDR).await);
        assert!(t0.elapsed() >= Duration::from_millis(50), "{user}");
    }
    let t0 = tokio::time::Instant::now();
    v.reject_without_check(Some("alice"), ADDR).await;
    assert!(t0.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn cache_skips_hashing_on_reconnect_storm() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &format!("alice:{SEVEN}\n"));
    let v = Verifier::load(
        &path,
        VerifierSettings {
            rehash_on_login: false,
            ..cheap()
        },
    )
    .unwrap();
    assert!(v.verify("alice", b"secret", ADDR).await);
    let hashed = v.hashes_run();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            v.verify("alice", b"secret", ADDR).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(v.hashes_run(), hashed, "all 1000 answered from the cache");
    assert_eq!(v.cache_hits(), 1000);
    // A wrong password is never a cache hit.
    assert!(!v.verify("alice", b"secreT", ADDR).await);
    assert_eq!(v.hashes_run(), hashed + 1);
}

#[tokio::test]
async fn mosquitto_file_is_upgraded_on_login() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        &format!("# mosquitto\nalice:{SEVEN}\nbob:{SIX}\n"),
    );
    let v = Verifier::load(&path, cheap()).unwrap();
    assert!(v.verify("alice", b"secret", ADDR).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("alice:$argon2id$v=19$m=64,t=1,p=1$") {
            assert!(text.starts_with("# mosquitto\n"));
            assert!(
                text.contains(&format!("bob:{SIX}")),
                "other entries untouched"
            );
            break;
        }
        assert!(Instant::now() < deadline, "file not rewritten: {text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The in-memory copy follows, and the same password still works.
    assert_eq!(v.file().get("alice").unwrap().scheme(), "argon2id");
    assert!(v.verify("alice", b"secret", ADDR).await);
    assert!(!v.verify("alice", b"wrong", ADDR).await);
}

#[tokio::test]
async fn reload_keeps_old_contents_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &format!("alice:{SEVEN}\n"));
    let v = Verifier::load(&path, cheap()).unwrap();
    std::fs::write(&path, "alice:garbage\n").unwrap();
    assert!(v.reload().is_err());
    assert!(v.verify("alice", b"secret", ADDR).await);
    std::fs::write(&path, format!("bob:{SIX}\n")).unwrap();
    v.reload().unwrap();
    assert!(!v.verify("alice", b"secret", ADDR).await);
    assert!(v.verify("bob", b"secret", ADDR).await);
}
