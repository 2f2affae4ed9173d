//! `[[bridge]]`: connections to upstream (cloud) brokers, with topic rules and a disk queue.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// One `[[bridge]]` table: an MQTT client connection from the gateway to a remote broker.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Unique name (letters, digits, `-`, `_`, `.`); names the queue directory and log lines.
    pub name: String,
    /// Remote brokers as `host:port`, tried in order: the first is primary, the rest failover.
    /// Must be empty for `transport = "ssh"`, which dials the tunnel's `remote`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// How the remote broker is reached.
    #[serde(default)]
    pub transport: BridgeTransport,
    /// Name of the `[[tunnel]]` to use; required with `transport = "ssh"`.
    pub tunnel: Option<String>,
    /// MQTT version spoken to the remote broker.
    #[serde(default)]
    pub protocol: ProtocolVersion,
    /// Client id on the remote broker; `None` = `<name>.<hostname>` (mosquitto's default).
    pub client_id: Option<String>,
    /// Username on the remote broker.
    pub username: Option<String>,
    /// Password on the remote broker (never printed by `Debug`).
    pub password: Option<Secret>,
    /// Start a fresh remote session on each connect. `false` keeps the remote's
    /// subscriptions and queued inbound messages across reconnects.
    #[serde(default)]
    pub clean_start: bool,
    /// MQTT keep-alive towards the remote broker (1 s to 18 h 12 min 15 s).
    #[serde(
        default = "default_keepalive",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub keepalive: Duration,
    /// Mark the connection as a bridge (MQTT 3.1.1 protocol level | 0x80) so a mosquitto
    /// remote does not echo our messages back. Most other brokers refuse it.
    #[serde(default)]
    pub try_private: bool,
    /// Forward the retain flag of outgoing messages; `false` for brokers without retain.
    #[serde(default = "yes")]
    pub outgoing_retain: bool,
    /// QoS 1/2 messages in flight to the remote broker before waiting for acknowledgements.
    #[serde(default = "default_bridge_inflight")]
    pub max_inflight: u16,
    /// Remote topic of the bridge's last will, so the cloud sees the gateway go offline
    /// (`will_payload`); the bridge publishes "1" there after each connect (mosquitto's
    /// notification topic). `None`: no will, no notice.
    pub will_topic: Option<String>,
    /// Payload of the last will.
    #[serde(default = "default_will_payload")]
    pub will_payload: String,
    /// QoS of the last will (0, 1 or 2).
    #[serde(default = "default_will_qos")]
    pub will_qos: u8,
    /// Retain flag of the last will and of the "1" notice.
    #[serde(default = "yes")]
    pub will_retain: bool,
    /// TLS options; only with `transport = "tls"` (optional there: system defaults apply).
    pub tls: Option<BridgeTlsConfig>,
    /// Topic rules (`[[bridge.topic]]`); at least one.
    #[serde(default, rename = "topic")]
    pub topics: Vec<TopicRule>,
    /// Limits of the store-and-forward queue of outgoing messages.
    #[serde(default)]
    pub queue: BridgeQueueConfig,
    /// Delay between reconnect attempts.
    #[serde(default)]
    pub reconnect: Backoff,
}

fn default_keepalive() -> Duration {
    Duration::from_secs(60)
}

fn default_bridge_inflight() -> u16 {
    // mosquitto's bridge_receive_maximum default; enough to fill a cellular uplink.
    20
}

fn default_will_payload() -> String {
    "0".to_owned()
}

fn default_will_qos() -> u8 {
    1
}

fn yes() -> bool {
    true
}

/// How a bridge reaches its remote broker (`transport = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BridgeTransport {
    /// Plain TCP.
    #[default]
    Tcp,
    /// TLS (optionally with a client certificate).
    Tls,
    /// Through the SSH tunnel named by `tunnel`.
    Ssh,
}

/// MQTT version of a bridge (`protocol = "3.1.1" | "5"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4); understood by every broker.
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5 (protocol level 5); enables No-Local loop prevention.
    #[serde(rename = "5")]
    V5,
}

/// `[bridge.tls]`: TLS client options of a bridge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeTlsConfig {
    /// PEM CA bundle to verify the remote broker; `None` = the built-in web PKI roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (needs `key`).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// Server name sent in SNI and verified; `None` = the host of the address dialled.
    pub sni: Option<String>,
    /// ALPN protocols (AWS IoT on port 443 needs `["x-amzn-mqtt-ca"]`).
    pub alpn: Vec<String>,
}

/// One `[[bridge.topic]]` rule, with mosquitto's `topic` semantics.
///
/// `out`: subscribe locally to `local_prefix + topic`, publish remotely as
/// `remote_prefix + topic`. `in`: the mirror image. `both`: both.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    /// Topic filter (wildcards allowed), relative to the prefixes.
    pub topic: String,
    /// Direction of forwarding.
    #[serde(default)]
    pub direction: Direction,
    /// Subscription QoS (0, 1 or 2); messages are downgraded to it.
    #[serde(default = "default_rule_qos")]
    pub qos: u8,
    /// Prefix of the topic on the local broker (no wildcards).
    #[serde(default)]
    pub local_prefix: String,
    /// Prefix of the topic on the remote broker (no wildcards).
    #[serde(default)]
    pub remote_prefix: String,
}

fn default_rule_qos() -> u8 {
    // The point of a store-and-forward bridge is not to lose messages: QoS 1 by default
    // (mosquitto defaults to 0).
    1
}

/// Direction of a topic rule (`direction = "out" | "in" | "both"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Local broker → remote broker (default).
    #[default]
    Out,
    /// Remote broker → local broker.
    In,
    /// Both ways (use MQTT 5 or `try_private` against loops).
    Both,
}

/// `[bridge.queue]`: the on-disk queue that holds outgoing messages while the uplink is down.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeQueueConfig {
    /// Bytes of messages kept; beyond it `when_full` applies.
    pub max_bytes: u64,
    /// Messages older than this are dropped instead of sent.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub max_age: Duration,
    /// What happens when the queue is full.
    pub when_full: QueueOverflow,
}

impl Default for BridgeQueueConfig {
    fn default() -> Self {
        Self {
            // 256 MiB is days of typical telemetry and fits any SD card.
            max_bytes: 256 * 1024 * 1024,
            // A week covers a long-weekend outage; older data is rarely worth sending.
            max_age: Duration::from_secs(7 * 86_400),
            when_full: QueueOverflow::DropOldest,
        }
    }
}

/// Policy of a full bridge queue (`when_full = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOverflow {
    /// Evict the oldest queued message: keep the most recent data (default).
    #[default]
    DropOldest,
    /// Drop new QoS 0 messages; QoS 1/2 messages still get in by evicting the oldest.
    RefuseQos0,
    /// Stop accepting: local QoS 1/2 publishers are not acknowledged until there is room,
    /// nothing queued is evicted.
    Backpressure,
}

/// Exponential reconnect delay: `initial`, doubled after each failure up to `max`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// Delay after the first failure.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub initial: Duration,
    /// Largest delay.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        // Quick first retry for a blip; capped at a minute so a long outage does not
        // hammer the remote side (mosquitto: 5 s .. 30 s).
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}
