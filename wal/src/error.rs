//! The WAL's error type.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the write-ahead log.
///
/// Cloneable so that one failed write or fsync can fail every `Commit` waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// A file system operation failed.
    #[error("WAL I/O error: {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("fdatasync", "rename", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A record (or snapshot record) is larger than [`MAX_RECORD_BYTES`](super::MAX_RECORD_BYTES).
    #[error("WAL record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Size of the refused record.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A file in the WAL directory is not a WAL file this build can read, or its header
    /// contradicts its name. Recovery refuses to start rather than destroy it.
    #[error("WAL file {} is unusable: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier write or fsync failed; the WAL accepts nothing until it is reopened
    /// (an fsync error may have dropped dirty pages, so retrying could ack lost data).
    #[error("WAL failed earlier and must be reopened: {cause}")]
    Failed {
        /// The error that failed it.
        #[source]
        cause: Arc<WalError>,
    },
    /// The WAL was closed (or its writer thread is gone).
    #[error("WAL is closed")]
    Closed,
}

impl WalError {
    /// Builds an [`WalError::Io`] from an `io::Error`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> WalError {
        WalError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
