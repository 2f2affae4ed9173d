//! broker-lite: mqgate's local MQTT 3.1/3.1.1/5.0 broker. It keeps what it acknowledged:
//! sessions, subscriptions, queued and inflight messages and retained messages are
//! written to a group-committed write-ahead log before QoS 1/2 acknowledgements.
//!
//! Start a [`Broker`], then hand it connections: [`serve_tcp`], [`serve_ws`], or any
//! `AsyncRead + AsyncWrite` stream with [`BrokerHandle::serve_connection`]. See
//! `ARCHITECTURE.md` for tasks, data flow, persistence records and backpressure.

mod alias;
mod auth;
mod broker;
mod connection;
mod core;
mod error;
mod hygiene;
mod message;
mod park;
mod retained;
mod router;
mod runner;
mod session;
mod settings;
mod stats;
mod store;
mod sys;
mod transport;
mod trie;
pub mod ws;

pub use auth::{
    is_reserved_client_id, AllowAll, AuthExchange, AuthFuture, AuthStep, Authorizer, ClientInfo,
    ConnectRequest, Credential, EnhancedAuthFuture, Identity, UsernamePolicy, WillRequest,
    RESERVED_CLIENT_ID_PREFIX,
};
pub use broker::{serve_tcp, serve_ws, Broker, BrokerHandle};
pub use error::Error;
pub use settings::{BrokerSettings, Durability, OverloadPolicy, PersistenceSettings};
pub use stats::Stats;
