//! Store-and-forward against a real mosquitto as the cloud broker: 20,000 QoS 1 messages
//! through an uplink outage, a `kill -9` of the gateway during an outage, the queue-full
//! policy, and QoS 2 exactly once across a reconnect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bridge_support;
mod common;

use std::time::{Duration, Instant};

use bridge_support::{
    gateway_config, payloads, publish_all, publish_in_background, sock, subscribe, Cloud,
    ProcUsage, DEADLINE,
};
use common::Mqgate;
use rumqttc::QoS;

/// The uplink outage in the middle of the stream. The issue's scenario uses 10 s; 5 s keeps
/// the suite short and already spans several reconnect attempts (backoff 100 ms .. 1 s).
const OUTAGE: Duration = Duration::from_secs(5);

fn bridge_toml(name: &str, cloud: &Cloud, extra: &str) -> String {
    format!(
        r#"
[[bridge]]
name = "{name}"
addresses = ["{addr}"]
keepalive = "5s"
max_inflight = 100
{extra}
[bridge.reconnect]
initial = "100ms"
max = "1s"

[[bridge.topic]]
topic = "sensors/#"
direction = "out"
qos = 1
remote_prefix = "cloud/"
"#,
        addr = cloud.addr()
    )
}

fn start_gateway(dir: &std::path::Path, config: &std::path::Path) -> Mqgate {
    let gw = Mqgate::start(dir, &["--config", config.to_str().unwrap()]);
    assert!(
        gw.wait_for_log("bridge: connected upstream", DEADLINE),
        "bridge did not connect:\n{}",
        gw.logs()
    );
    assert!(
        gw.wait_for_log("bridge: subscribed to the local broker", DEADLINE),
        "bridge did not subscribe locally:\n{}",
        gw.logs()
    );
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_qos1_messages_survive_an_uplink_outage() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cloud = Cloud::start(&dir.path().join("cloud"), "");
    let received = subscribe(sock(cloud.port), "cloud-sub", "cloud/#", QoS::AtLeastOnce).await;
    let config = gateway_config(dir.path(), &bridge_toml("up", &cloud, ""));
    let gw = start_gateway(&dir.path().join("gw"), &config);

    let started = Instant::now();
    let (publishing, rx) = publish_in_background(
        gw.addr,
        "publisher",
        "sensors/t",
        QoS::AtLeastOnce,
        payloads("m", 0..N),
        N / 4,
    );
    rx.await.unwrap();
    cloud.stop();
    let outage_started = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    cloud.restart();
    let back = Instant::now();
    assert_eq!(
        publishing.await.unwrap(),
        N,
        "every message acknowledged to the publisher"
    );
    let all = tokio::task::block_in_place(|| received.wait_distinct(N, DEADLINE));
    assert!(
        all,
        "lost messages: {} of {N} arrived\n{}",
        received.distinct(),
        gw.logs()
    );
    eprintln!(
        "FIGURES: {N} QoS 1 messages, outage {:?}: all {N} distinct at the cloud ({} with duplicates) \
         {:.2} s after the uplink returned, {:.2} s after the first publish",
        outage_started.elapsed() - back.elapsed(),
        received.total(),
        back.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// `mqgate run` opens its listeners only once the bridge is subscribed on the local
/// broker: a device publishing the moment the port answers loses nothing to the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_published_as_soon_as_the_gateway_listens_are_forwarded() {
    const N: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let received = subscribe(sock(cloud.port), "cloud-sub", "cloud/#", QoS::AtLeastOnce).await;
    let config = gateway_config(dir.path(), &bridge_toml("early", &cloud, ""));
    // Only the listener's log line is awaited, not the bridge's subscription.
    let gw = Mqgate::start(
        &dir.path().join("gw"),
        &["--config", config.to_str().unwrap()],
    );
    let acked = publish_all(
        gw.addr,
        "early-publisher",
        "sensors/early",
        QoS::AtLeastOnce,
        payloads("e", 0..N),
        |_| {},
    )
    .await;
    assert_eq!(acked, N);
    assert!(
        received.wait_distinct(N, DEADLINE),
        "{} of {N} early messages reached the cloud:\n{}",
        received.distinct(),
        gw.logs()
    );
    let log = gw.logs();
    let subscribed = log.find("bridge: subscribed to the local broker");
    let listening = log.find("listening");
    assert!(
        subscribed.is_some() && subscribed < listening,
        "the listener opened before the bridge subscribed:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_gateway_during_an_outage_loses_nothing() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cloud = Cloud::start(&dir.path().join("cloud"), "");
    let received = subscribe(sock(cloud.port), "cloud-sub", "cloud/#", QoS::AtLeastOnce).await;
    let config = gateway_config(dir.path(), &bridge_toml("up", &cloud, ""));
    let gw_dir = dir.path().join("gw");
    let mut gw = start_gateway(&gw_dir, &config);

    cloud.stop();
    let acked = publish_all(
        gw.addr,
        "publisher",
        "sensors/t",
        QoS::AtLeastOnce,
        payloads("k", 0..N),
        |_| {},
    )
    .await;
    assert_eq!(acked, N);
    gw.kill9();

    let gw = Mqgate::start(&gw_dir, &["--config", config.to_str().unwrap()]);
    assert!(gw.wait_for_log("bridge queue recovered", DEADLINE));
    cloud.restart();
    let back = Instant::now();
    let all = tokio::task::block_in_place(|| received.wait_distinct(N, DEADLINE));
    assert!(
        all,
        "lost messages: {} of {N} arrived\n{}",
        received.distinct(),
        gw.logs()
    );
    eprintln!(
        "FIGURES: backlog of {N} (after kill -9 and restart) drained in {:.2} s ({:.0} msg/s)",
        back.elapsed().as_secs_f64(),
        N as f64 / back.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_drops_the_oldest_counts_and_logs_it() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let mut cloud = Cloud::start(&dir.path().join("cloud"), "");
    let sub = bridge_support::MosquittoSub::start(cloud.port, "cloud-sub", "cloud/#", 1);
    let received = sub.received.clone();
    // Each entry costs topic (12) + payload (<= 5) + 32 bytes: 4000 bytes hold about 80.
    let queue = "[bridge.queue]\nmax_bytes = 4000\nwhen_full = \"drop_oldest\"\n";
    let config = gateway_config(dir.path(), &bridge_toml("up", &cloud, queue));
    let gw = start_gateway(&dir.path().join("gw"), &config);

    cloud.stop();
    let acked = publish_all(
        gw.addr,
        "publisher",
        "sensors/t",
        QoS::AtLeastOnce,
        payloads("q", 0..N),
        |_| {},
    )
    .await;
    assert_eq!(
        acked, N,
        "dropping is not refusing: every publish is acknowledged"
    );
    assert!(gw.wait_for_log("bridge queue is dropping messages", DEADLINE));
    cloud.restart();
    // The newest message always survives drop_oldest; wait for it, then for quiet.
    let last = format!("q-{}", N - 1);
    assert!(tokio::task::block_in_place(|| bridge_support::wait_until(
        DEADLINE,
        || received.contains(&last)
    )));
    assert!(!received.contains("q-0"), "the oldest were dropped");
    let kept = received.distinct();
    assert!(kept < N && kept > 40, "kept {kept}");
    // The drops are counted: the stats line reports them (dropped = N - kept).
    let expected = format!("dropped={}", N - kept);
    assert!(
        gw.wait_for_log(&expected, Duration::from_secs(30)),
        "no stats line with {expected}:\n{}",
        gw.logs()
    );
}

// Formerly ignored for a loss of 1 of 2,000 under load. Reproduced (2 in 60 runs under
// load) with mosquitto's full log: the bridge's hop was complete (PUBLISH, PUBREC,
// PUBREL, PUBCOMP; bridge stats queued=2000 forwarded=2000) and mosquitto sent the
// message and its PUBREL to the subscriber just before it terminated; the subscriber,
// mosquitto_sub (libmosquitto 2.0.11), received that PUBREL, failed to send PUBCOMP on
// the dead socket and dropped the message (it delivers on PUBREL, after the PUBCOMP).
// The cloud subscriber is now an exactly-once receiver that delivers on PUBLISH
// ([`bridge_support::qos2_sub`]). If a message goes missing, the panic names it and prints
// the gateway's counters: `queued` and `forwarded` tell whether it reached the bridge
// queue and was acknowledged by the cloud.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn qos2_is_delivered_exactly_once_across_reconnects() {
    const N: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cloud = Cloud::start(&dir.path().join("cloud"), "");
    let received =
        bridge_support::qos2_sub::subscribe_exactly_once(sock(cloud.port), "cloud-sub", "cloud/#")
            .await;
    let toml = bridge_toml("up", &cloud, "").replace("qos = 1", "qos = 2");
    let config = gateway_config(dir.path(), &toml);
    let gw = start_gateway(&dir.path().join("gw"), &config);

    let (publishing, rx) = publish_in_background(
        gw.addr,
        "publisher",
        "sensors/q2",
        QoS::ExactlyOnce,
        payloads("e", 0..N),
        N / 2,
    );
    rx.await.unwrap();
    // Cut the uplink in the middle of QoS 2 exchanges; the persistent sessions on both
    // sides, the same packet ids and the PUBRELs resent after reconnect keep it exact.
    cloud.stop();
    cloud.restart();
    assert_eq!(publishing.await.unwrap(), N);
    let all = tokio::task::block_in_place(|| received.wait_distinct(N, DEADLINE));
    if !all {
        let log = received.log();
        let mut got: Vec<usize> = log
            .iter()
            .filter_map(|l| l.rsplit('-').next()?.parse().ok())
            .collect();
        got.sort_unstable();
        got.dedup();
        let missing: Vec<usize> = (0..N).filter(|i| got.binary_search(i).is_err()).collect();
        let stats: Vec<String> = gw
            .logs()
            .lines()
            .filter(|l| l.contains("bridge stats") || l.contains("upstream"))
            .map(str::to_owned)
            .collect();
        panic!(
            "{} of {N} arrived; missing {:?}; head {:?}\n{}",
            received.distinct(),
            &missing[..missing.len().min(20)],
            &log[..log.len().min(3)],
            stats.join("\n")
        );
    }
    // Let any duplicate that would follow arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received.total(), N, "QoS 2: no duplicates");
    assert!(
        gw.logs().contains("session_present=true window"),
        "the bridge resumed its upstream session:\n{}",
        gw.logs()
    );
}

/// Publishes `n` QoS 1 messages to `gateway` and returns the seconds until all of them
/// arrived (distinct) at the cloud subscriber.
async fn forward_time(
    gateway: std::net::SocketAddr,
    cloud_port: u16,
    sub_id: &str,
    n: usize,
) -> f64 {
    let received = subscribe(sock(cloud_port), sub_id, "cloud/#", QoS::AtLeastOnce).await;
    let started = Instant::now();
    let acked = publish_all(
        gateway,
        "publisher",
        "sensors/rate",
        QoS::AtLeastOnce,
        payloads("r", 0..n),
        |_| {},
    )
    .await;
    assert_eq!(acked, n);
    assert!(
        tokio::task::block_in_place(|| received.wait_distinct(n, DEADLINE)),
        "{} of {n}",
        received.distinct()
    );
    started.elapsed().as_secs_f64()
}

/// The sustained rate with the uplink up, mqgate (every message fsynced in the bridge
/// queue before its ack) next to mosquitto's own bridge (in memory) in the same run.
/// Reports figures; asserts only that nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sustained_rate_next_to_mosquittos_bridge() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let config = gateway_config(dir.path(), &bridge_toml("up", &cloud, ""));
    let gw = start_gateway(&dir.path().join("gw"), &config);
    let before = ProcUsage::of(gw.pid());
    let ours = forward_time(gw.addr, cloud.port, "sub-ours", N).await;
    let after = ProcUsage::of(gw.pid());

    let bridge = format!(
        "connection up\naddress {}\ntopic sensors/# out 1 \"\" cloud/\ncleansession false\n",
        cloud.addr()
    );
    let mosquitto_gw = Cloud::start(&dir.path().join("mosquitto-gw"), &bridge);
    // Wait until mosquitto's bridge is up: a probe message reaches the cloud.
    let probe = subscribe(sock(cloud.port), "sub-probe", "cloud/#", QoS::AtLeastOnce).await;
    assert!(tokio::task::block_in_place(|| bridge_support::wait_until(
        DEADLINE,
        || {
            let rt = tokio::runtime::Handle::current();
            rt.block_on(publish_all(
                sock(mosquitto_gw.port),
                "prober",
                "sensors/probe",
                QoS::AtLeastOnce,
                ["p".to_owned()],
                |_| {},
            ));
            probe.contains("p")
        }
    )));
    let theirs = forward_time(sock(mosquitto_gw.port), cloud.port, "sub-theirs", N).await;
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "FIGURES: sustained QoS 1 local -> cloud, {N} messages (publisher, gateway and cloud on one host, {build} build): \
         mqgate {:.0} msg/s ({ours:.2} s), mosquitto 2.0 bridge {:.0} msg/s ({theirs:.2} s)",
        N as f64 / ours,
        N as f64 / theirs
    );
    if let (Some(b), Some(a)) = (before, after) {
        eprintln!(
            "FIGURES: mqgate wrote {:.0} disk bytes and used {:.0} us of CPU per message \
             (broker-lite's store and the bridge queue together, /proc/<pid>/io and stat)",
            (a.write_bytes - b.write_bytes) as f64 / N as f64,
            (a.cpu_secs - b.cpu_secs) * 1e6 / N as f64
        );
    }
    let s = gw.logs();
    assert!(!s.contains("dropping"), "no drops expected");
}

