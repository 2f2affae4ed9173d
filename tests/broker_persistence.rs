//! Process-level persistence: QoS 1 messages queued for an offline persistent session
//! survive `kill -9` of the real `mqgate run` binary and are all delivered after restart.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::Mqgate;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, QoS};

const WAIT: Duration = Duration::from_secs(30);

fn client(id: &str, addr: SocketAddr, clean: bool) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_clean_session(clean);
    opts.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(opts, 100)
}

/// Polls until `done` says so, failing after WAIT.
async fn drive(events: &mut EventLoop, mut done: impl FnMut(&Event) -> bool) {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.poll().await.expect("connection to mqgate");
            if done(&event) {
                return;
            }
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_qos1_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut mqgate = Mqgate::start(dir.path(), &[]);
    let addr = mqgate.addr;

    // A persistent subscriber registers, then goes offline.
    let (sub, mut sub_events) = client("offline-device", addr, false);
    sub.subscribe("site/#", QoS::AtLeastOnce).await.unwrap();
    drive(&mut sub_events, |e| {
        matches!(e, Event::Incoming(Incoming::SubAck(_)))
    })
    .await;
    sub.disconnect().await.unwrap();
    drive(&mut sub_events, |e| {
        matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect))
    })
    .await;
    drop(sub_events);

    // A publisher sends N QoS 1 messages; each PUBACK means "on disk" (durability sync).
    const N: usize = 500;
    let (publ, mut pub_events) = client("publisher", addr, true);
    let sender = tokio::spawn(async move {
        for i in 0..N {
            publ.publish("site/reading", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        publ
    });
    let mut acked = 0;
    drive(&mut pub_events, |e| {
        if matches!(e, Event::Incoming(Incoming::PubAck(_))) {
            acked += 1;
        }
        acked == N
    })
    .await;
    let _publ = sender.await.unwrap();

    // kill -9: no shutdown, no final flush.
    mqgate.kill9();
    let mqgate = Mqgate::start(dir.path(), &[]);

    let (_sub, mut sub_events) = client("offline-device", mqgate.addr, false);
    let mut seen = BTreeSet::new();
    let mut present = None;
    drive(&mut sub_events, |e| {
        match e {
            Event::Incoming(Incoming::ConnAck(a)) => present = Some(a.session_present),
            Event::Incoming(Incoming::Publish(p)) => {
                let n: usize = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                seen.insert(n);
            }
            _ => {}
        }
        seen.len() == N
    })
    .await;
    assert_eq!(
        present,
        Some(true),
        "the persistent session survived kill -9"
    );
    assert_eq!(seen.len(), N, "every acknowledged message was delivered");
    assert_eq!(seen.iter().copied().max(), Some(N - 1));
}
