//! MQTT control packets as typed structs, shared by all three protocol versions.
//!
//! Fields that only exist in MQTT 5 (properties, reason codes) are present for every
//! version; encoding for 3.1/3.1.1 ignores them, decoding sets them to their defaults.

use std::sync::Arc;

use bytes::Bytes;

use crate::properties::Properties;
use crate::reason::ReasonCode;

/// The protocol version a connection speaks, fixed by its CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte sent in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The protocol name sent in CONNECT.
    pub fn protocol_name(self) -> &'static str {
        match self {
            ProtocolVersion::V3_1 => "MQIsdp",
            ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => "MQTT",
        }
    }

    /// True for MQTT 5.0, the only version with properties and reason codes.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service level of a message or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// QoS 0: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged with PUBACK, may be duplicated.
    AtLeastOnce = 1,
    /// QoS 2: four-way handshake, delivered exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is not a QoS and yields `None`.
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// The kind of a control packet, i.e. the high nibble of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 1
    Connect = 1,
    /// 2
    ConnAck = 2,
    /// 3
    Publish = 3,
    /// 4
    PubAck = 4,
    /// 5
    PubRec = 5,
    /// 6
    PubRel = 6,
    /// 7
    PubComp = 7,
    /// 8
    Subscribe = 8,
    /// 9
    SubAck = 9,
    /// 10
    Unsubscribe = 10,
    /// 11
    UnsubAck = 11,
    /// 12
    PingReq = 12,
    /// 13
    PingResp = 13,
    /// 14
    Disconnect = 14,
    /// 15 (MQTT 5 only)
    Auth = 15,
}

/// One MQTT control packet.
// Every variant but the pings embeds a `Properties` (~700 bytes); boxing them would
// change the public shape the other crates build on, so the size is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Client request to connect.
    Connect(Connect),
    /// Connect acknowledgement.
    ConnAck(ConnAck),
    /// An application message.
    Publish(Publish),
    /// QoS 1 acknowledgement.
    PubAck(PubAck),
    /// QoS 2, part 1.
    PubRec(PubAck),
    /// QoS 2, part 2.
    PubRel(PubAck),
    /// QoS 2, part 3.
    PubComp(PubAck),
    /// Subscribe request.
    Subscribe(Subscribe),
    /// Subscribe acknowledgement.
    SubAck(SubAck),
    /// Unsubscribe request.
    Unsubscribe(Unsubscribe),
    /// Unsubscribe acknowledgement.
    UnsubAck(UnsubAck),
    /// Ping request.
    PingReq,
    /// Ping response.
    PingResp,
    /// Disconnect notification (from either side in MQTT 5).
    Disconnect(Disconnect),
    /// Authentication exchange (MQTT 5 only).
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }
}

/// CONNECT: the first packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version requested by the client.
    pub protocol: ProtocolVersion,
    /// 3.1.1 "clean session" / 5.0 "clean start".
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client identifier; may be empty.
    pub client_id: String,
    /// Last will, published if the connection ends without a clean DISCONNECT.
    pub will: Option<LastWill>,
    /// User name, if the user name flag is set.
    pub username: Option<String>,
    /// Password (binary data), if the password flag is set.
    pub password: Option<Bytes>,
    /// CONNECT properties (MQTT 5).
    pub properties: Properties,
}

/// The will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic the will is published to (a valid topic name).
    pub topic: Arc<str>,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (MQTT 5).
    pub properties: Properties,
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed an existing session.
    pub session_present: bool,
    /// Result. For 3.1/3.1.1 only the codes with a 3.x return code are encodable:
    /// Success (0), UnsupportedProtocolVersion (1), ClientIdentifierNotValid (2),
    /// ServerUnavailable (3), BadUserNameOrPassword (4), NotAuthorized (5).
    pub reason: ReasonCode,
    /// CONNACK properties (MQTT 5).
    pub properties: Properties,
}

/// PUBLISH: an application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Duplicate delivery flag.
    pub dup: bool,
    /// Delivery QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name; may be empty in MQTT 5 when a topic alias is given.
    pub topic: Arc<str>,
    /// Packet identifier; 0 for QoS 0 (and then not on the wire), non-zero otherwise.
    pub pkid: u16,
    /// Payload, shared without copying.
    pub payload: Bytes,
    /// PUBLISH properties (MQTT 5).
    pub properties: Properties,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    /// Packet identifier (non-zero).
    pub pkid: u16,
    /// Reason code (MQTT 5); Success for 3.x.
    pub reason: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: Properties,
}

impl PubAck {
    /// A successful acknowledgement with no properties.
    pub fn new(pkid: u16) -> PubAck {
        PubAck {
            pkid,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }
    }
}

/// What to do with retained messages when a subscription is made (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist yet.
    SendIfNew = 1,
    /// 2: do not send retained messages.
    DoNotSend = 2,
}

/// Subscription options byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// MQTT 5: do not send messages published by this same client.
    pub no_local: bool,
    /// MQTT 5: keep the retain flag as published when forwarding.
    pub retain_as_published: bool,
    /// MQTT 5: retained message handling.
    pub retain_handling: RetainHandling,
}

/// One entry of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    /// Topic filter (validated; may be a `$share/<group>/<filter>`).
    pub filter: String,
    /// Options; for 3.x only `qos` is on the wire.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier (non-zero).
    pub pkid: u16,
    /// At least one filter.
    pub filters: Vec<SubscribeFilter>,
    /// Properties (MQTT 5).
    pub properties: Properties,
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub pkid: u16,
    /// One per filter. For 3.x only GrantedQoS0/1/2 and UnspecifiedError (0x80) are encodable.
    pub reasons: Vec<ReasonCode>,
    /// Properties (MQTT 5).
    pub properties: Properties,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier (non-zero).
    pub pkid: u16,
    /// At least one filter.
    pub filters: Vec<String>,
    /// Properties (MQTT 5).
    pub properties: Properties,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub pkid: u16,
    /// MQTT 5: one reason per filter. Empty (and not on the wire) for 3.x.
    pub reasons: Vec<ReasonCode>,
    /// Properties (MQTT 5).
    pub properties: Properties,
}

/// DISCONNECT. `Default` is a normal disconnection without properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason (MQTT 5); NormalDisconnection for 3.x.
    pub reason: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: Properties,
}

impl Default for Disconnect {
    fn default() -> Disconnect {
        Disconnect {
            reason: ReasonCode::NormalDisconnection,
            properties: Properties::default(),
        }
    }
}

/// AUTH (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success (0x00), ContinueAuthentication (0x18) or ReAuthenticate (0x19).
    pub reason: ReasonCode,
    /// Properties.
    pub properties: Properties,
}
