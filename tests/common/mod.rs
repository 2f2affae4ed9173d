//! Test support: start the real `mqgate` binary on a free port and control its life;
//! password files, free ports, child processes; a raw MQTT client ([`raw_client`]),
//! certificates ([`pki`]) and SSH keys and tunnels ([`ssh`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod pki;
pub mod raw_client;
pub mod ssh;

use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for mqgate to become ready before failing.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `mqgate run` process.
pub struct Mqgate {
    child: Child,
    /// Address of its plain MQTT (TCP) listener.
    pub addr: SocketAddr,
    /// Address of its WebSocket listener, if one was configured.
    pub ws_addr: Option<SocketAddr>,
    /// Its data directory.
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Mqgate {
    /// Starts `mqgate run --listen 127.0.0.1:0 --data-dir DATA_DIR EXTRA...` and waits
    /// until it logs that its listeners are ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Mqgate {
        let mut args = vec!["run", "--listen", "127.0.0.1:0", "--data-dir"];
        let dir = data_dir.to_str().expect("utf-8 temp path");
        args.push(dir);
        args.extend_from_slice(extra);
        Mqgate::start_with_args(data_dir, &args)
    }

    /// Starts `mqgate run --config CONFIG --data-dir DATA_DIR` (the listeners are the
    /// config file's) and waits until it logs that its listeners are ready.
    pub fn start_with_config(data_dir: &Path, config: &Path) -> Mqgate {
        let config = config.to_str().expect("utf-8 temp path");
        let dir = data_dir.to_str().expect("utf-8 temp path");
        Mqgate::start_with_args(data_dir, &["run", "--config", config, "--data-dir", dir])
    }

    /// Writes `config` (TOML) to `dir/mqgate.toml` and starts `mqgate run --listen
    /// 127.0.0.1:0 --data-dir dir/data --config` with it.
    pub fn start_with_toml(dir: &Path, config: &str) -> Mqgate {
        let path = dir.join("mqgate.toml");
        std::fs::write(&path, config).expect("write the config");
        Mqgate::start(
            &dir.join("data"),
            &["--config", path.to_str().expect("utf-8 path")],
        )
    }

    /// Starts the binary with exactly `args` and waits for the MQTT listener's ready line.
    pub fn start_with_args(data_dir: &Path, args: &[&str]) -> Mqgate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mqgate"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mqgate");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[mqgate] {line}");
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut addr = None;
        let mut ws_addr = None;
        while addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "mqgate did not become ready; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            };
            if line.contains("listening") {
                let parsed = parse_addr(&line);
                if line.contains("kind=ws") {
                    ws_addr = parsed;
                } else if line.contains("kind=tcp") {
                    addr = parsed;
                }
            }
        }
        Mqgate {
            child,
            addr: addr.expect("tcp listener address"),
            ws_addr,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (bounded) for a graceful exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("mqgate did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The address a listener of `kind` ("tcp", "ws", "tls") logged as ready, if any.
    pub fn listener(&self, kind: &str) -> Option<SocketAddr> {
        let tag = format!("kind={kind} ");
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| l.contains("listening") && l.contains(&tag))
            .find_map(|l| parse_addr(l))
    }

    /// Sends a signal (e.g. "HUP") to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) until a log line contains `needle`; returns whether it appeared.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Mqgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Extracts `addr=IP:PORT` from a log line.
fn parse_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find("addr=")? + "addr=".len();
    let rest = &line[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].trim_matches('"').parse().ok()
}

/// Runs the mqgate binary to completion with `args`; returns (exit code, stdout, stderr).
pub fn run_mqgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .args(args)
        .output()
        .expect("run mqgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Cheap argon2 parameters for `mqgate passwd add`: the debug build would spend seconds
/// per login with the defaults. The entries are still argon2id.
pub const CHEAP_ARGON2: [&str; 6] = [
    "--memory-kib",
    "64",
    "--iterations",
    "1",
    "--parallelism",
    "1",
];

/// `mqgate passwd add FILE USER` with [`CHEAP_ARGON2`], the password on stdin; must succeed.
pub fn add_password(file: &Path, user: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqgate"))
        .args(["passwd", "add", file.to_str().unwrap(), user])
        .args(CHEAP_ARGON2)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mqgate passwd add {user}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// A child process killed (and reaped) on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
