//! `mqgate ssh fingerprint` prints the same SHA256 fingerprint as `ssh-keygen -l`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::process::Command;

fn mqgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqgate"))
}

#[test]
fn fingerprint_matches_ssh_keygen_and_generate_creates_a_0600_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("host_key");

    // Missing file without --generate: an error, nothing created.
    let out = mqgate()
        .args(["ssh", "fingerprint", "--host-key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!key.exists());

    let out = mqgate()
        .args(["ssh", "fingerprint", "--generate", "--host-key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // ssh-keygen reads the private key we wrote (OpenSSH format) and agrees.
    let keygen = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let theirs = String::from_utf8(keygen.stdout).unwrap();
    assert_eq!(theirs.split_whitespace().nth(1), Some(ours.as_str()));
    assert!(theirs.contains("(ED25519)"));

    // Running again reads the same key.
    let again = mqgate()
        .args(["ssh", "fingerprint", "--host-key"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap().trim(), ours);
}
