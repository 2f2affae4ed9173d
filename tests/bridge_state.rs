//! The bridge's state on the upstream and dead-link detection, against a real mosquitto:
//! the last will on `will_topic` (with the "1" notice on connect) after a `kill -9`, and a
//! silent uplink cut (no RST, no FIN) noticed by keep-alive, with nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bridge_support;
mod common;

use std::time::Instant;

use bridge_support::{
    gateway_config, payloads, publish_in_background, sock, subscribe, wait_until, BlackHole, Cloud,
    DEADLINE,
};
use common::Mqgate;
use rumqttc::QoS;

fn bridge_toml(addr: &str, keepalive: &str, extra: &str) -> String {
    format!(
        r#"
[[bridge]]
name = "up"
addresses = ["{addr}"]
keepalive = "{keepalive}"
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
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_gateway_publishes_its_will_on_the_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let state = subscribe(sock(cloud.port), "watcher", "gateways/#", QoS::AtLeastOnce).await;
    let extra =
        "will_topic = \"gateways/site-1/online\"\nwill_payload = \"offline\"\nwill_qos = 1\n";
    let config = gateway_config(dir.path(), &bridge_toml(&cloud.addr(), "5s", extra));
    let mut gw = Mqgate::start(
        &dir.path().join("gw"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(gw.wait_for_log("bridge: connected upstream", DEADLINE));
    assert!(gw.wait_for_log("bridge: subscribed to the local broker", DEADLINE));
    assert!(
        tokio::task::block_in_place(|| wait_until(DEADLINE, || state.contains("1"))),
        "the bridge announced itself online: {:?}",
        state.log()
    );
    assert!(!state.contains("offline"));
    gw.kill9();
    assert!(
        tokio::task::block_in_place(|| wait_until(DEADLINE, || state.contains("offline"))),
        "the cloud saw the will: {:?}",
        state.log()
    );
    assert_eq!(
        state.log().last().map(String::as_str),
        Some("gateways/site-1/online offline")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_uplink_cut_is_noticed_by_keepalive_and_nothing_is_lost() {
    const N: usize = 3_000;
    const KEEPALIVE_S: u64 = 2;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let relay = BlackHole::start(sock(cloud.port)).await;
    let received = subscribe(sock(cloud.port), "cloud-sub", "cloud/#", QoS::AtLeastOnce).await;
    let toml = bridge_toml(&relay.addr.to_string(), &format!("{KEEPALIVE_S}s"), "");
    let config = gateway_config(dir.path(), &toml);
    let gw = Mqgate::start(
        &dir.path().join("gw"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(gw.wait_for_log("bridge: connected upstream", DEADLINE));
    assert!(gw.wait_for_log("bridge: subscribed to the local broker", DEADLINE));

    let (publishing, rx) = publish_in_background(
        gw.addr,
        "publisher",
        "sensors/t",
        QoS::AtLeastOnce,
        payloads("s", 0..N),
        N / 3,
    );
    rx.await.unwrap();
    relay.cut();
    let cut_at = Instant::now();
    // The publisher is not held up by the dead uplink: the queue takes everything.
    assert_eq!(publishing.await.unwrap(), N);
    assert!(
        gw.wait_for_log("upstream silent for 1.5 x keep-alive", DEADLINE),
        "keep-alive did not notice the silent cut:\n{}",
        gw.logs()
    );
    let noticed = cut_at.elapsed();
    relay.restore();
    let all = tokio::task::block_in_place(|| received.wait_distinct(N, DEADLINE));
    assert!(
        all,
        "lost messages: {} of {N} arrived\n{}",
        received.distinct(),
        gw.logs()
    );
    let connects = gw.logs().matches("bridge: connected upstream").count();
    assert!(
        connects >= 2,
        "the bridge reconnected after the path returned"
    );
    eprintln!(
        "FIGURES: silent cut noticed {:.2} s after the cut (keep-alive {KEEPALIVE_S} s, \
         limit 1.5 x = {:.1} s); all {N} arrived ({} with duplicates)",
        noticed.as_secs_f64(),
        KEEPALIVE_S as f64 * 1.5,
        received.total()
    );
}
