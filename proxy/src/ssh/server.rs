//! The SSH listener: accepts SSH logins (public key, optionally password) and serves
//! direct-tcpip channels to the MQTT service in-process through broker-lite, with the SSH
//! user as the connection's transport identity. Everything else is refused with
//! "administratively prohibited" and logged: session channels (shell, exec, subsystem, pty,
//! agent and X11 forwarding all need one), X11 channels, `tcpip-forward` (`ssh -R`),
//! streamlocal forwarding, and direct-tcpip to any other host:port.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mqgate_broker_lite::{BrokerHandle, Credential, Identity, UsernamePolicy};
use mqgate_config::SshListenerConfig;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::ChannelOpenHandle;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelOpenFailure, Disconnect, MethodKind, MethodSet};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, info, warn};

use super::hostkey::{fingerprint, load_or_generate_host_key};
use super::{AuthorizedKeys, SshError};

/// Checks an SSH password login (the proxy's argon2 password file plugs in here). The
/// implementation owns rate limiting; `peer` is given for that.
pub trait SshPasswordVerifier: Send + Sync + 'static {
    /// Whether `password` is correct for `user`.
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

    /// Whether `user` still has a password (checked before each new MQTT channel of a
    /// connection that logged in by password: a user removed since, and reloaded, opens
    /// none). Default: yes.
    fn still_known(&self, _user: &str) -> bool {
        true
    }
}

/// Refused channel opens (over the limit or prohibited) after which a connection is closed.
const MAX_REFUSED_CHANNELS: u32 = 16;

/// Everything an SSH listener needs, resolved from `[listener.ssh]`.
#[derive(Clone)]
pub struct SshServerSettings {
    /// The host key.
    pub host_key: PrivateKey,
    /// Public keys allowed to log in; `None` disables public-key logins.
    pub authorized_keys: Option<AuthorizedKeys>,
    /// Password checker; `None` disables password logins.
    pub password: Option<Arc<dyn SshPasswordVerifier>>,
    /// direct-tcpip `host:port` targets served as the MQTT service (compared case-insensitively).
    pub mqtt_targets: Vec<String>,
    /// Simultaneous MQTT channels per SSH connection.
    pub max_channels_per_connection: usize,
    /// Time from TCP accept to successful authentication.
    pub auth_timeout: Duration,
    /// Failed authentication attempts before disconnect.
    pub max_auth_attempts: usize,
    /// A connection is closed once it has had no MQTT channel open for this long (zero
    /// disables it). Dead clients are found by `keepalive`; silent MQTT clients by the
    /// broker's MQTT keep-alive.
    pub idle_timeout: Duration,
    /// Keep-alive interval towards a silent client (three misses close the connection).
    pub keepalive: Duration,
    /// Minimum duration of every authentication rejection (constant-time rejections).
    pub auth_rejection_time: Duration,
    /// How the SSH user relates to the user name a CONNECT claims.
    pub username_policy: UsernamePolicy,
}

impl SshServerSettings {
    /// Settings from `[listener.ssh]`: loads (or generates, 0600) the host key and logs its
    /// fingerprint. `password` is the verifier used when `allow_password` is set.
    pub fn from_config(
        config: &SshListenerConfig,
        password: Option<Arc<dyn SshPasswordVerifier>>,
    ) -> Result<SshServerSettings, SshError> {
        let host_key_path = config
            .host_key
            .as_deref()
            .ok_or_else(|| SshError::Config("an ssh listener needs host_key".to_owned()))?;
        let host_key = load_or_generate_host_key(host_key_path)?;
        info!(
            path = %host_key_path.display(),
            fingerprint = %fingerprint(host_key.public_key()),
            "SSH host key"
        );
        let password = if config.allow_password {
            Some(password.ok_or_else(|| {
                SshError::Config(
                    "allow_password is set but no password verifier was given".to_owned(),
                )
            })?)
        } else {
            None
        };
        Ok(SshServerSettings {
            host_key,
            authorized_keys: config.authorized_keys.clone().map(AuthorizedKeys::new),
            password,
            mqtt_targets: config.mqtt_targets.clone(),
            max_channels_per_connection: usize::try_from(config.max_channels_per_connection)
                .unwrap_or(usize::MAX),
            auth_timeout: config.auth_timeout,
            max_auth_attempts: usize::try_from(config.max_auth_attempts).unwrap_or(usize::MAX),
            idle_timeout: config.idle_timeout,
            keepalive: config.keepalive,
            auth_rejection_time: Duration::from_secs(1),
            username_policy: if config.replace_connect_username {
                UsernamePolicy::Replace
            } else {
                UsernamePolicy::MustMatch
            },
        })
    }

