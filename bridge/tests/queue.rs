//! The durable queue: recovery after reopen, bounds and the when-full policies.

// Test helpers are test code too: a failed operation should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqgate_bridge::queue::{NewMessage, Pushed};
use mqgate_bridge::{BridgeStats, DurableQueue, WalOptions};
use mqgate_config::{BridgeQueueConfig, QueueOverflow};
use mqgate_protocol::QoS;

fn msg(topic: &str, qos: QoS, payload: &'static [u8]) -> NewMessage {
    NewMessage {
        topic: topic.into(),
        qos,
        retain: false,
        payload: Bytes::from_static(payload),
    }
}

fn limits(max_bytes: u64, when_full: QueueOverflow) -> BridgeQueueConfig {
    BridgeQueueConfig {
        max_bytes,
        max_age: Duration::from_secs(3600),
        when_full,
    }
}

async fn open(dir: &std::path::Path, l: BridgeQueueConfig) -> DurableQueue {
    DurableQueue::open(
        "t",
        dir,
        WalOptions::default(),
        l,
        Arc::new(BridgeStats::default()),
    )
    .await
    .unwrap()
}

async fn push(q: &DurableQueue, m: NewMessage) {
    match q.push(m).await.unwrap() {
        Pushed::Stored(commit) => commit.await.unwrap(),
        Pushed::Dropped => panic!("dropped"),
    }
}

#[tokio::test]
async fn what_is_not_acked_survives_a_reopen_in_order_with_release_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = open(dir.path(), limits(1 << 20, QueueOverflow::DropOldest)).await;
        for i in 0..5u8 {
            let payload: &'static [u8] = Box::leak(Box::new([i]));
            push(&q, msg("a/b", QoS::ExactlyOnce, payload)).await;
        }
        q.remove(1);
        q.remove(3);
        q.release(4);
        q.close().await.unwrap();
    }
    let q = open(dir.path(), limits(1 << 20, QueueOverflow::DropOldest)).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    while let Some(e) = q.next_after(cursor) {
        cursor = Some(e.message.seq);
        assert!(e.maybe_sent, "recovered entries may have been sent");
        seen.push((e.message.seq, e.message.payload[0], e.released));
    }
    assert_eq!(seen, vec![(2, 1, false), (4, 3, true), (5, 4, false)]);
    // New messages continue the sequence.
    push(&q, msg("a/b", QoS::AtLeastOnce, b"x")).await;
    assert!(q.contains(6));
    assert_eq!(q.snapshot().depth, 4);
}

#[tokio::test]
async fn drop_oldest_evicts_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    // Each entry is 1 (topic) + 10 (payload) + 32 (overhead) = 43 bytes: room for 3.
    let q = open(dir.path(), limits(130, QueueOverflow::DropOldest)).await;
    for _ in 0..5 {
        push(&q, msg("t", QoS::AtLeastOnce, b"0123456789")).await;
    }
    let s = q.snapshot();
    assert_eq!(s.depth, 3);
    assert_eq!(s.dropped_full, 2);
    assert_eq!(s.dropped, 2);
    assert_eq!(
        q.next_after(None).unwrap().message.seq,
        3,
        "the oldest went first"
    );
}

#[tokio::test]
async fn refuse_qos0_drops_new_qos0_but_admits_qos1() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path(), limits(130, QueueOverflow::RefuseQos0)).await;
    for _ in 0..3 {
        push(&q, msg("t", QoS::AtLeastOnce, b"0123456789")).await;
    }
    assert!(matches!(
        q.push(msg("t", QoS::AtMostOnce, b"0123456789"))
            .await
            .unwrap(),
        Pushed::Dropped
    ));
    push(&q, msg("t", QoS::AtLeastOnce, b"0123456789")).await;
    let s = q.snapshot();
    assert_eq!((s.depth, s.dropped_full), (3, 2));
}

#[tokio::test]
async fn backpressure_waits_for_room_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let q = Arc::new(open(dir.path(), limits(130, QueueOverflow::Backpressure)).await);
    for _ in 0..3 {
        push(&q, msg("t", QoS::AtLeastOnce, b"0123456789")).await;
    }
    let q2 = q.clone();
    let waiting =
        tokio::spawn(async move { push(&q2, msg("t", QoS::AtLeastOnce, b"0123456789")).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "a full queue under backpressure must wait"
    );
    q.remove(1);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    let s = q.snapshot();
    assert_eq!((s.depth, s.dropped, s.forwarded), (3, 0, 1));
}

#[tokio::test]
async fn expired_messages_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = limits(1 << 20, QueueOverflow::DropOldest);
    l.max_age = Duration::from_millis(1);
    let q = open(dir.path(), l).await;
    push(&q, msg("t", QoS::AtLeastOnce, b"old")).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(q.next_after(None).is_none());
    assert_eq!(q.snapshot().dropped_expired, 1);
}

#[tokio::test]
async fn removals_ride_on_the_next_append_and_a_crash_only_resends() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = open(dir.path(), limits(1 << 20, QueueOverflow::DropOldest)).await;
        for p in [b"1", b"2", b"3"] {
            push(&q, msg("a/b", QoS::AtLeastOnce, p)).await;
        }
        q.remove(1);
        // Appended (with seq 1's removal) and made durable by this push's commit.
        push(&q, msg("a/b", QoS::AtLeastOnce, b"4")).await;
        q.remove(2);
        // Dropped without close, like a crash: seq 2's removal was never appended.
    }
    let q = open(dir.path(), limits(1 << 20, QueueOverflow::DropOldest)).await;
    let mut seqs = Vec::new();
    let mut cursor = None;
    while let Some(e) = q.next_after(cursor) {
        cursor = Some(e.message.seq);
        seqs.push(e.message.seq);
    }
    assert_eq!(seqs, vec![2, 3, 4], "seq 2 is resent, seq 1 is not");
    q.remove(2);
    q.flush_removed();
    q.close().await.unwrap();
    let q = open(dir.path(), limits(1 << 20, QueueOverflow::DropOldest)).await;
    assert!(!q.contains(2) && q.contains(3));
}
