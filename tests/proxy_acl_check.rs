//! End-to-end test of `mqgate acl check`: the decision, the deciding rule's line, and
//! the exit status; with `--config`, the ACL file and the `[[acl.rule]]` tables together.

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

fn check_config(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .args(["acl", "check", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_combines_the_acl_file_and_the_rule_tables_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl");
    std::fs::write(&file, "user alice\ntopic read a/#\n").unwrap();
    let config = dir.path().join("mqgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[acl]
file = "{}"

[[acl.rule]]
user = "alice"
topic = "a/secret/#"
access = "deny"

[[acl.rule]]
user = "bob"
topic = "b/#"
access = "write"

[[acl.rule]]
pattern = true
topic = "dev/%c/#"
"#,
            file.display()
        ),
    )
    .unwrap();
    let args = |user: &str, topic: &'static str, action: &'static str| {
        let mut v = vec!["--client", "c1", "--topic", topic, "--action", action];
        if !user.is_empty() {
            v.extend(["--user", user]);
        }
        check_config(&config, &v)
    };
    let place = |n: usize| format!("{}: [[acl.rule]] {n}:", config.display());

    // A file rule decides, and is named by file:line.
    let (code, out, _) = args("alice", "a/x", "read");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("allow: {}:2: user topic", file.display())),
        "{out}"
    );
    // A table's deny overrides the file's grant, and is named by its index.
    let (code, out, _) = args("alice", "a/secret/k", "read");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("deny: {} user topic Deny", place(1))),
        "{out}"
    );
    // A user only the tables know, and a table pattern.
    let (code, out, _) = args("bob", "b/1", "write");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&place(2)), "{out}");
    let (code, out, _) = args("bob", "b/1", "read");
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("deny: no rule matches"), "{out}");
    let (code, out, _) = args("", "dev/c1/t", "write");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{} pattern", place(3))), "{out}");

    // --file replaces the configuration's acl.file; the tables still apply.
    let other = dir.path().join("other.acl");
    std::fs::write(&other, "user alice\ntopic deny a/#\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .args(["acl", "check", "--config"])
        .arg(&config)
        .arg("--file")
        .arg(&other)
        .args([
            "--user", "alice", "--client", "c1", "--topic", "a/x", "--action", "read",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with(&format!("deny: {}:2:", other.display())),
        "{stdout}"
    );
}

#[test]
fn config_without_acl_and_broken_configs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mqgate.toml");
    std::fs::write(&config, "[broker]\n").unwrap();
    let base = ["--client", "c1", "--action", "write", "--topic"];
    let (code, out, _) = check_config(&config, &[&base[..], &["x/y"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("allow: no ACL is configured"), "{out}");
    let (code, out, _) = check_config(&config, &[&base[..], &["$SYS/x"]].concat());
    assert_eq!((code, out.trim()), (1, "deny: $SYS is never writable"));

    // A bad rule table, and a missing ACL file: exit 64 with the reason.
    std::fs::write(&config, "[[acl.rule]]\ntopic = \"a/#/b\"\n").unwrap();
    let (code, _, err) = check_config(&config, &[&base[..], &["a"]].concat());
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("acl.rule"), "{err}");
    std::fs::write(&config, "[acl]\nfile = \"/nonexistent/acl\"\n").unwrap();
    let (code, _, err) = check_config(&config, &[&base[..], &["a"]].concat());
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("/nonexistent/acl"), "{err}");

    // Neither --config nor --file: a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .args([
            "acl", "check", "--client", "c", "--topic", "t", "--action", "read",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
