//! The bridge's error type.

use mqgate_protocol::{PacketType, ReasonCode};
use mqgate_wal::WalError;

/// Everything that can go wrong in a bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS configuration could not be built (bad CA, certificate or key).
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The peer sent bytes that are not valid MQTT, or a packet could not be encoded.
    #[error("MQTT protocol: {0}")]
    Protocol(#[from] mqgate_protocol::Error),
    /// The peer sent a packet that makes no sense at this point.
    #[error("unexpected {0:?} packet")]
    Unexpected(PacketType),
    /// The broker refused the connection (CONNACK) or a subscription (SUBACK).
    #[error("refused by the broker: {reason:?}")]
    Refused {
        /// The broker's reason code.
        reason: ReasonCode,
    },
    /// The durable queue failed.
    #[error("bridge queue: {0}")]
    Queue(#[from] WalError),
    /// A queue record could not be decoded (damaged or from another version).
    #[error("bridge queue record: {0}")]
    BadRecord(&'static str),
    /// A topic rule cannot be used.
    #[error("topic rule {topic:?}: {reason}")]
    Rule {
        /// The rule's topic.
        topic: String,
        /// Why it is unusable.
        reason: &'static str,
    },
    /// The connection was closed by the peer.
    #[error("connection closed by the peer")]
    Closed,
    /// The broker closed the connection (or reset it) before answering CONNECT: what
    /// brokers that do not speak the protocol level asked for (RabbitMQ 3.x with MQTT 5
    /// or `try_private`) do instead of a CONNACK refusal.
    #[error("the broker closed the connection before CONNACK")]
    NoConnAck,
    /// The broker closed the connection after SUBSCRIBE, before SUBACK: RabbitMQ does
    /// this when the subscription's queue lives on a cluster node that is down.
    #[error("the broker closed the connection after SUBSCRIBE, before SUBACK")]
    NoSubAck,
    /// The peer did not answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The configuration asks for something this build cannot do.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl BridgeError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> BridgeError {
        BridgeError::Io {
            context: context.into(),
            source,
        }
    }
}
