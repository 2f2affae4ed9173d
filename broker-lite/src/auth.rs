//! Who a client is and what it may do: the [`Identity`] a transport learned, and the
//! [`Authorizer`] the broker asks at CONNECT, PUBLISH, SUBSCRIBE and before each delivery.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

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
    /// What proved `transport_user` (a certificate, an SSH key), so that a reload can
    /// withdraw it from a live connection. [`Credential::Internal`] marks mqgate's own
    /// in-process client (a bridge's link to the local broker): trusted, never asked for
    /// a password and never narrowed by the ACL. No network transport sets it; only
    /// [`Identity::internal`] does.
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

impl Credential {
    /// The credential behind an `Arc`: the variants without data are shared (no
    /// allocation per connection).
    pub fn shared(self) -> Arc<Credential> {
        static NONE: LazyLock<Arc<Credential>> = LazyLock::new(|| Arc::new(Credential::None));
        static PASSWORD: LazyLock<Arc<Credential>> =
            LazyLock::new(|| Arc::new(Credential::Password));
        static INTERNAL: LazyLock<Arc<Credential>> =
            LazyLock::new(|| Arc::new(Credential::Internal));
        match self {
            Credential::None => NONE.clone(),
            Credential::Password => PASSWORD.clone(),
            Credential::Internal => INTERNAL.clone(),
            other => Arc::new(other),
        }
    }
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
            credential,
        }
    }

    /// Whether this is mqgate's own in-process client ([`Identity::internal`]).
    pub fn is_internal(&self) -> bool {
        self.credential == Credential::Internal
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
    /// What proved the user name ([`Credential::None`] for anonymous clients;
    /// [`Credential::Internal`] for mqgate's own client, which the broker allows
    /// everything without asking the authorizer). Shared (see [`Credential::shared`]):
    /// one pointer in every connection's `ClientInfo`.
    pub credential: Arc<Credential>,
}

impl ClientInfo {
    /// Whether this is mqgate's own in-process client.
    pub fn is_internal(&self) -> bool {
        *self.credential == Credential::Internal
    }

    /// Whether `other` is the same principal: the same user name and both internal or
    /// both not. Anonymous clients (no user name) are one principal.
    pub fn same_principal(&self, other: &ClientInfo) -> bool {
        self.is_internal() == other.is_internal() && self.username == other.username
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

    /// Refusals instead of silent narrowing (`[acl] strict`): a PUBLISH to any `$`
    /// topic goes through [`Authorizer::authorize_publish`] instead of being ignored,
    /// and a denied MQTT 5 QoS 0 PUBLISH (which has no acknowledgement to carry 0x87)
    /// disconnects with DISCONNECT 0x87. Default: false.
    fn strict(&self) -> bool {
        false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_info_stays_small() {
        // One `Arc<ClientInfo>` per connection: 16 bytes of counts plus this must stay
        // within a 112-byte malloc chunk, as before credentials were kept (memory per
        // idle connection is compared with mosquitto's).
        assert!(std::mem::size_of::<ClientInfo>() <= 88);
    }

    #[test]
    fn principals_are_the_user_name_and_whether_internal() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let client = |user: Option<&str>, credential: Credential| ClientInfo {
            client_id: "c".into(),
            username: user.map(str::to_owned),
            peer,
            credential: credential.shared(),
        };
        let alice = client(Some("alice"), Credential::Password);
        assert!(alice.same_principal(&client(Some("alice"), Credential::None)));
        assert!(!alice.same_principal(&client(Some("bob"), Credential::Password)));
        assert!(!alice.same_principal(&client(None, Credential::None)));
        assert!(!alice.same_principal(&client(Some("alice"), Credential::Internal)));
        assert!(client(None, Credential::None).same_principal(&client(None, Credential::None)));
        assert!(Arc::ptr_eq(
            &Credential::Password.shared(),
            &Credential::Password.shared()
        ));
        assert!(Identity::internal(peer, "mqgate-bridge-x".into()).is_internal());
        assert!(!Identity::new(peer).is_internal());
        assert!(is_reserved_client_id("mqgate-bridge-cloud"));
        assert!(!is_reserved_client_id("mqgate-other"));
    }
}
