//! End-to-end test of `mqgate acl check`: the decision, the deciding rule's line, and
//! the exit status.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check(file: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .args(["acl", "check", "--file"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn prints_decision_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl");
    std::fs::write(
        &file,
        "user alice\ntopic read a/#\ntopic deny a/secret\npattern write dev/%c/#\n",
    )
    .unwrap();
    let (ok, out) = check(
        &file,
        &[
            "--user", "alice", "--client", "c1", "--topic", "a/x", "--action", "read",
        ],
    );
    assert!(
        ok && out.starts_with("allow:") && out.contains(":2: user topic"),
        "{out}"
    );
    let (ok, out) = check(
        &file,
        &[
            "--user", "alice", "--client", "c1", "--topic", "a/secret", "--action", "read",
        ],
    );
    assert!(
        !ok && out.starts_with("deny:") && out.contains(":3:"),
        "{out}"
    );
    let (ok, out) = check(
        &file,
        &["--client", "c1", "--topic", "dev/c1/x", "--action", "write"],
    );
    assert!(ok && out.contains(":4: pattern"), "{out}");
    let (ok, out) = check(
        &file,
        &[
            "--user",
            "bob",
            "--client",
            "c1",
            "--topic",
            "#",
            "--action",
            "subscribe",
        ],
    );
    assert!(!ok && out.starts_with("deny:"), "{out}");
    let (ok, out) = check(
        &file,
        &[
            "--user", "alice", "--client", "c1", "--topic", "$SYS/x", "--action", "write",
        ],
    );
    assert!(!ok && out.contains("$SYS is never writable"), "{out}");
}
