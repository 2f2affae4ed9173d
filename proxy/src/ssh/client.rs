//! The `[[tunnel]]` client, replacing autossh `-L`: one kept-alive SSH connection to a
//! server (host key pinned), carrying every local connection as its own direct-tcpip
//! channel to `remote`. Keep-alives detect a dead server within three intervals; the
//! connection is re-established with exponential backoff and jitter; local connections
//! arriving while it is down wait up to `connect_wait`, then are closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqgate_config::TunnelConfig;
use ring::rand::{SecureRandom, SystemRandom};
use russh::client::{Handle, Msg};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use russh::ChannelStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::hostpin::HostKeyPin;
use super::SshError;

/// A byte stream to `remote` through the tunnel (one direct-tcpip channel).
pub type TunnelStream = ChannelStream<Msg>;

type Session = Arc<Handle<ClientHandler>>;

/// One `[[tunnel]]`: keeps its SSH connection up while [`SshTunnel::run`] runs.
pub struct SshTunnel {
    config: TunnelConfig,
    key: Arc<russh::keys::PrivateKey>,
    pin: HostKeyPin,
    server: (String, u16),
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    remote_host: String,
    remote_port: u32,
    connect_wait: Duration,
    session: watch::Sender<Option<Session>>,
}

/// Opens channels on a tunnel's shared SSH connection (the bridge's uplink transport).
#[derive(Clone)]
pub struct SshConnector {
    shared: Arc<Shared>,
}

impl SshTunnel {
    /// Prepares a tunnel: reads the client key and checks the addresses. Nothing connects
    /// until [`SshTunnel::run`].
    pub fn new(config: TunnelConfig) -> Result<SshTunnel, SshError> {
        let key =
            russh::keys::load_secret_key(&config.key_file, None).map_err(|e| SshError::Key {
                path: config.key_file.clone(),
                message: e.to_string(),
            })?;
        let server = split_host_port(&config.server)?;
        let (remote_host, remote_port) = split_host_port(&config.remote)?;
        if config.known_hosts.is_none() && config.host_key_fingerprint.is_none() {
            return Err(SshError::Config(format!(
                "tunnel {}: set known_hosts or host_key_fingerprint, the server key must be pinned",
                config.name
            )));
        }
        let pin = HostKeyPin {
            tunnel: config.name.clone(),
            host: server.0.clone(),
            port: server.1,
            known_hosts: config.known_hosts.clone(),
            fingerprint: config.host_key_fingerprint.clone(),
        };
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            remote_host,
            remote_port: u32::from(remote_port),
            connect_wait: config.connect_wait,
            session: watch::Sender::new(None),
        });
        Ok(SshTunnel {
            config,
            key: Arc::new(key),
            pin,
            server,
            shared,
        })
    }

    /// A connector opening channels on this tunnel's SSH connection.
    pub fn connector(&self) -> SshConnector {
        SshConnector {
            shared: self.shared.clone(),
        }
    }

    /// Keeps the SSH connection up and, if `listen` is set, forwards local connections
    /// through it, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SshError> {
        if let Some(listen) = self.config.listen {
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|source| SshError::Io {
                    path: listen.to_string().into(),
                    source,
                })?;
            info!(tunnel = %self.config.name, listen = %listen, remote = %self.config.remote, "tunnel listening");
            tokio::spawn(serve_local(listener, self.connector(), shutdown.clone()));
        }
        self.keep_connected(shutdown).await;
        Ok(())
    }

    async fn keep_connected(self, shutdown: CancellationToken) {
        let initial = self.config.reconnect.initial;
        let max = self.config.reconnect.max.max(initial);
        let mut backoff = initial;
        loop {
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.establish() => r,
            };
            match attempt {
                Ok((session, closed)) => {
                    info!(tunnel = %self.config.name, server = %self.config.server, "tunnel up");
                    backoff = initial;
                    self.shared.session.send_replace(Some(session.clone()));
                    let shutting_down = wait_closed(&session, &closed, &shutdown).await;
                    self.shared.session.send_replace(None);
                    if shutting_down {
                        let _ = session
                            .disconnect(russh::Disconnect::ByApplication, "shutting down", "")
                            .await;
                        break;
                    }
                    warn!(tunnel = %self.config.name, server = %self.config.server, "tunnel down: reconnecting");
                }
                Err(e) => {
                    warn!(tunnel = %self.config.name, server = %self.config.server, error = %e, retry_in = ?backoff, "tunnel connect failed");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(jitter(backoff)) => {}
            }
            backoff = (backoff * 2).min(max);
        }
        self.shared.session.send_replace(None);
        debug!(tunnel = %self.config.name, "tunnel stopped");
    }

    async fn establish(&self) -> Result<(Session, CancellationToken), SshError> {
        let keepalive = self.config.keepalive;
        let config = Arc::new(russh::client::Config {
            keepalive_interval: (!keepalive.is_zero()).then_some(keepalive),
            keepalive_max: 3,
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        });
        let closed = CancellationToken::new();
        let handler = ClientHandler {
            pin: self.pin.clone(),
            closed: closed.clone(),
        };
        // Bound the TCP connect + handshake so a black-holed server does not hang us.
        let bound = keepalive.max(Duration::from_secs(1)) * 3;
        let connect =
            russh::client::connect(config, (self.server.0.as_str(), self.server.1), handler);
        let mut handle = tokio::time::timeout(bound, connect)
            .await
            .map_err(|_| SshError::Ssh(russh::Error::ConnectionTimeout))??;
        let hash = if self.key.algorithm().is_rsa() {
            // rsa-sha2-* where the server says (or does not say) it supports them; old
            // servers that only know ssh-rsa (SHA-1) say so in server-sig-algs.
            handle
                .best_supported_rsa_hash()
                .await?
                .unwrap_or(Some(russh::keys::HashAlg::Sha256))
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(self.key.clone(), hash);
        let auth =
            tokio::time::timeout(bound, handle.authenticate_publickey(&self.config.user, key))
                .await
                .map_err(|_| SshError::Ssh(russh::Error::ConnectionTimeout))??;
        if !auth.success() {
            error!(tunnel = %self.config.name, server = %self.config.server, user = %self.config.user, "SSH server refused our key");
            return Err(SshError::AuthRefused(self.config.user.clone()));
        }
        Ok((Arc::new(handle), closed))
    }
}

