//! Test support for the bridge tests: a real mosquitto as the "cloud" broker on a free
//! loopback port (or a RabbitMQ cluster, [`rabbitmq`]), gateway configuration files, and
//! rumqttc publishers and counting subscribers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod qos2_sub;
pub mod rabbitmq;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// How long a test waits for anything before failing.
pub const DEADLINE: Duration = Duration::from_secs(60);

// Every test crate with `mod bridge_support;` also has `mod common;`.
pub use crate::common::{free_port, wait_until};

/// A mosquitto process playing the cloud broker, with persistence so that the cloud
/// subscriber's session survives a restart.
pub struct Cloud {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    conf: PathBuf,
}

impl Cloud {
    /// Starts mosquitto on a free port with `extra` configuration lines.
    pub fn start(dir: &Path, extra: &str) -> Cloud {
        Cloud::start_on(dir, free_port(), extra)
    }

    /// Starts mosquitto on `port`.
    pub fn start_on(dir: &Path, port: u16, extra: &str) -> Cloud {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\n\
                 persistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 100\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n{extra}\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut cloud = Cloud {
            child: None,
            port,
            conf,
        };
        cloud.restart();
        cloud
    }

    /// The address to bridge to.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mosquitto is installed");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(DEADLINE, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "mosquitto did not start on port {port}"
        );
    }

    /// Stops the process (SIGTERM: it saves its persistent state) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes a gateway configuration with the given `[[bridge]]` TOML and returns its path.
pub fn gateway_config(dir: &Path, bridges: &str) -> PathBuf {
    let path = dir.join("mqgate.toml");
    std::fs::write(&path, bridges).unwrap();
    path
}

/// Distinct payloads, number of messages, and `topic payload` lines in arrival order.
type Record = (HashSet<String>, usize, Vec<String>);

/// A subscriber that records every payload it receives (distinct and total).
#[derive(Clone, Default)]
pub struct Received {
    inner: Arc<Mutex<Record>>,
}

impl Received {
    /// Number of distinct payloads.
    pub fn distinct(&self) -> usize {
        self.inner.lock().unwrap().0.len()
    }

    /// Number of messages, duplicates included.
    pub fn total(&self) -> usize {
        self.inner.lock().unwrap().1
    }

    /// Whether `payload` was received.
    pub fn contains(&self, payload: &str) -> bool {
        self.inner.lock().unwrap().0.contains(payload)
    }

    /// Topics received, in order (with their payloads as `topic payload`).
    pub fn log(&self) -> Vec<String> {
        self.inner.lock().unwrap().2.clone()
    }

    /// Waits until `n` distinct payloads arrived; returns whether they did.
    pub fn wait_distinct(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.distinct() >= n)
    }
}

/// Starts a subscriber at `addr` on `filter` with a persistent session (`client_id`),
/// reconnecting forever; returns its record. It is subscribed when this returns.
pub async fn subscribe(addr: SocketAddr, client_id: &str, filter: &str, qos: QoS) -> Received {
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_clean_session(false);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client.subscribe(filter, qos).await.unwrap();
    let received = Received::default();
    let record = received.clone();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let payload = String::from_utf8_lossy(&p.payload).into_owned();
                    let mut g = record.inner.lock().unwrap();
                    g.2.push(format!("{} {}", p.topic, payload));
                    g.0.insert(payload);
                    g.1 += 1;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(DEADLINE, subscribed_rx)
        .await
        .expect("SUBACK in time")
        .unwrap();
    received
}

