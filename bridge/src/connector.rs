//! How the bridge reaches its two brokers: small connector traits, and the TCP and TLS
//! connectors for the upstream.
//!
//! * [`LocalConnector`]: a byte stream to the local broker. The binary implements it with
//!   an in-process duplex pipe served by broker-lite, so the bridge does not depend on it.
//! * [`UpstreamConnector`]: a byte stream to the upstream broker. [`TcpConnector`] and
//!   [`TlsConnector`] live here; an SSH tunnel connector (from the proxy crate) is adapted
//!   to this trait by the binary.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mqgate_config::BridgeTlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::BridgeError;

/// A bidirectional byte stream.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

/// A boxed byte stream to a broker.
pub type BoxedStream = Box<dyn AsyncStream>;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// "Give me a stream to the local broker."
pub trait LocalConnector: Send + Sync {
    /// Opens a new connection to the local broker.
    fn connect(&self) -> BoxFuture<'_, io::Result<BoxedStream>>;
}

/// A connection to the upstream, with a label for the logs.
pub struct Connected {
    /// The stream.
    pub stream: BoxedStream,
    /// Which address (or tunnel) it goes to.
    pub peer: String,
}

/// "Give me a stream to the upstream broker."
pub trait UpstreamConnector: Send + Sync {
    /// Opens a new connection to the upstream broker (trying every address it knows).
    fn connect(&self) -> BoxFuture<'_, io::Result<Connected>>;
}

/// How long one TCP connect (plus TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Plain TCP to a list of `host:port` addresses, tried in order on every connect: the
/// first is the primary, the others are failovers.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    addresses: Vec<String>,
}

impl TcpConnector {
    /// A connector for these addresses.
    pub fn new(addresses: Vec<String>) -> TcpConnector {
        TcpConnector { addresses }
    }
}

/// Tries each address in turn; returns the first stream and its address.
async fn dial(addresses: &[String]) -> io::Result<(TcpStream, String)> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no upstream address");
    for address in addresses {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address.as_str())).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, address.clone()));
            }
            Ok(Err(error)) => {
                tracing::info!(peer = %address, %error, "upstream address unreachable");
                last = error;
            }
            Err(_) => {
                tracing::info!(peer = %address, "upstream address: connect timed out");
                last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            }
        }
    }
    Err(last)
}

impl UpstreamConnector for TcpConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connected>> {
        Box::pin(async move {
            let (stream, peer) = dial(&self.addresses).await?;
            Ok(Connected {
                stream: Box::new(stream),
                peer,
            })
        })
    }
}

/// TLS (rustls, ring provider) over [`TcpConnector`]'s address list: CA bundle or the
/// web PKI roots, optional client certificate for mutual TLS, SNI and ALPN.
#[derive(Clone)]
pub struct TlsConnector {
    addresses: Vec<String>,
    sni: Option<String>,
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("addresses", &self.addresses)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Builds the TLS client configuration from `[bridge.tls]` (reads the PEM files).
    pub fn new(addresses: Vec<String>, tls: &BridgeTlsConfig) -> Result<TlsConnector, BridgeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| BridgeError::Tls(format!("CA file {}: {e}", path.display())))?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        BridgeError::Tls(format!("CA file {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        BridgeError::Tls(format!("CA file {}: {e}", path.display()))
                    })?;
                }
                if roots.is_empty() {
                    return Err(BridgeError::Tls(format!(
                        "CA file {} holds no certificate",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| BridgeError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        BridgeError::Tls(format!("certificate {}: {e}", cert.display()))
                    })?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| BridgeError::Tls(format!("key {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| BridgeError::Tls(format!("client certificate: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(BridgeError::Tls(
                    "cert and key go together (mutual TLS needs both)".into(),
                ))
            }
        };
        config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(TlsConnector {
            addresses,
            sni: tls.sni.clone(),
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }
}

/// The host part of `host:port` (`[v6]:port` too).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl UpstreamConnector for TlsConnector {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connected>> {
        Box::pin(async move {
            let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no upstream address");
            for address in &self.addresses {
                let (tcp, peer) = match dial(std::slice::from_ref(address)).await {
                    Ok(ok) => ok,
                    Err(error) => {
                        last = error;
                        continue;
                    }
                };
                let name = self.sni.as_deref().unwrap_or_else(|| host_of(address));
                let server_name = ServerName::try_from(name.to_owned())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let handshake = self.connector.connect(server_name, tcp);
                match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                    Ok(Ok(stream)) => {
                        return Ok(Connected {
                            stream: Box::new(stream),
                            peer,
                        })
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%peer, %error, "upstream TLS handshake failed");
                        last = error;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "upstream TLS handshake timed out");
                        last = io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
                    }
                }
            }
            Err(last)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("broker.example.com:8883"), "broker.example.com");
        assert_eq!(host_of("[::1]:8883"), "::1");
        assert_eq!(host_of("127.0.0.1:1883"), "127.0.0.1");
    }

    #[test]
    fn tls_config_errors_are_reported() {
        let tls = BridgeTlsConfig {
            ca: Some("/nonexistent/ca.pem".into()),
            ..BridgeTlsConfig::default()
        };
        assert!(matches!(
            TlsConnector::new(vec![], &tls),
            Err(BridgeError::Tls(_))
        ));
        let tls = BridgeTlsConfig {
            cert: Some("/nonexistent/c.pem".into()),
            ..BridgeTlsConfig::default()
        };
        assert!(TlsConnector::new(vec![], &tls).is_err());
        assert!(TlsConnector::new(vec![], &BridgeTlsConfig::default()).is_ok());
    }
}
