//! `mqgate bench`: a load generator for any MQTT 3.1.1 broker (mqgate, mosquitto,
//! rumqttd), so anyone can reproduce the figures in the issues and the README.
//!
//! It speaks MQTT with mqgate's own codec over raw TCP, batches its writes, and reports
//! its own CPU share beside the broker's (from `/proc/<pid>/stat`), so that a reader can
//! see the generator is not the bottleneck. Every scenario prints one `RESULT` line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use mqgate_protocol::codec::{decode_packet, encode_packet};
use mqgate_protocol::{
    Connect, Disconnect, Packet, Properties, ProtocolVersion, PubAck, Publish, QoS, Subscribe,
    SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const VERSION: ProtocolVersion = ProtocolVersion::V3_1_1;
/// Generous limit for what the broker sends us.
const MAX_PACKET: usize = 1 << 20;
/// Keep-alive of the load connections (rumqttd refuses 0).
const KEEP_ALIVE: u16 = 60;
/// Packets encoded per write call by publishers.
const BATCH: usize = 64;

/// Arguments of `mqgate bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Broker to load.
    #[arg(long, default_value = "127.0.0.1:1883", global = true)]
    addr: SocketAddr,
    /// Process id of the broker, to report its CPU share and RSS beside the generator's.
    #[arg(long, global = true)]
    broker_pid: Option<u32>,
    /// Length of the measurement window in seconds (after one second of warm-up).
    #[arg(long, default_value_t = 10, global = true)]
    seconds: u64,
    /// A label printed in the RESULT line (e.g. the broker's name).
    #[arg(long, default_value = "broker", global = true)]
    label: String,
}

#[derive(Debug, clap::Subcommand)]
enum Scenario {
    /// N publishers -> 1 wildcard subscriber; reports messages/s received.
    FanIn {
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        /// Unacknowledged QoS 1 publishes per publisher.
        #[arg(long, default_value_t = 256)]
        inflight: usize,
        /// Subscribe with a persistent session (clean session 0), so a broker with
        /// persistence stores every QoS 1 message before acknowledging it.
        #[arg(long)]
        persistent_subscriber: bool,
    },
    /// 1 publisher -> N subscribers; reports deliveries/s.
    FanOut {
        #[arg(long, default_value_t = 50)]
        subscribers: usize,
        #[arg(long, default_value_t = 0)]
        qos: u8,
        #[arg(long, default_value_t = 64)]
        payload: usize,
        #[arg(long, default_value_t = 256)]
        inflight: usize,
    },
    /// One publisher at a fixed rate -> one subscriber; reports latency p50/p99.
    Latency {
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 1)]
        qos: u8,
    },
    /// Connect, CONNACK, DISCONNECT in a loop from several tasks; reports connects/s.
    ConnectRate {
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Opens N idle connections and reports the broker's RSS per connection (needs --broker-pid).
    Connections {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
}

/// Runs one scenario and prints its RESULT line.
pub fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_scenario(args))?;
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run_scenario(args: BenchArgs) -> anyhow::Result<()> {
    let window = Duration::from_secs(args.seconds);
    match args.scenario {
        Scenario::FanIn {
            publishers,
            qos,
            payload,
            inflight,
            persistent_subscriber,
        } => {
            let qos = parse_qos(qos)?;
            let counter = Arc::new(AtomicU64::new(0));
            let clean = !persistent_subscriber;
            let (addr, filter) = (args.addr, "bench/in/#");
            subscriber(addr, "bench-in-sub", filter, qos, counter.clone(), clean).await?;
            for i in 0..publishers {
                let topic = format!("bench/in/{i}");
                let client_id = format!("bench-in-pub-{i}");
                tokio::spawn(publisher(
                    args.addr, client_id, topic, qos, payload, inflight,
                ));
            }
            let (rate, usage) = measure(&counter, window, args.broker_pid).await;
            print_result(
                &args.label,
                &format!("fan-in qos={}", qos as u8),
                rate,
                "msg/s",
                &usage,
            );
        }
        Scenario::FanOut {
            subscribers,
            qos,
            payload,
            inflight,
        } => {
            let qos = parse_qos(qos)?;
            let counter = Arc::new(AtomicU64::new(0));
            for i in 0..subscribers {
                let id = format!("bench-out-sub-{i}");
                subscriber(args.addr, &id, "bench/out", qos, counter.clone(), true).await?;
            }
            let client_id = "bench-out-pub".to_string();
            tokio::spawn(publisher(
                args.addr,
                client_id,
                "bench/out".into(),
                qos,
                payload,
                inflight,
            ));
            let (rate, usage) = measure(&counter, window, args.broker_pid).await;
            let name = format!("fan-out subscribers={subscribers} qos={}", qos as u8);
            print_result(&args.label, &name, rate, "deliveries/s", &usage);
        }
        Scenario::Latency { rate, qos } => latency(&args, rate, parse_qos(qos)?).await?,
        Scenario::ConnectRate { concurrency } => {
            let counter = Arc::new(AtomicU64::new(0));
            for _ in 0..concurrency {
                tokio::spawn(connect_loop(args.addr, counter.clone()));
            }
            let (rate, usage) = measure(&counter, window, args.broker_pid).await;
            print_result(&args.label, "connect-rate", rate, "connects/s", &usage);
        }
        Scenario::Connections { count } => connections(&args, count).await?,
    }
    Ok(())
}

