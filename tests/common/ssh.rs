//! SSH keys (`ssh-keygen`) and `ssh -N -L` tunnels into an ssh listener.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_until, KillOnDrop};

/// `ssh-keygen` an ed25519 key at `path` with `comment`; returns the public key line.
pub fn keygen(path: &Path, comment: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen {}", path.display());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// `ssh -N -L 127.0.0.1:<free>:127.0.0.1:1883 USER@127.0.0.1 -p SSH_PORT` with the key
/// `ssh_dir/USER` (batch mode, that key only), the host key checked against
/// `ssh_dir/known_hosts`. Returns the process and the local port once the port accepts
/// connections, or `Err` if ssh exited first; panics if neither happens within `timeout`.
pub fn forward(
    ssh_dir: &Path,
    user: &str,
    ssh_port: u16,
    timeout: Duration,
) -> Result<(KillOnDrop, u16), String> {
    let local = free_port();
    let child = Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "ConnectTimeout=10", "-o", "ExitOnForwardFailure=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            ssh_dir.join("known_hosts").display()
        ))
        .arg("-i")
        .arg(ssh_dir.join(user))
        .args(["-p", &ssh_port.to_string(), "-N", "-L"])
        .arg(format!("127.0.0.1:{local}:127.0.0.1:1883"))
        .arg(format!("{user}@127.0.0.1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut exited = None;
    let up = wait_until(timeout, || {
        if let Some(status) = child.0.try_wait().unwrap() {
            exited = Some(status);
            return true;
        }
        TcpStream::connect(("127.0.0.1", local)).is_ok()
    });
    match exited {
        Some(status) => Err(format!("ssh -L as {user} exited: {status}")),
        None if up => Ok((child, local)),
        None => panic!("ssh -L as {user} did not open 127.0.0.1:{local}"),
    }
}
