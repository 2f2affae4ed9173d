//! `[[bridge]]` wiring: each bridge is an in-process client of broker-lite (a duplex pipe
//! served by the broker, not a loopback TCP connection) and dials its upstream with the
//! bridge crate's TCP or TLS connector, or (`transport = "ssh"`) through a channel of its
//! `[[tunnel]]`'s shared SSH connection.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use mqgate_bridge::{
    BoxFuture, BoxedStream, Bridge, Connected, LocalConnector, UpstreamConnector, WalOptions,
};
use mqgate_broker_lite::{BrokerHandle, Identity, RESERVED_CLIENT_ID_PREFIX};
use mqgate_config::{BridgeConfig, BridgeTransport, Config};
use mqgate_proxy::ssh::SshConnector;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bytes buffered in each direction of the in-process pipe.
const PIPE_BYTES: usize = 64 * 1024;

/// How long start-up waits for the bridges' local subscriptions before opening the
/// listeners anyway (they are in-process, so this is normally a few milliseconds).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);

/// Connects a bridge to broker-lite through an in-process duplex pipe, as mqgate's own
/// trusted client ([`Identity::internal`]): no password, no ACL narrowing, and the only
/// client that may open the bridge's reserved client id `mqgate-bridge-<name>`.
struct BrokerLocal {
    handle: BrokerHandle,
    /// The bridge's internal identity name.
    name: String,
}

impl LocalConnector for BrokerLocal {
    fn connect(&self) -> BoxFuture<'_, io::Result<BoxedStream>> {
        Box::pin(async move {
            let (a, b) = tokio::io::duplex(PIPE_BYTES);
            let handle = self.handle.clone();
            // The bridge shows up in broker-lite's logs as a loopback peer with port 0.
            let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let identity = Identity::internal(peer, self.name.clone());
            tokio::spawn(async move { handle.serve_connection(b, identity).await });
            Ok(Box::new(a) as BoxedStream)
        })
    }
}

/// Dials the upstream through a `[[tunnel]]`: one direct-tcpip channel per connection,
/// on the tunnel's shared SSH connection.
struct SshUpstream {
    tunnel: String,
    connector: SshConnector,
}

impl UpstreamConnector for SshUpstream {
    fn connect(&self) -> BoxFuture<'_, io::Result<Connected>> {
        Box::pin(async move {
            let stream = self.connector.connect().await?;
            Ok(Connected {
                stream: Box::new(stream) as BoxedStream,
                peer: format!("ssh tunnel {}", self.tunnel),
            })
        })
    }
}

/// The upstream connector of `bridge`: TCP or TLS from the bridge crate, or the channel
/// opener of the `[[tunnel]]` it names (from `tunnels`, by name).
fn upstream_of(
    bridge: &BridgeConfig,
    tunnels: &HashMap<String, SshConnector>,
) -> anyhow::Result<Arc<dyn UpstreamConnector>> {
    if bridge.transport != BridgeTransport::Ssh {
        return mqgate_bridge::upstream_connector(bridge)
            .with_context(|| format!("bridge {}", bridge.name));
    }
    let Some(name) = &bridge.tunnel else {
        bail!(
            "bridge {}: transport = \"ssh\" needs tunnel = \"<name>\"",
            bridge.name
        );
    };
    match tunnels.get(name) {
        Some(connector) => Ok(Arc::new(SshUpstream {
            tunnel: name.clone(),
            connector: connector.clone(),
        })),
        None => bail!(
            "bridge {}: tunnel `{name}` is not running (no [[tunnel]] of that name was started)",
            bridge.name
        ),
    }
}

/// Opens every `[[bridge]]`'s queue under `data_dir/bridges/<name>` and starts it on
/// `tracker`; `ssh` bridges dial through `tunnels` (the connectors of the running
/// `[[tunnel]]`s, by name). Each bridge runs until `shutdown`, then disconnects and
/// flushes its queue (the tracker's `wait` covers that), so broker-lite must be shut down
/// after it. Returns once every bridge has subscribed its `out` rules on the local broker
/// (or after [`SUBSCRIBE_WAIT`], with a warning), so that listeners opened afterwards
/// never accept a message no bridge is subscribed to yet.
pub async fn start_bridges_with_tunnels(
    config: &Config,
    broker: BrokerHandle,
    data_dir: &Path,
    tunnels: &HashMap<String, SshConnector>,
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
    let mut subscribed = Vec::new();
    for bridge in &config.bridges {
        let upstream = upstream_of(bridge, tunnels)?;
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
        subscribed.push((bridge.name.clone(), opened.local_subscribed()));
        let name = bridge.name.clone();
        let local: Arc<dyn LocalConnector> = Arc::new(BrokerLocal {
            handle: broker.clone(),
            name: format!("{RESERVED_CLIENT_ID_PREFIX}{name}"),
        });
        let token = shutdown.clone();
        tracker.spawn(async move {
            if let Err(error) = opened.run(local, upstream, token).await {
                tracing::error!(bridge = %name, %error, "bridge stopped with an error");
            }
        });
    }
    for (name, ready) in subscribed {
        if tokio::time::timeout(SUBSCRIBE_WAIT, ready).await.is_err() {
            tracing::warn!(bridge = %name, waited = ?SUBSCRIBE_WAIT,
                "bridge is not subscribed on the local broker yet; opening the listeners anyway");
        }
    }
    Ok(())
}
