//! Who a client is and what it may do: the [`Identity`] a transport learned, and the
//! [`Authorizer`] the broker asks at CONNECT, PUBLISH, SUBSCRIBE and before each delivery.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use mqgate_protocol::{ProtocolVersion, QoS, ReasonCode};

/// What the transport learned about a peer before any MQTT byte was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The peer's address.
    pub peer: SocketAddr,
    /// A user name proven by the transport (TLS client certificate, SSH login), if any.
    pub transport_user: Option<String>,
    /// How `transport_user` relates to the user name a CONNECT claims.
    pub username_policy: UsernamePolicy,
    /// mqgate's own in-process client (a bridge's link to the local broker): trusted,
    /// never asked for a password and never narrowed by the ACL. No network transport
    /// sets it; only [`Identity::internal`] does.
    pub internal: bool,
    /// What proved `transport_user` (a certificate, an SSH key), so that a reload can
    /// withdraw it from a live connection.
    pub credential: Credential,
}

/// What proved who a client is, kept for its connection's life so that a reload that
/// withdraws it (a revoked certificate, a removed user or SSH key) disconnects it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credential {
    /// Nothing: an anonymous client, or a user name taken as given.
    #[default]
    None,
    /// A password checked against the password file.
    Password,
    /// A client certificate with this serial number (big-endian bytes, as in a CRL).
    Certificate {
        /// The certificate's serial number.
        serial: Vec<u8>,
    },
    /// An SSH login with the key of this fingerprint (`SHA256:...`), or by password when
    /// `None`.
    Ssh {
        /// The public key's fingerprint.
        key: Option<String>,
    },
    /// mqgate's own in-process client.
    Internal,
}

/// Client ids starting with this are reserved for mqgate's own internal clients (the
/// bridge's local session is `mqgate-bridge-<name>`): a network client asking for one
/// is refused at CONNECT.
pub const RESERVED_CLIENT_ID_PREFIX: &str = "mqgate-bridge-";

/// Whether `client_id` is reserved for an internal client.
pub fn is_reserved_client_id(client_id: &str) -> bool {
    client_id.starts_with(RESERVED_CLIENT_ID_PREFIX)
}

impl Identity {
    /// An identity with only a peer address (plain TCP or WebSocket).
    pub fn new(peer: SocketAddr) -> Identity {
        Identity {
            peer,
            transport_user: None,
            username_policy: UsernamePolicy::Replace,
            internal: false,
            credential: Credential::None,
        }
    }

    /// mqgate's own in-process client named `name` (a bridge): trusted by the broker
    /// without asking the authorizer, allowed every topic, and the only identity that
    /// may use a reserved client id ([`is_reserved_client_id`]).
    pub fn internal(peer: SocketAddr, name: String) -> Identity {
        Identity {
            peer,
            transport_user: Some(name),
            username_policy: UsernamePolicy::Replace,
            internal: true,
            credential: Credential::Internal,
        }
    }

    /// An identity whose user was proven by the transport with `credential`.
    pub fn with_user(
        peer: SocketAddr,
        user: String,
        policy: UsernamePolicy,
        credential: Credential,
    ) -> Identity {
        Identity {
            peer,
            transport_user: Some(user),
            username_policy: policy,
            internal: false,
            credential,
        }
    }

    /// The user name a client is known as, given the user name its CONNECT claims:
    /// the transport's user when there is one (a CONNECT claiming another name is
    /// refused under [`UsernamePolicy::MustMatch`]), else the CONNECT's.
    pub fn resolve_username(&self, claimed: Option<&str>) -> Result<Option<String>, ReasonCode> {
        match (&self.transport_user, claimed, self.username_policy) {
            (Some(user), Some(claimed), UsernamePolicy::MustMatch) if claimed != user => {
                Err(ReasonCode::NotAuthorized)
            }
            (Some(user), _, _) => Ok(Some(user.clone())),
            (None, claimed, _) => Ok(claimed.map(str::to_owned)),
        }
    }
}

/// What happens when a transport proved a user (TLS certificate, SSH login) and the
/// CONNECT packet claims a user name too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UsernamePolicy {
    /// The transport's user replaces whatever CONNECT says (mosquitto's
    /// `use_identity_as_username`).
    #[default]
    Replace,
    /// A CONNECT that claims a different user name is refused (NotAuthorized); one that
    /// claims none, or the same, is accepted as the transport's user.
    MustMatch,
}

/// The will a CONNECT carries, so the authorizer can refuse a forbidden will topic at
/// CONNECT rather than at publication.
#[derive(Debug, Clone, Copy)]
pub struct WillRequest<'a> {
    /// The will topic.
    pub topic: &'a str,
    /// The will QoS.
    pub qos: QoS,
    /// The will retain flag.
    pub retain: bool,
}

/// The credentials a client presented in CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequest<'a> {
    /// The client identifier (after assignment for an empty one).
    pub client_id: &'a str,
    /// The CONNECT user name.
    pub username: Option<&'a str>,
    /// The CONNECT password.
    pub password: Option<&'a Bytes>,
    /// The protocol version of the connection.
    pub protocol: ProtocolVersion,
    /// The CONNECT's will; refuse the CONNECT with NotAuthorized if it may not be published.
    pub will: Option<WillRequest<'a>>,
}