/// The backlog drain rate after an outage of 100,000 messages, and the disk bytes written
/// per message while they were queued and drained. A measurement: run it on its own with
/// `cargo test --release --test bridge_store_forward backlog_drain -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "measurement (100,000 messages); run explicitly"]
async fn backlog_drain_rate_after_a_100k_outage() {
    const N: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cloud = Cloud::start(&dir.path().join("cloud"), "");
    let received = subscribe(sock(cloud.port), "cloud-sub", "cloud/#", QoS::AtLeastOnce).await;
    let queue = "[bridge.queue]\nmax_bytes = 1000000000\n";
    let config = gateway_config(dir.path(), &bridge_toml("up", &cloud, queue));
    let gw = start_gateway(&dir.path().join("gw"), &config);
    let before = ProcUsage::of(gw.pid());
    cloud.stop();
    let started = Instant::now();
    let acked = publish_all(
        gw.addr,
        "publisher",
        "sensors/t",
        QoS::AtLeastOnce,
        payloads("b", 0..N),
        |_| {},
    )
    .await;
    assert_eq!(acked, N);
    let queued = started.elapsed().as_secs_f64();
    cloud.restart();
    let back = Instant::now();
    let all = tokio::task::block_in_place(|| received.wait_distinct(N, DEADLINE * 5));
    let drained = back.elapsed().as_secs_f64();
    assert!(all, "lost messages: {} of {N} arrived", received.distinct());
    let after = ProcUsage::of(gw.pid());
    eprintln!(
        "FIGURES: outage backlog of {N}: queued (acked to the publisher) at {:.0} msg/s, \
         drained at {:.0} msg/s ({drained:.2} s after the uplink returned)",
        N as f64 / queued,
        N as f64 / drained
    );
    if let (Some(b), Some(a)) = (before, after) {
        eprintln!(
            "FIGURES: mqgate wrote {:.0} disk bytes and used {:.0} us of CPU per message (queue + drain)",
            (a.write_bytes - b.write_bytes) as f64 / N as f64,
            (a.cpu_secs - b.cpu_secs) * 1e6 / N as f64
        );
    }
}
