//! OpenSSH's `ssh` client against mqgate's SSH listener: `ssh -N -L` carries MQTT
//! (mosquitto_pub/mosquitto_sub) to an in-process broker-lite whose authorizer sees the SSH
//! user; shell, exec, `-W`/`-L` to another port, `-R`, a wrong key and an unknown user are
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mqgate_broker_lite::{
    AuthFuture, Authorizer, Broker, BrokerSettings, ClientInfo, ConnectRequest, Identity,
};
use mqgate_config::SshListenerConfig;
use mqgate_protocol::{QoS, ReasonCode};
use mqgate_proxy::ssh::{serve_ssh, SshServerSettings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

/// The policy the proxy's authorizer is expected to apply to SSH connections: the SSH user
/// is the MQTT user, a CONNECT claiming another user name is refused, and a user may only
/// publish under `sensors/<user>/`. Records every decision.
#[derive(Default)]
struct SshUserPolicy {
    log: Mutex<Vec<String>>,
}

impl Authorizer for SshUserPolicy {
    fn authenticate<'a>(
        &'a self,
        identity: &'a Identity,
        request: ConnectRequest<'a>,
    ) -> AuthFuture<'a> {
        let result = match (&identity.transport_user, request.username) {
            (Some(ssh), Some(claimed)) if ssh != claimed => Err(ReasonCode::NotAuthorized),
            (Some(ssh), _) => Ok(Some(ssh.clone())),
            (None, _) => Err(ReasonCode::NotAuthorized),
        };
        self.log.lock().unwrap().push(format!(
            "connect {:?} -> {result:?}",
            identity.transport_user
        ));
        Box::pin(std::future::ready(result))
    }

    fn authorize_publish(&self, client: &ClientInfo, topic: &str, _: QoS, _: bool) -> bool {
        let user = client.username.clone().unwrap_or_default();
        let allowed = topic.starts_with(&format!("sensors/{user}/"));
        self.log
            .lock()
            .unwrap()
            .push(format!("publish {user} {topic} {allowed}"));
        allowed
    }

    fn authorize_subscribe(&self, _: &ClientInfo, _: &str, _: QoS) -> bool {
        true
    }

    fn authorize_delivery(&self, _: &ClientInfo, _: &str) -> bool {
        true
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path, comment: &str) -> String {
    keygen_type(path, comment, "ed25519")
}

