//! [`TlsAcceptorSource`]: the current TLS configuration of a listener, swapped
//! atomically by [`TlsAcceptorSource::reload`] without touching open connections.

use std::sync::Arc;

use arc_swap::ArcSwap;
use mqgate_config::TlsListenerConfig;
use tracing::{error, info};

use crate::error::Error;
use crate::tls::config::{build, TlsSettings};

/// The TLS configuration a listener uses for new handshakes.
#[derive(Debug)]
pub struct TlsAcceptorSource {
    config: TlsListenerConfig,
    current: ArcSwap<TlsSettings>,
}

impl TlsAcceptorSource {
    /// Reads certificate, key, CA bundle and CRL named by `config`.
    pub fn new(config: TlsListenerConfig) -> Result<TlsAcceptorSource, Error> {
        let settings = build(&config)?;
        Ok(TlsAcceptorSource {
            config,
            current: ArcSwap::from_pointee(settings),
        })
    }

    /// Re-reads the files (SIGHUP). On error the previous configuration stays in use and
    /// the error is logged and returned. Established connections are not affected.
    pub fn reload(&self) -> Result<(), Error> {
        match build(&self.config) {
            Ok(settings) => {
                self.current.store(Arc::new(settings));
                info!("TLS certificates, key and CRL reloaded");
                Ok(())
            }
            Err(e) => {
                error!(error = %e, "TLS reload failed; keeping the previous configuration");
                Err(e)
            }
        }
    }

    /// Whether the CRL in force revokes the certificate with this serial number.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.current.load().revoked.contains(serial)
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<TlsSettings> {
        self.current.load_full()
    }
}
