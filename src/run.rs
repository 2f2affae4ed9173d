//! `mqgate run`: loads the configuration, starts broker-lite and its listeners, and
//! shuts everything down gracefully on SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use mqgate_broker_lite::ws::WsSettings;
use mqgate_broker_lite::{
    serve_tcp, serve_ws, Broker, BrokerSettings, ClientInfo, Credential, OverloadPolicy,
};
use mqgate_config::{Config, ListenerConfig, ListenerKind, QueueFullPolicy};
use mqgate_proxy::ssh::{
    fingerprint, serve_ssh, AuthorizedKeys, SshPasswordVerifier, SshServerSettings, SshTunnel,
};
use mqgate_proxy::tls::{serve_tls, serve_wss, TlsAcceptorSource, TlsServeOptions};
use mqgate_proxy::Security;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config_cmd::EXIT_BAD_CONFIG;

/// Arguments of `mqgate run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file (TOML). Without it, the built-in default is used
    /// (`mqgate config default` prints it).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen for plain MQTT on HOST:PORT. Repeatable; replaces the configured plain-TCP
    /// listeners (like mosquitto's -p).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Vec<SocketAddr>,
    /// Directory for persistent state (replaces persistence.data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Runs the gateway until SIGTERM or Ctrl-C.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The configuration from the file (or the default), with the command-line overrides.