/// Publishing scenarios run at QoS 0 or 1 (the figures the issues ask for).
fn parse_qos(qos: u8) -> anyhow::Result<QoS> {
    match qos {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        _ => bail!("--qos must be 0 or 1"),
    }
}

/// One MQTT connection: a read half with its buffer, and a write half.
struct Conn {
    reader: OwnedReadHalf,
    rbuf: BytesMut,
    writer: OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: SocketAddr, client_id: &str, keep_alive: u16) -> anyhow::Result<Conn> {
        Conn::open_session(addr, client_id, keep_alive, true).await
    }

    async fn open_session(
        addr: SocketAddr,
        client_id: &str,
        keep_alive: u16,
        clean: bool,
    ) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let mut conn = Conn {
            reader,
            rbuf: BytesMut::with_capacity(64 * 1024),
            writer,
        };
        let connect = Packet::Connect(Connect {
            protocol: VERSION,
            clean_start: clean,
            keep_alive,
            client_id: client_id.to_string(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        });
        conn.send(&connect).await?;
        match conn.read().await? {
            Packet::ConnAck(ack) if !ack.reason.is_failure() => Ok(conn),
            other => bail!("{client_id}: expected a successful CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        let mut buf = BytesMut::new();
        encode_packet(packet, VERSION, &mut buf)?;
        self.writer.write_all(&buf).await?;
        Ok(())
    }

    /// Reads one packet (waiting for more bytes as needed).
    async fn read(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(packet) = decode_packet(&mut self.rbuf, VERSION, MAX_PACKET)? {
                return Ok(packet);
            }
            if self.reader.read_buf(&mut self.rbuf).await? == 0 {
                bail!("connection closed by the broker");
            }
        }
    }
}

/// Connects a subscriber and spawns a task counting what it receives (acking QoS 1/2).
async fn subscriber(
    addr: SocketAddr,
    client_id: &str,
    filter: &str,
    qos: QoS,
    counter: Arc<AtomicU64>,
    clean: bool,
) -> anyhow::Result<()> {
    let mut conn = Conn::open_session(addr, client_id, KEEP_ALIVE, clean).await?;
    let subscribe = Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: vec![SubscribeFilter {
            filter: filter.to_string(),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }],
        properties: Properties::default(),
    });
    conn.send(&subscribe).await?;
    match conn.read().await? {
        Packet::SubAck(ack) if ack.reasons.iter().all(|r| !r.is_failure()) => {}
        other => bail!("{client_id}: expected a SUBACK, got {other:?}"),
    }
    tokio::spawn(async move {
        let _ = count_deliveries(conn, counter, None).await;
    });
    Ok(())
}

/// Reads deliveries, acknowledges them in one write per read, and counts them. With
/// `latencies`, the first 8 payload bytes are a send timestamp (µs since `epoch`).
async fn count_deliveries(
    mut conn: Conn,
    counter: Arc<AtomicU64>,
    latencies: Option<(Instant, tokio::sync::mpsc::UnboundedSender<u64>)>,
) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    loop {
        if conn.reader.read_buf(&mut conn.rbuf).await? == 0 {
            return Ok(());
        }
        let mut n = 0;
        while let Some(packet) = decode_packet(&mut conn.rbuf, VERSION, MAX_PACKET)? {
            match packet {
                Packet::Publish(publish) => {
                    n += 1;
                    if let Some((epoch, tx)) = &latencies {
                        let mut stamp = [0u8; 8];
                        if publish.payload.len() >= 8 {
                            stamp.copy_from_slice(&publish.payload[..8]);
                        }
                        let now = epoch.elapsed().as_micros() as u64;
                        let _ = tx.send(now.saturating_sub(u64::from_le_bytes(stamp)));
                    }
                    match publish.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => encode_packet(
                            &Packet::PubAck(PubAck::new(publish.pkid)),
                            VERSION,
                            &mut out,
                        )?,
                        QoS::ExactlyOnce => encode_packet(
                            &Packet::PubRec(PubAck::new(publish.pkid)),
                            VERSION,
                            &mut out,
                        )?,
                    }
                }
                Packet::PubRel(rel) => {
                    encode_packet(&Packet::PubComp(PubAck::new(rel.pkid)), VERSION, &mut out)?
                }
                _ => {}
            }
        }
        counter.fetch_add(n, Ordering::Relaxed);
        if !out.is_empty() {
            conn.writer.write_all(&out).await?;
            out.clear();
        }
    }
}

