//! Building a rustls `ServerConfig` (ring provider, TLS 1.2 + 1.3) from `[listener.tls]`:
//! certificate chain and key from PEM, ALPN, and client-certificate verification against
//! a CA bundle with an optional CRL.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use mqgate_config::{CertIdentity, ClientCertMode, CrlNextUpdate, TlsListenerConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tracing::warn;

use crate::error::Error;

/// The ring crypto provider (no aws-lc: the binary must cross-compile for a Pi).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{what} {}: {e}", path.display()))
}

fn required<'a>(p: &'a Option<std::path::PathBuf>, what: &str) -> Result<&'a Path, Error> {
    p.as_deref()
        .ok_or_else(|| Error::Tls(format!("{what} is not set")))
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(what, path, e))?;
    if certs.is_empty() {
        return Err(tls_err(what, path, "no certificate in the file"));
    }
    Ok(certs)
}

/// A built TLS server configuration and what the listener does with client certs.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls configuration, shared by every handshake.
    pub server_config: Arc<ServerConfig>,
    /// Whether a verified client certificate's identity becomes the MQTT user name.
    pub use_identity_as_username: bool,
    /// Which certificate field is that identity.
    pub identity: CertIdentity,
    /// The serial numbers the listener's CRL revokes (empty without a CRL), to
    /// disconnect established connections whose certificate was revoked by a reload.
    pub revoked: HashSet<Vec<u8>>,
}

/// Reads the files named by `cfg` and builds the server configuration.
pub fn build(cfg: &TlsListenerConfig) -> Result<TlsSettings, Error> {
    let provider = provider();
    let cert_path = required(&cfg.cert, "tls.cert")?;
    let key_path = required(&cfg.key, "tls.key")?;
    let chain = load_certs(cert_path, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| tls_err("key", key_path, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Tls(e.to_string()))?;
    let mut revoked = HashSet::new();
    let builder = match cfg.client_cert {
        ClientCertMode::None => builder.with_no_client_auth(),
        mode => {
            let ca_path = required(&cfg.client_ca, "tls.client_ca")?;
            let mut roots = RootCertStore::empty();
            for ca in load_certs(ca_path, "client CA bundle")? {
                roots
                    .add(ca)
                    .map_err(|e| tls_err("client CA bundle", ca_path, e))?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if let Some(crl_path) = &cfg.crl {
                let crls = CertificateRevocationListDer::pem_file_iter(crl_path)
                    .map_err(|e| tls_err("CRL", crl_path, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_err("CRL", crl_path, e))?;
                if crls.is_empty() {
                    return Err(tls_err("CRL", crl_path, "no CRL in the file"));
                }
                for crl in &crls {
                    revoked.extend(crate::tls::identity::revoked_serials(crl.as_ref()));
                }
                for crl in &crls {
                    if let Some(next) = crate::tls::identity::crl_next_update(crl.as_ref()) {
                        if next < std::time::SystemTime::now() {
                            warn!(path = %crl_path.display(),
                                policy = ?cfg.crl_next_update,
                                "the CRL is past its next update: issue a fresh one (mqgate certs crl) and send SIGHUP");
                        }
                    }
                }
                // The CRL comes from the CA that issues device certificates; it says
                // nothing about intermediates, which would otherwise be "unknown".
                verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
                if cfg.crl_next_update == CrlNextUpdate::Enforce {
                    verifier = verifier.enforce_revocation_expiration();
                }
            }
            if mode == ClientCertMode::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| tls_err("client CA bundle", ca_path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_err("certificate/key pair", cert_path, e))?;
    config.alpn_protocols = cfg.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(TlsSettings {
        server_config: Arc::new(config),
        use_identity_as_username: cfg.use_identity_as_username,
        identity: cfg.identity,
        revoked,
    })
}
