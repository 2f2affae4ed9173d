//! A crash-safe, append-only write-ahead log of opaque records with group commit.
//!
//! The WAL knows nothing about MQTT: it stores [`Bytes`] records in append order and gives
//! them back, in order, when reopened. It is used by the broker's persistence and by the
//! bridge's durable queue.
//!
//! # Use
//!
//! * [`Wal::open`] recovers the directory and returns the records: the latest snapshot's,
//!   then those appended after it.
//! * [`Wal::append`] / [`Wal::append_many`] enqueue at once (no await) and return a
//!   [`Commit`] that resolves when the records are durable per [`Durability`]. Order of
//!   calls is order in the log, across every clone of the handle. Dropping a `Commit` does
//!   not cancel the append.
//! * [`Wal::compact`] says "everything appended before this call is replaced by these
//!   records"; use [`Wal::log_bytes`] to decide when.
//! * [`Wal::close`] flushes, fsyncs and stops the writer. [`Wal`] is a cheap `Clone` handle.
//!
//! # Group commit
//!
//! One writer thread owns the files. It takes every pending append (up to
//! `max_batch_bytes`), writes them with one `write` call, issues one `fdatasync`
//! (Sync durability) and then resolves every waiter of the batch, so N concurrent appends
//! cost about one fsync, not N. Compaction and close run between batches, in queue order.
//!
//! # On-disk format (version 1)
//!
//! The directory (created 0700; files 0600) holds, for the current generation `G`
//! (a 20-digit zero-padded decimal, 0 before the first compaction):
//!
//! * `snapshot-G.bin`: the compacted state (absent for generation 0);
//! * `log-G.bin`: the records appended after that snapshot;
//! * transiently `snapshot-G.bin.tmp` (a snapshot being written), and older-generation
//!   files that a crash during compaction left behind; recovery removes both;
//! * `log-G.bin.corrupt`: a copy of a log found corrupt in the middle (kept for inspection).
//!
//! Every file starts with a 36-byte header, all integers little-endian:
//!
//! ```text
//! magic "MQGWAL\r\n" (8) | version u32 = 1 | kind u32 (1 log, 2 snapshot) | generation u64
//!   | record count u64 (snapshots; 0 in logs) | crc32 of the 32 bytes before it (u32)
//! ```
//!
//! then records, each framed as
//!
//! ```text
//! len u32 | crc32 (u32) of the 4 len bytes followed by the payload | payload (len bytes)
//! ```
//!
//! with `len <= MAX_RECORD_BYTES`; larger records are refused by `append` and `compact`.
//!
//! # Recovery
//!
//! * Leftover `*.tmp` snapshots are removed: a compaction that did not reach its rename never
//!   happened.
//! * The highest-numbered snapshot `G` wins; its records come first. Logs and snapshots of
//!   lower generations are superseded and removed. A log of a *higher* generation than every
//!   snapshot cannot come from a crash and is refused ([`WalError::Corrupt`]).
//! * `log-G.bin` is replayed frame by frame. At the first invalid frame (partial, bad length,
//!   bad CRC) the log is truncated there and the valid records before it are kept:
//!   * if no valid frame follows it, it is a **torn tail** (crash or power loss during a
//!     write): logged at WARN with the file and offset;
//!   * if the next frame is valid, the log was damaged **in the middle** (bit rot, bad
//!     sector): logged at ERROR, the file is first copied to `log-G.bin.corrupt`, and the
//!     records after the bad one are dropped. Startup is not prevented in either case.
//! * A log whose header is torn (crash while creating it: nothing was acked from it) is
//!   recreated. A damaged snapshot (snapshots are complete by construction, so this means
//!   damage after the fact) yields its valid records with an ERROR log. A header with a
//!   wrong magic, another format version, or a kind/generation contradicting the file name
//!   is refused with [`WalError::Corrupt`] rather than overwritten.
//!
//! # Compaction steps and crashes
//!
//! 1. fsync the current log (so a crash before step 3 falls back to it intact);
//! 2. write `snapshot-(G+1).bin.tmp`, fsync it;
//! 3. rename it to `snapshot-(G+1).bin`, fsync the directory: **the commit point**;
//! 4. create `log-(G+1).bin` (header), fsync it and the directory; later appends go there;
//! 5. remove `snapshot-G.bin` and `log-G.bin`, fsync the directory.
//!
//! A crash before 3 recovers generation G (the tmp file is removed); from 3 on it recovers
//! G+1 (a missing log is created, stale G files are removed). Never a mix.
//!
//! # Errors are sticky (fsyncgate)
//!
//! A failed write or fsync fails every `Commit` of its batch and is logged; afterwards every
//! call fails with [`WalError::Failed`] until the WAL is reopened (recovery then trusts only
//! what it can read back). An fsync error is never retried: Linux may drop the dirty pages
//! and clear the error, so a retry could report success for data that is gone (the lesson
//! PostgreSQL learnt in 2018). With Batch durability, records whose `Commit` already
//! resolved may be lost this way; that is the trade Batch makes.

