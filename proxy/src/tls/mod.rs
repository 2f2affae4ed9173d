//! TLS termination for MQTT listeners: rustls (ring) server configuration from
//! `[listener.tls]`, reloadable on SIGHUP, and an accept loop that hands each verified
//! stream (and its certificate identity) to broker-lite, directly (`tls`) or after a
//! WebSocket upgrade (`wss`).

mod config;
mod identity;
mod serve;
mod source;
mod wss;

pub use config::{build, provider, TlsSettings};
pub use identity::{certificate_identity, common_name, identity_field_name};
pub(crate) use serve::accept_tls;
pub use serve::{serve_tls, serve_tls_with, HandshakeFailure, TlsServeOptions};
pub use source::TlsAcceptorSource;
pub use wss::serve_wss;
