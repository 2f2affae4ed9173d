//! The one error type of the protocol crate: every wire rule that can be broken has its
//! own variant, and each maps to the MQTT 5 reason code the spec prescribes.

use crate::reason::ReasonCode;

/// A decode or encode failure. Variants name the rule that was broken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The declared remaining length exceeds the configured maximum packet size.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total packet size declared by the fixed header.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// I/O error from the underlying stream (only via `tokio_util::codec`).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The MQTT 5 reason code for a DISCONNECT (or CONNACK) caused by this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Error::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Error::Io(_) => ReasonCode::UnspecifiedError,
        }
    }
}