mod error;
mod files;
mod format;
mod recovery;
mod shared;
mod writer;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

pub use error::WalError;
pub use format::MAX_RECORD_BYTES;
pub use shared::WalStats;

use shared::Shared;
use writer::{Control, Request, Writer};

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The `Commit` resolves after the record's batch is fdatasync'ed: survives power loss.
    #[default]
    Sync,
    /// The `Commit` resolves at once; the writer fdatasyncs at most `flush_interval` after
    /// the first unsynced write. A crash can lose up to that window of acked records.
    Batch,
    /// The `Commit` resolves once the record is written to the OS (survives the process
    /// being killed, not power loss); never fsynced except at `close` and compaction.
    None,
}

/// How a [`Wal`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// When a `Commit` resolves.
    pub durability: Durability,
    /// Batch durability: the longest a written record waits for its fsync.
    pub flush_interval: Duration,
    /// The writer stops gathering a batch once it holds this many bytes (one record may go
    /// beyond it); bounds the writer's memory and the latency of one batch.
    pub max_batch_bytes: usize,
}

impl Default for WalOptions {
    /// Sync durability, 50 ms flush interval, 1 MiB batches.
    fn default() -> WalOptions {
        WalOptions {
            durability: Durability::Sync,
            flush_interval: Duration::from_millis(50),
            max_batch_bytes: 1 << 20,
        }
    }
}

/// A handle to an open write-ahead log. Clones share the one writer thread.
#[derive(Debug, Clone)]
pub struct Wal {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    durability: Durability,
}

