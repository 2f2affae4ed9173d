//! The TLS accept loop: a permit per connection, spawn before the handshake, the
//! handshake under a timeout inside the connection's task, one log line per failed
//! handshake, then the stream and its certificate identity go to broker-lite.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqgate_broker_lite::{BrokerHandle, Credential, Identity, UsernamePolicy};
use rustls::{CertificateError, Error as TlsError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument as _};

use crate::tls::config::TlsSettings;
use crate::tls::identity::{certificate_identity, certificate_serial, identity_field_name};
use crate::tls::source::TlsAcceptorSource;

/// Limits of a TLS listener.
#[derive(Debug, Clone, Copy)]
pub struct TlsServeOptions {
    /// Time allowed for the TLS handshake, from TCP accept.
    pub handshake_timeout: Duration,
    /// Connections (including handshakes in progress) held open at once; further
    /// connections wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for TlsServeOptions {
    fn default() -> Self {
        TlsServeOptions {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// Why a handshake failed, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The handshake did not finish within the timeout (stalled or very slow peer).
    TimedOut,
    /// The peer closed the connection during the handshake.
    PeerClosed,
    /// The bytes received were not TLS (e.g. plaintext MQTT on the TLS port).
    NotTls,
    /// A client certificate is required and none was presented.
    NoClientCertificate,
    /// The client certificate has expired.
    ExpiredCertificate,
    /// The client certificate is revoked by the CRL.
    RevokedCertificate,
    /// The CRL is past its next update (`crl_next_update = "enforce"`): no client
    /// certificate is accepted until a fresh CRL is loaded.
    StaleCrl,
    /// The client certificate does not chain to the configured CA.
    UnknownIssuer,
    /// Another certificate problem.
    BadCertificate(String),
    /// The peer sent a TLS alert (e.g. it rejected our certificate).
    AlertFromPeer(String),
    /// `use_identity_as_username` is on but the certificate lacks the configured
    /// identity field (named: "CN", "DNS SAN", ...).
    MissingIdentity(&'static str),
    /// Anything else.
    Other(String),
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailure::TimedOut => f.write_str("handshake timed out"),
            HandshakeFailure::PeerClosed => {
                f.write_str("peer closed the connection during the handshake")
            }
            HandshakeFailure::NotTls => {
                f.write_str("not a TLS handshake (plaintext on the TLS port?)")
            }
            HandshakeFailure::NoClientCertificate => {
                f.write_str("client certificate required but none presented")
            }
            HandshakeFailure::ExpiredCertificate => f.write_str("client certificate expired"),
            HandshakeFailure::RevokedCertificate => f.write_str("client certificate revoked"),
            HandshakeFailure::StaleCrl => {
                f.write_str("the CRL is past its next update: issue a fresh one and send SIGHUP")
            }
            HandshakeFailure::UnknownIssuer => {
                f.write_str("client certificate not issued by the configured CA")
            }
            HandshakeFailure::BadCertificate(s) => write!(f, "bad client certificate: {s}"),
            HandshakeFailure::AlertFromPeer(s) => write!(f, "peer sent alert {s}"),
            HandshakeFailure::MissingIdentity(field) => {
                write!(f, "client certificate has no {field} to use as user name")
            }
            HandshakeFailure::Other(s) => f.write_str(s),
        }
    }
}

impl HandshakeFailure {
    /// Classifies the error returned by `TlsAcceptor::accept`.
    pub fn classify(e: &io::Error) -> HandshakeFailure {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) {
            return match tls {
                TlsError::InvalidMessage(_) => HandshakeFailure::NotTls,
                TlsError::NoCertificatesPresented => HandshakeFailure::NoClientCertificate,
                TlsError::InvalidCertificate(c) => match c {
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        HandshakeFailure::ExpiredCertificate
                    }
                    CertificateError::Revoked => HandshakeFailure::RevokedCertificate,
                    CertificateError::ExpiredRevocationList
                    | CertificateError::ExpiredRevocationListContext { .. } => {
                        HandshakeFailure::StaleCrl
                    }
                    CertificateError::UnknownIssuer => HandshakeFailure::UnknownIssuer,
                    other => HandshakeFailure::BadCertificate(format!("{other:?}")),
                },
                TlsError::AlertReceived(a) => HandshakeFailure::AlertFromPeer(format!("{a:?}")),
                other => HandshakeFailure::Other(other.to_string()),
            };
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => HandshakeFailure::PeerClosed,
            _ => HandshakeFailure::Other(e.to_string()),
        }
    }
}

