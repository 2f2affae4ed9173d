//! Throughput and latency of MQTT through SSH tunnels, side by side (run by hand, prints a
//! table): plain TCP; OpenSSH `ssh -L` to mqgate's SSH listener; OpenSSH `ssh -L` through
//! OpenSSH sshd; mqgate's tunnel client through sshd; mqgate's client to mqgate's listener.
//!
//! `cargo test --release -p mqgate-proxy --test ssh_perf -- --ignored --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement harness fails loudly

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqgate_broker_lite::{serve_tcp, AllowAll, Broker, BrokerSettings};
use mqgate_config::{Backoff, SshListenerConfig, TunnelConfig};
use mqgate_proxy::ssh::{serve_ssh, SshServerSettings, SshTunnel};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const ROUND_TRIPS: usize = 2000;
const BULK_MESSAGES: usize = 2000;
const BULK_PAYLOAD: usize = 8192;

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while StdStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "perf", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    varint(2 + topic.len() + payload.len(), &mut out);
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(payload);
    out
}

async fn read_packet<R: AsyncRead + Unpin>(reader: &mut R) -> (u8, Vec<u8>) {
    let first = reader.read_u8().await.unwrap();
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let byte = reader.read_u8().await.unwrap();
        len |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.unwrap();
    (first, body)
}

async fn mqtt_session(port: u16, id: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut connect = vec![0x10];
    varint(12 + id.len(), &mut connect);
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60]);
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id.as_bytes());
    stream.write_all(&connect).await.unwrap();
    assert_eq!(read_packet(&mut stream).await, (0x20, vec![0, 0]));
    let topic = b"perf/t";
    let mut subscribe = vec![0x82];
    varint(2 + 2 + topic.len() + 1, &mut subscribe);
    subscribe.extend_from_slice(&[0, 1, 0, topic.len() as u8]);
    subscribe.extend_from_slice(topic);
    subscribe.push(0);
    stream.write_all(&subscribe).await.unwrap();
    assert_eq!(read_packet(&mut stream).await.0, 0x90);
    stream
}

/// (median µs, p99 µs, MB/s) through `port`.
async fn measure(port: u16, id: &str) -> (f64, f64, f64) {
    let mut stream = mqtt_session(port, id).await;
    let small = publish("perf/t", &[7u8; 16]);
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let start = Instant::now();
        stream.write_all(&small).await.unwrap();
        let (kind, _) = read_packet(&mut stream).await;
        assert_eq!(kind & 0xf0, 0x30);
        samples.push(start.elapsed());
    }
    samples.sort();
    let median = samples[ROUND_TRIPS / 2].as_secs_f64() * 1e6;
    let p99 = samples[ROUND_TRIPS * 99 / 100].as_secs_f64() * 1e6;

    let (mut reader, mut writer) = stream.into_split();
    let big = publish("perf/t", &vec![1u8; BULK_PAYLOAD]);
    let start = Instant::now();
    let write = tokio::spawn(async move {
        for _ in 0..BULK_MESSAGES {
            writer.write_all(&big).await.unwrap();
        }
        writer
    });
    let mut bytes = 0;
    for _ in 0..BULK_MESSAGES {
        let (_, body) = read_packet(&mut reader).await;
        bytes += body.len();
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(write.await.unwrap());
    (median, p99, bytes as f64 / elapsed / 1e6)
}

