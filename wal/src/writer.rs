//! The writer thread: group commit of appended records, the fsync policy, and compaction.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::files;
use super::format::{self, FileKind, Header, HEADER_LEN};
use super::shared::Shared;
use super::{Durability, WalError, WalOptions};

/// Resolves a waiting `Commit` (or `compact`/`close` call).
pub(crate) type Done = oneshot::Sender<Result<(), WalError>>;

/// A message from a `Wal` handle to the writer thread.
#[derive(Debug)]
pub(crate) enum Request {
    /// Append records; `done` is `None` when the caller does not wait (Batch durability).
    Append {
        records: Vec<Bytes>,
        done: Option<Done>,
    },
    /// Anything that ends a batch.
    Control(Control),
}

/// Requests that are handled between batches, in queue order.
#[derive(Debug)]
pub(crate) enum Control {
    /// Replace everything appended before with `snapshot`.
    Compact { snapshot: Vec<Bytes>, done: Done },
    /// Flush, fsync and stop.
    Close { done: Done },
}

/// What woke the writer.
enum Wake {
    Request(Request),
    /// Batch durability: the oldest unsynced write is `flush_interval` old.
    FlushDue,
    /// Every `Wal` handle is gone.
    Disconnected,
}

/// Owns the current log file; the only code that writes to the WAL directory after open.
pub(crate) struct Writer {
    dir: PathBuf,
    generation: u64,
    log: File,
    log_path: PathBuf,
    options: WalOptions,
    shared: Arc<Shared>,
    /// Frames of the batch being gathered.
    buf: Vec<u8>,
    /// Records in `buf`.
    batch_records: u64,
    /// Callers waiting for the batch in `buf`.
    waiters: Vec<Done>,
    /// When the log was first written without an fsync since; drives Batch flushes.
    unsynced_since: Option<Instant>,
}

impl Writer {
    /// A writer appending to `log` (already positioned at its end).
    pub(crate) fn new(
        dir: PathBuf,
        generation: u64,
        log: File,
        log_path: PathBuf,
        options: WalOptions,
        shared: Arc<Shared>,
    ) -> Writer {
        Writer {
            dir,
            generation,
            log,
            log_path,
            options,
            shared,
            buf: Vec::new(),
            batch_records: 0,
            waiters: Vec::new(),
            unsynced_since: None,
        }
    }

