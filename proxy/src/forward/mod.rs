//! Standalone `mqgate proxy`: clients connect over TLS or plain TCP, are authenticated
//! here, and are forwarded to an upstream broker with the ACL applied to the packets in
//! both directions.

mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument as _};

use mqgate_broker_lite::Identity;

use crate::security::Security;
use crate::tls::{accept_tls, TlsAcceptorSource, TlsServeOptions};

pub use session::{forward_connection, ForwardSettings};

/// A listening socket of the standalone proxy.
#[derive(Debug)]
pub enum StandaloneListener {
    /// Plain TCP.
    Tcp(TcpListener),
    /// TLS, with its (reloadable) configuration.
    Tls(TcpListener, Arc<TlsAcceptorSource>),
}

/// Most simultaneous client connections per plain TCP listener.
const MAX_TCP_CONNECTIONS: usize = 10_000;

/// Runs the standalone proxy on `listeners` until `shutdown`, forwarding to
/// `settings.upstream`. Returns when every listener has stopped accepting; open
/// connections are closed.
pub async fn run_standalone(
    listeners: Vec<StandaloneListener>,
    security: Arc<Security>,
    settings: ForwardSettings,
    shutdown: CancellationToken,
) {
    let settings = Arc::new(settings);
    let tracker = TaskTracker::new();
    for listener in listeners {
        let (security, settings, shutdown) = (security.clone(), settings.clone(), shutdown.clone());
        match listener {
            StandaloneListener::Tcp(l) => {
                tracker.spawn(serve_tcp(l, security, settings, shutdown));
            }
            StandaloneListener::Tls(l, source) => {
                let stop = shutdown.clone();
                let handler = move |stream, identity| {
                    let (security, settings, stop) =
                        (security.clone(), settings.clone(), stop.clone());
                    async move {
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = forward_connection(stream, identity, security, settings) => {}
                        }
                    }
                };
                tracker.spawn(accept_tls(
                    l,
                    source,
                    shutdown.clone(),
                    TlsServeOptions::default(),
                    handler,
                ));
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    info!("standalone proxy stopped");
}

async fn serve_tcp(
    listener: TcpListener,
    security: Arc<Security>,
    settings: Arc<ForwardSettings>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
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
                let (security, settings, stop) =
                    (security.clone(), settings.clone(), shutdown.clone());
                let task = async move {
                    let _permit = permit;
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = forward_connection(tcp, Identity::new(peer), security, settings) => {}
                    }
                };
                tokio::spawn(task.instrument(tracing::info_span!("proxy", %peer)));
            }
            Err(error) => {
                warn!(%error, delay_ms = delay.as_millis() as u64, "accept failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}