/// [`serve_tls_with`] with default [`TlsServeOptions`].
pub async fn serve_tls(
    listener: TcpListener,
    source: Arc<TlsAcceptorSource>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
) {
    serve_tls_with(
        listener,
        source,
        broker,
        shutdown,
        TlsServeOptions::default(),
    )
    .await;
}

/// Serves MQTT over TLS on `listener` until `shutdown`: each accepted connection gets a
/// permit and its own task, where the handshake runs under `handshake_timeout`; the
/// configuration is taken from `source` per connection, so a reload applies to the next
/// handshake. Verified streams go to broker-lite with their certificate identity.
pub async fn serve_tls_with(
    listener: TcpListener,
    source: Arc<TlsAcceptorSource>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
    options: TlsServeOptions,
) {
    accept_tls(
        listener,
        source,
        shutdown,
        options,
        move |stream, identity| {
            let broker = broker.clone();
            async move { broker.serve_connection(stream, identity).await }
        },
    )
    .await;
}

/// The TLS accept loop, handing each established stream and its [`Identity`] to
/// `handler` (inside the connection's task).
pub(crate) async fn accept_tls<H, F>(
    listener: TcpListener,
    source: Arc<TlsAcceptorSource>,
    shutdown: CancellationToken,
    options: TlsServeOptions,
    handler: H,
) where
    H: Fn(TlsStream<TcpStream>, Identity) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut delay = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                delay = Duration::from_millis(5);
                let _ = tcp.set_nodelay(true);
                let settings = source.current();
                let handler = handler.clone();
                let shutdown = shutdown.clone();
                let task = async move {
                    let _permit = permit;
                    let Some((stream, identity)) =
                        handshake(tcp, peer, settings, options.handshake_timeout, shutdown).await
                    else {
                        return;
                    };
                    handler(stream, identity).await;
                };
                tokio::spawn(task.instrument(tracing::info_span!("tls", %peer)));
            }
            Err(error) => {
                warn!(%error, delay_ms = delay.as_millis() as u64, "TLS accept failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Runs the handshake under the timeout; logs one line and returns `None` on failure.
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: Arc<TlsSettings>,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) -> Option<(TlsStream<TcpStream>, Identity)> {
    let acceptor = TlsAcceptor::from(settings.server_config.clone());
    let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
    let result = tokio::select! {
        _ = shutdown.cancelled() => return None,
        r = handshake => r,
    };
    let stream = match result {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let reason = HandshakeFailure::classify(&e);
            warn!(%peer, %reason, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            warn!(%peer, reason = %HandshakeFailure::TimedOut, "TLS handshake failed");
            return None;
        }
    };
    let conn = stream.get_ref().1;
    let leaf = conn.peer_certificates().and_then(|chain| chain.first());
    let identity = leaf.and_then(|cert| certificate_identity(cert, settings.identity));
    debug!(
        %peer,
        version = ?conn.protocol_version(),
        alpn = ?conn.alpn_protocol().map(String::from_utf8_lossy),
        identity = identity.as_deref().unwrap_or(""),
        "TLS handshake complete"
    );
    let transport_user = if settings.use_identity_as_username {
        match (leaf.is_some(), identity) {
            (_, Some(identity)) => Some(identity),
            (true, None) => {
                let reason =
                    HandshakeFailure::MissingIdentity(identity_field_name(settings.identity));
                warn!(%peer, %reason, "TLS handshake failed");
                return None;
            }
            (false, None) => None,
        }
    } else {
        None
    };
    let credential = match leaf.and_then(certificate_serial) {
        Some(serial) if transport_user.is_some() => Credential::Certificate { serial },
        _ => Credential::None,
    };
    Some((
        stream,
        Identity {
            peer,
            transport_user,
            // use_identity_as_username: the certificate's identity replaces the CONNECT's.
            username_policy: UsernamePolicy::Replace,
            credential,
        },
    ))
}
