//! A bridge whose uplink is a channel of an SSH `[[tunnel]]` (`transport = "ssh"`): a real
//! OpenSSH sshd (started on a free loopback port with generated keys) forwards to a real
//! mosquitto as the cloud; the local side is an in-process broker-lite, as in `mqgate run`.
//! Messages published locally arrive at the cloud through the tunnel, also after sshd was
//! killed and restarted (the queue holds them meanwhile). The same through `mqgate run`
//! with a `[[tunnel]]` and a `transport = "ssh"` bridge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bridge_support;
mod common;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_support::{free_port, payloads, publish_all, sock, subscribe, Cloud, DEADLINE};
use mqgate_bridge::{
    BoxFuture, BoxedStream, Bridge, Connected, LocalConnector, UpstreamConnector, WalOptions,
};
use mqgate_broker_lite::{serve_tcp, AllowAll, Broker, BrokerHandle, BrokerSettings, Identity};
use mqgate_config::{Backoff, Config, TunnelConfig};
use mqgate_proxy::ssh::{SshConnector, SshTunnel};
use rumqttc::QoS;
use tokio_util::sync::CancellationToken;

fn keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// A real sshd allowing TCP forwarding for the test's key.
struct Sshd {
    child: Option<Child>,
    config: PathBuf,
    port: u16,
}

impl Sshd {
    fn start(dir: &Path, port: u16) -> Sshd {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 AllowTcpForwarding yes\n",
                dir.join("host_key").display(),
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
        let deadline = Instant::now() + DEADLINE;
        while StdStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to sshd and the session processes it forked (found through /proc).
    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut pids = vec![child.id()];
        let mut i = 0;
        while i < pids.len() {
            if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", pids[i])) {
                for task in tasks.flatten() {
                    if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                        pids.extend(
                            text.split_whitespace()
                                .filter_map(|p| p.parse::<u32>().ok()),
                        );
                    }
                }
            }
            i += 1;
        }
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
        }
        let _ = child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The bridge's local side, as `mqgate run` wires it: an in-process duplex pipe served by
/// broker-lite.
struct InProcess(BrokerHandle);

impl LocalConnector for InProcess {
    fn connect(&self) -> BoxFuture<'_, io::Result<BoxedStream>> {
        Box::pin(async move {
            let (a, b) = tokio::io::duplex(64 * 1024);
            let handle = self.0.clone();
            let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let identity = Identity::internal(peer, "mqgate-bridge-test".into());
            tokio::spawn(async move { handle.serve_connection(b, identity).await });
            Ok(Box::new(a) as BoxedStream)
        })
    }
}

/// The uplink as `mqgate run` wires a `transport = "ssh"` bridge: one direct-tcpip channel
/// of the tunnel's shared SSH connection per upstream connection.
struct ThroughTunnel(SshConnector);

impl UpstreamConnector for ThroughTunnel {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connected>> {
        Box::pin(async move {
            Ok(Connected {
                stream: Box::new(self.0.connect().await?) as BoxedStream,
                peer: "ssh tunnel uplink".to_owned(),
            })
        })
    }
}

