//! mqgate bridge: forwards chosen topics between broker-lite and an upstream (cloud)
//! broker through a durable, bounded store-and-forward queue.
//!
//! * [`Bridge::open`] compiles the topic rules ([`TopicMap`], mosquitto semantics) and
//!   recovers the queue ([`DurableQueue`], on the WAL); [`Bridge::run`] drives the local
//!   link (an in-process client of the local broker, through a [`LocalConnector`]) and the
//!   upstream link (through an [`UpstreamConnector`]: [`TcpConnector`], [`TlsConnector`],
//!   or the SSH tunnel's, adapted by the binary).
//! * Out: local message → queue (durable) → local PUBACK; queue → upstream → PUBACK/PUBCOMP
//!   → removed from the queue. In: upstream message → local publish → local ack → upstream ack.
//!
//! The crate does not depend on broker-lite or the proxy.
//!
//! Guarantees and limits:
//! * Out, QoS 1: at least once, across uplink outages and `kill -9` (the local broker is
//!   acked only once the message is durable in the queue). Order: one FIFO per bridge,
//!   so per-topic order holds; after a reconnect the backlog drains first, at the full
//!   inflight window, and live messages follow it (no interleaving).
//! * Out, QoS 2: exactly once on the upstream hop with a persistent upstream session
//!   (packet ids derived from queue sequence numbers; PUBREL resent after reconnect). The
//!   local hop is at least once if the gateway is killed between storing a message and
//!   acknowledging it (the local broker redelivers it).
//! * In: at least once (the upstream is acked after the local broker acked).
//! * Loop prevention: MQTT 5 upstream: No Local + Retain As Published; 3.1.1 upstream:
//!   `try_private`; local side: MQTT 5 No Local when the local broker speaks MQTT 5,
//!   otherwise an echo window of (topic, payload) hashes ([`echo`]).
//! * An upstream that does not acknowledge for 2 × keep-alive (at least 20 s) is
//!   disconnected so that the next session resends (MQTT forbids resending in-session).

mod bridge;
mod conn;
pub mod connector;
pub mod echo;
mod error;
mod local;
pub mod mapping;
pub mod queue;
pub mod record;
pub mod session;
mod stats;
mod upstream;

pub use bridge::{upstream_connector, Bridge, StatsHandle};
pub use connector::{
    AsyncStream, BoxFuture, BoxedStream, Connected, LocalConnector, TcpConnector, TlsConnector,
    UpstreamConnector,
};
pub use error::BridgeError;
pub use mapping::TopicMap;
pub use mqgate_wal::{Durability, WalOptions};
pub use queue::DurableQueue;
pub use stats::{BridgeStats, StatsSnapshot};
