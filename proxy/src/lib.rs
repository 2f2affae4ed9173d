//! mqgate proxy: the security layer. Password files (argon2id and mosquitto's formats),
//! mosquitto-compatible ACLs enforced at PUBLISH, SUBSCRIBE and delivery, an
//! [`Authorizer`](mqgate_broker_lite::Authorizer) for broker-lite ([`Security`]), TLS
//! termination ([`tls`]), MQTT over WebSockets ([`ws`]), the standalone forwarding proxy ([`forward`]) and SSH tunnels
//! ([`ssh`]).

pub mod acl;
mod error;
pub mod forward;
pub mod password;
mod security;
pub mod ssh;
pub mod tls;

pub use error::Error;
pub use security::Security;