// Formerly ignored for "an intermittent stall of one inflight window" (900/1000): the
// bridge queue had queued only 900 (forwarded=900, queue empty): the publisher's first
// window went out before the bridge's local subscription existed, so the local broker had
// no subscriber for it. The test now waits for the bridge's local subscription (a probe
// message reaches the queue) before publishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bridge_forwards_through_an_ssh_tunnel_and_survives_an_sshd_restart() {
    const N: usize = 1_000;
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let received = subscribe(sock(cloud.port), "cloud-sub", "cloud/#", QoS::AtLeastOnce).await;

    let (mut sshd, ssh_port, user) = sshd_with_keys(dir.path());
    let shutdown = CancellationToken::new();
    let tunnel = SshTunnel::new(TunnelConfig {
        name: "uplink".to_owned(),
        listen: None,
        server: format!("127.0.0.1:{ssh_port}"),
        user,
        key_file: dir.path().join("id_ed25519"),
        known_hosts: Some(dir.path().join("known_hosts")),
        host_key_fingerprint: None,
        remote: cloud.addr(),
        keepalive: Duration::from_secs(1),
        reconnect: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        connect_wait: Duration::from_secs(3),
    })
    .unwrap();
    let upstream = Arc::new(ThroughTunnel(tunnel.connector()));
    tokio::spawn(tunnel.run(shutdown.clone()));

    let broker = Broker::start(BrokerSettings::default(), Arc::new(AllowAll))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local_addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(listener, broker.handle(), shutdown.clone()));
    let config = Config::from_toml_str(
        r#"
[[tunnel]]
name = "uplink"
server = "127.0.0.1:22"
user = "u"
key_file = "k"
known_hosts = "h"
remote = "127.0.0.1:1883"

[[bridge]]
name = "up"
transport = "ssh"
tunnel = "uplink"
keepalive = "2s"
max_inflight = 100
[bridge.reconnect]
initial = "100ms"
max = "1s"
[[bridge.topic]]
topic = "sensors/#"
qos = 1
remote_prefix = "cloud/"
"#,
        "test",
    )
    .unwrap();
    let bridge = Bridge::open(
        config.bridges[0].clone(),
        &dir.path().join("queue"),
        WalOptions::default(),
    )
    .await
    .unwrap();
    let stats = bridge.stats_handle();
    let running = tokio::spawn(bridge.run(
        Arc::new(InProcess(broker.handle())),
        upstream,
        shutdown.clone(),
    ));

    bridge_subscribed_locally(local_addr, &stats).await;
    let acked = publish_all(
        local_addr,
        "pub-1",
        "sensors/a",
        QoS::AtLeastOnce,
        payloads("a", 0..N),
        |_| {},
    )
    .await;
    assert_eq!(acked, N);
    assert!(
        tokio::task::block_in_place(|| received.wait_distinct(N + 1, DEADLINE)),
        "{} of {N} (and the probe) through the tunnel",
        received.distinct()
    );

    sshd.kill();
    let acked = publish_all(
        local_addr,
        "pub-2",
        "sensors/b",
        QoS::AtLeastOnce,
        payloads("b", 0..N),
        |_| {},
    )
    .await;
    assert_eq!(
        acked, N,
        "the queue takes messages while the tunnel is down"
    );
    sshd.spawn();
    assert!(
        tokio::task::block_in_place(|| received.wait_distinct(2 * N + 1, DEADLINE)),
        "{} of {} (and the probe) after sshd came back",
        received.distinct(),
        2 * N
    );
    assert!(
        tokio::task::block_in_place(|| bridge_support::wait_until(DEADLINE, || stats
            .snapshot()
            .depth
            == 0)),
        "the queue drained (every message acknowledged through the tunnel)"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

/// Publishes a probe on `sensors/probe` until the bridge has queued one: from then on its
/// local subscription exists. Messages published before it would have had no subscriber
/// on the local broker, and are dropped there, as by any broker.
async fn bridge_subscribed_locally(local: SocketAddr, stats: &mqgate_bridge::StatsHandle) {
    let deadline = Instant::now() + DEADLINE;
    while stats.snapshot().queued == 0 {
        assert!(
            Instant::now() < deadline,
            "the bridge did not subscribe locally"
        );
        let probe = ["probe".to_owned()];
        publish_all(
            local,
            "probe",
            "sensors/probe",
            QoS::AtLeastOnce,
            probe,
            |_| {},
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An sshd accepting the test's ed25519 key; returns it, its port and the login user.
fn sshd_with_keys(dir: &Path) -> (Sshd, u16, String) {
    let client_pub = keygen(&dir.join("id_ed25519"));
    std::fs::write(dir.join("authorized_keys"), client_pub).unwrap();
    let host_pub = keygen(&dir.join("host_key"));
    let port = free_port();
    let sshd = Sshd::start(dir, port);
    std::fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )
    .unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();
    (sshd, port, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqgate_run_bridges_through_its_tunnel() {
    const N: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let received = subscribe(sock(cloud.port), "cloud-sub", "cloud/#", QoS::AtLeastOnce).await;
    let (_sshd, ssh_port, user) = sshd_with_keys(dir.path());
    let d = dir.path().display();
    let config = bridge_support::gateway_config(
        dir.path(),
        &format!(
            r#"
[[tunnel]]
name = "uplink"
server = "127.0.0.1:{ssh_port}"
user = "{user}"
key_file = "{d}/id_ed25519"
known_hosts = "{d}/known_hosts"
remote = "{cloud}"
keepalive = "1s"

[[bridge]]
name = "up"
transport = "ssh"
tunnel = "uplink"
keepalive = "5s"
max_inflight = 100
[bridge.reconnect]
initial = "100ms"
max = "1s"
[[bridge.topic]]
topic = "sensors/#"
qos = 1
remote_prefix = "cloud/"
"#,
            cloud = cloud.addr()
        ),
    );
    let gw = common::Mqgate::start(
        &dir.path().join("gw"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(
        gw.wait_for_log("bridge: connected upstream", DEADLINE),
        "the bridge did not connect through the tunnel:\n{}",
        gw.logs()
    );
    assert!(gw.wait_for_log("bridge: subscribed to the local broker", DEADLINE));
    assert!(
        gw.logs().contains("peer=ssh tunnel uplink"),
        "{}",
        gw.logs()
    );
    let acked = publish_all(
        gw.addr,
        "pub",
        "sensors/a",
        QoS::AtLeastOnce,
        payloads("t", 0..N),
        |_| {},
    )
    .await;
    assert_eq!(acked, N);
    assert!(
        tokio::task::block_in_place(|| received.wait_distinct(N, DEADLINE)),
        "{} of {N} through mqgate's tunnel\n{}",
        received.distinct(),
        gw.logs()
    );
}