fn ssh_forward(
    dir: &Path,
    known_hosts: &Path,
    login: &str,
    ssh_port: u16,
    local: u16,
    target: &str,
) -> Child {
    let child = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-N",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(dir.join("id"))
        .args(["-p", &ssh_port.to_string(), "-L"])
        .arg(format!("127.0.0.1:{local}:{target}"))
        .arg(format!("{login}@127.0.0.1"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(local);
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn ssh_tunnel_throughput_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let client_pub = keygen(&d.join("id"));
    std::fs::write(d.join("authorized_keys"), &client_pub).unwrap();
    let sshd_pub = keygen(&d.join("sshd_host_key"));
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned();

    // broker-lite on TCP, and mqgate's SSH listener in front of it.
    let broker = Broker::start(BrokerSettings::default(), Arc::new(AllowAll))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker_port = tcp.local_addr().unwrap().port();
    tokio::spawn(serve_tcp(tcp, broker.handle(), shutdown.clone()));
    let settings = SshServerSettings::from_config(
        &SshListenerConfig {
            host_key: Some(d.join("mqgate_host_key")),
            authorized_keys: Some(d.join("authorized_keys")),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let ssh_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mqgate_ssh = ssh_listener.local_addr().unwrap().port();
    let mqgate_pub = settings.host_key.public_key().to_openssh().unwrap();
    tokio::spawn(serve_ssh(
        ssh_listener,
        settings,
        broker.handle(),
        shutdown.clone(),
    ));

    // OpenSSH sshd.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd_port = free_port();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n",
            d.join("sshd_host_key").display(),
            d.join("authorized_keys").display()
        ),
    )
    .unwrap();
    let sshd = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut children = Kill(vec![sshd]);
    wait_for_port(sshd_port);
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{mqgate_ssh} {mqgate_pub}\n[127.0.0.1]:{sshd_port} {sshd_pub}"),
    )
    .unwrap();
    let kh = d.join("known_hosts");

    let openssh_to_mqgate = free_port();
    children.0.push(ssh_forward(
        d,
        &kh,
        "perf",
        mqgate_ssh,
        openssh_to_mqgate,
        "localhost:1883",
    ));
    let openssh_to_sshd = free_port();
    let broker_target = format!("127.0.0.1:{broker_port}");
    children.0.push(ssh_forward(
        d,
        &kh,
        &user,
        sshd_port,
        openssh_to_sshd,
        &broker_target,
    ));

    let tunnel = |server: u16, remote: &str, user: &str, listen: u16| TunnelConfig {
        name: "perf".to_owned(),
        listen: Some(SocketAddr::from(([127, 0, 0, 1], listen))),
        server: format!("127.0.0.1:{server}"),
        user: user.to_owned(),
        key_file: d.join("id"),
        known_hosts: Some(kh.clone()),
        host_key_fingerprint: None,
        remote: remote.to_owned(),
        keepalive: Duration::from_secs(30),
        reconnect: Backoff::default(),
        connect_wait: Duration::from_secs(20),
    };
    let mqgate_to_sshd = free_port();
    tokio::spawn(
        SshTunnel::new(tunnel(sshd_port, &broker_target, &user, mqgate_to_sshd))
            .unwrap()
            .run(shutdown.clone()),
    );
    let mqgate_to_mqgate = free_port();
    tokio::spawn(
        SshTunnel::new(tunnel(
            mqgate_ssh,
            "localhost:1883",
            "perf",
            mqgate_to_mqgate,
        ))
        .unwrap()
        .run(shutdown.clone()),
    );
    wait_for_port(mqgate_to_sshd);
    wait_for_port(mqgate_to_mqgate);

    println!(
        "\n{:<44} {:>10} {:>10} {:>10}   ({ROUND_TRIPS} QoS0 16 B round trips; {BULK_MESSAGES} x {BULK_PAYLOAD} B publish+deliver)",
        "path", "median us", "p99 us", "MB/s"
    );
    for (name, port) in [
        ("plain TCP", broker_port),
        ("OpenSSH ssh -L -> mqgate SSH listener", openssh_to_mqgate),
        ("OpenSSH ssh -L -> OpenSSH sshd -> TCP", openssh_to_sshd),
        ("mqgate tunnel -> OpenSSH sshd -> TCP", mqgate_to_sshd),
        ("mqgate tunnel -> mqgate SSH listener", mqgate_to_mqgate),
    ] {
        let (median, p99, mbps) = measure(port, &format!("perf-{port}")).await;
        println!("{name:<44} {median:>10.0} {p99:>10.0} {mbps:>10.1}");
    }
    shutdown.cancel();
}
