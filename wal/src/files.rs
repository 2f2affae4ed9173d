//! File names in the WAL directory and the small file system helpers (create, fsync).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Name of the log of generation `generation`.
pub(crate) fn log_name(generation: u64) -> String {
    format!("log-{generation:020}.bin")
}

/// Name of the snapshot of generation `generation`.
pub(crate) fn snapshot_name(generation: u64) -> String {
    format!("snapshot-{generation:020}.bin")
}

/// Name of the snapshot of generation `generation` while it is being written.
pub(crate) fn temp_snapshot_name(generation: u64) -> String {
    format!("snapshot-{generation:020}.bin.tmp")
}

/// Name under which a log with mid-file corruption is kept for inspection.
pub(crate) fn corrupt_copy_name(generation: u64) -> String {
    format!("log-{generation:020}.bin.corrupt")
}

/// What a directory entry is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `log-<gen>.bin`.
    Log(u64),
    /// `snapshot-<gen>.bin`.
    Snapshot(u64),
    /// `*.tmp`: a snapshot whose writing was interrupted.
    Temp,
    /// Anything else (left alone).
    Other,
}

/// Classifies a file name.
pub(crate) fn classify(name: &str) -> Entry {
    if name.ends_with(".tmp") {
        return Entry::Temp;
    }
    let generation = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(".bin"))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
    };
    if let Some(g) = generation("log-") {
        Entry::Log(g)
    } else if let Some(g) = generation("snapshot-") {
        Entry::Snapshot(g)
    } else {
        Entry::Other
    }
}

/// Creates the WAL directory (and parents) with mode 0700 if it is missing.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates (or truncates) a file readable by the owner only, opened for writing.
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// fsyncs a directory so that renames, creations and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_classify_back_to_their_generation() {
        assert_eq!(classify(&log_name(7)), Entry::Log(7));
        assert_eq!(
            classify(&snapshot_name(u64::MAX)),
            Entry::Snapshot(u64::MAX)
        );
        assert_eq!(classify(&temp_snapshot_name(3)), Entry::Temp);
        assert_eq!(classify(&corrupt_copy_name(3)), Entry::Other);
        assert_eq!(classify("log-.bin"), Entry::Other);
        assert_eq!(classify("log-12x.bin"), Entry::Other);
        assert_eq!(classify("notes.txt"), Entry::Other);
    }

    #[test]
    fn names_sort_by_generation() {
        assert!(log_name(9) < log_name(10));
        assert!(snapshot_name(99) < snapshot_name(100));
    }
}
