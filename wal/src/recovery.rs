//! Recovery at open: load the latest snapshot, replay its log, cut a torn tail, drop stale files.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::files::{self, Entry};
use super::format::{self, FileKind, Header, HeaderError, ScanEnd, HEADER_LEN};
use super::shared::Shared;
use super::writer::create_log;
use super::WalError;

/// What recovery hands to the writer and the caller.
pub(crate) struct Recovered {
    /// The current generation (0 until the first compaction).
    pub(crate) generation: u64,
    /// The current log, positioned at its end.
    pub(crate) log: File,
    /// Its path.
    pub(crate) log_path: PathBuf,
    /// Snapshot records, then log records, in order.
    pub(crate) records: Vec<Bytes>,
}

/// Recovers the WAL in `dir`, creating the directory and an empty log if needed.
pub(crate) fn recover(dir: &Path, shared: &Shared) -> Result<Recovered, WalError> {
    files::create_dir(dir).map_err(|e| WalError::io("create directory", dir, e))?;
    let mut logs = Vec::new();
    let mut snapshots = Vec::new();
    let mut dir_changed = false;
    let listing = std::fs::read_dir(dir).map_err(|e| WalError::io("read directory", dir, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| WalError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match files::classify(name) {
            Entry::Log(generation) => logs.push(generation),
            Entry::Snapshot(generation) => snapshots.push(generation),
            Entry::Temp => {
                // A snapshot whose compaction crashed before the rename: never part of the state.
                let path = entry.path();
                tracing::warn!(file = %path.display(), "WAL: removing leftover temporary snapshot");
                match std::fs::remove_file(&path) {
                    Ok(()) => dir_changed = true,
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "WAL: cannot remove leftover temporary snapshot")
                    }
                }
            }
            Entry::Other => {}
        }
    }

    let generation = snapshots.iter().copied().max().unwrap_or(0);
    if let Some(orphan) = logs.iter().copied().filter(|&g| g > generation).min() {
        return Err(WalError::Corrupt {
            path: dir.join(files::log_name(orphan)),
            reason: format!(
                "log of generation {orphan} has no snapshot (latest snapshot: generation {generation})"
            ),
        });
    }
    let mut records = if snapshots.contains(&generation) {
        load_snapshot(dir, generation)?
    } else {
        Vec::new()
    };
    let (log, log_path) = open_log(dir, generation, &mut records, shared)?;

    // Files of older generations are superseded by the snapshot just loaded; a crash during
    // compaction can leave them behind.
    let stale = snapshots
        .iter()
        .filter(|&&g| g < generation)
        .map(|&g| files::snapshot_name(g))
        .chain(
            logs.iter()
                .filter(|&&g| g < generation)
                .map(|&g| files::log_name(g)),
        );
    for name in stale {
        let path = dir.join(name);
        tracing::info!(file = %path.display(), "WAL: removing file superseded by snapshot {generation}");
        match std::fs::remove_file(&path) {
            Ok(()) => dir_changed = true,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "WAL: cannot remove superseded file")
            }
        }
    }
    if dir_changed {
        shared.sync_dir(dir)?;
    }
    Ok(Recovered {
        generation,
        log,
        log_path,
        records,
    })
}

fn load_snapshot(dir: &Path, generation: u64) -> Result<Vec<Bytes>, WalError> {
    let path = dir.join(files::snapshot_name(generation));
    let data = std::fs::read(&path).map_err(|e| WalError::io("read", &path, e))?;
    let header = Header::decode(&data).map_err(|e| header_error(&path, &e))?;
    check_header(&path, header, FileKind::Snapshot, generation)?;
    let scan = format::scan_frames(&data, HEADER_LEN);
    let expected = header.records;
    if scan.end != ScanEnd::Clean || scan.records.len() as u64 != expected {
        // Snapshots are renamed into place only once complete and fsynced, so this is damage
        // after the fact; keep what is readable rather than refuse to start.
        tracing::error!(
            file = %path.display(),
            expected,
            recovered = scan.records.len(),
            offset = scan.valid_len,
            "WAL: snapshot is damaged; recovered only its valid records"
        );
    }
    Ok(scan.records)
}

fn open_log(
    dir: &Path,
    generation: u64,
    records: &mut Vec<Bytes>,
    shared: &Shared,
) -> Result<(File, PathBuf), WalError> {
    let path = dir.join(files::log_name(generation));
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let log = create_log(dir, generation, shared)?;
            return Ok((log, path));
        }
        Err(e) => return Err(WalError::io("read", &path, e)),
    };
    let header = match Header::decode(&data) {
        Ok(header) => header,
        // The header is written and fsynced before any record, so a bad header with nothing
        // after it is a crash while the log was being created: nothing was ever acked from it.
        Err(HeaderError::Short | HeaderError::BadMagic | HeaderError::BadCrc)
            if data.len() <= HEADER_LEN =>
        {
            tracing::warn!(file = %path.display(), len = data.len(), "WAL: log header torn; starting the log afresh");
            let log = create_log(dir, generation, shared)?;
            return Ok((log, path));
        }
        Err(e) => return Err(header_error(&path, &e)),
    };
    check_header(&path, header, FileKind::Log, generation)?;

    let scan = format::scan_frames(&data, HEADER_LEN);
    records.extend(scan.records);
    let truncate = match scan.end {
        ScanEnd::Clean => false,
        ScanEnd::TornTail { offset, reason } => {
            tracing::warn!(
                file = %path.display(),
                offset,
                dropped_bytes = data.len() - offset,
                reason,
                "WAL: truncating torn tail (crash or power loss during a write)"
            );
            true
        }
        ScanEnd::Corrupt { offset, reason } => {
            let copy = dir.join(files::corrupt_copy_name(generation));
            tracing::error!(
                file = %path.display(),
                offset,
                dropped_bytes = data.len() - offset,
                reason,
                copy = %copy.display(),
                "WAL: corrupt record in the middle of the log; recovering up to it and dropping the rest"
            );
            std::fs::write(&copy, &data).map_err(|e| WalError::io("write", &copy, e))?;
            true
        }
    };
    let log = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| WalError::io("open", &path, e))?;
    if truncate {
        log.set_len(scan.valid_len as u64)
            .map_err(|e| WalError::io("truncate", &path, e))?;
        shared.sync_all(&log, &path)?;
    }
    shared.set_log_bytes((scan.valid_len - HEADER_LEN) as u64);
    Ok((log, path))
}

fn check_header(
    path: &Path,
    header: Header,
    kind: FileKind,
    generation: u64,
) -> Result<(), WalError> {
    if header.kind != kind || header.generation != generation {
        return Err(WalError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "header says {:?} of generation {}, name says {kind:?} of generation {generation}",
                header.kind, header.generation
            ),
        });
    }
    Ok(())
}

fn header_error(path: &Path, error: &HeaderError) -> WalError {
    let reason = match error {
        HeaderError::Short => "shorter than its header".to_owned(),
        HeaderError::BadMagic => "not a WAL file (bad magic)".to_owned(),
        HeaderError::BadCrc => "header checksum mismatch".to_owned(),
        HeaderError::Version(v) => format!(
            "format version {v}, this build reads version {}",
            format::VERSION
        ),
        HeaderError::Kind(k) => format!("unknown file kind {k}"),
    };
    WalError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}
