//! The queue's `max_age` under a wall clock that jumps (issue 15): an RTC-less Raspberry Pi
//! boots in the past and jumps forward at NTP sync; an operator sets the clock back.
//! The clocks are [`ManualClock`]s; one per simulated process run.

// Test helpers are test code too: a failed operation should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqgate_bridge::clock::{Clock, ManualClock};
use mqgate_bridge::queue::{NewMessage, Pushed};
use mqgate_bridge::{BridgeStats, DurableQueue, WalOptions};
use mqgate_config::{BridgeQueueConfig, QueueOverflow};
use mqgate_protocol::QoS;

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 86_400_000;
const YEAR_MS: u64 = 365 * DAY_MS;
/// `max_age` in every test: the Raspberry Pi example's "14d".
const MAX_AGE: Duration = Duration::from_secs(14 * 86_400);
/// 2026-05-28, a plausible correct wall-clock time.
const NOW_MS: u64 = 1_780_000_000_000;

async fn open(dir: &Path, clock: &Arc<ManualClock>) -> DurableQueue {
    let limits = BridgeQueueConfig {
        max_bytes: 1 << 20,
        max_age: MAX_AGE,
        when_full: QueueOverflow::DropOldest,
    };
    DurableQueue::open_with_clock(
        "t",
        dir,
        WalOptions::default(),
        limits,
        Arc::new(BridgeStats::default()),
        clock.clone(),
    )
    .await
    .unwrap()
}

async fn push(q: &DurableQueue, payload: &'static [u8]) {
    let message = NewMessage {
        topic: "t".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        payload: Bytes::from_static(payload),
    };
    match q.push(message).await.unwrap() {
        Pushed::Stored(commit) => commit.await.unwrap(),
        Pushed::Dropped => panic!("dropped"),
    }
}

/// The payloads still queued, oldest first (expiring what is due on the way).
fn queued(q: &DurableQueue) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut cursor = None;
    while let Some(e) = q.peek_after(cursor) {
        cursor = Some(e.message.seq);
        out.push(match &e.message.payload[..] {
            b"a" => "a",
            b"b" => "b",
            b"c" => "c",
            other => panic!("unexpected payload {other:?}"),
        });
    }
    out
}

#[tokio::test]
async fn a_forward_jump_of_a_year_expires_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let q = open(dir.path(), &clock).await;
    push(&q, b"a").await;
    clock.advance(HOUR);
    push(&q, b"b").await;
    // NTP sync right after start: the wall clock leaps a year ahead.
    clock.set_wall(NOW_MS + HOUR_MS + YEAR_MS);
    assert_eq!(queued(&q), ["a", "b"]);
    let s = q.snapshot();
    assert_eq!((s.depth, s.dropped_expired), (2, 0));
    assert_eq!(s.oldest_age_secs, 3600, "the age is monotonic time");
    // A message pushed after the jump ages like the others.
    clock.advance(DAY);
    push(&q, b"c").await;
    assert_eq!(queued(&q), ["a", "b", "c"]);
    // They still expire, each max_age of monotonic time after it was queued.
    clock.advance(MAX_AGE - HOUR - DAY);
    assert_eq!(queued(&q), ["a", "b", "c"], "'a' is exactly max_age old");
    clock.advance(SECOND);
    assert_eq!(queued(&q), ["b", "c"]);
    clock.advance(HOUR);
    assert_eq!(queued(&q), ["c"]);
    assert_eq!(q.snapshot().dropped_expired, 2);
}

#[tokio::test]
async fn a_backward_jump_still_expires_after_max_age_of_monotonic_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let q = open(dir.path(), &clock).await;
    push(&q, b"a").await;
    clock.advance(DAY);
    // Set back a year: by wall-clock arithmetic "a" would be a year in the future.
    clock.set_wall(NOW_MS + DAY_MS - YEAR_MS);
    assert_eq!(queued(&q), ["a"]);
    assert_eq!(q.snapshot().oldest_age_secs, 86_400);
    clock.advance(MAX_AGE - DAY);
    assert_eq!(queued(&q), ["a"]);
    clock.advance(SECOND);
    assert!(queued(&q).is_empty());
    assert_eq!(q.snapshot().dropped_expired, 1);
}

#[tokio::test]
async fn messages_age_and_expire_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let q = open(dir.path(), &clock).await;
    push(&q, b"a").await;
    clock.advance(DAY);
    push(&q, b"b").await;
    // Small steps of the wall clock (NTP corrections) are no jumps: they count.
    clock.advance(MAX_AGE - DAY - 10 * SECOND);
    clock.set_wall(clock.wall_ms() + 1_500);
    assert_eq!(queued(&q), ["a", "b"]);
    clock.advance(9 * SECOND);
    assert_eq!(queued(&q), ["b"], "14 d + 0.5 s old");
    let s = q.snapshot();
    assert_eq!((s.depth, s.dropped_expired, s.dropped), (1, 1, 1));
}

