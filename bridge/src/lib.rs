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

mod bridge;
mod conn;
pub mod connector;
mod echo;
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
