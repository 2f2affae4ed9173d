//! TLS termination for MQTT listeners: rustls (ring) server configuration from
//! `[listener.tls]`, reloadable on SIGHUP, and an accept loop that hands each verified
//! stream (and its certificate identity) to broker-lite.

mod config;
mod serve;
mod source;

pub use config::{build, common_name, provider, TlsSettings};
pub(crate) use serve::accept_tls;
pub use serve::{serve_tls, serve_tls_with, HandshakeFailure, TlsServeOptions};
pub use source::TlsAcceptorSource;