    fn russh_config(&self) -> russh::server::Config {
        let mut methods = Vec::new();
        if self.authorized_keys.is_some() {
            methods.push(MethodKind::PublicKey);
        }
        if self.password.is_some() {
            methods.push(MethodKind::Password);
        }
        russh::server::Config {
            server_id: russh::SshId::Standard(
                format!("SSH-2.0-mqgate_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods: MethodSet::from(methods.as_slice()),
            auth_rejection_time: self.auth_rejection_time,
            // OpenSSH probes with "none" first; rejecting that probe needs no delay.
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![self.host_key.clone()],
            max_auth_attempts: self.max_auth_attempts,
            // Idle = no MQTT channel (checked per connection); silence is keepalive's job.
            inactivity_timeout: None,
            keepalive_interval: (!self.keepalive.is_zero()).then_some(self.keepalive),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        }
    }
}

/// Accepts SSH connections on `listener` until `shutdown`, then disconnects them; each
/// MQTT channel is served by `broker` with the SSH user as `Identity::transport_user`.
pub async fn serve_ssh(
    listener: TcpListener,
    settings: SshServerSettings,
    broker: BrokerHandle,
    shutdown: CancellationToken,
) {
    let config = Arc::new(settings.russh_config());
    let shared = Arc::new(Shared {
        settings,
        broker,
        shutdown: shutdown.clone(),
    });
    let mut delay = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                delay = Duration::from_millis(5);
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    config.clone(),
                    shared.clone(),
                ));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "ssh accept failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
    debug!("ssh listener stopped");
}

struct Shared {
    settings: SshServerSettings,
    broker: BrokerHandle,
    shutdown: CancellationToken,
}

/// What the connection task and the russh handler of one connection share.
struct ConnState {
    authenticated: AtomicBool,
    /// Open MQTT channels.
    channels: AtomicUsize,
    /// Since when the authenticated connection has had no MQTT channel.
    idle_since: parking_lot::Mutex<Option<Instant>>,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
) {
    debug!(%peer, "ssh connection accepted");
    let state = Arc::new(ConnState {
        authenticated: AtomicBool::new(false),
        channels: AtomicUsize::new(0),
        idle_since: parking_lot::Mutex::new(None),
    });
    let handler = Connection {
        peer,
        shared: shared.clone(),
        user: None,
        key: None,
        state: state.clone(),
        refused_channels: 0,
    };
    let auth_deadline = Instant::now() + shared.settings.auth_timeout;
    let kill = CancellationToken::new();
    // The version exchange happens inside run_stream: bound it by the auth deadline too.
    let session = match tokio::time::timeout_at(
        auth_deadline,
        russh::server::run_stream(config, Killable::new(stream, kill.clone()), handler),
    )
    .await
    {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "ssh handshake failed");
            return;
        }
        Err(_) => {
            warn!(%peer, "ssh client sent no version line in time: closing");
            return;
        }
    };
    let handle = session.handle();
    let mut session = std::pin::pin!(session);
    let idle_timeout = shared.settings.idle_timeout;
    let mut idle_check = tokio::time::interval(
        (idle_timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(10)),
    );
    let reason = loop {
        let authenticated = state.authenticated.load(Ordering::Acquire);
        tokio::select! {
            result = &mut session => {
                match result {
                    Ok(()) => debug!(%peer, "ssh connection closed"),
                    Err(e) => info!(%peer, error = %e, "ssh connection ended"),
                }
                return;
            }
            _ = tokio::time::sleep_until(auth_deadline), if !authenticated => {
                if !state.authenticated.load(Ordering::Acquire) {
                    break "authentication timeout";
                }
            }
            _ = idle_check.tick(), if authenticated && !idle_timeout.is_zero() => {
                let idle_since = *state.idle_since.lock();
                if idle_since.is_some_and(|since| since.elapsed() >= idle_timeout) {
                    break "idle: no MQTT channel";
                }
            }
            _ = shared.shutdown.cancelled() => break "server shutting down",
        }
    };
    warn!(%peer, reason, "closing ssh connection");
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        handle.disconnect(Disconnect::ByApplication, reason.to_owned(), String::new()),
    )
    .await;
    if tokio::time::timeout(Duration::from_secs(1), &mut session)
        .await
        .is_err()
    {
        // A client stalled mid-handshake: the disconnect is not processed before key
        // exchange completes. Failing the socket I/O ends the russh task, which closes it.
        kill.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), session).await;
    }
}

