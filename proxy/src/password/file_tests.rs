//! Tests of password-file parsing (mosquitto's rules) and atomic rewrites.

use super::*;
use crate::password::hash::Argon2Cost;

const SIX: &str = "$6$YWJjZGVmZ2hpamts$6i93SkOMf6fc41fymirTPrapd0oWBaT1tTlLItfP4seDAu6aexpm5rgu5nXJd6844jBYqiqRNRizDJXvI7dzHA==";

fn p(text: &str) -> Result<PasswordFile, Error> {
    PasswordFile::parse(text, Path::new("pw"))
}

#[test]
fn parses_mosquitto_rules() {
    let text = format!(
        "# comment:with colon\n\nno colon here\n  alice : {SIX} \nbob:{SIX}:extra:fields\n"
    );
    let f = p(&text).unwrap();
    assert_eq!(f.len(), 2);
    assert!(f.get("alice").unwrap().verify(b"secret"));
    assert!(f.get("bob").is_some());
    assert!(f.get("# comment").is_none());
    assert!(f.get("no colon here").is_none());
}

#[test]
fn errors_name_the_line() {
    let e = p(&format!("a:{SIX}\n:{SIX}\n")).unwrap_err().to_string();
    assert!(e.starts_with("pw:2:") && e.contains("empty user"), "{e}");
    let e = p(&format!("a:{SIX}\n\na:{SIX}\n")).unwrap_err().to_string();
    assert!(e.starts_with("pw:3:") && e.contains("duplicate"), "{e}");
    let e = p("a:plain\n").unwrap_err().to_string();
    assert!(
        e.starts_with("pw:1:") && e.contains("unknown scheme"),
        "{e}"
    );
    let e = p("a:\n").unwrap_err().to_string();
    assert!(e.starts_with("pw:1:"), "{e}");
}

#[test]
fn rewrite_keeps_comments_and_order() {
    let text = format!("# head\nalice:{SIX}\n# mid\nbob:{SIX}\n");
    let mut f = p(&text).unwrap();
    assert_eq!(f.to_text(), text);
    let cheap = Argon2Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    f.set("alice", StoredHash::new_argon2id(b"x", cheap).unwrap());
    assert!(f.remove("bob"));
    assert!(!f.remove("bob"));
    f.set("carol", StoredHash::parse(SIX).unwrap());
    let out = f.to_text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "# head");
    assert!(lines[1].starts_with("alice:$argon2id$v=19$m=64,t=1,p=1$"));
    assert_eq!(lines[2], "# mid");
    assert!(lines[3].starts_with("carol:$6$"));
    assert_eq!(p(&out).unwrap(), f);
}

#[test]
fn save_is_0600_and_atomic() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    let mut f = PasswordFile::default();
    f.set("alice", StoredHash::parse(SIX).unwrap());
    f.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(PasswordFile::load(&path).unwrap(), f);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left behind");
}

#[test]
fn usernames_checked_for_add() {
    for bad in ["", "a:b", "#x", " a", "a\nb"] {
        assert!(check_username(bad).is_err(), "{bad:?}");
    }
    check_username("device-42@site").unwrap();
}

#[test]
fn debug_shows_no_hash() {
    let f = p(&format!("alice:{SIX}\n")).unwrap();
    let d = format!("{f:?}");
    assert!(d.contains("alice") && !d.contains("YWJj"), "{d}");
}