/// The cloud broker's address as a `SocketAddr`.
pub fn sock(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Publishes `payloads` on `topic` at `qos` to `addr` and waits until the broker
/// acknowledged every one (PUBACK / PUBCOMP); `on_acked(n)` runs after each ack.
pub async fn publish_all(
    addr: SocketAddr,
    client_id: &str,
    topic: &str,
    qos: QoS,
    payloads: impl IntoIterator<Item = String>,
    mut on_acked: impl FnMut(usize) + Send + 'static,
) -> usize {
    let payloads: Vec<String> = payloads.into_iter().collect();
    let n = payloads.len();
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let topic = topic.to_owned();
    let publisher = tokio::spawn(async move {
        for payload in payloads {
            client.publish(&topic, qos, false, payload).await.unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < n {
        let event = tokio::time::timeout(DEADLINE, eventloop.poll())
            .await
            .expect("the gateway keeps acknowledging")
            .expect("publisher connection");
        match event {
            Event::Incoming(Packet::PubAck(_)) | Event::Incoming(Packet::PubComp(_)) => {
                acked += 1;
                on_acked(acked);
            }
            _ => {}
        }
        if qos == QoS::AtMostOnce && publisher.is_finished() {
            break;
        }
    }
    let client = publisher.await.unwrap();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    acked
}

/// Runs [`publish_all`] in the background; the receiver fires once `signal_after`
/// messages are acknowledged (to cut the uplink mid-stream, for example).
pub fn publish_in_background(
    addr: SocketAddr,
    client_id: &str,
    topic: &str,
    qos: QoS,
    payloads: Vec<String>,
    signal_after: usize,
) -> (
    tokio::task::JoinHandle<usize>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let (client_id, topic) = (client_id.to_owned(), topic.to_owned());
    let publishing = tokio::spawn(async move {
        publish_all(addr, &client_id, &topic, qos, payloads, move |n| {
            if n == signal_after {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        })
        .await
    });
    (publishing, rx)
}

/// `count` payloads `"<prefix>-<i>"`.
pub fn payloads(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// A `mosquitto_sub` process with a persistent session (`-c`). Not an exactly-once QoS 2
/// receiver across a broker restart (libmosquitto 2.0.11 drops a message whose PUBCOMP
/// cannot be sent): use [`qos2_sub::subscribe_exactly_once`] for that.
pub struct MosquittoSub {
    child: Child,
    /// What it received.
    pub received: Received,
}

impl MosquittoSub {
    /// Subscribes `client_id` to `filter` at `qos` on `127.0.0.1:port`; returns once the
    /// subscription is acknowledged.
    pub fn start(port: u16, client_id: &str, filter: &str, qos: u8) -> MosquittoSub {
        use std::io::{BufRead, BufReader};
        // Line-buffered, or the SUBACK line would sit in a pipe buffer.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-i",
                client_id,
                "-c",
                "-d",
                "-v",
            ])
            .args(["-q", &qos.to_string(), "-t", filter, "-k", "5"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub is installed");
        let stdout = child.stdout.take().unwrap();
        let received = Received::default();
        let record = received.clone();
        let subscribed = Arc::new(Mutex::new(false));
        let flag = subscribed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Subscribed (mid") {
                    continue;
                }
                if line.starts_with("Client ") {
                    if line.contains("received SUBACK") {
                        *flag.lock().unwrap() = true;
                    }
                    continue;
                }
                let payload = line.rsplit(' ').next().unwrap_or_default().to_owned();
                let mut g = record.inner.lock().unwrap();
                g.2.push(line);
                g.0.insert(payload);
                g.1 += 1;
            }
        });
        assert!(
            wait_until(DEADLINE, || *subscribed.lock().unwrap()),
            "mosquitto_sub did not subscribe"
        );
        MosquittoSub { child, received }
    }
}

impl Drop for MosquittoSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's disk writes and CPU time so far, from `/proc/<pid>/io` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub struct ProcUsage {
    /// Bytes the process caused to be written to storage (`write_bytes`).
    pub write_bytes: u64,
    /// User + system CPU time, in seconds.
    pub cpu_secs: f64,
}

impl ProcUsage {
    /// Reads the figures of `pid` (Linux only; `None` if /proc cannot tell).
    pub fn of(pid: u32) -> Option<ProcUsage> {
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))?
            .trim()
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which ends with the last ')'): utime is field 14
        // of the whole line, i.e. index 11 after it.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
        let out = Command::new("getconf").arg("CLK_TCK").output().ok()?;
        let hz: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        Some(ProcUsage {
            write_bytes,
            cpu_secs: ticks as f64 / hz,
        })
    }
}

/// A TCP relay in front of the cloud broker that can silently black-hole its traffic: no
/// RST, no FIN, the bytes just stop arriving (a dead cellular link, a NAT that forgot the
/// flow). While cut, every connection (open or new) swallows what it reads in both
/// directions; connections that saw a cut stay dead after [`BlackHole::restore`], as a
/// TCP flow would after its peer gave up; new connections then work.
pub struct BlackHole {
    /// The relay's address (dial this instead of the cloud).
    pub addr: SocketAddr,
    cut: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    /// Starts relaying a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> BlackHole {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Odd: cut. Each cut or restore bumps it, so a connection can tell it lived through one.
        let cut = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let state = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let born = state.load(Ordering::SeqCst);
                    if born % 2 == 1 {
                        return swallow(client).await;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = tokio::spawn(pipe(cr, sw, state.clone(), born));
                    let down = tokio::spawn(pipe(sr, cw, state, born));
                    let _ = tokio::join!(up, down);
                });
            }
        });
        BlackHole { addr, cut, task }
    }

    /// Starts dropping every byte, silently.
    pub fn cut(&self) {
        self.set(true);
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.set(false);
    }

    fn set(&self, cut: bool) {
        use std::sync::atomic::Ordering;
        let now = self.cut.load(Ordering::SeqCst);
        if (now % 2 == 1) != cut {
            self.cut.store(now + 1, Ordering::SeqCst);
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until the relay's state changes from `born`; from then on reads
/// and discards, keeping both sockets open.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<std::sync::atomic::AtomicU64>,
    born: u64,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if state.load(Ordering::SeqCst) != born {
            // Cut: forward nothing more, ever, and never close `to` (no FIN either way).
            let _keep = to;
            swallow_half(from).await;
            return std::future::pending().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn swallow_half(mut from: tokio::net::tcp::OwnedReadHalf) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

async fn swallow(client: tokio::net::TcpStream) {
    let (read, _write) = client.into_split();
    swallow_half(read).await;
}
