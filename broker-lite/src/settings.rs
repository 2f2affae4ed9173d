//! Plain settings of the broker, filled in by the binary from its configuration file.

use std::path::PathBuf;
use std::time::Duration;

/// Limits and behaviour of the broker. Every field has a documented default.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSettings {
    /// Simultaneous client connections over all listeners (default 1000).
    pub max_connections: usize,
    /// Largest accepted MQTT packet in bytes, fixed header included (default 1 MiB).
    pub max_packet_size: usize,
    /// QoS 1/2 messages in flight to one MQTT 3.1/3.1.1 client before further ones wait
    /// (default 20). Towards an MQTT 5 client the window is instead the Receive Maximum
    /// of its CONNECT (65,535 when absent), MQTT 5's own flow control, as in mosquitto 2.
    pub max_inflight: u16,
    /// Messages queued per session beyond the inflight window (default 1000).
    pub max_queued_messages: usize,
    /// Payload bytes a session holds, queued and inflight (unacknowledged) together;
    /// whichever limit is hit first applies (default 8 MiB).
    pub max_queued_bytes: usize,
    /// Also queue QoS 0 messages for offline persistent sessions (default false).
    pub queue_qos0_messages: bool,
    /// Time a new connection has to send CONNECT (default 10 s).
    pub connect_timeout: Duration,
    /// Interval of the `$SYS/broker/...` statistics; zero disables them (default 10 s).
    pub sys_interval: Duration,
    /// Whether retained messages are stored (default true).
    pub retain_available: bool,
    /// Retained topics stored at most (default 10,000). A retained PUBLISH that would
    /// add a topic beyond it is delivered but not retained; replacing or clearing an
    /// existing one always works. The broker's own `$SYS` topics do not count.
    pub max_retained_messages: usize,
    /// Bytes of the retained messages: topic, payload and the variable parts of MQTT 5
    /// properties (default 64 MiB). A retained PUBLISH that would add a topic, or grow
    /// one, beyond it is not retained.
    pub max_retained_bytes: usize,
    /// Subscriptions one session may hold (default 1,000): a SUBSCRIBE filter that would
    /// add one more is refused (SUBACK 0x97, 3.1.1: 0x80); re-subscribing is allowed.
    pub max_subscriptions_per_client: usize,
    /// Accept control characters (U+0001–U+001F, U+007F–U+009F) in client ids, user
    /// names, will topics, topic names and filters (default false: refused, as
    /// mosquitto 2.1 does; they end up in logs, ACL patterns and `$SYS`).
    pub allow_control_characters: bool,
    /// What happens when a session's queue is full (default [`OverloadPolicy::Backpressure`]).
    pub overload: OverloadPolicy,
    /// Disk persistence; `None` keeps everything in memory only (default `None`).
    pub persistence: Option<PersistenceSettings>,
    /// MQTT 5 Receive Maximum announced in CONNACK: QoS 1/2 PUBLISHes a client may have
    /// unacknowledged towards the broker; more is a protocol error, DISCONNECT 0x93
    /// (default 65535, i.e. no practical limit).
    pub receive_maximum: u16,
    /// MQTT 5 Topic Alias Maximum announced in CONNACK: aliases a client may use towards
    /// the broker; 0 disables inbound aliases (default 10, as mosquitto).
    pub topic_alias_maximum: u16,
    /// Largest keep alive (seconds) granted to an MQTT 5 client; a client asking for more,
    /// or for none while this is below 65535, is told this value as Server Keep Alive
    /// (default 65535: the client's value is used).
    pub max_keep_alive: u16,
    /// MQTT 5 Response Information sent to clients that request it (a basis for their
    /// response topics); `None` sends none (default `None`).
    pub response_information: Option<String>,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            max_connections: 1000,
            max_packet_size: 1024 * 1024,
            max_inflight: 20,
            max_queued_messages: 1000,
            max_queued_bytes: 8 * 1024 * 1024,
            queue_qos0_messages: false,
            connect_timeout: Duration::from_secs(10),
            sys_interval: Duration::from_secs(10),
            retain_available: true,
            max_retained_messages: 10_000,
            max_retained_bytes: 64 * 1024 * 1024,
            max_subscriptions_per_client: 1000,
            allow_control_characters: false,
            overload: OverloadPolicy::Backpressure,
            persistence: None,
            receive_maximum: u16::MAX,
            topic_alias_maximum: 10,
            max_keep_alive: u16::MAX,
            response_information: None,
        }
    }
}

/// What to do with a message for a session whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverloadPolicy {
    /// For a connected subscriber: queue the message anyway and stop reading the
    /// publisher's socket until the subscriber's queue has drained below the limit (the
    /// publisher's acknowledgements are delayed with it). For an offline session, which
    /// cannot drain, the new message is dropped, counted and logged (mosquitto's rule).
    #[default]
    Backpressure,
    /// Drop the oldest queued message to make room (counted and logged).
    DropOldest,
    /// Drop the new message (counted and logged).
    DropNew,
    /// Disconnect a slow connected subscriber (its persistent session keeps its queue);
    /// for an offline session the new message is dropped.
    Disconnect,
}

/// Where and how durably the broker keeps its state on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistenceSettings {
    /// Directory of the write-ahead log (created if missing).
    pub dir: PathBuf,
    /// When a QoS 1/2 PUBLISH (or a SUBSCRIBE) is acknowledged relative to its fsync.
    pub durability: Durability,
    /// `Sync`: how long a commit waits for more writes to share one fsync (default 2 ms).
    pub commit_window: Duration,
    /// `Batch`: the longest time an acknowledged write stays unsynced (default 1 s).
    pub flush_interval: Duration,
    /// Compact the log (rewrite it as a snapshot of live state) once it exceeds this many
    /// bytes (default 64 MiB). The log is also compacted at a clean shutdown.
    pub compaction_threshold_bytes: u64,
}

impl PersistenceSettings {
    /// Settings with the defaults above, storing in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PersistenceSettings {
            dir: dir.into(),
            durability: Durability::Sync,
            commit_window: Duration::from_millis(2),
            flush_interval: Duration::from_secs(1),
            compaction_threshold_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The durability policy: when an acknowledgement is sent relative to the disk write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge only after the group-committed fsync (default): nothing acknowledged
    /// is lost, even on power loss.
    #[default]
    Sync,
    /// Acknowledge at once; the log is fsynced within `flush_interval`.
    Batch,
    /// Acknowledge at once and never fsync explicitly; the OS decides.
    None,
}
