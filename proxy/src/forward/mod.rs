//! Standalone `mqgate proxy`: clients connect over TCP, TLS, WebSocket or WebSocket over
//! TLS, are authenticated here, and are forwarded to an upstream broker with the ACL
//! applied to the packets in both directions.

mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument as _};

use mqgate_broker_lite::Identity;

use crate::security::Security;
use crate::tls::{accept_tls, TlsAcceptorSource, TlsServeOptions};
use mqgate_broker_lite::ws::{upgrade, WsSettings};

pub use session::{forward_connection, ForwardSettings};

/// A listening socket of the standalone proxy.
#[derive(Debug)]
pub enum StandaloneListener {
    /// Plain TCP.
    Tcp(TcpListener),
    /// TLS, with its (reloadable) configuration.
    Tls(TcpListener, Arc<TlsAcceptorSource>),
    /// Plain WebSocket (MQTT in binary frames).
    Ws(TcpListener, WsSettings),
    /// WebSocket over TLS.
    Wss(TcpListener, Arc<TlsAcceptorSource>, WsSettings),
}

/// Most simultaneous client connections per plain TCP or WebSocket listener.
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
    let tls_options = TlsServeOptions::default();
    let timeout = tls_options.handshake_timeout;
    for listener in listeners {
        let forward = Forwarder {
            security: security.clone(),
            settings: settings.clone(),
            stop: shutdown.clone(),
        };
        let stop = shutdown.clone();
        match listener {
            StandaloneListener::Tcp(l) => {
                let handler = move |stream, identity| forward.clone().run(stream, identity);
                tracker.spawn(serve_tcp(l, stop, handler));
            }
            StandaloneListener::Tls(l, source) => {
                let handler = move |stream, identity| forward.clone().run(stream, identity);
                tracker.spawn(accept_tls(l, source, stop, tls_options, handler));
            }
            StandaloneListener::Ws(l, ws) => {
                let ws = Arc::new(ws);
                let handler = move |stream, identity| {
                    forward
                        .clone()
                        .run_ws(stream, identity, ws.clone(), timeout)
                };
                tracker.spawn(serve_tcp(l, stop, handler));
            }
            StandaloneListener::Wss(l, source, ws) => {
                let ws = Arc::new(ws);
                let handler = move |stream, identity| {
                    forward
                        .clone()
                        .run_ws(stream, identity, ws.clone(), timeout)
                };
                tracker.spawn(accept_tls(l, source, stop, tls_options, handler));
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    info!("standalone proxy stopped");
}

/// What every proxied connection of the standalone proxy needs.
#[derive(Clone)]
struct Forwarder {
    security: Arc<Security>,
    settings: Arc<ForwardSettings>,
    stop: CancellationToken,
}

impl Forwarder {
    /// Forwards `stream` until either side closes or the proxy stops.
    async fn run<S>(self, stream: S, identity: Identity)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = forward_connection(stream, identity, self.security, self.settings) => {}
        }
    }

    /// Upgrades `stream` to a WebSocket (within `timeout`), then forwards it.
    async fn run_ws<S>(self, stream: S, identity: Identity, ws: Arc<WsSettings>, timeout: Duration)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let Some(stream) = upgrade(stream, identity.peer, &ws, timeout).await {
            self.run(stream, identity).await;
        }
    }
}

/// The plain TCP accept loop: a permit per connection, then `handler` in the
/// connection's own task.
async fn serve_tcp<H, F>(listener: TcpListener, shutdown: CancellationToken, handler: H)
where
    H: Fn(TcpStream, Identity) -> F,
    F: Future<Output = ()> + Send + 'static,
{
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
                let connection = handler(tcp, Identity::new(peer));
                let task = async move {
                    let _permit = permit;
                    connection.await;
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
