//! The public face of broker-lite: [`Broker`] (start, shutdown), [`BrokerHandle`] (serve a
//! connection from any transport) and the TCP and WebSocket listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::{Authorizer, ClientInfo, Identity};
use crate::connection;
use crate::core::Core;
use crate::error::Error;
use crate::park::Parker;
use crate::runner::Runners;
use crate::settings::BrokerSettings;
use crate::stats::Stats;
use crate::store::Store;
use crate::sys;
use crate::transport::{Tcp, Transport, Unparkable};
use crate::ws;

struct Inner {
    core: Arc<Core>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    connections: Arc<Semaphore>,
    /// The tasks that run TCP connections.
    runners: Arc<Runners>,
}

/// A running broker. Dropping it without [`Broker::shutdown`] leaves its tasks running.
pub struct Broker {
    inner: Arc<Inner>,
}

/// A cheap, cloneable handle to serve connections on a [`Broker`].
#[derive(Clone)]
pub struct BrokerHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHandle").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    /// Starts a broker: recovers the persisted state (if persistence is configured) and
    /// starts the `$SYS` publisher. Listeners are started separately ([`serve_tcp`],
    /// [`serve_ws`]) or connections handed in with [`BrokerHandle::serve_connection`].
    pub async fn start(
        settings: BrokerSettings,
        authorizer: Arc<dyn Authorizer>,
    ) -> Result<Broker, Error> {
        let (store, model) = match &settings.persistence {
            Some(p) => {
                let (store, model) = Store::open(p).await?;
                (Some(store), Some(model))
            }
            None => (None, None),
        };
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        let sys_interval = settings.sys_interval;
        let core = Arc::new(Core::new(settings, authorizer, store, model));
        core.start_timers();
        let tracker = TaskTracker::new();
        let runners = Arc::new(Runners::new(tracker.clone(), core.shutdown.clone()));
        let inner = Arc::new(Inner {
            shutdown: core.shutdown.clone(),
            core,
            tracker,
            connections,
            runners,
        });
        let parking = Parker::start(
            &inner.core,
            inner.shutdown.clone(),
            &inner.tracker,
            inner.runners.clone(),
        );
        if let Err(e) = parking {
            warn!(error = %e, "cannot park idle connections; each keeps its task");
        }
        if !sys_interval.is_zero() {
            inner
                .tracker
                .spawn(sys::run(inner.core.clone(), inner.shutdown.clone()));
        }
        Ok(Broker { inner })
    }

    /// A handle for listeners and transports.
    pub fn handle(&self) -> BrokerHandle {
        BrokerHandle {
            inner: self.inner.clone(),
        }
    }

    /// The broker's counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.core.stats
    }

    /// Stops accepting connections, disconnects every client (MQTT 5: DISCONNECT 0x8B;
    /// without publishing wills: persistent sessions resume after the restart), waits for the connection tasks, then
    /// compacts and closes the persistent store.
    pub async fn shutdown(self) {
        info!("broker shutting down");
        self.inner.shutdown.cancel();
        self.inner.core.kick_all();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        if let Some(store) = &self.inner.core.store {
            store.close().await;
        }
        info!("broker stopped");
    }
}

impl BrokerHandle {
    /// Runs one MQTT connection over `stream` to its end. `identity` is what the transport
    /// learned about the peer. Refused at once when `max_connections` are open.
    pub async fn serve_connection<S>(&self, stream: S, identity: Identity)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let Some(permit) = self.admit(identity.peer) {
            let conn = self.connection(Unparkable(stream), identity, permit);
            self.inner.tracker.track_future(conn).await;
        }
    }

    /// A `max_connections` slot for a new connection from `peer`, unless the broker is
    /// stopping or full (logged).
    fn admit(&self, peer: SocketAddr) -> Option<OwnedSemaphorePermit> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return None;
        }
        let permit = inner.connections.clone().try_acquire_owned().ok();
        if permit.is_none() {
            warn!(
                %peer,
                limit = "max_connections",
                max = inner.core.settings.max_connections,
                "refusing connection: too many connections"
            );
        }
        permit
    }

    /// The future of one admitted connection.
    fn connection<S: Transport>(
        &self,
        stream: S,
        identity: Identity,
        permit: OwnedSemaphorePermit,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let core = self.inner.core.clone();
        let shutdown = self.inner.shutdown.clone();
        connection::serve(core, shutdown, stream, identity, permit)
    }

    /// The broker's counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.core.stats
    }

    /// After a reload: disconnects every connected client for which `still_valid` says
    /// its credential was withdrawn (a revoked certificate, a removed user or SSH key),
    /// with MQTT 5 DISCONNECT 0x87 (Not authorized); returns how many. mqgate's internal
    /// clients are never asked.
    pub fn disconnect_revoked(&self, still_valid: &dyn Fn(&ClientInfo) -> bool) -> usize {
        self.inner.core.disconnect_revoked(still_valid)
    }

    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tracker.spawn(fut);
    }

    fn stopping(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

/// Accept errors (e.g. out of file descriptors) are retried after a growing pause.
async fn backoff(error: std::io::Error, delay: &mut Duration) {
    warn!(%error, delay_ms = delay.as_millis() as u64, "accept failed; retrying");
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(Duration::from_secs(1));
}

/// Serves MQTT over plain TCP on `listener` until `shutdown` (or the broker's shutdown).
pub async fn serve_tcp(listener: TcpListener, handle: BrokerHandle, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = handle.stopping().cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                delay = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                // Spawned directly (not through `serve_connection`): the task holds only
                // the connection's own future.
                if let Some(permit) = handle.admit(peer) {
                    // On a runner (no task allocated per connection, see `runner.rs`),
                    // boxed: a plain allocation the next connection reuses.
                    let conn = handle.connection(Tcp::new(stream), Identity::new(peer), permit);
                    handle.inner.runners.spawn(Box::pin(conn));
                }
            }
            Err(e) => backoff(e, &mut delay).await,
        }
    }
}

/// Serves MQTT over WebSockets (subprotocol `mqtt`, binary frames, endpoint `ws.path`) on
/// `listener` until `shutdown` (or the broker's shutdown). The handshake runs under the
/// connect timeout in the connection's own task; a failure is one log line.
pub async fn serve_ws(
    listener: TcpListener,
    handle: BrokerHandle,
    shutdown: CancellationToken,
    ws: ws::WsSettings,
) {
    let ws = Arc::new(ws);
    let mut delay = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = handle.stopping().cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                delay = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                let (h, ws) = (handle.clone(), ws.clone());
                let timeout = h.inner.core.settings.connect_timeout;
                handle.spawn(async move {
                    if let Some(stream) = ws::upgrade(stream, peer, &ws, timeout).await {
                        h.serve_connection(stream, Identity::new(peer)).await;
                    }
                });
            }
            Err(e) => backoff(e, &mut delay).await,
        }
    }
}
