//! SSH password logins (`allow_password`) checked by the proxy's password file through
//! [`Security`]: the right password logs in and reaches MQTT, a wrong one and an unknown
//! user are refused; with passwords disabled even the right password is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqgate_broker_lite::{AllowAll, Broker, BrokerSettings};
use mqgate_config::SshListenerConfig;
use mqgate_proxy::password::{Argon2Cost, PasswordFile, StoredHash, VerifierSettings};
use mqgate_proxy::ssh::{serve_ssh, SshPasswordVerifier, SshServerSettings};
use mqgate_proxy::Security;
use russh::client::{Config, Handler};
use russh::keys::PublicKeyOrCertificate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct TrustAll;

impl Handler for TrustAll {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn start(
    allow_password: bool,
    dir: &std::path::Path,
) -> (SocketAddr, CancellationToken, Broker) {
    let path = dir.join("passwd");
    let cost = Argon2Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let mut file = PasswordFile::parse("", &path).unwrap();
    file.set(
        "sensor7",
        StoredHash::new_argon2id(b"s3cret", cost).unwrap(),
    );
    file.save(&path).unwrap();
    let settings = VerifierSettings {
        cost,
        min_rejection_time: Duration::ZERO,
        ..Default::default()
    };
    let security: Arc<dyn SshPasswordVerifier> =
        Arc::new(Security::new(Some(path), None, false, settings).unwrap());
    let config = SshListenerConfig {
        host_key: Some(dir.join(format!("host_key_{allow_password}"))),
        allow_password,
        ..Default::default()
    };
    let mut settings = SshServerSettings::from_config(&config, Some(security)).unwrap();
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
    (addr, shutdown, broker)
}

async fn login(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> Option<russh::client::Handle<TrustAll>> {
    let mut handle = russh::client::connect(Arc::new(Config::default()), addr, TrustAll)
        .await
        .unwrap();
    let auth = handle.authenticate_password(user, password).await.ok()?;
    auth.success().then_some(handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_logins_use_the_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, shutdown, _broker) = start(true, dir.path()).await;
    assert!(login(addr, "sensor7", "wrong").await.is_none());
    assert!(login(addr, "nobody", "s3cret").await.is_none());
    let handle = login(addr, "sensor7", "s3cret")
        .await
        .expect("right password");
    let mut stream = handle
        .channel_open_direct_tcpip("127.0.0.1", 1883, "127.0.0.1", 1)
        .await
        .unwrap()
        .into_stream();
    stream
        .write_all(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0])
        .await
        .unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_disabled_refuses_even_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, shutdown, _broker) = start(false, dir.path()).await;
    assert!(login(addr, "sensor7", "s3cret").await.is_none());
    shutdown.cancel();
}
