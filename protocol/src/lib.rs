//! The MQTT wire format for mqgate: packets of MQTT 3.1, 3.1.1 and 5.0, a strict
//! incremental codec, topic names and filters, and the spec's matching rules.
//!
//! This crate does no I/O. [`codec::MqttCodec`] plugs into `tokio_util::codec::Framed`.

pub mod codec;
mod decode;
mod encode;
pub mod error;
pub mod packet;
pub mod properties;
mod property_codec;
pub mod reason;
pub mod topic;
mod wire;

pub use codec::{decode_packet, encode_packet, encoded_len, MqttCodec};
pub use error::Error;
pub use packet::*;
pub use properties::{Properties, PropertyContext, PropertyId, PropertyValues};
pub use reason::ReasonCode;
