//! mqgate proxy: the security layer. Password files (argon2id and mosquitto's formats),
//! mosquitto-compatible ACLs enforced at PUBLISH, SUBSCRIBE and delivery, an
//! [`Authorizer`](mqgate_broker_lite::Authorizer) for broker-lite, and TLS termination.

mod error;
pub mod password;

pub use error::Error;
