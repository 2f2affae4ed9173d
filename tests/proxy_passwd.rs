//! End-to-end tests of `mqgate passwd`: passwords from stdin (never argv), 0600 files,
//! argon2id entries the proxy verifies, and upgrading a mosquitto-made `$7$` entry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::CHEAP_ARGON2;
use mqgate_proxy::password::PasswordFile;

fn passwd(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn verifies(file: &Path, user: &str, password: &str) -> bool {
    let f = PasswordFile::load(file).unwrap();
    f.get(user).unwrap().verify(password.as_bytes())
}

#[test]
fn add_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = file.to_str().unwrap();
    let mut args = vec!["add", f, "alice"];
    args.extend(CHEAP_ARGON2);
    let o = passwd(&args, "s3cret\n");
    assert!(o.status.success(), "{}", text(&o));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let content = std::fs::read_to_string(&file).unwrap();
    assert!(
        content.starts_with("alice:$argon2id$v=19$m=64,t=1,p=1$"),
        "{content}"
    );
    assert!(!content.contains("s3cret"));
    assert!(verifies(&file, "alice", "s3cret"));
    assert!(!verifies(&file, "alice", "s3cret\n"));

    // Changing the password replaces the entry in place.
    let o = passwd(&args, "other\r\n");
    assert!(o.status.success(), "{}", text(&o));
    assert!(verifies(&file, "alice", "other"));

    let o = passwd(&["list", f], "");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "alice\targon2id\n");

    let o = passwd(&["delete", f, "alice"], "");
    assert!(o.status.success(), "{}", text(&o));
    let o = passwd(&["delete", f, "alice"], "");
    assert!(!o.status.success());
    assert!(text(&o).contains("no user"), "{}", text(&o));
}

#[test]
fn password_never_from_argv_and_never_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = file.to_str().unwrap();
    let o = passwd(&["add", f, "alice", "hunter2"], "");
    assert_eq!(
        o.status.code(),
        Some(2),
        "extra argument refused: {}",
        text(&o)
    );
    let o = passwd(&["add", f, "alice"], "\n");
    assert!(!o.status.success());
    assert!(text(&o).contains("empty password"), "{}", text(&o));
    let o = passwd(&["add", f, "a:b"], "x\n");
    assert!(!o.status.success());
    assert!(!file.exists());
}

#[test]
fn upgrade_a_mosquitto_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    // A mosquitto 2.1-style `$7$` entry (64-byte salt), made with Python's hashlib.
    let script = "import hashlib,base64,os\n\
        s=os.urandom(64)\n\
        print('bob:$7$1000$'+base64.b64encode(s).decode()+'$'+base64.b64encode(hashlib.pbkdf2_hmac('sha512',b'pw-bob',s,1000,64)).decode())";
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(
        &file,
        format!(
            "# made by mosquitto_passwd\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();

    let o = passwd(&["upgrade", f], "");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("bob\tpbkdf2-sha512"),
        "{}",
        text(&o)
    );

    let mut args = vec!["upgrade", f, "bob"];
    args.extend(CHEAP_ARGON2);
    let o = passwd(&args, "wrong\n");
    assert!(!o.status.success());
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("bob:$7$1000$"));

    let o = passwd(&args, "pw-bob\n");
    assert!(o.status.success(), "{}", text(&o));
    let content = std::fs::read_to_string(&file).unwrap();
    assert!(
        content.starts_with("# made by mosquitto_passwd\nbob:$argon2id$"),
        "{content}"
    );
    assert!(verifies(&file, "bob", "pw-bob"));
}
