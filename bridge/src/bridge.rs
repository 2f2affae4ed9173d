//! One bridge: its queue, its two links and its stats reporter, started together and
//! stopped together (the queue is flushed and closed last).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mqgate_config::{BridgeConfig, BridgeTransport};
use mqgate_protocol::QoS;
use mqgate_wal::WalOptions;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::connector::{LocalConnector, TcpConnector, TlsConnector, UpstreamConnector};
use crate::error::BridgeError;
use crate::local::{LocalLink, LocalPublish};
use crate::mapping::TopicMap;
use crate::queue::DurableQueue;
use crate::stats::{BridgeStats, StatsSnapshot};
use crate::upstream::UpstreamLink;

/// How often the counters are logged and published under `$SYS/broker/bridge/<name>/`.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// A bridge whose queue is open, ready to [`Bridge::run`].
pub struct Bridge {
    config: BridgeConfig,
    map: Arc<TopicMap>,
    queue: Arc<DurableQueue>,
    stats: Arc<BridgeStats>,
    subscribed: watch::Sender<bool>,
}

impl Bridge {
    /// Compiles the topic rules and opens (recovers) the queue in `queue_dir`.
    pub async fn open(
        config: BridgeConfig,
        queue_dir: &Path,
        wal: WalOptions,
    ) -> Result<Bridge, BridgeError> {
        let map = Arc::new(TopicMap::new(&config.topics)?);
        let stats = Arc::new(BridgeStats::default());
        let queue = DurableQueue::open(
            &config.name,
            queue_dir,
            wal,
            config.queue.clone(),
            stats.clone(),
        )
        .await?;
        Ok(Bridge {
            config,
            map,
            queue: Arc::new(queue),
            stats,
            subscribed: watch::Sender::new(false),
        })
    }

    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// A handle to read the counters while the bridge runs.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            queue: self.queue.clone(),
        }
    }

    /// Resolves once the bridge's `out` rules are subscribed on the local broker, after
    /// [`Bridge::run`] started. Until then the local broker has no subscriber for them and
    /// drops what devices publish there, so the binary opens its listeners only after this.
    pub fn local_subscribed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut subscribed = self.subscribed.subscribe();
        async move {
            // An error means the bridge stopped before subscribing: nothing left to wait for.
            let _ = subscribed.wait_for(|done| *done).await;
        }
    }

    /// Runs until `shutdown`; then disconnects both sides and flushes and closes the queue.
    pub async fn run(
        self,
        local: Arc<dyn LocalConnector>,
        upstream: Arc<dyn UpstreamConnector>,
        shutdown: CancellationToken,
    ) -> Result<(), BridgeError> {
        let name = self.config.name.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let local_link = LocalLink::new(
            &name,
            self.map.clone(),
            self.queue.clone(),
            self.config.outgoing_retain,
            self.subscribed.clone(),
        );
        let upstream_link = UpstreamLink::new(
            self.config.clone(),
            self.map.clone(),
            self.queue.clone(),
            self.stats.clone(),
            tx.clone(),
        );
        let stop_links = CancellationToken::new();
        let local_task = tokio::spawn(local_link.run(local, rx, stop_links.clone()));
        let upstream_task = tokio::spawn(upstream_link.run(upstream, stop_links.clone()));
        let mut report = tokio::time::interval(REPORT_INTERVAL);
        report.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = report.tick() => report_stats(&name, &self.queue.snapshot(), &tx),
            }
        }
        stop_links.cancel();
        let _ = upstream_task.await;
        let _ = local_task.await;
        let s = self.queue.snapshot();
        tracing::info!(bridge = %name, queued = s.depth, bytes = s.bytes, forwarded = s.forwarded,
            dropped = s.dropped, "bridge stopped; flushing its queue");
        self.queue.close().await
    }
}

/// Reads a running bridge's counters.
#[derive(Clone)]
pub struct StatsHandle {
    queue: Arc<DurableQueue>,
}

impl StatsHandle {
    /// The counters and queue figures now.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.queue.snapshot()
    }
}

/// Logs the counters and publishes them (retained, QoS 0) under `$SYS/broker/bridge/<name>/`.
fn report_stats(name: &str, s: &StatsSnapshot, local: &mpsc::UnboundedSender<LocalPublish>) {
    tracing::info!(bridge = %name, queue_messages = s.depth, queue_bytes = s.bytes,
        oldest_age_s = s.oldest_age_secs, queued = s.queued, forwarded = s.forwarded,
        dropped = s.dropped, retransmitted = s.retransmitted, received = s.received,
        "bridge stats");
    let values = [
        ("queue/messages", s.depth),
        ("queue/bytes", s.bytes),
        ("queue/oldest_age_seconds", s.oldest_age_secs),
        ("messages/queued", s.queued),
        ("messages/forwarded", s.forwarded),
        ("messages/dropped", s.dropped),
        ("messages/retransmitted", s.retransmitted),
        ("messages/received", s.received),
    ];
    for (key, value) in values {
        let _ = local.send(LocalPublish {
            topic: format!("$SYS/broker/bridge/{name}/{key}").into(),
            qos: QoS::AtMostOnce,
            retain: true,
            payload: value.to_string().into(),
            done: None,
        });
    }
}

/// The upstream connector of a `tcp` or `tls` bridge. `ssh` bridges get theirs from the
/// binary (the SSH tunnel lives in the proxy crate): this returns `Unsupported` for them.
pub fn upstream_connector(
    config: &BridgeConfig,
) -> Result<Arc<dyn UpstreamConnector>, BridgeError> {
    match config.transport {
        BridgeTransport::Tcp => Ok(Arc::new(TcpConnector::new(config.addresses.clone()))),
        BridgeTransport::Tls => {
            let tls = config.tls.clone().unwrap_or_default();
            Ok(Arc::new(TlsConnector::new(config.addresses.clone(), &tls)?))
        }
        BridgeTransport::Ssh => Err(BridgeError::Unsupported(format!(
            "bridge {}: transport = \"ssh\" needs the tunnel connector from the binary",
            config.name
        ))),
    }
}