/// An authenticated client, as the authorizer decided at CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client identifier.
    pub client_id: String,
    /// The user name the client is known as for authorization, if any.
    pub username: Option<String>,
    /// The peer's address.
    pub peer: SocketAddr,
    /// mqgate's own internal client ([`Identity::internal`]): the broker allows it
    /// everything without asking the authorizer.
    pub internal: bool,
    /// What proved the user name ([`Credential::None`] for anonymous clients).
    pub credential: Credential,
}

impl ClientInfo {
    /// Whether `other` is the same principal: the same user name and both internal or
    /// both not. Anonymous clients (no user name) are one principal.
    pub fn same_principal(&self, other: &ClientInfo) -> bool {
        self.internal == other.internal && self.username == other.username
    }
}

/// A boxed future, so that authentication may run slow work (argon2) off the reactor.
pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, ReasonCode>> + Send + 'a>>;

/// One step of MQTT 5 enhanced authentication (CONNECT, then AUTH packets).
#[derive(Debug, Clone, Copy)]
pub struct AuthExchange<'a> {
    /// The client identifier (after assignment for an empty one).
    pub client_id: &'a str,
    /// The authentication method the client named in CONNECT.
    pub method: &'a str,
    /// The authentication data of this step, if any.
    pub data: Option<&'a Bytes>,
    /// The CONNECT user name.
    pub username: Option<&'a str>,
    /// True for a re-authentication (AUTH 0x19 on an established connection).
    pub reauthenticate: bool,
}

/// The authorizer's answer to one enhanced authentication step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send the client AUTH 0x18 with this data and wait for its next AUTH.
    Continue(Option<Bytes>),
    /// Authenticated: the user name the client is known as, and final data for the
    /// CONNACK (or AUTH 0x00 after a re-authentication).
    Success {
        /// User name for authorization.
        user: Option<String>,
        /// Authentication data sent back.
        data: Option<Bytes>,
    },
}

/// A boxed future for one enhanced authentication step.
pub type EnhancedAuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AuthStep, ReasonCode>> + Send + 'a>>;

/// Access control asked by the broker. `proxy` implements it; [`AllowAll`] allows everything.
pub trait Authorizer: Send + Sync + 'static {
    /// At CONNECT: accept (with the user name the client is known as, or `None`) or refuse
    /// with a CONNACK reason code (for 3.x: `BadUserNameOrPassword` or `NotAuthorized`).
    fn authenticate<'a>(
        &'a self,
        identity: &'a Identity,
        request: ConnectRequest<'a>,
    ) -> AuthFuture<'a>;

    /// Before accepting a PUBLISH (and before publishing a will).
    fn authorize_publish(&self, client: &ClientInfo, topic: &str, qos: QoS, retain: bool) -> bool;

    /// Before granting a SUBSCRIBE filter.
    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str, qos: QoS) -> bool;

    /// Before each delivery of a message on `topic` to the subscriber `client`.
    fn authorize_delivery(&self, client: &ClientInfo, topic: &str) -> bool;

    /// One step of MQTT 5 enhanced authentication with `exchange.method`, used instead of
    /// [`Authorizer::authenticate`] when a CONNECT names an authentication method. The
    /// default supports no method: the client gets CONNACK 0x8C (Bad authentication
    /// method). Refusals should be 0x8C, 0x87 or 0x86.
    fn enhanced_auth<'a>(
        &'a self,
        _identity: &'a Identity,
        _exchange: AuthExchange<'a>,
    ) -> EnhancedAuthFuture<'a> {
        Box::pin(std::future::ready(Err(ReasonCode::BadAuthenticationMethod)))
    }

    /// Whether an MQTT 3.x client whose PUBLISH [`Authorizer::authorize_publish`] refused
    /// is disconnected (true) instead of acknowledged and dropped as mosquitto does
    /// (false, the default). MQTT 5 clients get PUBACK/PUBREC 0x87 either way.
    fn disconnect_on_denied_publish(&self) -> bool {
        false
    }

    /// A number that changes whenever the rules change (a reload). Deliveries queued
    /// before a change are checked again with [`Authorizer::authorize_delivery`] when
    /// they are sent; the default (rules never change) is 0.
    fn rules_epoch(&self) -> u64 {
        0
    }
}

/// Allows every client and every operation; the transport identity's user name, else the
/// CONNECT user name, becomes the client's user name ([`Identity::resolve_username`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authenticate<'a>(
        &'a self,
        identity: &'a Identity,
        request: ConnectRequest<'a>,
    ) -> AuthFuture<'a> {
        Box::pin(std::future::ready(
            identity.resolve_username(request.username),
        ))
    }

    fn authorize_publish(&self, _: &ClientInfo, _: &str, _: QoS, _: bool) -> bool {
        true
    }

    fn authorize_subscribe(&self, _: &ClientInfo, _: &str, _: QoS) -> bool {
        true
    }

    fn authorize_delivery(&self, _: &ClientInfo, _: &str) -> bool {
        true
    }
}
