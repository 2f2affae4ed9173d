//! The one error type of broker-lite.

use std::io;

/// Why the broker could not start, or why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Socket or file I/O failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the MQTT wire format.
    #[error("malformed packet: {0}")]
    Protocol(#[from] mqgate_protocol::Error),
    /// The peer broke a rule of the MQTT protocol flow (the rule is named).
    #[error("protocol violation: {0}")]
    Violation(&'static str),
    /// The write-ahead log failed (opening, appending, syncing or compacting).
    #[error("persistence: {0}")]
    Persistence(#[from] mqgate_wal::WalError),
    /// A persisted record could not be decoded.
    #[error("persistence: undecodable record: {0}")]
    Record(#[from] postcard::Error),
    /// The WebSocket handshake or framing failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}
