//! mqgate's `[[tunnel]]` client against a real OpenSSH `sshd` (started by the test on a free
//! loopback port with a generated config and host keys): MQTT flows through the tunnel's
//! local listener to an in-process broker; a changed host key is refused; after sshd is
//! killed, local connections wait and are closed, and the tunnel comes back by itself once
//! sshd is restarted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqgate_broker_lite::{serve_tcp, AllowAll, Broker, BrokerSettings};
use mqgate_config::{Backoff, TunnelConfig};
use mqgate_proxy::ssh::{SshConnector, SshTunnel};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) -> String {
    keygen_type(path, "ed25519")
}

fn keygen_type(path: &Path, kind: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// A real sshd; killing it also kills its session processes.
struct Sshd {
    child: Option<Child>,
    config: PathBuf,
    port: u16,
}

impl Sshd {
    fn start(dir: &Path, port: u16, host_key: &Path) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = dir.join(format!(
            "sshd_config_{}",
            host_key.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 AllowTcpForwarding yes\nLogLevel VERBOSE\n",
                host_key.display(),
                dir.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let mut sshd = Sshd {
            child: None,
            config,
            port,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        let deadline = Instant::now() + WAIT;
        while StdStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pids of sshd and every session process it forked.
    fn tree(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.child.iter().map(Child::id).collect();
        let mut i = 0;
        while i < pids.len() {
            pids.extend(children_of(pids[i]));
            i += 1;
        }
        pids
    }

    /// Freezes sshd and its sessions: the TCP connections stay open but nothing answers.
    fn stop(&self) {
        for pid in self.tree() {
            let _ = Command::new("kill")
                .args(["-s", "STOP", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGKILL to sshd and every session process it forked (they run in their own
    /// sessions, so the process tree is walked through /proc).
    fn kill(&mut self) {
        let pids = self.tree();
        if let Some(mut child) = self.child.take() {
            for pid in pids {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", &pid.to_string()])
                    .status();
            }
            let _ = child.wait();
        }
    }
}

/// Direct children of `pid`, from /proc/<pid>/task/*/children.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                children.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    children
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Setup {
    dir: tempfile::TempDir,
    sshd: Sshd,
    broker_port: u16,
    user: String,
    shutdown: CancellationToken,
    _broker: Broker,
}

async fn setup() -> Setup {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let client_pub = keygen(&dir.path().join("id_ed25519"));
    let rsa_pub = keygen_type(&dir.path().join("id_rsa"), "rsa");
    std::fs::write(
        dir.path().join("authorized_keys"),
        format!("{client_pub}{rsa_pub}"),
    )
    .unwrap();
    let host_pub = keygen(&dir.path().join("host_key"));
    keygen(&dir.path().join("other_host_key"));
    let port = free_port();
    let sshd = Sshd::start(dir.path(), port, &dir.path().join("host_key"));
    std::fs::write(
        dir.path().join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )
    .unwrap();

    let broker = Broker::start(BrokerSettings::default(), Arc::new(AllowAll))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker_port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_tcp(listener, broker.handle(), shutdown.clone()));
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    Setup {
        dir,
        sshd,
        broker_port,
        user,
        shutdown,
        _broker: broker,
    }
}

impl Setup {
    fn tunnel_config(&self, listen: Option<SocketAddr>) -> TunnelConfig {
        TunnelConfig {
            name: "uplink".to_owned(),
            listen,
            server: format!("127.0.0.1:{}", self.sshd.port),
            user: self.user.clone(),
            key_file: self.dir.path().join("id_ed25519"),
            known_hosts: Some(self.dir.path().join("known_hosts")),
            host_key_fingerprint: None,
            remote: format!("127.0.0.1:{}", self.broker_port),
            keepalive: Duration::from_secs(1),
            reconnect: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
            },
            connect_wait: Duration::from_secs(3),
        }
    }

    fn start(&self, config: TunnelConfig) -> SshConnector {
        let tunnel = SshTunnel::new(config).unwrap();
        let connector = tunnel.connector();
        tokio::spawn(tunnel.run(self.shutdown.clone()));
        connector
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn mosquitto(program: &str, port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    cmd
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Publishes a retained message through `port` and reads it back, retrying (bounded) while
/// the tunnel is still coming up.
async fn round_trip(port: u16, topic: &str, payload: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let publish = output(mosquitto(
            "mosquitto_pub",
            port,
            &["-q", "1", "-r", "-t", topic, "-m", payload],
        ))
        .await;
        if publish.status.success() {
            let sub = output(mosquitto(
                "mosquitto_sub",
                port,
                &["-t", topic, "-C", "1", "-W", "20"],
            ))
            .await;
            assert!(
                sub.status.success(),
                "{}",
                String::from_utf8_lossy(&sub.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&sub.stdout).trim(), payload);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no MQTT through the tunnel: {}",
            String::from_utf8_lossy(&publish.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_through_tunnel_survives_sshd_restart() {
    let mut setup = setup().await;
    let local = free_port();
    setup.start(setup.tunnel_config(Some(SocketAddr::from(([127, 0, 0, 1], local)))));
    round_trip(local, "site/a", "before").await;

    // sshd dies: a local connection arriving now waits (connect_wait), then is closed
    // without any byte from the broker.
    setup.sshd.kill();
    let closed = tokio::task::spawn_blocking(move || {
        let mut conn = StdStream::connect(("127.0.0.1", local)).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        // An MQTT CONNECT the broker would answer with CONNACK if it were reached.
        let _ = conn.write_all(&[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ]);
        let mut buf = [0u8; 4];
        conn.read(&mut buf).unwrap_or(0)
    })
    .await
    .unwrap();
    assert_eq!(closed, 0, "a connection while the tunnel is down is closed");

    // sshd comes back on the same port: the tunnel reconnects by itself.
    setup.sshd.spawn();
    round_trip(local, "site/a", "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_host_key_is_refused_and_fingerprint_pin_works() {
    let setup = setup().await;
    // known_hosts names another key for this server: never connects.
    let other_pub = std::fs::read_to_string(setup.dir.path().join("other_host_key.pub")).unwrap();
    std::fs::write(
        setup.dir.path().join("known_hosts_changed"),
        format!("[127.0.0.1]:{} {other_pub}", setup.sshd.port),
    )
    .unwrap();
    let mut changed = setup.tunnel_config(None);
    changed.known_hosts = Some(setup.dir.path().join("known_hosts_changed"));
    let err = setup
        .start(changed)
        .connect()
        .await
        .err()
        .expect("a changed host key must be refused");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

    // A wrong fingerprint is refused as well, even with a matching known_hosts.
    let mut wrong_fp = setup.tunnel_config(None);
    wrong_fp.host_key_fingerprint = Some(format!("SHA256:{}", "A".repeat(43)));
    assert!(setup.start(wrong_fp).connect().await.is_err());

    // An RSA client key works too (rsa-sha2 signature), with the known_hosts pin.
    let mut rsa = setup.tunnel_config(None);
    rsa.key_file = setup.dir.path().join("id_rsa");
    rsa.connect_wait = WAIT;
    drop(setup.start(rsa).connect().await.expect("RSA key login"));

    // The right fingerprint alone works; the connector gives a raw stream to the broker.
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(setup.dir.path().join("host_key.pub"))
        .output()
        .unwrap();
    let fp = String::from_utf8(fp.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let mut pinned = setup.tunnel_config(None);
    pinned.known_hosts = None;
    pinned.host_key_fingerprint = Some(fp);
    pinned.connect_wait = WAIT;
    let mut stream = setup.start(pinned).connect().await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(&[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ])
        .await
        .unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, stream.read_exact(&mut connack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_detected_by_keepalives() {
    let mut setup = setup().await;
    let connector = setup.start(setup.tunnel_config(None));
    drop(connector.connect().await.unwrap());
    assert!(connector.is_up());

    // sshd freezes: no RST, no FIN, just silence. Keepalives (1 s x 3) notice.
    setup.sshd.stop();
    let deadline = Instant::now() + WAIT;
    while connector.is_up() {
        assert!(
            Instant::now() < deadline,
            "a frozen server was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    setup.sshd.kill();
    setup.sshd.spawn();
    let mut stream = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(stream) = connector.connect().await {
                return stream;
            }
        }
    })
    .await
    .expect("the tunnel did not come back");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(&[
            0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
        ])
        .await
        .unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, stream.read_exact(&mut connack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
}
