//! `[persistence]`: the on-disk store of sessions, retained messages and bridge queues.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The data directory used when none is configured.
pub const DEFAULT_DATA_DIR: &str = "./mqgate-data";

/// `[persistence]`: what survives a restart, and when it reaches the disk.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistenceConfig {
    /// Keep sessions, QoS 1/2 messages, retained messages and bridge queues on disk.
    pub enabled: bool,
    /// Directory of the store (created if missing).
    pub data_dir: PathBuf,
    /// When a QoS 1/2 message is acknowledged relative to its fsync.
    pub durability: Durability,
    /// `sync`: how long a commit waits for more writes to share one fsync (group commit).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub commit_window: Duration,
    /// `batch`: the longest time an acknowledged write stays unsynced.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub flush_interval: Duration,
    /// Rewrite (compact) the store log once it has grown by this many bytes of dead records.
    pub compaction_threshold_bytes: u64,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            durability: Durability::Sync,
            // An SD-card fsync takes milliseconds; waiting 2 ms lets a burst of publishes
            // share one fsync while adding little to each acknowledgement.
            commit_window: Duration::from_millis(2),
            // `batch` loses at most one second of acknowledged messages on power loss.
            flush_interval: Duration::from_secs(1),
            // Compacting rewrites live data; 64 MiB of garbage keeps that rare on flash.
            compaction_threshold_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Durability policy (`durability = "sync" | "batch" | "none"`; `"async"` = `"batch"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Durability {
    /// Acknowledge QoS 1/2 only after the group-committed fsync: nothing acknowledged is
    /// lost, even on power loss (default).
    #[serde(rename = "sync")]
    Sync,
    /// Acknowledge at once and fsync within `flush_interval`: a power loss can lose up
    /// to `flush_interval` worth of acknowledged messages.
    #[serde(rename = "batch", alias = "async")]
    Batch,
    /// Write but never fsync; the operating system decides when data reaches the disk.
    #[serde(rename = "none")]
    NoSync,
}