pub(crate) fn load_config(args: &RunArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if !args.listen.is_empty() {
        config.listeners.retain(|l| l.kind != ListenerKind::Tcp);
        config
            .listeners
            .extend(args.listen.iter().map(|addr| ListenerConfig::tcp(*addr)));
    }
    if let Some(dir) = &args.data_dir {
        config.persistence.data_dir = dir.clone();
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Maps the broker and persistence sections onto broker-lite's settings.
fn broker_settings(config: &Config) -> BrokerSettings {
    let b = &config.broker;
    let p = &config.persistence;
    BrokerSettings {
        max_connections: b.max_connections as usize,
        max_packet_size: b.max_packet_size as usize,
        max_inflight: b.max_inflight,
        max_queued_messages: b.max_queued_messages as usize,
        max_queued_bytes: usize::try_from(b.max_queued_bytes).unwrap_or(usize::MAX),
        queue_qos0_messages: b.queue_qos0_messages,
        connect_timeout: b.connect_timeout,
        sys_interval: b.sys_interval,
        retain_available: b.retain_available,
        max_retained_messages: b.max_retained_messages as usize,
        max_retained_bytes: usize::try_from(b.max_retained_bytes).unwrap_or(usize::MAX),
        max_subscriptions_per_client: b.max_subscriptions_per_client as usize,
        allow_control_characters: b.allow_control_characters,
        overload: match b.queue_full {
            QueueFullPolicy::Backpressure => OverloadPolicy::Backpressure,
            QueueFullPolicy::DropOldest => OverloadPolicy::DropOldest,
            QueueFullPolicy::DropNew => OverloadPolicy::DropNew,
            QueueFullPolicy::Disconnect => OverloadPolicy::Disconnect,
        },
        persistence: p.enabled.then(|| mqgate_broker_lite::PersistenceSettings {
            dir: p.data_dir.clone(),
            durability: match p.durability {
                mqgate_config::Durability::Sync => mqgate_broker_lite::Durability::Sync,
                mqgate_config::Durability::Batch => mqgate_broker_lite::Durability::Batch,
                mqgate_config::Durability::NoSync => mqgate_broker_lite::Durability::None,
            },
            commit_window: p.commit_window,
            flush_interval: p.flush_interval,
            compaction_threshold_bytes: p.compaction_threshold_bytes,
        }),
        receive_maximum: b.receive_maximum,
        topic_alias_maximum: b.topic_alias_maximum,
        max_keep_alive: b.max_keep_alive,
        // Settings the configuration does not expose keep broker-lite's defaults.
        ..BrokerSettings::default()
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let security = Arc::new(
        Security::from_config(&config.auth, &config.acl)
            .context("loading the password and ACL files")?,
    );
    let broker = Broker::start(broker_settings(&config), security.clone())
        .await
        .context("starting broker-lite")?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Bind every listener first, so a taken port fails start-up before anything runs.
    let mut sockets = Vec::new();
    for listener in &config.listeners {
        let socket = TcpListener::bind(listener.bind)
            .await
            .with_context(|| format!("binding {}", listener.bind))?;
        sockets.push((listener, socket));
    }
    // Tunnels and bridges before the listeners accept anyone: a device's first message
    // must find the bridges' local subscriptions in place, or nobody would forward it.
    let mut tunnels = std::collections::HashMap::new();
    for tunnel in &config.tunnels {
        let name = tunnel.name.clone();
        let client = SshTunnel::new(tunnel.clone()).with_context(|| format!("tunnel {name}"))?;
        tunnels.insert(name.clone(), client.connector());
        let token = shutdown.clone();
        tracker.spawn(async move {
            if let Err(err) = client.run(token).await {
                tracing::error!(tunnel = %name, %err, "SSH tunnel stopped");
            }
        });
    }
    crate::bridges::start_bridges_with_tunnels(
        &config,
        broker.handle(),
        &config.persistence.data_dir,
        &tunnels,
        &tracker,
        shutdown.clone(),
    )
    .await?;
    let mut tls_sources = Vec::new();
    let mut ssh_keys = Vec::new();
    for (listener, socket) in sockets {
        let addr = socket.local_addr()?;
        let handle = broker.handle();
        let token = shutdown.clone();
        match listener.kind {
            ListenerKind::Ws => {
                tracing::info!(kind = %"ws", %addr, path = listener.ws_path(), "listening");
                let ws = ws_settings(listener, &config);
                tracker.spawn(serve_ws(socket, handle, token, ws));
            }
            ListenerKind::Tls => {
                let source = tls_source(listener)?;
                tls_sources.push(source.clone());
                tracing::info!(kind = %"tls", %addr, "listening");
                tracker.spawn(serve_tls(socket, source, handle, token));
            }
            ListenerKind::Wss => {
                let source = tls_source(listener)?;
                tls_sources.push(source.clone());
                let path = listener.ws_path();
                tracing::info!(kind = %"wss", %addr, path, "listening");
                let ws = ws_settings(listener, &config);
                let options = TlsServeOptions::default();
                tracker.spawn(serve_wss(socket, source, handle, token, options, ws));
            }
            ListenerKind::Ssh => {
                let ssh = listener.ssh.clone().unwrap_or_default();
                let passwords = ssh
                    .allow_password
                    .then(|| security.clone() as Arc<dyn SshPasswordVerifier>);
                let settings = SshServerSettings::from_config(&ssh, passwords)
                    .with_context(|| format!("SSH listener {}", listener.bind))?;
                ssh_keys.extend(settings.authorized_keys.clone());
                let host_key = fingerprint(settings.host_key.public_key());
                tracing::info!(kind = %"ssh", %addr, fingerprint = %host_key, "listening");
                tracker.spawn(serve_ssh(socket, settings, handle, token));
            }
            _ => {
                tracing::info!(kind = %"tcp", %addr, "listening");
                tracker.spawn(serve_tcp(socket, handle, token));
            }
        }
    }
    tracker.close();
    let revocation = Revocation {
        security: security.clone(),
        tls: tls_sources.clone(),
        ssh: ssh_keys,
    };
    wait_for_shutdown(|| {
        reload(&security, &tls_sources);
        let n = broker
            .handle()
            .disconnect_revoked(&|client| revocation.still_valid(client));
        if n > 0 {
            tracing::warn!(
                disconnected = n,
                "SIGHUP: disconnected clients whose credentials were withdrawn"
            );
        }
    })
    .await;
    tracing::info!("shutting down: closing listeners, disconnecting clients, flushing state");
    shutdown.cancel();
    tracker.wait().await;
    broker.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// What a reload can withdraw from a connected client: its user from the password file,
/// its certificate by a CRL, its key from the SSH listeners' authorized keys.
pub(crate) struct Revocation {
    pub security: Arc<Security>,
    pub tls: Vec<Arc<TlsAcceptorSource>>,
    pub ssh: Vec<AuthorizedKeys>,
}

impl Revocation {
    /// Whether `client`'s credential still stands under the reloaded files.
    pub fn still_valid(&self, client: &ClientInfo) -> bool {
        if !self.security.still_valid(client) {
            return false;
        }
        match &*client.credential {
            Credential::Certificate { serial } => !self.tls.iter().any(|t| t.is_revoked(serial)),
            Credential::Ssh { key: Some(key) } => {
                let user = client.username.as_deref().unwrap_or("");
                self.ssh.iter().any(|keys| keys.still_authorized(user, key))
            }
            _ => true,
        }
    }
}

/// The reloadable TLS configuration of a `tls` or `wss` listener.
pub(crate) fn tls_source(listener: &ListenerConfig) -> anyhow::Result<Arc<TlsAcceptorSource>> {
    let source = TlsAcceptorSource::new(listener.tls.clone().unwrap_or_default())
        .with_context(|| format!("TLS listener {}", listener.bind))?;
    Ok(Arc::new(source))
}

/// The WebSocket endpoint of a `ws` or `wss` listener.
pub(crate) fn ws_settings(listener: &ListenerConfig, config: &Config) -> WsSettings {
    WsSettings {
        path: listener.ws_path().to_owned(),
        max_packet_size: config.broker.max_packet_size as usize,
    }
}

/// SIGHUP: re-reads the password file, the ACL file and every TLS listener's certificate,
/// key, client CA and CRL. A file that fails to load keeps its previous contents (logged);
/// connections stay up, and the new rules apply to their next operation.
pub(crate) fn reload(security: &Security, tls_sources: &[Arc<TlsAcceptorSource>]) {
    tracing::info!("SIGHUP: reloading passwords, ACL and TLS material");
    let _ = security.reload();
    for source in tls_sources {
        if let Err(err) = source.reload() {
            tracing::error!(%err, "TLS reload failed; keeping the previous certificates");
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C), calling `on_hangup` for each SIGHUP.
pub(crate) async fn wait_for_shutdown(on_hangup: impl Fn()) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(term), Ok(hup)) => (term, hup),
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(%err, "cannot listen for SIGTERM/SIGHUP; only Ctrl-C stops mqgate");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                return;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("SIGINT received");
                return;
            }
            _ = hup.recv() => on_hangup(),
        }
    }
}
