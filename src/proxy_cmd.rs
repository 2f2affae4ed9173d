//! `mqgate proxy`: the security layer alone, in front of an existing broker
//! (`[proxy] upstream`). Clients connect over TCP, TLS, WebSocket or WebSocket over TLS,
//! are authenticated by mqgate, and their packets are checked against the ACL in both
//! directions.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use mqgate_config::{Config, ListenerKind};
use mqgate_proxy::forward::{run_standalone, ForwardSettings, StandaloneListener};
use mqgate_proxy::Security;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config_cmd::EXIT_BAD_CONFIG;
use crate::run::{init_tracing, reload, tls_source, wait_for_shutdown, ws_settings};

/// Arguments of `mqgate proxy`.
#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Configuration file with a `[proxy]` section naming the upstream broker.
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
}

/// Runs the standalone proxy until SIGTERM or Ctrl-C; SIGHUP reloads passwords, ACL and TLS.
pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(EXIT_BAD_CONFIG));
        }
    };
    if config.proxy.is_none() {
        eprintln!(
            "{}: `mqgate proxy` needs a [proxy] section with `upstream = \"host:port\"`",
            args.config.display()
        );
        return Ok(ExitCode::from(EXIT_BAD_CONFIG));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let Some(proxy) = &config.proxy else {
        bail!("no [proxy] section");
    };
    let security = Arc::new(
        Security::from_config(&config.auth, &config.acl)
            .context("loading the password and ACL files")?,
    );
    let mut listeners = Vec::new();
    let mut tls_sources = Vec::new();
    for listener in &config.listeners {
        let socket = TcpListener::bind(listener.bind)
            .await
            .with_context(|| format!("binding {}", listener.bind))?;
        let addr = socket.local_addr()?;
        match listener.kind {
            ListenerKind::Tcp => {
                tracing::info!(kind = %"tcp", %addr, upstream = %proxy.upstream, "listening");
                listeners.push(StandaloneListener::Tcp(socket));
            }
            ListenerKind::Tls => {
                let source = tls_source(listener)?;
                tls_sources.push(source.clone());
                tracing::info!(kind = %"tls", %addr, upstream = %proxy.upstream, "listening");
                listeners.push(StandaloneListener::Tls(socket, source));
            }
            ListenerKind::Ws => {
                let path = listener.ws_path();
                tracing::info!(kind = %"ws", %addr, path, upstream = %proxy.upstream, "listening");
                listeners.push(StandaloneListener::Ws(socket, ws_settings(listener, &config)));
            }
            ListenerKind::Wss => {
                let source = tls_source(listener)?;
                tls_sources.push(source.clone());
                let path = listener.ws_path();
                tracing::info!(kind = %"wss", %addr, path, upstream = %proxy.upstream, "listening");
                let ws = ws_settings(listener, &config);
                listeners.push(StandaloneListener::Wss(socket, source, ws));
            }
            ListenerKind::Ssh => bail!(
                "listener {}: kind ssh is not supported by the standalone proxy (tcp, tls, ws or wss)",
                listener.bind
            ),
        }
    }
    let settings = ForwardSettings {
        connect_timeout: config.broker.connect_timeout,
        max_packet_size: config.broker.max_packet_size as usize,
        ..ForwardSettings::new(proxy.upstream.clone())
    };
    let shutdown = CancellationToken::new();
    let proxy_task = tokio::spawn(run_standalone(
        listeners,
        security.clone(),
        settings,
        shutdown.clone(),
    ));
    wait_for_shutdown(|| reload(&security, &tls_sources)).await;
    shutdown.cancel();
    proxy_task.await.context("the proxy task failed")?;
    tracing::info!("stopped");
    Ok(())
}