    /// Serves requests until `close` or until every handle is dropped.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        loop {
            let request = match self.wait(&rx) {
                Wake::Request(request) => request,
                Wake::FlushDue => {
                    // A failure is logged and kept in `shared`; nobody waits for this flush.
                    let _ = self.sync_log();
                    continue;
                }
                Wake::Disconnected => {
                    let _ = self.finish();
                    return;
                }
            };
            let control = match request {
                Request::Append { records, done } => {
                    self.stage(&records, done);
                    self.drain(&rx)
                }
                Request::Control(control) => Some(control),
            };
            self.commit_batch();
            match control {
                None => {}
                Some(Control::Compact { snapshot, done }) => {
                    let _ = done.send(self.compact(&snapshot));
                }
                Some(Control::Close { done }) => {
                    self.shared.mark_closed();
                    // Appends that raced with close were queued before the flag was visible:
                    // store them (Batch mode already told their callers "ok").
                    while let Ok(request) = rx.try_recv() {
                        match request {
                            Request::Append { records, done } => self.stage(&records, done),
                            Request::Control(Control::Compact { done, .. })
                            | Request::Control(Control::Close { done }) => {
                                let _ = done.send(Err(WalError::Closed));
                            }
                        }
                    }
                    self.commit_batch();
                    let _ = done.send(self.finish());
                    return;
                }
            }
        }
    }

    fn wait(&self, rx: &Receiver<Request>) -> Wake {
        let deadline = match (self.options.durability, self.unsynced_since) {
            (Durability::Batch, Some(since)) => Some(since + self.options.flush_interval),
            _ => None,
        };
        let Some(deadline) = deadline else {
            return rx.recv().map_or(Wake::Disconnected, Wake::Request);
        };
        let now = Instant::now();
        if now >= deadline {
            return Wake::FlushDue;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(request) => Wake::Request(request),
            Err(RecvTimeoutError::Timeout) => Wake::FlushDue,
            Err(RecvTimeoutError::Disconnected) => Wake::Disconnected,
        }
    }

    /// Adds records to the batch being gathered.
    fn stage(&mut self, records: &[Bytes], done: Option<Done>) {
        for record in records {
            format::encode_frame(&mut self.buf, record);
        }
        self.batch_records += records.len() as u64;
        self.waiters.extend(done);
    }

    /// Takes every append already queued, up to `max_batch_bytes`; returns a control request
    /// met on the way (it ends the batch, keeping queue order).
    fn drain(&mut self, rx: &Receiver<Request>) -> Option<Control> {
        while self.buf.len() < self.options.max_batch_bytes {
            match rx.try_recv() {
                Ok(Request::Append { records, done }) => self.stage(&records, done),
                Ok(Request::Control(control)) => return Some(control),
                Err(_) => return None,
            }
        }
        None
    }

    /// Writes the gathered batch with one write, fsyncs it per the policy, resolves waiters.
    fn commit_batch(&mut self) {
        let result = self.write_batch();
        for done in self.waiters.drain(..) {
            let _ = done.send(result.clone());
        }
    }

    fn write_batch(&mut self) -> Result<(), WalError> {
        let records = std::mem::take(&mut self.batch_records);
        let len = self.buf.len();
        let written = if let Some(error) = self.shared.failed() {
            Err(error)
        } else if len == 0 {
            Ok(())
        } else {
            self.log
                .write_all(&self.buf)
                .map_err(|e| self.fail(WalError::io("write", &self.log_path, e)))
        };
        self.buf.clear();
        // Keep a big buffer around only if batches are normally that big.
        self.buf
            .shrink_to(self.options.max_batch_bytes.saturating_mul(2));
        written?;
        if len == 0 {
            return Ok(());
        }
        self.shared.note_batch(records, len as u64);
        self.unsynced_since.get_or_insert_with(Instant::now);
        if self.options.durability == Durability::Sync {
            self.sync_log()?;
        }
        Ok(())
    }

    /// fdatasyncs the log if anything was written since the last sync.
    fn sync_log(&mut self) -> Result<(), WalError> {
        if self.unsynced_since.take().is_none() {
            return Ok(());
        }
        if let Some(error) = self.shared.failed() {
            return Err(error);
        }
        self.shared
            .sync_data(&self.log, &self.log_path)
            .map_err(|e| self.fail(e))
    }

    /// Makes every written record durable before the writer stops.
    fn finish(&mut self) -> Result<(), WalError> {
        self.sync_log()?;
        self.shared.failed().map_or(Ok(()), Err)
    }

    /// Marks the WAL failed. Never retried: after a failed fsync the kernel may have
    /// dropped the dirty pages and a second fsync could report success for lost data.
    fn fail(&self, error: WalError) -> WalError {
        self.shared.fail(error.clone());
        error
    }

    /// Replaces the state with `snapshot`: temp file, fsync, rename, fsync dir, new log,
    /// then removal of the superseded files.
    fn compact(&mut self, snapshot: &[Bytes]) -> Result<(), WalError> {
        if let Some(error) = self.shared.failed() {
            return Err(error);
        }
        // If the compaction dies before the rename, recovery falls back to this log.
        self.sync_log()?;
        let next = self.generation + 1;
        let temp = self.dir.join(files::temp_snapshot_name(next));
        if let Err(error) = self.write_snapshot(&temp, next, snapshot) {
            // Nothing changed yet: the WAL stays usable with the old log.
            tracing::error!(%error, "WAL: compaction failed writing the snapshot");
            let _ = std::fs::remove_file(&temp);
            return Err(error);
        }
        // From the rename on, the durable state is the new one (or uncertain on error): any
        // failure is fatal, since appending more to the old log could be lost on recovery.
        let snapshot_path = self.dir.join(files::snapshot_name(next));
        std::fs::rename(&temp, &snapshot_path)
            .map_err(|e| self.fail(WalError::io("rename", &temp, e)))?;
        self.shared.sync_dir(&self.dir).map_err(|e| self.fail(e))?;
        let log = create_log(&self.dir, next, &self.shared).map_err(|e| self.fail(e))?;
        let old = self.generation;
        self.log = log;
        self.log_path = self.dir.join(files::log_name(next));
        self.generation = next;
        self.shared.set_log_bytes(0);

        // Superseded files; if removal fails, recovery removes them later.
        let mut removed = false;
        for name in [files::snapshot_name(old), files::log_name(old)] {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "WAL: cannot remove superseded file");
                }
            }
        }
        if removed {
            if let Err(error) = self.shared.sync_dir(&self.dir) {
                tracing::warn!(%error, "WAL: cannot fsync directory after removing superseded files");
            }
        }
        tracing::debug!(generation = next, records = snapshot.len(), "WAL compacted");
        Ok(())
    }

    fn write_snapshot(
        &self,
        path: &Path,
        generation: u64,
        records: &[Bytes],
    ) -> Result<(), WalError> {
        let io = |op| move |e| WalError::io(op, path, e);
        let file = files::create_file(path).map_err(io("create"))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let header = Header {
            kind: FileKind::Snapshot,
            generation,
            records: records.len() as u64,
        };
        out.write_all(&header.encode()).map_err(io("write"))?;
        let mut bytes = HEADER_LEN as u64;
        for record in records {
            out.write_all(&format::frame_header(record))
                .map_err(io("write"))?;
            out.write_all(record).map_err(io("write"))?;
            bytes += format::frame_len(record.len()) as u64;
        }
        let file = out
            .into_inner()
            .map_err(|e| WalError::io("write", path, e.into_error()))?;
        self.shared.note_written(bytes);
        self.shared.sync_all(&file, path)
    }
}

/// Creates an empty log of `generation` (header only), durable with its directory entry.
pub(crate) fn create_log(dir: &Path, generation: u64, shared: &Shared) -> Result<File, WalError> {
    let path = dir.join(files::log_name(generation));
    let mut file = files::create_file(&path).map_err(|e| WalError::io("create", &path, e))?;
    let header = Header {
        kind: FileKind::Log,
        generation,
        records: 0,
    };
    file.write_all(&header.encode())
        .map_err(|e| WalError::io("write", &path, e))?;
    shared.note_written(HEADER_LEN as u64);
    shared.sync_all(&file, &path)?;
    shared.sync_dir(dir)?;
    Ok(file)
}