/// A stream whose reads and writes fail once `kill` is cancelled, so a session task can
/// be stopped from outside at any protocol state.
struct Killable<S> {
    inner: S,
    kill: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> Killable<S> {
    fn new(inner: S, kill: CancellationToken) -> Killable<S> {
        Killable {
            inner,
            kill: Box::pin(kill.cancelled_owned()),
        }
    }

    fn killed(&mut self, cx: &mut Context<'_>) -> bool {
        self.kill.as_mut().poll(cx).is_ready()
    }
}

fn aborted() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "closed by the server",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Killable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Killable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.killed(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The russh handler of one SSH connection.
struct Connection {
    peer: SocketAddr,
    shared: Arc<Shared>,
    user: Option<String>,
    /// The public key the user logged in with (`None`: by password).
    key: Option<PublicKey>,
    state: Arc<ConnState>,
    refused_channels: u32,
}

impl Connection {
    fn is_mqtt_target(&self, host: &str, port: u32) -> bool {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        self.shared
            .settings
            .mqtt_targets
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&target))
    }

    fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("-")
    }

    /// Refuses a channel open; too many refusals close the connection.
    async fn refuse(
        &mut self,
        reply: ChannelOpenHandle,
        reason: ChannelOpenFailure,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        reply.reject(reason).await;
        self.refused_channels += 1;
        if self.refused_channels > MAX_REFUSED_CHANNELS {
            warn!(peer = %self.peer, user = %self.user(), refused = self.refused_channels, "too many refused channel opens: closing the ssh connection");
            session.disconnect(Disconnect::ByApplication, "too many refused channels", "")?;
        }
        Ok(())
    }

    /// Why the credential this connection logged in with no longer holds, if it does
    /// not: its key left the authorized keys, or its user the password file.
    async fn login_withdrawn(&self, user: &str) -> Option<&'static str> {
        match &self.key {
            Some(key) => (!self.key_allowed(user, key).await).then_some("key no longer authorized"),
            None => (self.shared.settings.password.as_ref())
                .is_some_and(|p| !p.still_known(user))
                .then_some("user no longer has a password"),
        }
    }

    async fn key_allowed(&self, user: &str, key: &PublicKey) -> bool {
        let Some(keys) = &self.shared.settings.authorized_keys else {
            return false;
        };
        match keys.is_authorized(user, key).await {
            Ok(allowed) => allowed,
            Err(e) => {
                warn!(peer = %self.peer, %user, error = %e, "cannot read authorized keys: refusing the login");
                false
            }
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        if self.key_allowed(user, key).await {
            Ok(Auth::Accept)
        } else {
            info!(peer = %self.peer, %user, key = %fingerprint(key), "ssh public key not authorized for this user");
            Ok(Auth::reject())
        }
    }

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        if self.key_allowed(user, key).await {
            info!(peer = %self.peer, %user, key = %fingerprint(key), "ssh login (public key)");
            self.user = Some(user.to_owned());
            self.key = Some(key.clone());
            Ok(Auth::Accept)
        } else {
            warn!(peer = %self.peer, %user, key = %fingerprint(key), "ssh public key login refused");
            Ok(Auth::reject())
        }
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let Some(verifier) = self.shared.settings.password.clone() else {
            warn!(peer = %self.peer, %user, "ssh password login refused: passwords are disabled");
            return Ok(Auth::reject());
        };
        if verifier.verify(user, password, self.peer).await {
            info!(peer = %self.peer, %user, "ssh login (password)");
            self.user = Some(user.to_owned());
            Ok(Auth::Accept)
        } else {
            warn!(peer = %self.peer, %user, "ssh password login refused");
            Ok(Auth::reject())
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        *self.state.idle_since.lock() = Some(Instant::now());
        self.state.authenticated.store(true, Ordering::Release);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        warn!(peer = %self.peer, user = %self.user(), "refused session channel (shell/exec/subsystem/pty/agent are not offered)");
        self.refuse(
            reply,
            ChannelOpenFailure::AdministrativelyProhibited,
            session,
        )
        .await
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        warn!(peer = %self.peer, user = %self.user(), "refused x11 channel");
        self.refuse(
            reply,
            ChannelOpenFailure::AdministrativelyProhibited,
            session,
        )
        .await
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        warn!(peer = %self.peer, user = %self.user(), target = %format!("{host}:{port}"), "refused forwarded-tcpip channel");
        self.refuse(
            reply,
            ChannelOpenFailure::AdministrativelyProhibited,
            session,
        )
        .await
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        warn!(peer = %self.peer, user = %self.user(), %socket_path, "refused unix-socket forwarding channel");
        self.refuse(
            reply,
            ChannelOpenFailure::AdministrativelyProhibited,
            session,
        )
        .await
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let target = format!("{host}:{port}");
        let Some(user) = self.user.clone() else {
            warn!(peer = %self.peer, %target, "refused direct-tcpip channel before authentication");
            return self
                .refuse(
                    reply,
                    ChannelOpenFailure::AdministrativelyProhibited,
                    session,
                )
                .await;
        };
        if !self.is_mqtt_target(host, port) {
            warn!(peer = %self.peer, %user, %target, "refused direct-tcpip channel: only the MQTT service may be reached");
            return self
                .refuse(
                    reply,
                    ChannelOpenFailure::AdministrativelyProhibited,
                    session,
                )
                .await;
        }
        // The login's key or password may have been withdrawn since (SIGHUP disconnected
        // the MQTT sessions it carried): no new channel on its strength.
        if let Some(why) = self.login_withdrawn(&user).await {
            warn!(peer = %self.peer, %user, why,
                "refused direct-tcpip channel: the login was withdrawn; closing the ssh connection");
            session.disconnect(Disconnect::ByApplication, "login withdrawn", "")?;
            return self
                .refuse(
                    reply,
                    ChannelOpenFailure::AdministrativelyProhibited,
                    session,
                )
                .await;
        }
        let limit = self.shared.settings.max_channels_per_connection;
        if self.state.channels.load(Ordering::Acquire) >= limit {
            warn!(peer = %self.peer, %user, limit, "refused direct-tcpip channel: channel limit reached");
            return self
                .refuse(reply, ChannelOpenFailure::ResourceShortage, session)
                .await;
        }
        self.state.channels.fetch_add(1, Ordering::AcqRel);
        *self.state.idle_since.lock() = None;
        reply.accept().await;
        info!(peer = %self.peer, %user, %target, originator = %format!("{originator_address}:{originator_port}"), "MQTT channel opened");
        let credential = Credential::Ssh {
            key: self.key.as_ref().and_then(|k| k.to_openssh().ok()),
        };
        let identity = Identity::with_user(
            self.peer,
            user,
            self.shared.settings.username_policy,
            credential,
        );
        let broker = self.shared.broker.clone();
        let state = self.state.clone();
        let peer = self.peer;
        tokio::spawn(async move {
            broker
                .serve_connection(channel.into_stream(), identity)
                .await;
            let mut idle_since = state.idle_since.lock();
            if state.channels.fetch_sub(1, Ordering::AcqRel) == 1 {
                *idle_since = Some(Instant::now());
            }
            drop(idle_since);
            debug!(%peer, "MQTT channel closed");
        });
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        warn!(peer = %self.peer, user = %self.user(), listen = %format!("{address}:{port}"), "refused tcpip-forward (ssh -R)");
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        warn!(peer = %self.peer, user = %self.user(), %socket_path, "refused streamlocal-forward");
        Ok(false)
    }
}
