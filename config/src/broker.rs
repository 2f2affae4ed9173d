//! `[broker]`: limits and behaviour of the local broker (broker-lite).

use std::time::Duration;

use serde::Deserialize;

/// Largest packet size MQTT can express (remaining length 268 435 455 bytes).
pub const MQTT_MAX_PACKET_SIZE: u32 = 268_435_455;

/// `[broker]`: explicit limits, so one device cannot exhaust a small gateway.
///
/// The keep-alive grace factor (1.5 × the client's keep-alive) is fixed by the MQTT
/// specification and is not configurable.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Maximum simultaneous client connections over all listeners.
    pub max_connections: u32,
    /// Largest accepted MQTT packet in bytes (2..=268435455); bigger packets disconnect.
    pub max_packet_size: u32,
    /// QoS 1/2 messages in flight to one MQTT 3.1/3.1.1 client before further ones are
    /// queued. MQTT 5 clients set their own window with their Receive Maximum.
    pub max_inflight: u16,
    /// MQTT 5 Receive Maximum announced in CONNACK: QoS 1/2 publishes a client may have
    /// unacknowledged toward mqgate; a client that exceeds it is disconnected (0x93).
    pub receive_maximum: u16,
    /// MQTT 5 Topic Alias Maximum announced in CONNACK (0 disables inbound aliases).
    pub topic_alias_maximum: u16,
    /// Largest keep-alive (seconds) an MQTT 5 client may use; a larger request is
    /// answered with Server Keep Alive.
    pub max_keep_alive: u16,
    /// Messages queued per session (offline or slow client) beyond the inflight window.
    pub max_queued_messages: u32,
    /// Bytes of payload a session holds, queued and inflight (sent, not yet acknowledged)
    /// together; whichever of the two limits is hit first applies.
    pub max_queued_bytes: u64,
    /// Also queue QoS 0 messages for offline persistent sessions (MQTT allows dropping them).
    pub queue_qos0_messages: bool,
    /// What happens to a message for a session whose queue is full.
    pub queue_full: QueueFullPolicy,
    /// Time a new connection has to send CONNECT before it is closed.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub connect_timeout: Duration,
    /// Support retained messages (MQTT 5 Retain Available).
    pub retain_available: bool,
    /// Retained topics kept at most. A retained PUBLISH that would add a topic beyond it
    /// is delivered but not retained (MQTT 5 QoS 1/2: PUBACK/PUBREC 0x97); replacing or
    /// clearing an existing retained topic always works. `$SYS` topics do not count.
    pub max_retained_messages: u32,
    /// Bytes of all retained messages (topic, payload, and the content type, response
    /// topic, correlation data and user properties of MQTT 5): a retained PUBLISH that
    /// would add a topic, or grow one, beyond it is delivered but not retained, as above.
    pub max_retained_bytes: u64,
    /// Subscriptions one client session may hold: a SUBSCRIBE filter that would add one
    /// more is refused (SUBACK 0x97, MQTT 3.1.1: 0x80); re-subscribing to a filter the
    /// session has (new options) always works.
    pub max_subscriptions_per_client: u32,
    /// Accept control characters (U+0001–U+001F, U+007F–U+009F) in client ids, user
    /// names and topics. Off: such a CONNECT, PUBLISH or SUBSCRIBE filter is refused.
    pub allow_control_characters: bool,
    /// Interval of `$SYS/broker/...` statistics; `"0s"` disables them.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub sys_interval: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            // A site gateway serves tens to hundreds of devices; 1000 stays below the usual
            // 1024 open-file limit of a Pi with room for listeners, store files and bridges.
            max_connections: 1000,
            // 1 MiB instead of MQTT's 256 MiB: one oversized (or hostile) packet must not
            // take a 1 GiB Raspberry Pi's memory; telemetry is far smaller.
            max_packet_size: 1024 * 1024,
            // mosquitto's max_inflight_messages default: enough to keep a LAN link busy.
            max_inflight: 20,
            // The MQTT 5 default: flow control is left to max_queued_* and backpressure.
            receive_maximum: 65_535,
            // mosquitto's default.
            topic_alias_maximum: 10,
            // The client decides, as in MQTT 3.1.1.
            max_keep_alive: 65_535,
            // mosquitto's default: survives a minute-long disconnect of a 10 msg/s sensor.
            max_queued_messages: 1000,
            // Caps queued memory per session at 8 MiB even for large payloads
            // (mosquitto's 0 = unlimited is how Pis run out of memory, mosquitto#2455).
            max_queued_bytes: 8 * 1024 * 1024,
            // MQTT lets a broker drop QoS 0 for offline clients; queuing them wastes memory.
            queue_qos0_messages: false,
            // Never drop what a connected subscriber is still reading: slow the publishers.
            queue_full: QueueFullPolicy::Backpressure,
            // Long enough for a slow TLS client on a lossy link, short enough that
            // half-open connections do not pile up.
            connect_timeout: Duration::from_secs(10),
            retain_available: true,
            // Retained messages stay in memory (and on disk) until cleared: 10,000 is a
            // site's devices times their status topics many times over, and costs
            // ~2 MiB of bookkeeping beyond their bytes (mosquitto has no limit).
            max_retained_messages: 10_000,
            // A sixteenth of a 1 GiB Pi (6.5 KiB for each of 10,000 messages), leaving
            // room for session queues (8 MiB each at most), connections and the store.
            max_retained_bytes: 64 * 1024 * 1024,
            // A device subscribes to a handful of filters, a dashboard or a bridge to
            // hundreds; 1000 filters of ~100 bytes (in the trie and the session) cost
            // about 0.3 MiB, where an unlimited client could take the whole Pi.
            max_subscriptions_per_client: 1000,
            allow_control_characters: false,
            // mosquitto's default sys_interval.
            sys_interval: Duration::from_secs(10),
        }
    }
}

/// Overload policy for a full per-session queue (`queue_full = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueFullPolicy {
    /// For a connected subscriber, stop reading the publishers' sockets (delaying their
    /// acknowledgements) until the queue drains; for an offline session, drop the new
    /// message, counted and logged (default).
    Backpressure,
    /// Drop the oldest queued message to make room: the freshest readings win.
    DropOldest,
    /// Drop the new message (mosquitto's behaviour).
    DropNew,
    /// Disconnect the slow client; its persistent session keeps what was queued.
    Disconnect,
}
