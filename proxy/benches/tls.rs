//! Throughput and latency side by side in one run: broker-lite over plain TCP, broker-lite
//! behind mqgate's TLS listener, and mosquitto behind stunnel (and plain mosquitto for
//! reference). Same client for all: QoS 1 publisher with 64 messages in flight, one QoS 1
//! subscriber, 64-byte payloads; latency = QoS 0 ping-pong through the broker.
//! broker-lite over TCP and over TLS run alternately `MQGATE_TLS_BENCH_ROUNDS` times
//! (default 3) and the TLS / TCP ratios of throughput and of the server's CPU time per
//! message (broker-lite runs on its own runtime; mosquitto and stunnel are read from
//! /proc) are reported per round and as the median;
//! `MQGATE_TLS_BENCH_ONLY=tcp|tls` runs one throughput measurement alone (for profiling).
//! Run with `cargo bench -p mqgate-proxy --bench tls` (needs `mosquitto` and `stunnel4`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use mqgate_broker_lite::{serve_tcp, AllowAll, Broker, BrokerSettings};
use mqgate_config::TlsListenerConfig;
use mqgate_protocol::{
    Connect, MqttCodec, Packet, ProtocolVersion, PubAck, Publish, QoS, Subscribe, SubscribeFilter,
    SubscriptionOptions,
};
use mqgate_proxy::tls::{serve_tls, TlsAcceptorSource};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 100_000;
const WINDOW: usize = 64;
const PINGS: usize = 2_000;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone)]
enum Target {
    Tcp(SocketAddr),
    Tls(SocketAddr, Arc<rustls::ClientConfig>),
}

async fn open(target: &Target, id: &str) -> Framed<Box<dyn Io>, MqttCodec> {
    let io: Box<dyn Io> = match target {
        Target::Tcp(a) => {
            let s = TcpStream::connect(a).await.unwrap();
            s.set_nodelay(true).unwrap();
            Box::new(s)
        }
        Target::Tls(a, cfg) => {
            let s = TcpStream::connect(a).await.unwrap();
            s.set_nodelay(true).unwrap();
            let c = tokio_rustls::TlsConnector::from(cfg.clone());
            Box::new(
                c.connect(ServerName::try_from("localhost").unwrap(), s)
                    .await
                    .unwrap(),
            )
        }
    };
    let mut f = Framed::new(io, MqttCodec::new(1 << 20));
    f.send(&Packet::Connect(Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive: 0,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }))
    .await
    .unwrap();
    match f.next().await {
        Some(Ok(Packet::ConnAck(_))) => f,
        other => panic!("no CONNACK: {other:?}"),
    }
}

async fn subscribe(f: &mut Framed<Box<dyn Io>, MqttCodec>, filter: &str, qos: QoS) {
    f.send(&Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: vec![SubscribeFilter {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos,
                ..Default::default()
            },
        }],
        properties: Default::default(),
    }))
    .await
    .unwrap();
    loop {
        if let Some(Ok(Packet::SubAck(_))) = f.next().await {
            return;
        }
    }
}

fn publish(topic: &str, qos: QoS, pkid: u16, payload: &Bytes) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        pkid,
        payload: payload.clone(),
        properties: Default::default(),
    })
}

/// Messages per second from the first publish to the last delivery, and the server's CPU
/// time per message over that span (µs).
async fn throughput(target: &Target, tag: &str, server: &Cpu) -> (f64, f64) {
    let mut sub = open(target, &format!("{tag}-sub")).await;
    subscribe(&mut sub, "bench/t", QoS::AtLeastOnce).await;
    let publisher = open(target, &format!("{tag}-pub")).await;
    let payload = Bytes::from(vec![b'x'; 64]);
    let cpu_before = server.micros();
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < MESSAGES {
            match sub.next().await {
                Some(Ok(Packet::Publish(p))) => {
                    got += 1;
                    sub.send(&Packet::PubAck(PubAck::new(p.pkid)))
                        .await
                        .unwrap();
                }
                Some(Ok(_)) => {}
                other => panic!("subscriber: {other:?}"),
            }
        }
    });
    let parts = publisher.into_parts();
    let (r, w) = tokio::io::split(parts.io);
    let mut acks = FramedRead::new(r, parts.codec.clone());
    let mut out = FramedWrite::new(w, parts.codec);
    let window = Arc::new(Semaphore::new(WINDOW));
    let w2 = window.clone();
    let ack_task = tokio::spawn(async move {
        let mut n = 0;
        while n < MESSAGES {
            if let Some(Ok(Packet::PubAck(_))) = acks.next().await {
                n += 1;
                w2.add_permits(1);
            }
        }
    });
    for i in 0..MESSAGES {
        window.acquire().await.unwrap().forget();
        let pkid = (i % 60_000) as u16 + 1;
        out.send(&publish("bench/t", QoS::AtLeastOnce, pkid, &payload))
            .await
            .unwrap();
    }
    ack_task.await.unwrap();
    receiver.await.unwrap();
    let rate = MESSAGES as f64 / start.elapsed().as_secs_f64();
    (rate, (server.micros() - cpu_before) / MESSAGES as f64)
}

