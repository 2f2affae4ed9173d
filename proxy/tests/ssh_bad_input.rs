//! Bad input against the SSH listener: garbage instead of SSH, a client stalling
//! mid-handshake, one opening 1,000 channels, MQTT garbage inside a tunnel, and a login
//! that holds no channel. Each is closed and the listener keeps serving well-behaved
//! clients.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqgate_broker_lite::{AllowAll, Broker, BrokerSettings};
use mqgate_config::SshListenerConfig;
use mqgate_proxy::ssh::{serve_ssh, SshServerSettings};
use russh::client::{Config, Handle, Handler};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const CONNECT: [u8; 14] = [
    0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
];

struct TrustAll;

impl Handler for TrustAll {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

struct Server {
    addr: SocketAddr,
    key: Arc<PrivateKey>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
    _broker: Broker,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn server() -> Server {
    server_with(Duration::from_secs(600)).await
}

async fn server_with(idle_timeout: Duration) -> Server {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]));
    let mut public = key.public_key().clone();
    public.set_comment("sensor7");
    std::fs::write(
        dir.path().join("authorized_keys"),
        public.to_openssh().unwrap(),
    )
    .unwrap();
    let config = SshListenerConfig {
        host_key: Some(dir.path().join("host_key")),
        authorized_keys: Some(dir.path().join("authorized_keys")),
        auth_timeout: Duration::from_millis(500),
        idle_timeout,
        ..Default::default()
    };
    let mut settings = SshServerSettings::from_config(&config, None).unwrap();
    settings.auth_rejection_time = Duration::from_millis(10);
    let broker = Broker::start(BrokerSettings::default(), Arc::new(AllowAll))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_ssh(
        listener,
        settings,
        broker.handle(),
        shutdown.clone(),
    ));
    Server {
        addr,
        key: Arc::new(key),
        shutdown,
        _dir: dir,
        _broker: broker,
    }
}

impl Server {
    async fn login(&self) -> Handle<TrustAll> {
        let mut handle = russh::client::connect(Arc::new(Config::default()), self.addr, TrustAll)
            .await
            .unwrap();
        let auth = handle
            .authenticate_publickey(
                "sensor7",
                PrivateKeyWithHashAlg::new(self.key.clone(), None),
            )
            .await
            .unwrap();
        assert!(auth.success());
        handle
    }

    /// A fresh SSH login whose MQTT channel answers CONNECT with CONNACK.
    async fn assert_serves_mqtt(&self) {
        let handle = self.login().await;
        mqtt_connack(&handle).await;
    }
}

async fn mqtt_connack(handle: &Handle<TrustAll>) {
    let channel = handle
        .channel_open_direct_tcpip("localhost", 1883, "127.0.0.1", 5000)
        .await
        .unwrap();
    let mut stream = channel.into_stream();
    stream.write_all(&CONNECT).await.unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, stream.read_exact(&mut connack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
}

/// Reads until EOF or a reset, failing if the server keeps the socket open past WAIT.
async fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server did not close the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_ssh_is_closed() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage\r\n")
        .await;
    assert_closed(&mut stream).await;
    // An SSH version line followed by a garbage packet.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let _ = stream
        .write_all(b"SSH-2.0-bad\r\n\xff\xff\xff\xff\x00\x01\x02\x03")
        .await;
    assert_closed(&mut stream).await;
    server.assert_serves_mqtt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_closed_after_the_auth_timeout() {
    let server = server().await;
    // Says nothing at all.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Sends its version, then stalls before key exchange.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(b"SSH-2.0-stall\r\n").await.unwrap();
    assert_closed(&mut silent).await;
    assert_closed(&mut stalled).await;
    // Completes key exchange but never authenticates.
    let unauthenticated =
        russh::client::connect(Arc::new(Config::default()), server.addr, TrustAll)
            .await
            .unwrap();
    tokio::time::timeout(WAIT, async {
        while !unauthenticated.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("an unauthenticated session outlived the auth timeout");
    server.assert_serves_mqtt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_channels_hit_the_limit_and_the_connection_is_closed() {
    let server = server().await;
    let handle = server.login().await;
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..1000u32 {
        match handle
            .channel_open_direct_tcpip("localhost", 1883, "127.0.0.1", i)
            .await
        {
            Ok(channel) => open.push(channel),
            Err(_) if handle.is_closed() => break,
            Err(_) => refused += 1,
        }
    }
    // Default max_channels_per_connection = 4; the rest are refused until the server
    // gives up on this connection.
    assert_eq!(open.len(), 4);
    assert!(refused > 0 && refused < 996, "refused {refused}");
    tokio::time::timeout(WAIT, async {
        while !handle.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the connection opening 1000 channels was not closed");
    server.assert_serves_mqtt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_garbage_inside_the_tunnel_closes_only_that_channel() {
    let server = server().await;
    let handle = server.login().await;
    let channel = handle
        .channel_open_direct_tcpip("localhost", 1883, "127.0.0.1", 1)
        .await
        .unwrap();
    let mut stream = channel.into_stream();
    stream
        .write_all(b"\xff\xff\xff\xff\xff this is not MQTT")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("the broker did not close the garbage channel")
        .unwrap_or(0);
    assert_eq!(n, 0, "the broker answered garbage: {:?}", &buf[..n]);
    // The same SSH connection still carries MQTT on a new channel.
    assert!(!handle.is_closed());
    mqtt_connack(&handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_without_mqtt_channels_is_closed_when_idle() {
    let server = server_with(Duration::from_millis(300)).await;
    // Holds a channel: stays connected past the idle timeout while the channel is open.
    let busy = server.login().await;
    let channel = busy
        .channel_open_direct_tcpip("localhost", 1883, "127.0.0.1", 1)
        .await
        .unwrap();
    let mut stream = channel.into_stream();
    stream.write_all(&CONNECT).await.unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    // Never opens a channel: closed.
    let idle = server.login().await;
    tokio::time::timeout(WAIT, async {
        while !idle.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("an idle login was not closed");
    assert!(
        !busy.is_closed(),
        "a connection with an open MQTT channel is not idle"
    );
    // Once its channel closes, the busy one becomes idle too.
    drop(stream);
    tokio::time::timeout(WAIT, async {
        while !busy.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a login whose channels all closed was not closed when idle");
}