impl Wal {
    /// Opens (creating if missing) the WAL in `dir` and recovers it; returns the handle and
    /// the records: the latest snapshot's first, then those appended after it, in order.
    ///
    /// A torn or corrupt log tail is truncated (see the module docs), not an error.
    pub async fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Vec<Bytes>), WalError> {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        let thread_dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("wal-writer".to_owned())
            .spawn(
                move || match recovery::recover(&thread_dir, &thread_shared) {
                    Ok(recovered) => {
                        let writer = Writer::new(
                            thread_dir,
                            recovered.generation,
                            recovered.log,
                            recovered.log_path,
                            options,
                            thread_shared,
                        );
                        if ready_tx.send(Ok(recovered.records)).is_ok() {
                            writer.run(rx);
                        }
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                    }
                },
            )
            .map_err(|e| WalError::io("spawn writer thread for", dir, e))?;
        let records = match ready_rx.await {
            Ok(Ok(records)) => records,
            Ok(Err(error)) => {
                tracing::error!(dir = %dir.display(), %error, "WAL recovery failed");
                return Err(error);
            }
            Err(_) => return Err(WalError::Closed),
        };
        tracing::info!(
            dir = %dir.display(),
            records = records.len(),
            log_bytes = shared.log_bytes(),
            "WAL opened"
        );
        let wal = Wal {
            tx,
            shared,
            durability: options.durability,
        };
        Ok((wal, records))
    }

    /// Appends one record. Enqueues immediately; the returned [`Commit`] resolves when the
    /// record is durable per the [`Durability`].
    pub fn append(&self, record: Bytes) -> Commit {
        self.append_many(std::iter::once(record))
    }

    /// Appends records, consecutive in the log, with one [`Commit`] for all of them.
    pub fn append_many(&self, records: impl IntoIterator<Item = Bytes>) -> Commit {
        let records: Vec<Bytes> = records.into_iter().collect();
        if let Err(error) = self.admit(&records) {
            return Commit::ready(Err(error));
        }
        match self.durability {
            Durability::Batch => Commit::ready(self.send(Request::Append {
                records,
                done: None,
            })),
            Durability::Sync | Durability::None => {
                let (done, rx) = oneshot::channel();
                match self.send(Request::Append {
                    records,
                    done: Some(done),
                }) {
                    Ok(()) => Commit::waiting(rx),
                    Err(error) => Commit::ready(Err(error)),
                }
            }
        }
    }

    /// Replaces everything appended before this call with `snapshot` (crash-safe; see the
    /// module docs). Ordered at call time, not at first poll: appends made after this call
    /// returns land in the new log. Resolves when the new snapshot is durable.
    pub fn compact(
        &self,
        snapshot: Vec<Bytes>,
    ) -> impl Future<Output = Result<(), WalError>> + Send + 'static {
        let sent = self.admit(&snapshot).and_then(|()| {
            let (done, rx) = oneshot::channel();
            self.send(Request::Control(Control::Compact { snapshot, done }))
                .map(|()| rx)
        });
        async move { sent?.await.unwrap_or(Err(WalError::Closed)) }
    }

    /// Bytes of records in the current log, i.e. written since the last snapshot.
    pub fn log_bytes(&self) -> u64 {
        self.shared.log_bytes()
    }

    /// Counters since open: fsyncs, bytes written, records, batches.
    pub fn stats(&self) -> WalStats {
        self.shared.stats()
    }

    /// Writes and fsyncs everything pending, then stops the writer; later calls on any
    /// clone fail with [`WalError::Closed`] (so does a second `close`). Returns the sticky
    /// error if the WAL had failed.
    pub async fn close(&self) -> Result<(), WalError> {
        let (done, rx) = oneshot::channel();
        self.send(Request::Control(Control::Close { done }))?;
        let result = rx.await.unwrap_or(Err(WalError::Closed));
        tracing::info!(ok = result.is_ok(), "WAL closed");
        result
    }

    /// Refuses oversized records, and everything once the WAL failed or closed.
    fn admit(&self, records: &[Bytes]) -> Result<(), WalError> {
        if let Some(record) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
            let error = WalError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD_BYTES,
            };
            tracing::warn!(%error, "WAL refused a record");
            return Err(error);
        }
        if self.shared.is_closed() {
            return Err(WalError::Closed);
        }
        self.shared.failed().map_or(Ok(()), Err)
    }

    fn send(&self, request: Request) -> Result<(), WalError> {
        self.tx.send(request).map_err(|_| WalError::Closed)
    }
}

/// Resolves when appended records are durable per the WAL's [`Durability`]
/// (`Ok`), or with the error that kept them from being stored.
#[derive(Debug)]
#[must_use = "the Commit tells when the record is durable; ack only after it resolves Ok"]
pub struct Commit {
    state: CommitState,
}

#[derive(Debug)]
enum CommitState {
    /// Known at append time (Batch durability, or refused); `None` once taken.
    Ready(Option<Result<(), WalError>>),
    /// Resolved by the writer thread.
    Waiting(oneshot::Receiver<Result<(), WalError>>),
}

impl Commit {
    fn ready(result: Result<(), WalError>) -> Commit {
        Commit {
            state: CommitState::Ready(Some(result)),
        }
    }

    fn waiting(rx: oneshot::Receiver<Result<(), WalError>>) -> Commit {
        Commit {
            state: CommitState::Waiting(rx),
        }
    }
}

impl Future for Commit {
    type Output = Result<(), WalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            // Polled again after completion: nothing more to report.
            CommitState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(WalError::Closed)))
            }
            // The writer dropped the sender without answering: it stopped.
            CommitState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|answer| answer.unwrap_or(Err(WalError::Closed))),
        }
    }
}
