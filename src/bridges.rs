//! `[[bridge]]` wiring: each bridge is an in-process client of broker-lite (a duplex pipe
//! served by the broker, not a loopback TCP connection) and dials its upstream with the
//! bridge crate's TCP or TLS connector.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use mqgate_bridge::{BoxFuture, BoxedStream, Bridge, LocalConnector, WalOptions};
use mqgate_broker_lite::{BrokerHandle, Identity};
use mqgate_config::{BridgeTransport, Config};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bytes buffered in each direction of the in-process pipe.
const PIPE_BYTES: usize = 64 * 1024;

/// Connects a bridge to broker-lite through an in-process duplex pipe.
struct BrokerLocal {
    handle: BrokerHandle,
}

impl LocalConnector for BrokerLocal {
    fn connect(&self) -> BoxFuture<'_, io::Result<BoxedStream>> {
        Box::pin(async move {
            let (a, b) = tokio::io::duplex(PIPE_BYTES);
            let handle = self.handle.clone();
            // The bridge shows up in broker-lite's logs as a loopback peer with port 0.
            let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            tokio::spawn(async move { handle.serve_connection(b, Identity::new(peer)).await });
            Ok(Box::new(a) as BoxedStream)
        })
    }
}

/// Opens every `[[bridge]]`'s queue under `data_dir/bridges/<name>` and starts it on
/// `tracker`. Each bridge runs until `shutdown`, then disconnects and flushes its queue
/// (the tracker's `wait` covers that), so broker-lite must be shut down after it.
pub async fn start_bridges(
    config: &Config,
    broker: BrokerHandle,
    data_dir: &Path,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let p = &config.persistence;
    let wal = WalOptions {
        durability: match p.durability {
            mqgate_config::Durability::Sync => mqgate_bridge::Durability::Sync,
            mqgate_config::Durability::Batch => mqgate_bridge::Durability::Batch,
            mqgate_config::Durability::NoSync => mqgate_bridge::Durability::None,
        },
        flush_interval: p.flush_interval,
        ..WalOptions::default()
    };
    let local: Arc<dyn LocalConnector> = Arc::new(BrokerLocal { handle: broker });
    for bridge in &config.bridges {
        if bridge.transport == BridgeTransport::Ssh {
            bail!(
                "bridge {}: transport = \"ssh\" is not wired in this build yet",
                bridge.name
            );
        }
        let upstream = mqgate_bridge::upstream_connector(bridge)
            .with_context(|| format!("bridge {}", bridge.name))?;
        let dir = data_dir.join("bridges").join(&bridge.name);
        let opened = Bridge::open(bridge.clone(), &dir, wal)
            .await
            .with_context(|| {
                format!(
                    "bridge {}: opening its queue in {}",
                    bridge.name,
                    dir.display()
                )
            })?;
        tracing::info!(bridge = %bridge.name, transport = ?bridge.transport,
            addresses = ?bridge.addresses, "bridge starting");
        let name = bridge.name.clone();
        let local = local.clone();
        let token = shutdown.clone();
        tracker.spawn(async move {
            if let Err(error) = opened.run(local, upstream, token).await {
                tracing::error!(bridge = %name, %error, "bridge stopped with an error");
            }
        });
    }
    Ok(())
}
