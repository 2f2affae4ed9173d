//! An application message as the broker stores and forwards it, shared by reference.

use std::sync::Arc;

use bytes::Bytes;
use mqgate_protocol::{Properties, QoS};

/// One published message. Shared (`Arc`) by every session it is queued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Broker-wide unique id (the key of its persistence record).
    pub id: u64,
    /// Topic name.
    pub topic: Arc<str>,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag it was published with.
    pub retain: bool,
    /// MQTT 5 properties, passed through unchanged (empty for 3.x publishers).
    pub properties: Properties,
}

/// A message queued for one session: the shared message plus how to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Per-session sequence number (order of queueing; key of persistence records).
    pub seq: u64,
    /// The message.
    pub msg: Arc<Message>,
    /// Delivery QoS: the lower of the message's and the subscription's.
    pub qos: QoS,
    /// Retain flag on the wire: set only for retained messages sent because of a new
    /// subscription (MQTT 3.1.1 §3.3.1.3).
    pub retain: bool,
}