#[tokio::test]
async fn downtime_counts_when_the_clock_at_recovery_agrees() {
    let dir = tempfile::tempdir().unwrap();
    {
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let q = open(dir.path(), &clock).await;
        push(&q, b"a").await;
        clock.advance(5 * DAY);
        push(&q, b"b").await;
        q.close().await.unwrap();
    }
    // Off for 5 days; the clock is right at boot (RTC, or NTP before the gateway starts).
    let clock = Arc::new(ManualClock::new(NOW_MS + 10 * DAY_MS));
    let q = open(dir.path(), &clock).await;
    assert_eq!(q.snapshot().oldest_age_secs, 10 * 86_400);
    assert_eq!(queued(&q), ["a", "b"]);
    clock.advance(MAX_AGE - 10 * DAY + SECOND);
    assert_eq!(queued(&q), ["b"]);
    q.close().await.unwrap();
    // Off for longer than max_age: expired at once, and counted.
    let clock = Arc::new(ManualClock::new(NOW_MS + 40 * DAY_MS));
    let q = open(dir.path(), &clock).await;
    assert!(queued(&q).is_empty());
    assert_eq!(q.snapshot().dropped_expired, 1);
}

#[tokio::test]
async fn recovered_under_a_clock_in_the_past_they_expire_within_max_age_of_recovery() {
    let dir = tempfile::tempdir().unwrap();
    {
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let q = open(dir.path(), &clock).await;
        push(&q, b"a").await;
        q.close().await.unwrap();
    }
    // Reboot without RTC: the clock says 1970 until NTP syncs.
    let clock = Arc::new(ManualClock::new(60_000));
    let q = open(dir.path(), &clock).await;
    assert_eq!(queued(&q), ["a"]);
    assert_eq!(q.snapshot().oldest_age_secs, 0, "ages from the recovery");
    clock.advance(HOUR);
    clock.set_wall(NOW_MS + 3 * DAY_MS);
    assert_eq!(queued(&q), ["a"], "the NTP sync expires nothing");
    assert_eq!(q.snapshot().oldest_age_secs, 3600);
    clock.advance(MAX_AGE - HOUR);
    assert_eq!(queued(&q), ["a"]);
    clock.advance(SECOND);
    assert!(queued(&q).is_empty(), "max_age after the recovery");
    assert_eq!(q.snapshot().dropped_expired, 1);
}

#[tokio::test]
async fn restarts_do_not_reset_ages() {
    let dir = tempfile::tempdir().unwrap();
    {
        let clock = Arc::new(ManualClock::new(NOW_MS));
        let q = open(dir.path(), &clock).await;
        push(&q, b"a").await;
        q.close().await.unwrap();
    }
    // Boot in 1970; NTP syncs after a minute; the gateway runs 5 days.
    {
        let clock = Arc::new(ManualClock::new(0));
        let q = open(dir.path(), &clock).await;
        clock.advance(Duration::from_secs(60));
        clock.set_wall(NOW_MS + DAY_MS);
        clock.advance(5 * DAY);
        assert_eq!(q.snapshot().oldest_age_secs, 5 * 86_400 + 60);
        q.close().await.unwrap();
    }
    // A restart with a correct clock, an hour later: "a" is not new again.
    let clock = Arc::new(ManualClock::new(NOW_MS + 6 * DAY_MS + HOUR_MS));
    let q = open(dir.path(), &clock).await;
    assert_eq!(q.snapshot().oldest_age_secs, 5 * 86_400 + 60 + 3600);
    clock.advance(MAX_AGE - 5 * DAY - 60 * SECOND - HOUR + SECOND);
    assert!(queued(&q).is_empty());
    assert_eq!(q.snapshot().dropped_expired, 1);
}

#[tokio::test]
async fn messages_queued_before_an_ntp_jump_keep_their_age_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Boot in 1970, uplink down: messages are stamped in 1970.
        let clock = Arc::new(ManualClock::new(10_000));
        let q = open(dir.path(), &clock).await;
        push(&q, b"a").await;
        clock.advance(HOUR);
        push(&q, b"b").await;
        // NTP syncs; the jump is recorded with the queue.
        clock.set_wall(NOW_MS);
        assert_eq!(queued(&q), ["a", "b"]);
        clock.advance(DAY);
        q.close().await.unwrap();
    }
    // Restart with a correct clock: the 1970 stamps are not taken as 56 years old.
    let clock = Arc::new(ManualClock::new(NOW_MS + DAY_MS));
    let q = open(dir.path(), &clock).await;
    assert_eq!(queued(&q), ["a", "b"]);
    assert_eq!(q.snapshot().oldest_age_secs, 86_400 + 3600);
    clock.advance(MAX_AGE - DAY - HOUR + SECOND);
    assert_eq!(queued(&q), ["b"]);
    assert_eq!(q.snapshot().dropped_expired, 1);
}
