//! An application message as the broker stores and forwards it, shared by reference.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mqgate_protocol::{Properties, Publish, QoS};

/// Milliseconds since the Unix epoch: the clock of absolute deadlines (message expiry,
/// session expiry), which must stay meaningful across a restart.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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
    /// MQTT 5 properties, passed through unchanged (empty for 3.x publishers). Topic
    /// alias, subscription identifiers and message expiry interval are never kept here:
    /// the expiry is `expires_at`, the others are per connection or per delivery.
    pub properties: Properties,
    /// Session id of the publishing client (for No Local); 0 for the broker itself.
    pub origin: u64,
    /// Absolute expiry in ms since the Unix epoch (MQTT 5 message expiry), if any.
    pub expires_at: Option<u64>,
}

impl Message {
    /// True if the message expired at `now` (ms since the epoch).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The message expiry interval to send at `now`: the time left, rounded up.
    pub fn remaining_secs(&self, now: u64) -> Option<u32> {
        self.expires_at
            .map(|at| (at.saturating_sub(now).div_ceil(1000)).clamp(1, u64::from(u32::MAX)) as u32)
    }
}

/// The subscription identifiers a delivery carries (MQTT 5), without allocating for the
/// usual none-or-one case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SubIds {
    /// No identifier.
    #[default]
    None,
    /// One identifier.
    One(u32),
    /// Several (overlapping subscriptions of one session).
    Many(Arc<[u32]>),
}

impl SubIds {
    /// The identifiers as a vector (for a PUBLISH property block).
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            SubIds::None => Vec::new(),
            SubIds::One(id) => vec![*id],
            SubIds::Many(ids) => ids.to_vec(),
        }
    }

    /// From a list, as restored from disk.
    pub fn from_slice(ids: &[u32]) -> SubIds {
        match ids {
            [] => SubIds::None,
            [one] => SubIds::One(*one),
            many => SubIds::Many(Arc::from(many)),
        }
    }
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
    /// Retain flag on the wire: set for retained messages sent because of a new
    /// subscription (MQTT 3.1.1 §3.3.1.3), or as published with Retain As Published.
    pub retain: bool,
    /// Subscription identifiers of the matching subscriptions (MQTT 5).
    pub sub_ids: SubIds,
}

impl Delivery {
    /// The PUBLISH that carries this delivery to a 3.1/3.1.1 client as packet `pkid`
    /// (no properties: an MQTT 5 client's PUBLISH is built by its connection).
    pub fn publish_v3(&self, pkid: u16, dup: bool) -> Publish {
        Publish {
            dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.msg.topic.clone(),
            pkid,
            payload: self.msg.payload.clone(),
            properties: Properties::default(),
        }
    }
}