/// Publishes 64-packet batches as fast as the broker takes them; at QoS 1 at most
/// `inflight` publishes are unacknowledged.
async fn publisher(
    addr: SocketAddr,
    client_id: String,
    topic: String,
    qos: QoS,
    payload: usize,
    inflight: usize,
) -> anyhow::Result<()> {
    let conn = Conn::open(addr, &client_id, KEEP_ALIVE).await?;
    let Conn {
        mut reader,
        mut rbuf,
        mut writer,
    } = conn;
    let credits = Arc::new(Semaphore::new(inflight.max(1)));
    if qos != QoS::AtMostOnce {
        let credits = credits.clone();
        tokio::spawn(async move {
            loop {
                match reader.read_buf(&mut rbuf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let mut done = 0;
                while let Ok(Some(packet)) = decode_packet(&mut rbuf, VERSION, MAX_PACKET) {
                    if let Packet::PubAck(_) = packet {
                        done += 1;
                    }
                }
                credits.add_permits(done);
            }
        });
    }
    let body = Bytes::from(vec![b'x'; payload]);
    let topic: Arc<str> = topic.into();
    let mut pkid: u16 = 0;
    let mut buf = BytesMut::with_capacity(BATCH * (payload + 64));
    loop {
        let mut batch = BATCH;
        if qos != QoS::AtMostOnce {
            let first = credits.acquire().await?;
            first.forget();
            batch = 1;
            while batch < BATCH {
                match credits.try_acquire() {
                    Ok(permit) => {
                        permit.forget();
                        batch += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        for _ in 0..batch {
            if qos != QoS::AtMostOnce {
                pkid = pkid.checked_add(1).unwrap_or(1);
            }
            let publish = Packet::Publish(Publish {
                dup: false,
                qos,
                retain: false,
                topic: topic.clone(),
                pkid: if qos == QoS::AtMostOnce { 0 } else { pkid },
                payload: body.clone(),
                properties: Properties::default(),
            });
            encode_packet(&publish, VERSION, &mut buf)?;
        }
        writer.write_all(&buf).await?;
        buf.clear();
    }
}

/// CPU time of a process in clock ticks (utime + stime), from /proc.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields after the command name start at field 3 (state); utime is 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes a process caused to be written to storage, from /proc/<pid>/io.
fn write_bytes(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let line = io.lines().find(|l| l.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What the measurement window cost: CPU shares in percent of one core, and the
/// broker's disk writes per counted message.
struct Usage {
    generator: f64,
    broker: Option<f64>,
    disk_bytes_per_msg: Option<f64>,
}

/// Waits one second of warm-up, then counts over `window`; returns the rate per second.
async fn measure(counter: &AtomicU64, window: Duration, broker_pid: Option<u32>) -> (f64, Usage) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let broker = broker_pid.map(|p| p.to_string());
    let gen0 = cpu_ticks("self");
    let broker0 = broker.as_deref().and_then(cpu_ticks);
    let written0 = broker.as_deref().and_then(write_bytes);
    let start = Instant::now();
    let count0 = counter.load(Ordering::Relaxed);
    tokio::time::sleep(window).await;
    let count1 = counter.load(Ordering::Relaxed);
    let written1 = broker.as_deref().and_then(write_bytes);
    let elapsed = start.elapsed().as_secs_f64();
    let gen1 = cpu_ticks("self");
    let broker1 = broker.as_deref().and_then(cpu_ticks);
    // Linux reports /proc times in USER_HZ, which is 100 on every mainstream build.
    let share = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / 100.0 / elapsed * 100.0),
        _ => None,
    };
    let usage = Usage {
        generator: share(gen0, gen1).unwrap_or(0.0),
        broker: share(broker0, broker1),
        disk_bytes_per_msg: match (written0, written1) {
            (Some(a), Some(b)) if count1 > count0 => {
                Some(b.saturating_sub(a) as f64 / (count1 - count0) as f64)
            }
            _ => None,
        },
    };
    ((count1 - count0) as f64 / elapsed, usage)
}

fn print_result(label: &str, scenario: &str, value: f64, unit: &str, usage: &Usage) {
    let broker = usage
        .broker
        .map(|b| format!("{b:.0}%"))
        .unwrap_or_else(|| "n/a".into());
    let disk = usage
        .disk_bytes_per_msg
        .map(|d| format!(" broker_disk_bytes_per_msg={d:.0}"))
        .unwrap_or_default();
    // Not `println!`: a reader that closed the pipe early (`| head -1`) must not panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "RESULT broker={label} scenario=\"{scenario}\" value={value:.0} unit={unit} generator_cpu={:.0}% broker_cpu={broker}{disk}",
        usage.generator
    );
}

async fn latency(args: &BenchArgs, rate: u32, qos: QoS) -> anyhow::Result<()> {
    let epoch = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut sub = Conn::open(args.addr, "bench-lat-sub", KEEP_ALIVE).await?;
    let subscribe = Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: vec![SubscribeFilter {
            filter: "bench/latency".into(),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }],
        properties: Properties::default(),
    });
    sub.send(&subscribe).await?;
    sub.read().await?;
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(count_deliveries(sub, counter.clone(), Some((epoch, tx))));

    let mut publisher = Conn::open(args.addr, "bench-lat-pub", KEEP_ALIVE).await?;
    let total = u64::from(rate) * args.seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pkid: u16 = 0;
    let gen0 = cpu_ticks("self");
    let broker = args.broker_pid.map(|p| p.to_string());
    let broker0 = broker.as_deref().and_then(cpu_ticks);
    let start = Instant::now();
    for _ in 0..total {
        ticker.tick().await;
        pkid = pkid.checked_add(1).unwrap_or(1);
        let mut payload = vec![b'x'; 64];
        payload[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_le_bytes());
        let publish = Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: "bench/latency".into(),
            pkid: if qos == QoS::AtMostOnce { 0 } else { pkid },
            payload: Bytes::from(payload),
            properties: Properties::default(),
        });
        publisher.send(&publish).await?;
        // Drain acknowledgements without blocking the rate.
        while let Some(_ack) = decode_packet(&mut publisher.rbuf, VERSION, MAX_PACKET)? {}
        let mut scratch = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::ZERO, publisher.reader.read(&mut scratch)).await
        {
            if n == 0 {
                bail!("broker closed the publisher's connection");
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the last deliveries arrive.
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut samples = Vec::new();
    while let Ok(sample) = rx.try_recv() {
        samples.push(sample);
    }
    if samples.is_empty() {
        bail!("no message arrived");
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    let usage = Usage {
        generator: match (gen0, cpu_ticks("self")) {
            (Some(a), Some(b)) => (b - a) as f64 / elapsed,
            _ => 0.0,
        },
        broker: match (broker0, broker.as_deref().and_then(cpu_ticks)) {
            (Some(a), Some(b)) => Some((b - a) as f64 / elapsed),
            _ => None,
        },
        disk_bytes_per_msg: None,
    };
    let scenario = format!(
        "latency rate={rate} qos={} received={}/{total}",
        qos as u8,
        samples.len()
    );
    print_result(
        &args.label,
        &format!("{scenario} p50"),
        pct(0.50) as f64,
        "us",
        &usage,
    );
    print_result(
        &args.label,
        &format!("{scenario} p99"),
        pct(0.99) as f64,
        "us",
        &usage,
    );
    Ok(())
}

/// Connect, CONNACK, DISCONNECT, close; forever.
async fn connect_loop(addr: SocketAddr, counter: Arc<AtomicU64>) -> anyhow::Result<()> {
    let task = tokio::task::id();
    let mut i: u64 = 0;
    loop {
        i += 1;
        let mut conn = Conn::open(addr, &format!("bench-conn-{task}-{i}"), KEEP_ALIVE).await?;
        conn.send(&Packet::Disconnect(Disconnect::default()))
            .await?;
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn connections(args: &BenchArgs, count: usize) -> anyhow::Result<()> {
    let Some(pid) = args.broker_pid else {
        bail!("the connections scenario needs --broker-pid to read the broker's RSS");
    };
    let idle = rss_kib(pid).context("reading the broker's RSS")?;
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let conn = Conn::open(args.addr, &format!("bench-idle-{i}"), 600)
            .await
            .with_context(|| format!("opening idle connection {i} (raise `ulimit -n`?)"))?;
        held.push(conn);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_kib(pid).context("reading the broker's RSS")?;
    let per_conn = (loaded.saturating_sub(idle)) as f64 * 1024.0 / count as f64;
    let usage = Usage {
        generator: 0.0,
        broker: None,
        disk_bytes_per_msg: None,
    };
    print_result(&args.label, "rss idle", idle as f64, "KiB", &usage);
    print_result(
        &args.label,
        &format!("rss per connection n={count}"),
        per_conn,
        "bytes",
        &usage,
    );
    drop(held);
    Ok(())
}
