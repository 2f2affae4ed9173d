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
//! * Pace: a message is sent upstream as soon as it is appended, without waiting for its
//!   fsync (only the local ack waits; the local acks of one group commit go out in one
//!   write). `Removed` records ride on the next append instead of costing fsyncs of their
//!   own. The upstream window is `max_inflight`, capped by an MQTT 5 upstream's Receive
//!   Maximum (mosquitto 2 announces its `max_inflight_messages`, 20 by default); a 3.1.1
//!   upstream announces nothing, so `max_inflight` alone applies.
//!
//! The crate does not depend on broker-lite or the proxy.
//!
//! Guarantees and limits:
//! * Out, QoS 1: at least once, across uplink outages and `kill -9` (the local broker is
//!   acked only once the message is durable in the queue). Order: per topic. After a
//!   reconnect with a backlog larger than the window, the backlog drains oldest first at
//!   the full window while live messages on topics without unsent backlog take up to a
//!   quarter of it ([`drain`]: live traffic is not starved); live messages on a topic that
//!   still has backlog wait for it. A crash can forget up to 1024 (or 250 ms of)
//!   removals: those messages are resent after restart.
//! * Out, QoS 2: exactly once on the upstream hop with a persistent upstream session
//!   (packet ids derived from queue sequence numbers; PUBREL resent after reconnect). The
//!   local hop is at least once if the gateway is killed between storing a message and
//!   acknowledging it (the local broker redelivers it).
//! * In: at least once (the upstream is acked after the local broker acked).
//! * `max_age` follows the monotonic clock, not the wall clock's jumps (an RTC-less Raspberry
//!   Pi's NTP sync at boot expires nothing), and recovered messages expire at the latest
//!   `max_age` after recovery ([`clock`]).
//! * Loop prevention: MQTT 5 upstream: No Local + Retain As Published; 3.1.1 upstream:
//!   `try_private`; local side: MQTT 5 No Local when the local broker speaks MQTT 5,
//!   otherwise an echo window of (topic, payload) hashes ([`echo`]).
//! * An upstream that does not acknowledge for 2 × keep-alive (at least 20 s) is
//!   disconnected so that the next session resends (MQTT forbids resending in-session);
//!   one silent for 1.5 × keep-alive (a black-holed path) is dropped at that deadline.
//! * Upstreams that close the connection instead of refusing CONNECT (RabbitMQ with MQTT
//!   5.0 or `try_private`), downgrade QoS 2 to 1 (PUBACK for a QoS 2 PUBLISH, QoS 1
//!   granted), or drop the connection after SUBSCRIBE (RabbitMQ's NOT_FOUND while a
//!   session queue's node is down) are handled and logged with the likely cause; see
//!   `bridge/README.md`.
//! * State: `$SYS/broker/connection/<name>/state` locally; with `will_topic`, a last will
//!   on the upstream and a "1" published there after each connect.

mod bridge;
pub mod clock;
mod conn;
pub mod connector;
pub mod drain;
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