fn keygen_type(path: &Path, comment: &str, kind: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

struct Server {
    dir: tempfile::TempDir,
    port: u16,
    policy: Arc<SshUserPolicy>,
    shutdown: CancellationToken,
    _broker: Broker,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let sensor_pub = keygen(&dir.path().join("sensor7"), "sensor7");
        keygen(&dir.path().join("stranger"), "stranger");
        // Legacy devices often only have RSA keys.
        let legacy_pub = keygen_type(&dir.path().join("legacy"), "legacy", "rsa");
        // One authorized_keys file; the comment names the user.
        std::fs::write(
            dir.path().join("authorized_keys"),
            format!("{sensor_pub}{legacy_pub}"),
        )
        .unwrap();

        let policy = Arc::new(SshUserPolicy::default());
        let broker = Broker::start(BrokerSettings::default(), policy.clone())
            .await
            .unwrap();
        let config = SshListenerConfig {
            host_key: Some(dir.path().join("host_key")),
            authorized_keys: Some(dir.path().join("authorized_keys")),
            ..Default::default()
        };
        let mut settings = SshServerSettings::from_config(&config, None).unwrap();
        settings.auth_rejection_time = Duration::from_millis(50);
        // The host key was generated on first start: trust it in known_hosts.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let host_pub = settings.host_key.public_key().to_openssh().unwrap();
        std::fs::write(
            dir.path().join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}\n"),
        )
        .unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_ssh(
            listener,
            settings,
            broker.handle(),
            shutdown.clone(),
        ));
        Server {
            dir,
            port,
            policy,
            shutdown,
            _broker: broker,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An `ssh` command with a clean configuration, strict host key checking and `key`.
    fn ssh(&self, key: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            self.path("known_hosts").display()
        ))
        .arg("-i")
        .arg(self.path(key))
        .args(["-p", &self.port.to_string()])
        .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + WAIT;
    while StdStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mosquitto(program: &str, port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_local_forward_carries_mqtt_as_the_ssh_user() {
    let server = Server::start().await;
    let local = free_port();
    let mut forward = server.ssh("sensor7");
    forward
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("127.0.0.1:{local}:localhost:1883"))
        .arg("sensor7@127.0.0.1")
        .stderr(Stdio::null());
    let _ssh = KillOnDrop(forward.spawn().unwrap());
    tokio::task::spawn_blocking(move || wait_for_port(local))
        .await
        .unwrap();

    // Allowed topic, retained so a later subscriber sees it.
    let out = output(mosquitto(
        "mosquitto_pub",
        local,
        &[
            "-i",
            "pub7",
            "-q",
            "1",
            "-r",
            "-t",
            "sensors/sensor7/temp",
            "-m",
            "21.5",
        ],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(mosquitto(
        "mosquitto_sub",
        local,
        &[
            "-i",
            "sub7",
            "-t",
            "sensors/sensor7/#",
            "-C",
            "1",
            "-W",
            "20",
            "-v",
        ],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sensors/sensor7/temp 21.5"
    );

    // The ACL applies to the SSH user: another sensor's topic is refused for sensor7.
    let out = output(mosquitto(
        "mosquitto_pub",
        local,
        &[
            "-i",
            "pub7b",
            "-q",
            "1",
            "-t",
            "sensors/sensor8/temp",
            "-m",
            "1",
        ],
    ))
    .await;
    let _ = out; // 3.1.1 has no negative PUBACK: the broker drops it (or disconnects).
                 // A CONNECT claiming another user name is refused.
    let out = output(mosquitto(
        "mosquitto_pub",
        local,
        &[
            "-i",
            "pub7c",
            "-u",
            "sensor8",
            "-t",
            "sensors/sensor8/temp",
            "-m",
            "1",
        ],
    ))
    .await;
    assert!(!out.status.success());

    let log = server.policy.log.lock().unwrap().clone();
    assert!(
        log.contains(&"publish sensor7 sensors/sensor7/temp true".to_owned()),
        "{log:?}"
    );
    assert!(
        log.contains(&"publish sensor7 sensors/sensor8/temp false".to_owned()),
        "{log:?}"
    );
    assert!(
        log.contains(&"connect Some(\"sensor7\") -> Err(NotAuthorized)".to_owned()),
        "{log:?}"
    );
    assert!(
        log.iter().all(|l| !l.contains("None")),
        "every MQTT connection carried the SSH user: {log:?}"
    );
}

fn assert_refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ssh succeeded: {stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_shell_other_targets_and_reverse_forwarding_are_refused() {
    let server = Server::start().await;

    // exec: the session channel is refused.
    let mut exec = server.ssh("sensor7");
    exec.args(["sensor7@127.0.0.1", "echo", "pwned"]);
    let out = output(exec).await;
    assert_refused(&out, "administratively prohibited");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("pwned"));

    // shell (with a pty request): same.
    let mut shell = server.ssh("sensor7");
    shell.args(["-tt", "sensor7@127.0.0.1"]);
    assert_refused(&output(shell).await, "administratively prohibited");

    // direct-tcpip to another port (ssh -W opens exactly that channel).
    let mut other = server.ssh("sensor7");
    other.args(["-W", "localhost:22", "sensor7@127.0.0.1"]);
    assert_refused(&output(other).await, "administratively prohibited");
    let mut other_host = server.ssh("sensor7");
    other_host.args(["-W", "10.0.0.1:1883", "sensor7@127.0.0.1"]);
    assert_refused(&output(other_host).await, "administratively prohibited");

    // -L to another port: the listener opens, each connection through it is refused.
    let local = free_port();
    let mut forward = server.ssh("sensor7");
    forward
        .args(["-N", "-v", "-L"])
        .arg(format!("127.0.0.1:{local}:localhost:8883"))
        .arg("sensor7@127.0.0.1")
        .stderr(Stdio::piped());
    let mut ssh = KillOnDrop(forward.spawn().unwrap());
    tokio::task::spawn_blocking(move || {
        wait_for_port(local);
        use std::io::Read;
        let mut conn = StdStream::connect(("127.0.0.1", local)).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            conn.read(&mut buf).unwrap(),
            0,
            "a refused channel closes the local connection"
        );
    })
    .await
    .unwrap();
    let _ = ssh.0.kill();
    let mut stderr = String::new();
    use std::io::Read;
    ssh.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("administratively prohibited"), "{stderr}");

    // -R: the tcpip-forward global request is refused.
    let mut reverse = server.ssh("sensor7");
    reverse.args([
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        "0:localhost:1883",
        "sensor7@127.0.0.1",
    ]);
    assert_refused(&output(reverse).await, "remote port forwarding failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_unknown_user_are_refused() {
    let server = Server::start().await;
    let mut stranger = server.ssh("stranger");
    stranger.args(["-N", "sensor7@127.0.0.1"]);
    assert_refused(&output(stranger).await, "Permission denied");

    // The right key, but the authorized_keys line names sensor7, not sensor8.
    let mut unknown = server.ssh("sensor7");
    unknown.args(["-N", "sensor8@127.0.0.1"]);
    assert_refused(&output(unknown).await, "Permission denied");

    // Passwords are disabled.
    let mut password = server.ssh("sensor7");
    password.args([
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password",
        "-N",
        "sensor7@127.0.0.1",
    ]);
    assert_refused(&output(password).await, "Permission denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_key_logs_in_too() {
    let server = Server::start().await;
    let local = free_port();
    let mut forward = server.ssh("legacy");
    forward
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("127.0.0.1:{local}:127.0.0.1:1883"))
        .arg("legacy@127.0.0.1")
        .stderr(Stdio::null());
    let _ssh = KillOnDrop(forward.spawn().unwrap());
    tokio::task::spawn_blocking(move || wait_for_port(local))
        .await
        .unwrap();
    let out = output(mosquitto(
        "mosquitto_pub",
        local,
        &[
            "-i",
            "legacy1",
            "-q",
            "1",
            "-t",
            "sensors/legacy/temp",
            "-m",
            "3",
        ],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = server.policy.log.lock().unwrap().clone();
    assert!(
        log.contains(&"publish legacy sensors/legacy/temp true".to_owned()),
        "{log:?}"
    );
}
