//! Tests of the write-ahead log: recovery, group commit, torn tails, compaction crashes.

// The helpers below are test code too: a failed file operation should fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqgate_wal::{Durability, Wal, WalError, WalOptions, MAX_RECORD_BYTES};

fn sync() -> WalOptions {
    WalOptions::default()
}

fn rec(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn recs(items: &[&str]) -> Vec<Bytes> {
    items.iter().map(|s| rec(s)).collect()
}

/// Sorted file names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The one file in `dir` whose name starts with `prefix` and ends with ".bin".
fn only(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<String> = names(dir)
        .into_iter()
        .filter(|n| n.starts_with(prefix) && n.ends_with(".bin"))
        .collect();
    assert_eq!(found.len(), 1, "{prefix}* in {:?}", names(dir));
    dir.join(&found[0])
}

/// Copies every file of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in names(from) {
        std::fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

/// Writes `items` to a fresh WAL in `dir` and closes it.
async fn write_closed(dir: &Path, items: &[&str]) {
    let (wal, recovered) = Wal::open(dir, sync()).await.unwrap();
    assert!(recovered.is_empty());
    for item in items {
        wal.append(rec(item)).await.unwrap();
    }
    wal.close().await.unwrap();
}

async fn reopen(dir: &Path) -> Vec<Bytes> {
    let (wal, records) = Wal::open(dir, sync()).await.unwrap();
    wal.close().await.unwrap();
    records
}

#[tokio::test]
async fn append_then_reopen_returns_records_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let (wal, recovered) = Wal::open(&dir, sync()).await.unwrap();
    assert!(recovered.is_empty());
    wal.append(rec("one")).await.unwrap();
    wal.append_many(recs(&["two", "", "four"])).await.unwrap();
    wal.append(rec("five")).await.unwrap();
    assert_eq!(wal.stats().records, 5);
    let frames = (3 + 3 + 4 + 4 + 5 * 8) as u64;
    assert_eq!(wal.log_bytes(), frames);
    wal.close().await.unwrap();

    let (wal, recovered) = Wal::open(&dir, sync()).await.unwrap();
    assert_eq!(recovered, recs(&["one", "two", "", "four", "five"]));
    assert_eq!(wal.log_bytes(), frames);
    wal.append(rec("six")).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(
        reopen(&dir).await,
        recs(&["one", "two", "", "four", "five", "six"])
    );
}