/// Waits until the session dies (or shutdown); returns whether it was shutdown.
async fn wait_closed(
    session: &Session,
    closed: &CancellationToken,
    shutdown: &CancellationToken,
) -> bool {
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return true,
            _ = closed.cancelled() => return false,
            _ = poll.tick() => if session.is_closed() { return false },
        }
    }
}

/// `delay` scaled by a random factor in [0.5, 1.0] so many gateways do not reconnect in step.
fn jitter(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let r = SystemRandom::new()
        .fill(&mut byte)
        .map(|()| byte[0])
        .unwrap_or(255);
    delay.mul_f64(0.5 + f64::from(r) / 510.0)
}

/// Runs `ssh -L`-style forwarding: every accepted local connection gets its own channel.
async fn serve_local(listener: TcpListener, connector: SshConnector, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connector = connector.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { forward(stream, peer, connector, shutdown).await });
            }
            Err(e) => {
                warn!(tunnel = %connector.shared.name, error = %e, "tunnel accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn forward(
    mut stream: TcpStream,
    peer: SocketAddr,
    connector: SshConnector,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let name = &connector.shared.name;
    let mut channel = match connector.connect_from(peer).await {
        Ok(channel) => channel,
        Err(e) => {
            warn!(tunnel = %name, %peer, error = %e, "closing local connection: tunnel unavailable");
            return;
        }
    };
    debug!(tunnel = %name, %peer, "forwarding local connection");
    tokio::select! {
        _ = shutdown.cancelled() => {}
        r = tokio::io::copy_bidirectional(&mut stream, &mut channel) => match r {
            Ok((up, down)) => debug!(tunnel = %name, %peer, up, down, "local connection closed"),
            Err(e) => debug!(tunnel = %name, %peer, error = %e, "local connection ended"),
        }
    }
}

impl SshConnector {
    /// Whether the tunnel's SSH connection is currently up.
    pub fn is_up(&self) -> bool {
        self.shared
            .session
            .borrow()
            .as_ref()
            .is_some_and(|session| !session.is_closed())
    }

    /// Opens a new channel to the tunnel's `remote` on the shared SSH connection, waiting
    /// up to `connect_wait` for the tunnel to be up.
    pub async fn connect(&self) -> io::Result<TunnelStream> {
        self.connect_from(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
    }

    async fn connect_from(&self, originator: SocketAddr) -> io::Result<TunnelStream> {
        let shared = &self.shared;
        let deadline = tokio::time::Instant::now() + shared.connect_wait;
        let mut updates = shared.session.subscribe();
        loop {
            let session = updates.borrow_and_update().clone();
            if let Some(session) = session {
                let opened = tokio::time::timeout_at(
                    deadline,
                    session.channel_open_direct_tcpip(
                        shared.remote_host.clone(),
                        shared.remote_port,
                        originator.ip().to_string(),
                        u32::from(originator.port()),
                    ),
                )
                .await;
                match opened {
                    Ok(Ok(channel)) => return Ok(channel.into_stream()),
                    Ok(Err(e)) if !session.is_closed() => {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!(
                                "the SSH server refused a channel to {}:{}: {e}",
                                shared.remote_host, shared.remote_port
                            ),
                        ));
                    }
                    Ok(Err(_)) => {} // the session just died: wait for the next one
                    Err(_) => return Err(timed_out(shared)),
                }
            }
            match tokio::time::timeout_at(deadline, updates.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(timed_out(shared)),
            }
        }
    }
}

fn timed_out(shared: &Shared) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "tunnel {} is down (waited {:?})",
            shared.name, shared.connect_wait
        ),
    )
}

/// Splits `host:port` (`[v6]:port` allowed).
fn split_host_port(address: &str) -> Result<(String, u16), SshError> {
    let bad = || SshError::Address(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// The russh client handler: checks the pinned host key, notices disconnection.
struct ClientHandler {
    pin: HostKeyPin,
    closed: CancellationToken,
}

impl russh::client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
                Ok(self.pin.check(key as &PublicKey))
            }
            russh::keys::PublicKeyOrCertificate::Certificate(_) => {
                error!(tunnel = %self.pin.tunnel, "SSH server presented a host certificate; only pinned plain keys are accepted");
                Ok(false)
            }
        }
    }

    async fn disconnected(
        &mut self,
        reason: russh::client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        self.closed.cancel();
        match reason {
            russh::client::DisconnectReason::ReceivedDisconnect(_) => Ok(()),
            russh::client::DisconnectReason::Error(e) => Err(e),
        }
    }
}

/// Runs one `[[tunnel]]` until `shutdown` (see [`SshTunnel`]).
pub async fn run_tunnel(config: TunnelConfig, shutdown: CancellationToken) -> Result<(), SshError> {
    SshTunnel::new(config)?.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("a.example:22").unwrap(),
            ("a.example".to_owned(), 22)
        );
        assert_eq!(
            split_host_port("[::1]:2222").unwrap(),
            ("::1".to_owned(), 2222)
        );
        assert!(split_host_port("nohost").is_err());
        assert!(split_host_port(":22").is_err());
        assert!(split_host_port("h:99999").is_err());
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10));
        }
    }
}
