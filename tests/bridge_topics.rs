//! Topic rules against a real mosquitto: `in` and `out` with prefix remapping, `both`
//! without loops (MQTT 5 and 3.1.1 + try_private upstreams), failover to a second address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bridge_support;
mod common;

use std::time::Duration;

use bridge_support::{
    free_port, gateway_config, publish_all, sock, subscribe, wait_until, Cloud, DEADLINE,
};
use common::Mqgate;
use rumqttc::QoS;

fn start_gateway(dir: &std::path::Path, toml: &str) -> Mqgate {
    let config = gateway_config(dir, toml);
    let gw = Mqgate::start(&dir.join("gw"), &["--config", config.to_str().unwrap()]);
    assert!(
        gw.wait_for_log("bridge: subscribed upstream", DEADLINE),
        "bridge did not subscribe upstream:\n{}",
        gw.logs()
    );
    gw
}

async fn publish_one(addr: std::net::SocketAddr, id: &str, topic: &str, payload: &str) {
    let n = publish_all(
        addr,
        id,
        topic,
        QoS::AtLeastOnce,
        [payload.to_owned()],
        |_| {},
    )
    .await;
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_and_out_rules_remap_prefixes_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let toml = format!(
        r#"
[[bridge]]
name = "fleet"
addresses = ["{}"]
[[bridge.topic]]
topic = "cmd/#"
direction = "in"
qos = 1
local_prefix = "dev/"
remote_prefix = "fleet/gw1/"
[[bridge.topic]]
topic = "tele/#"
direction = "out"
qos = 1
local_prefix = "site/"
remote_prefix = "fleet/gw1/"
"#,
        cloud.addr()
    );
    let gw = start_gateway(dir.path(), &toml);
    let at_cloud = subscribe(sock(cloud.port), "cloud-sub", "fleet/#", QoS::AtLeastOnce).await;
    let at_site = subscribe(gw.addr, "site-sub", "#", QoS::AtLeastOnce).await;

    publish_one(sock(cloud.port), "cloud-pub", "fleet/gw1/cmd/reboot", "go").await;
    publish_one(gw.addr, "site-pub", "site/tele/temp", "21").await;
    let ok = tokio::task::block_in_place(|| {
        wait_until(DEADLINE, || {
            at_site.log().contains(&"dev/cmd/reboot go".to_owned())
                && at_cloud
                    .log()
                    .contains(&"fleet/gw1/tele/temp 21".to_owned())
        })
    });
    assert!(
        ok,
        "site saw {:?}, cloud saw {:?}",
        at_site.log(),
        at_cloud.log()
    );
    // Neither rule forwards what the other direction's prefix does not cover.
    publish_one(gw.addr, "site-pub", "dev/cmd/local-only", "x").await;
    publish_one(
        sock(cloud.port),
        "cloud-pub",
        "fleet/gw1/tele/cloud-only",
        "y",
    )
    .await;
    publish_one(gw.addr, "site-pub", "site/tele/marker", "m").await;
    assert!(tokio::task::block_in_place(|| wait_until(DEADLINE, || {
        at_cloud.contains("m")
    })));
    assert!(
        !at_cloud.log().iter().any(|l| l.contains("local-only")),
        "{:?}",
        at_cloud.log()
    );
    assert!(
        !at_site.log().iter().any(|l| l.contains("cloud-only")),
        "{:?}",
        at_site.log()
    );
}

/// A `both` rule: a message from either side reaches the other once and never comes back.
async fn both_without_loop(protocol: &str, try_private: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let toml = format!(
        r#"
[[bridge]]
name = "sync"
addresses = ["{}"]
protocol = "{protocol}"
try_private = {try_private}
[[bridge.topic]]
topic = "sync/#"
direction = "both"
qos = 1
"#,
        cloud.addr()
    );
    let gw = start_gateway(dir.path(), &toml);
    let at_cloud = subscribe(sock(cloud.port), "cloud-sub", "sync/#", QoS::AtLeastOnce).await;
    let at_site = subscribe(gw.addr, "site-sub", "sync/#", QoS::AtLeastOnce).await;

    publish_one(sock(cloud.port), "cloud-pub", "sync/from-cloud", "c1").await;
    publish_one(gw.addr, "site-pub", "sync/from-site", "s1").await;
    let arrived = tokio::task::block_in_place(|| {
        wait_until(DEADLINE, || {
            at_site.contains("c1")
                && at_site.contains("s1")
                && at_cloud.contains("c1")
                && at_cloud.contains("s1")
        })
    });
    assert!(
        arrived,
        "site {:?} cloud {:?}",
        at_site.log(),
        at_cloud.log()
    );
    // A loop would keep bouncing the messages; a marker sent after them proves the
    // pipeline is drained before counting.
    publish_one(gw.addr, "site-pub", "sync/marker", "end").await;
    assert!(tokio::task::block_in_place(|| wait_until(DEADLINE, || {
        at_cloud.contains("end")
    })));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(at_cloud.total(), 3, "cloud saw {:?}", at_cloud.log());
    assert_eq!(at_site.total(), 3, "site saw {:?}", at_site.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_rule_does_not_loop_with_an_mqtt5_upstream() {
    both_without_loop("5", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_rule_does_not_loop_with_a_311_upstream_and_try_private() {
    both_without_loop("3.1.1", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fails_over_to_the_second_address() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(&dir.path().join("cloud"), "");
    let dead = free_port();
    let toml = format!(
        r#"
[[bridge]]
name = "fo"
addresses = ["127.0.0.1:{dead}", "{}"]
[[bridge.topic]]
topic = "x/#"
direction = "both"
qos = 1
"#,
        cloud.addr()
    );
    let gw = start_gateway(dir.path(), &toml);
    assert!(
        gw.logs()
            .contains(&format!("peer=127.0.0.1:{}", cloud.port)),
        "{}",
        gw.logs()
    );
    let at_cloud = subscribe(sock(cloud.port), "cloud-sub", "x/#", QoS::AtLeastOnce).await;
    publish_one(gw.addr, "site-pub", "x/y", "via-failover").await;
    assert!(tokio::task::block_in_place(|| wait_until(DEADLINE, || {
        at_cloud.contains("via-failover")
    })));
    // SIGTERM: the bridge disconnects and flushes its queue before the process exits.
    let mut gw = gw;
    assert!(gw.terminate().success(), "{}", gw.logs());
    assert!(
        gw.logs().contains("bridge stopped; flushing its queue"),
        "{}",
        gw.logs()
    );
}