#[cfg(unix)]
#[tokio::test]
async fn directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/wal");
    let (wal, _) = Wal::open(&dir, sync()).await.unwrap();
    wal.close().await.unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let log_mode = std::fs::metadata(only(&dir, "log-"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(log_mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sync_appends_are_group_committed_and_all_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(tmp.path(), sync()).await.unwrap();
    let before = wal.stats();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let wal = wal.clone();
        tasks.spawn(async move { wal.append(rec(&format!("record-{i:04}"))).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let after = wal.stats();
    assert_eq!(after.records - before.records, 1000);
    let fsyncs = after.fsyncs - before.fsyncs;
    assert!(
        fsyncs < 1000,
        "group commit should batch fsyncs, got {fsyncs}"
    );
    assert_eq!(
        fsyncs,
        after.batches - before.batches,
        "one fsync per batch"
    );
    wal.close().await.unwrap();

    let mut recovered = reopen(tmp.path()).await;
    recovered.sort();
    let expected: Vec<Bytes> = (0..1000).map(|i| rec(&format!("record-{i:04}"))).collect();
    assert_eq!(recovered, expected);
}

#[tokio::test]
async fn appends_without_await_keep_call_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(tmp.path(), sync()).await.unwrap();
    let commits: Vec<_> = (0..100).map(|i| wal.append(rec(&i.to_string()))).collect();
    for commit in commits {
        commit.await.unwrap();
    }
    wal.close().await.unwrap();
    let expected: Vec<Bytes> = (0..100).map(|i| rec(&i.to_string())).collect();
    assert_eq!(reopen(tmp.path()).await, expected);
}

#[tokio::test]
async fn torn_tail_at_every_offset_of_the_last_record_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    write_closed(&source, &["alpha", "beta", "the last record"]).await;
    let full = std::fs::read(only(&source, "log-")).unwrap();
    let last_start = full.len() - (8 + "the last record".len());

    for cut in last_start..full.len() {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&source, &dir);
        let log = only(&dir, "log-");
        std::fs::write(&log, &full[..cut]).unwrap();

        let (wal, recovered) = Wal::open(&dir, sync()).await.unwrap();
        assert_eq!(recovered, recs(&["alpha", "beta"]), "cut at {cut}");
        assert_eq!(
            std::fs::metadata(&log).unwrap().len(),
            last_start as u64,
            "cut at {cut}"
        );
        wal.append(rec("after")).await.unwrap();
        wal.close().await.unwrap();
        assert_eq!(
            reopen(&dir).await,
            recs(&["alpha", "beta", "after"]),
            "cut at {cut}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test]
async fn flipped_byte_in_the_last_record_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    write_closed(&source, &["alpha", "beta", "gamma"]).await;
    let full = std::fs::read(only(&source, "log-")).unwrap();
    let last_start = full.len() - (8 + 5);

    // Every byte of the last frame: length, CRC and payload.
    for at in last_start..full.len() {
        let dir = tmp.path().join(format!("flip-{at}"));
        copy_dir(&source, &dir);
        let mut damaged = full.clone();
        damaged[at] ^= 0x5a;
        std::fs::write(only(&dir, "log-"), &damaged).unwrap();
        assert_eq!(reopen(&dir).await, recs(&["alpha", "beta"]), "flip at {at}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test]
async fn corruption_in_the_middle_recovers_up_to_the_bad_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_closed(tmp.path(), &["r0", "r1", "r2", "r3", "r4"]).await;
    let log = only(tmp.path(), "log-");
    let mut data = std::fs::read(&log).unwrap();
    let header = data.len() - 5 * (8 + 2);
    let third_payload = header + 2 * (8 + 2) + 8;
    data[third_payload] ^= 0xff;
    std::fs::write(&log, &data).unwrap();

    let (wal, recovered) = Wal::open(tmp.path(), sync()).await.unwrap();
    assert_eq!(recovered, recs(&["r0", "r1"]));
    let copy = names(tmp.path())
        .into_iter()
        .find(|n| n.ends_with(".corrupt"))
        .expect("a copy of the corrupt log is kept");
    assert_eq!(std::fs::read(tmp.path().join(copy)).unwrap(), data);
    wal.append(rec("new")).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(reopen(tmp.path()).await, recs(&["r0", "r1", "new"]));
}

#[tokio::test]
async fn compaction_then_reopen_returns_snapshot_then_later_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(tmp.path(), sync()).await.unwrap();
    wal.append_many(recs(&["a", "b", "c"])).await.unwrap();
    assert!(wal.log_bytes() > 0);
    let compaction = wal.compact(recs(&["s1", "s2"]));
    // Appended after the compact call: lands in the new log, after the snapshot.
    let later = wal.append(rec("d"));
    compaction.await.unwrap();
    later.await.unwrap();
    assert_eq!(wal.log_bytes(), 8 + 1);
    wal.close().await.unwrap();

    assert_eq!(
        names(tmp.path()),
        vec![
            "log-00000000000000000001.bin".to_owned(),
            "snapshot-00000000000000000001.bin".to_owned()
        ]
    );
    let (wal, recovered) = Wal::open(tmp.path(), sync()).await.unwrap();
    assert_eq!(recovered, recs(&["s1", "s2", "d"]));
    wal.compact(recs(&["t"])).await.unwrap();
    wal.compact(Vec::new()).await.unwrap();
    wal.append(rec("e")).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(reopen(tmp.path()).await, recs(&["e"]));
    assert_eq!(names(tmp.path()).len(), 2);
}

/// Builds the two states around a compaction: `old` (records a, b in log-0) and `new`
/// (snapshot-1 = [s], log-1 = [c]).
async fn old_and_new_states(root: &Path) -> (PathBuf, PathBuf) {
    let old = root.join("old");
    let new = root.join("new");
    write_closed(&old, &["a", "b"]).await;
    copy_dir(&old, &new);
    let (wal, _) = Wal::open(&new, sync()).await.unwrap();
    wal.compact(recs(&["s"])).await.unwrap();
    wal.append(rec("c")).await.unwrap();
    wal.close().await.unwrap();
    (old, new)
}

#[tokio::test]
async fn crash_before_rename_leaves_a_temp_snapshot_that_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = old_and_new_states(tmp.path()).await;
    let snapshot = only(&new, "snapshot-");
    let temp_name = format!("{}.tmp", snapshot.file_name().unwrap().to_str().unwrap());

    // A complete temp snapshot (crash after its fsync, before the rename).
    let complete = tmp.path().join("complete");
    copy_dir(&old, &complete);
    std::fs::copy(&snapshot, complete.join(&temp_name)).unwrap();
    assert_eq!(reopen(&complete).await, recs(&["a", "b"]));
    assert!(!names(&complete).contains(&temp_name));

    // A half-written one.
    let partial = tmp.path().join("partial");
    copy_dir(&old, &partial);
    let bytes = std::fs::read(&snapshot).unwrap();
    std::fs::write(partial.join(&temp_name), &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(reopen(&partial).await, recs(&["a", "b"]));
    assert!(!names(&partial).contains(&temp_name));
}

#[tokio::test]
async fn crash_after_rename_with_old_log_still_there_recovers_the_new_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = old_and_new_states(tmp.path()).await;
    let old_log = only(&old, "log-");
    let old_log_name = old_log.file_name().unwrap().to_owned();

    // Renamed, new log created, old log not yet removed.
    let both = tmp.path().join("both");
    copy_dir(&new, &both);
    std::fs::copy(&old_log, both.join(&old_log_name)).unwrap();
    assert_eq!(reopen(&both).await, recs(&["s", "c"]));
    assert_eq!(names(&both), names(&new), "stale log removed");

    // Renamed, crash before the new log was created.
    let no_new_log = tmp.path().join("no-new-log");
    copy_dir(&old, &no_new_log);
    let snapshot = only(&new, "snapshot-");
    std::fs::copy(&snapshot, no_new_log.join(snapshot.file_name().unwrap())).unwrap();
    let (wal, recovered) = Wal::open(&no_new_log, sync()).await.unwrap();
    assert_eq!(recovered, recs(&["s"]));
    wal.append(rec("later")).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(reopen(&no_new_log).await, recs(&["s", "later"]));
    assert_eq!(names(&no_new_log).len(), 2);

    // New log created but its header never reached the disk.
    let torn_new_log = tmp.path().join("torn-new-log");
    copy_dir(&new, &torn_new_log);
    std::fs::write(only(&torn_new_log, "log-"), [0u8; 36]).unwrap();
    std::fs::copy(&old_log, torn_new_log.join(&old_log_name)).unwrap();
    assert_eq!(reopen(&torn_new_log).await, recs(&["s"]));
}

#[tokio::test]
async fn log_without_its_snapshot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, new) = old_and_new_states(tmp.path()).await;
    std::fs::remove_file(only(&new, "snapshot-")).unwrap();
    let error = Wal::open(&new, sync()).await.unwrap_err();
    assert!(matches!(error, WalError::Corrupt { .. }), "{error}");
}

#[tokio::test]
async fn batch_durability_resolves_at_once_and_flushes_within_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions {
        durability: Durability::Batch,
        flush_interval: Duration::from_millis(20),
        max_batch_bytes: 1 << 20,
    };
    let (wal, _) = Wal::open(tmp.path(), options).await.unwrap();
    let before = wal.stats().fsyncs;
    wal.append_many(recs(&["x", "y"])).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.stats().fsyncs == before {
        assert!(
            Instant::now() < deadline,
            "no fsync after the flush interval"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = wal.stats();
    assert_eq!(stats.records, 2);
    assert_eq!(stats.fsyncs, before + 1);
    wal.close().await.unwrap();
    assert_eq!(reopen(tmp.path()).await, recs(&["x", "y"]));
}

#[tokio::test]
async fn no_durability_writes_without_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions {
        durability: Durability::None,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(tmp.path(), options).await.unwrap();
    let before = wal.stats().fsyncs;
    for i in 0..10 {
        wal.append(rec(&i.to_string())).await.unwrap();
    }
    assert_eq!(wal.stats().fsyncs, before);
    // The records are in the file already (the OS has them), before any close.
    let len = std::fs::metadata(only(tmp.path(), "log-")).unwrap().len();
    assert_eq!(len, 36 + 10 * (8 + 1));
    wal.close().await.unwrap();
    assert_eq!(wal.stats().fsyncs, before + 1, "close fsyncs");
    assert_eq!(reopen(tmp.path()).await.len(), 10);
}

#[tokio::test]
async fn oversized_record_is_refused_with_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(tmp.path(), sync()).await.unwrap();
    let big = Bytes::from(vec![0u8; MAX_RECORD_BYTES + 1]);
    let error = wal.append(big.clone()).await.unwrap_err();
    assert!(
        matches!(error, WalError::RecordTooLarge { len, max }
            if len == MAX_RECORD_BYTES + 1 && max == MAX_RECORD_BYTES),
        "{error}"
    );
    let error = wal.compact(vec![rec("ok"), big]).await.unwrap_err();
    assert!(matches!(error, WalError::RecordTooLarge { .. }), "{error}");
    // Still usable, and nothing of the refused calls was stored.
    wal.append(rec("fine")).await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(reopen(tmp.path()).await, recs(&["fine"]));
}

#[tokio::test]
async fn calls_after_close_fail_with_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(tmp.path(), sync()).await.unwrap();
    let other = wal.clone();
    wal.close().await.unwrap();
    assert!(matches!(
        other.append(rec("late")).await,
        Err(WalError::Closed)
    ));
    assert!(matches!(
        other.compact(Vec::new()).await,
        Err(WalError::Closed)
    ));
    assert!(matches!(other.close().await, Err(WalError::Closed)));
}