/// (p50, p99) round trip of one QoS 0 message, in microseconds.
async fn latency(target: &Target, tag: &str) -> (u128, u128) {
    let mut sub = open(target, &format!("{tag}-lsub")).await;
    subscribe(&mut sub, "bench/l", QoS::AtMostOnce).await;
    let mut publisher = open(target, &format!("{tag}-lpub")).await;
    let payload = Bytes::from(vec![b'x'; 64]);
    let mut samples = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let t = Instant::now();
        publisher
            .send(&publish("bench/l", QoS::AtMostOnce, 0, &payload))
            .await
            .unwrap();
        loop {
            if let Some(Ok(Packet::Publish(_))) = sub.next().await {
                break;
            }
        }
        samples.push(t.elapsed().as_micros());
    }
    samples.sort_unstable();
    (samples[PINGS / 2], samples[PINGS * 99 / 100])
}

async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "port {port} not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    // Server certificate for "localhost", signed by a throwaway CA.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(path("server.pem"), cert.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let client_cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(mqgate_proxy::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );

    // broker-lite with a TCP and a TLS listener, on its own runtime so that its CPU time
    // is told apart from the clients'.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .unwrap();
    let stop = CancellationToken::new();
    let (broker, tcp_addr, tls_addr) = server_rt
        .spawn(start_server(
            path("server.pem"),
            path("server.key"),
            stop.clone(),
        ))
        .await
        .unwrap();
    let in_process = Cpu::Threads(SERVER_THREAD);

    // mosquitto, and stunnel in front of it.
    let mq_port = free_port().await;
    std::fs::write(
        path("mosquitto.conf"),
        format!("listener {mq_port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages {WINDOW}\nmax_queued_messages 0\n"),
    )
    .unwrap();
    let mut mosquitto = Command::new("mosquitto")
        .arg("-c")
        .arg(path("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let st_port = free_port().await;
    std::fs::write(
        path("stunnel.conf"),
        format!(
            "foreground = yes\npid =\n[mqtts]\naccept = 127.0.0.1:{st_port}\nconnect = 127.0.0.1:{mq_port}\ncert = {}\nkey = {}\nsocket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n",
            path("server.pem").display(),
            path("server.key").display()
        ),
    )
    .unwrap();
    let mut stunnel = Command::new("stunnel4")
        .arg(path("stunnel.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_port(mq_port).await;
    wait_port(st_port).await;

    let tcp_target = Target::Tcp(tcp_addr);
    let tls_target = Target::Tls(tls_addr, client_cfg.clone());
    // MQGATE_TLS_BENCH_ONLY=tcp|tls: one broker-lite throughput run, nothing else (for
    // profiling one path with perf or strace).
    if let Ok(only) = std::env::var("MQGATE_TLS_BENCH_ONLY") {
        let target = if only == "tls" {
            &tls_target
        } else {
            &tcp_target
        };
        let (rate, cpu) = throughput(target, "only", &in_process).await;
        println!("{only}: {rate:.0} msg/s, server CPU {cpu:.1} µs/msg");
        stop.cancel();
        server_rt.spawn(broker.shutdown()).await.unwrap();
        server_rt.shutdown_background();
        return;
    }
    let rounds: usize = std::env::var("MQGATE_TLS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!("{MESSAGES} QoS 1 messages of 64 B, {WINDOW} in flight; QoS 0 ping-pong x{PINGS}");
    // broker-lite over TCP and over TLS, alternating, so that both see the same load
    // from whatever else runs on the machine; the ratio is taken per round.
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    let mut tls_rate = 0.0;
    for round in 0..rounds {
        let mut pair = [0.0; 2];
        let mut cpu = [0.0; 2];
        for (k, (name, target)) in [
            ("broker-lite, plain TCP", &tcp_target),
            ("broker-lite, mqgate TLS", &tls_target),
        ]
        .into_iter()
        .enumerate()
        {
            let tag = format!("r{round}t{k}");
            (pair[k], cpu[k]) = throughput(target, &tag, &in_process).await;
            let (p50, p99) = latency(target, &tag).await;
            report(name, pair[k], cpu[k], p50, p99);
        }
        println!(
            "  round {}: throughput TLS / TCP = {:.2}, server CPU per message TLS / TCP = {:.2}",
            round + 1,
            pair[1] / pair[0],
            cpu[1] / cpu[0]
        );
        ratios.push(pair[1] / pair[0]);
        cpu_ratios.push(cpu[1] / cpu[0]);
        tls_rate = pair[1];
    }
    let mq_pid = mosquitto.id().unwrap();
    let st_pid = stunnel.id().unwrap();
    let others = [
        (
            "mosquitto, plain TCP",
            Target::Tcp(([127, 0, 0, 1], mq_port).into()),
            Cpu::Processes(vec![mq_pid]),
        ),
        (
            "mosquitto behind stunnel",
            Target::Tls(([127, 0, 0, 1], st_port).into(), client_cfg.clone()),
            Cpu::Processes(vec![mq_pid, st_pid]),
        ),
    ];
    let mut stunnel_rate = 0.0;
    for (i, (name, target, server)) in others.iter().enumerate() {
        let tag = format!("o{i}");
        let (rate, cpu) = throughput(target, &tag, server).await;
        let (p50, p99) = latency(target, &tag).await;
        report(name, rate, cpu, p50, p99);
        stunnel_rate = rate;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (r, lo, hi) = median(&mut ratios);
    let (c, clo, chi) = median(&mut cpu_ratios);
    println!("median of {rounds} rounds (min, max):");
    println!("  throughput TLS / TCP (broker-lite): {r:.2} ({lo:.2}, {hi:.2})");
    println!("  server CPU per message TLS / TCP:   {c:.2} ({clo:.2}, {chi:.2})");
    println!(
        "mqgate TLS (last round) / stunnel+mosquitto throughput: {:.2}",
        tls_rate / stunnel_rate
    );
    stop.cancel();
    let _ = stunnel.kill().await;
    let _ = mosquitto.kill().await;
    server_rt.spawn(broker.shutdown()).await.unwrap();
    server_rt.shutdown_background();
}

/// One result line.
fn report(name: &str, rate: f64, cpu: f64, p50: u128, p99: u128) {
    println!(
        "{name:<28} {rate:>8.0} msg/s  server CPU {cpu:>5.1} µs/msg  latency p50 {p50:>5} µs  p99 {p99:>6} µs"
    );
}

/// Name of the server runtime's threads.
const SERVER_THREAD: &str = "bench-server";

/// Where the server's CPU time is read.
enum Cpu {
    /// This process's threads with the given name (broker-lite's runtime).
    Threads(&'static str),
    /// Other processes (mosquitto, stunnel).
    Processes(Vec<u32>),
}

impl Cpu {
    /// CPU time used so far, in microseconds.
    fn micros(&self) -> f64 {
        match self {
            // schedstat: nanoseconds on the CPU, first field.
            Cpu::Threads(name) => {
                std::fs::read_dir("/proc/self/task")
                    .unwrap()
                    .filter_map(|t| {
                        let dir = t.ok()?.path();
                        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                        if comm.trim() != *name {
                            return None;
                        }
                        let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
                        stat.split_whitespace().next()?.parse::<f64>().ok()
                    })
                    .sum::<f64>()
                    / 1e3
            }
            // stat: utime and stime in clock ticks (100 per second), fields 14 and 15.
            Cpu::Processes(pids) => pids
                .iter()
                .map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
                    let fields: Vec<&str> = after_comm.split_whitespace().collect();
                    let ticks: f64 =
                        fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
                    ticks * 10_000.0
                })
                .sum(),
        }
    }
}

/// broker-lite with a plain TCP and a TLS listener; returns it and both addresses.
async fn start_server(
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    stop: CancellationToken,
) -> (Broker, SocketAddr, SocketAddr) {
    let settings = BrokerSettings {
        sys_interval: Duration::ZERO,
        ..BrokerSettings::default()
    };
    let broker = Broker::start(settings, Arc::new(AllowAll)).await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    tokio::spawn(serve_tcp(tcp, broker.handle(), stop.clone()));
    let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = tls.local_addr().unwrap();
    let source = TlsAcceptorSource::new(TlsListenerConfig {
        cert: Some(cert),
        key: Some(key),
        alpn: vec!["mqtt".into()],
        ..TlsListenerConfig::default()
    })
    .unwrap();
    tokio::spawn(serve_tls(tls, Arc::new(source), broker.handle(), stop));
    (broker, tcp_addr, tls_addr)
}
