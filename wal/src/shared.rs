//! State shared between the `Wal` handles and the writer thread: counters and the failure flag.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use super::files;
use super::WalError;

/// Counters of what the WAL did since it was opened (including recovery).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// fsync/fdatasync calls on files and directories.
    pub fsyncs: u64,
    /// Bytes written to log and snapshot files (headers and frames included).
    pub bytes_written: u64,
    /// Records appended to the log (snapshot records not counted).
    pub records: u64,
    /// Write batches: each is one `write` call of every record pending at that moment.
    pub batches: u64,
}

/// Shared between every `Wal` clone and the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    records: AtomicU64,
    batches: AtomicU64,
    /// Frame bytes in the current log (header excluded).
    log_bytes: AtomicU64,
    /// The first write/fsync error; once set, everything fails with it.
    failure: OnceLock<WalError>,
    /// Set when `close` ran: later appends fail fast with `Closed`.
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn stats(&self) -> WalStats {
        WalStats {
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn set_log_bytes(&self, bytes: u64) {
        self.log_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Accounts for one batch of `records` records written as `bytes` bytes of frames.
    pub(crate) fn note_batch(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        self.log_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Accounts for bytes written outside the log's record batches (headers, snapshots).
    pub(crate) fn note_written(&self, bytes: u64) {
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The error that failed the WAL, wrapped, if any.
    pub(crate) fn failed(&self) -> Option<WalError> {
        self.failure.get().map(|cause| WalError::Failed {
            cause: std::sync::Arc::new(cause.clone()),
        })
    }

    /// Records the first fatal error (later ones are consequences of it).
    pub(crate) fn fail(&self, error: WalError) {
        tracing::error!(%error, "WAL write failed: failing pending and future appends until reopened");
        let _ = self.failure.set(error);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// fdatasync of a file's data (and the metadata needed to read it back).
    pub(crate) fn sync_data(&self, file: &File, path: &Path) -> Result<(), WalError> {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        file.sync_data()
            .map_err(|e| WalError::io("fdatasync", path, e))
    }

    /// fsync of a file's data and metadata (used for new files).
    pub(crate) fn sync_all(&self, file: &File, path: &Path) -> Result<(), WalError> {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        file.sync_all().map_err(|e| WalError::io("fsync", path, e))
    }

    /// fsync of a directory, making entries created, renamed or removed in it durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), WalError> {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        files::sync_dir(dir).map_err(|e| WalError::io("fsync directory", dir, e))
    }
}
