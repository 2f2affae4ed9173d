//! The shipped examples, end to end with the real binary and real peers on loopback.
//!
//! Each test reads its file from `examples/`, swaps the deployment-specific values (paths
//! under `/etc/mqgate` and `/var/lib/mqgate`, `0.0.0.0` binds, the cloud or upstream
//! address) for temp-dir paths, free loopback ports and a local mosquitto, leaves every
//! other line as shipped, and checks the result with `mqgate config check` first. A swap
//! whose text is no longer in the example fails the test: the example changed shape.
//!
//! * `raspberry-pi-gateway.toml`: devices log in with a password (tcp), a certificate
//!   from `mqgate certs` (tls) and an SSH key (`ssh -N -L`, the legacy sensor); each may
//!   publish only below `sensors/<its name>/` (ACL), and the bridge forwards what they
//!   publish to `site/042/sensors/...` on the cloud mosquitto. Then the cloud goes down,
//!   the devices keep publishing, mqgate is killed with SIGKILL and restarted, the cloud
//!   comes back: every message a device got a PUBACK for reaches the cloud.
//! * `standalone-proxy.toml`: `mqgate proxy` in front of a mosquitto without
//!   authentication: password clients publish QoS 1 over TLS and WebSocket-over-TLS,
//!   a bad password is refused, and the ACL stops publishes and deliveries it forbids.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod bridge_support;
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use bridge_support::{Cloud, MosquittoSub, Received, DEADLINE};
use common::pki::{ca_with_server, certs};
use common::ssh::{self, keygen};
use common::{add_password, free_port, run_mqgate, wait_until, KillOnDrop, Mqgate};

/// Messages each device publishes while the cloud is down.
const OUTAGE_MESSAGES: usize = 20;

// ---- configuration from the examples -----------------------------------------------

/// The text of `examples/<name>`.
fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces every `from` (which must occur) by `to`.
fn swap(text: &mut String, from: &str, to: &str) {
    assert!(
        text.contains(from),
        "the example no longer contains {from:?}: update this test"
    );
    *text = text.replace(from, to);
}

/// Replaces the one line that starts with `prefix` by `line`.
fn swap_line(text: &mut String, prefix: &str, line: &str) {
    let hits = text.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(hits, 1, "lines starting with {prefix:?} in the example");
    let out: Vec<&str> = text
        .lines()
        .map(|l| if l.starts_with(prefix) { line } else { l })
        .collect();
    *text = out.join("\n") + "\n";
}

/// Replaces the table `header` (its header line and the lines up to the next blank line)
/// by `with`.
fn swap_table(text: &mut String, header: &str, with: &str) {
    let start = text
        .find(&format!("\n{header}\n"))
        .unwrap_or_else(|| panic!("the example no longer has {header}: update this test"))
        + 1;
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |i| start + i + 1);
    text.replace_range(start..end, with);
}

/// Fails unless nothing deployment-specific is left.
fn assert_localized(text: &str) {
    for left in [
        "/etc/mqgate",
        "/var/lib/mqgate",
        "0.0.0.0",
        "example-cloud.com",
    ] {
        assert!(
            !text.contains(left),
            "{left} left in the test config:\n{text}"
        );
    }
}

/// `mqgate config check FILE` must print OK.
fn config_check(path: &Path) {
    let (code, out, err) = run_mqgate(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(
        (code, out.trim()),
        (0, "OK"),
        "mqgate config check {}: {err}",
        path.display()
    );
}

// ---- processes ---------------------------------------------------------------------

/// A child whose output lines (stdout or stderr, see [`Lines::spawn`]) are collected.
struct Lines {
    _child: KillOnDrop,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    /// Spawns `cmd`, collecting its stderr (`stderr = true`) or stdout, echoed with `tag`.
    fn spawn(mut cmd: Command, tag: &'static str, stderr: bool) -> Lines {
        let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(piped(!stderr))
            .stderr(piped(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let out: Box<dyn Read + Send> = if stderr {
            Box::new(child.stderr.take().unwrap())
        } else {
            Box::new(child.stdout.take().unwrap())
        };
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[{tag}] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Lines {
            _child: KillOnDrop(child),
            lines,
        }
    }

    fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn any(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }
}

/// `mosquitto_pub -q 1` bounded by `timeout`: exit status 0 means the PUBACK arrived.
fn mosquitto_pub(host: &str, port: u16, client_id: &str, topic: &str, payload: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["20", "mosquitto_pub", "-h", host, "-p", &port.to_string()])
        .args(["-q", "1", "-i", client_id, "-t", topic, "-m", payload])
        .stdin(Stdio::null());
    cmd
}

fn failure(out: &Output) -> String {
    format!(
        "{}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---- raspberry-pi-gateway.toml -----------------------------------------------------

/// One device of the site: how `mosquitto_pub` reaches and logs in to the gateway.
struct Device {
    /// Its MQTT identity: password user, certificate CN or SSH user.
    name: &'static str,
    host: &'static str,
    port: u16,
    /// Login options (user and password, or TLS files).
    login: Vec<String>,
}

impl Device {
    /// Publishes `payload` (QoS 1) on `topic`; `Ok` once the gateway acknowledged it.
    fn publish_to(&self, topic: &str, payload: &str) -> Result<(), String> {
        let client_id = format!("{}-pub", self.name);
        let out = mosquitto_pub(self.host, self.port, &client_id, topic, payload)
            .args(&self.login)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(failure(&out))
        }
    }

    /// Publishes `<name>.<tag>` on its own topic `sensors/<name>/t`.
    fn publish(&self, tag: &str) -> Result<String, String> {
        let payload = format!("{}.{tag}", self.name);
        self.publish_to(&format!("sensors/{}/t", self.name), &payload)?;
        Ok(payload)
    }
}

/// The legacy sensor's `ssh -N -L 127.0.0.1:<free>:127.0.0.1:1883` to the gateway's SSH
/// listener; returns it and the local port. `127.0.0.1:1883` is one of the listener's
/// default `mqtt_targets`: a name for "the MQTT service", which mqgate serves in-process
/// on the channel, whatever port its tcp listener is on.
fn ssh_forward(ssh_dir: &Path, ssh_port: u16) -> (KillOnDrop, u16) {
    ssh::forward(ssh_dir, "dev-ssh", ssh_port, DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts `mqgate run` and waits until all three listeners are logged and the bridge is
/// subscribed on the local broker.
fn start_gateway(data: &Path, config: &Path) -> Mqgate {
    let gw = Mqgate::start_with_config(data, config);
    let ready = wait_until(DEADLINE, || {
        gw.listener("tls").is_some() && gw.listener("ssh").is_some()
    });
    assert!(ready, "tls and ssh listeners not logged:\n{}", gw.logs());
    assert!(
        gw.wait_for_log("bridge: subscribed to the local broker", DEADLINE),
        "the bridge did not subscribe locally:\n{}",
        gw.logs()
    );
    gw
}

/// Every cloud message is `site/042/sensors/<device>/t <device>.<tag>`: the bridge's
/// `remote_prefix` in front of the device's own topic.
fn assert_topics(received: &Received) {
    for line in received.log() {
        let (topic, payload) = line.split_once(' ').unwrap_or((&line, ""));
        let device = payload.split('.').next().unwrap_or_default();
        assert_eq!(
            topic,
            format!("site/042/sensors/{device}/t"),
            "cloud line {line:?}"
        );
    }
}

/// The missing payloads of `want`, after waiting (bounded) for all of them.
fn wait_all(received: &Received, want: &BTreeSet<String>) -> Vec<String> {
    wait_until(DEADLINE, || want.iter().all(|p| received.contains(p)));
    want.iter()
        .filter(|p| !received.contains(p))
        .cloned()
        .collect()
}

#[test]
fn raspberry_pi_gateway_example_forwards_three_kinds_of_device_across_outage_and_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (certs_dir, ssh_dir, data) = (dir.join("certs"), dir.join("ssh"), dir.join("data"));

    // mqgate's CA: the gateway's server certificate and dev-tls's device certificate.
    ca_with_server(&certs_dir, "site 042 CA", Some("gateway"));
    certs(&certs_dir, &["issue-device", "dev-tls"]);
    certs(&certs_dir, &["crl"]);

    // dev-pw's password, dev-ssh's key (the comment names the user), the host key.
    let passwords = dir.join("passwords");
    add_password(&passwords, "dev-pw", "pw-of-dev-pw");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let device_key = keygen(&ssh_dir.join("dev-ssh"), "dev-ssh");
    std::fs::write(ssh_dir.join("authorized_keys"), device_key).unwrap();
    let host_key = ssh_dir.join("ssh_host_ed25519_key");
    let host_pub = keygen(&host_key, "gateway");
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "# Each device writes only below its own name: password user, certificate CN or SSH user.\n\
         pattern write sensors/%u/#\n",
    )
    .unwrap();

    let mut cloud = Cloud::start(&dir.join("cloud"), "");
    // Persistent session (-c, fixed id, QoS 1) on a persistent mosquitto: what the bridge
    // delivers while this client reconnects after the cloud's restart waits for it.
    let cloud_sub = MosquittoSub::start(cloud.port, "cloud-sub", "site/042/sensors/#", 1);
    let received = cloud_sub.received.clone();

    let (tcp_port, tls_port, ssh_port) = (free_port(), free_port(), free_port());
    let mut text = example("raspberry-pi-gateway.toml");
    swap(&mut text, "0.0.0.0:1883", &format!("127.0.0.1:{tcp_port}"));
    swap(&mut text, "0.0.0.0:8883", &format!("127.0.0.1:{tls_port}"));
    swap(&mut text, "0.0.0.0:2222", &format!("127.0.0.1:{ssh_port}"));
    let server_files = certs_dir.join("servers").join("gateway");
    let server_files = server_files.display();
    swap(
        &mut text,
        "/etc/mqgate/tls/gateway.pem",
        &format!("{server_files}.pem"),
    );
    swap(
        &mut text,
        "/etc/mqgate/tls/gateway.key",
        &format!("{server_files}.key"),
    );
    swap(
        &mut text,
        "/var/lib/mqgate/certs",
        &certs_dir.display().to_string(),
    );
    swap(
        &mut text,
        "/etc/mqgate/ssh/ssh_host_ed25519_key",
        &host_key.display().to_string(),
    );
    swap(
        &mut text,
        "/etc/mqgate/ssh/authorized_keys",
        &ssh_dir.join("authorized_keys").display().to_string(),
    );
    swap(
        &mut text,
        "/var/lib/mqgate/data",
        &data.display().to_string(),
    );
    swap(
        &mut text,
        "/etc/mqgate/passwords",
        &passwords.display().to_string(),
    );
    swap(&mut text, "/etc/mqgate/acl", &acl.display().to_string());
    swap_line(
        &mut text,
        "addresses = ",
        &format!("addresses = [\"{}\"]", cloud.addr()),
    );
    // The cloud is a plain mosquitto on loopback: plain TCP instead of mutual TLS (the
    // TLS listener side is covered above; bridge TLS has its own tests), and a short
    // reconnect backoff so the test does not wait up to a minute for the bridge.
    swap(
        &mut text,
        "transport = \"tls\"",
        "transport = \"tcp\"                     # test: plain TCP to a local mosquitto",
    );
    swap_table(
        &mut text,
        "[bridge.tls]",
        "[bridge.reconnect]                    # test: retry fast\ninitial = \"100ms\"\nmax = \"1s\"\n",
    );
    assert_localized(&text);
    let config = dir.join("gateway.toml");
    std::fs::write(&config, &text).unwrap();
    config_check(&config);
    std::fs::write(
        ssh_dir.join("known_hosts"),
        format!("[127.0.0.1]:{ssh_port} {host_pub}"),
    )
    .unwrap();

    let mut gw = start_gateway(&data, &config);
    assert!(
        gw.wait_for_log("bridge: connected upstream", DEADLINE),
        "the bridge did not reach the cloud:\n{}",
        gw.logs()
    );
    let (ssh, ssh_local) = ssh_forward(&ssh_dir, ssh_port);
    let device_files = certs_dir.join("devices");
    let devices = |ssh_local: u16| {
        [
            Device {
                name: "dev-pw",
                host: "127.0.0.1",
                port: tcp_port,
                login: ["-u", "dev-pw", "-P", "pw-of-dev-pw"]
                    .map(String::from)
                    .to_vec(),
            },
            // No user name: the certificate's CN is the identity.
            Device {
                name: "dev-tls",
                host: "localhost",
                port: tls_port,
                login: vec![
                    "--cafile".into(),
                    certs_dir.join("ca.pem").display().to_string(),
                    "--cert".into(),
                    device_files.join("dev-tls.pem").display().to_string(),
                    "--key".into(),
                    device_files.join("dev-tls.key").display().to_string(),
                ],
            },
            // Plaintext MQTT into the tunnel; the SSH login is the identity.
            Device {
                name: "dev-ssh",
                host: "127.0.0.1",
                port: ssh_local,
                login: Vec::new(),
            },
        ]
    };

    // 1. All three devices reach the cloud under site/042/. A publish outside the
    //    publisher's own subtree is dropped by the ACL (silently: MQTT 3.1.1 has no
    //    negative PUBACK); it goes first, so once dev-pw's own message is at the cloud
    //    the spoofed one would be too.
    let site = devices(ssh_local);
    let _ = site[0].publish_to("sensors/dev-tls/t", "dev-pw.spoofed");
    let mut live = BTreeSet::new();
    for device in &site {
        let sent = device.publish("live");
        live.insert(sent.unwrap_or_else(|e| panic!("{}: {e}\n{}", device.name, gw.logs())));
    }
    let missing = wait_all(&received, &live);
    assert!(
        missing.is_empty(),
        "not at the cloud: {missing:?}\ncloud got: {:?}\n{}",
        received.log(),
        gw.logs()
    );
    assert!(
        !received.contains("dev-pw.spoofed"),
        "the ACL let dev-pw publish as dev-tls"
    );
    assert_topics(&received);

    // 2. Outage: the cloud is down while the devices publish; each exit status 0 of
    //    `mosquitto_pub -q 1` is a PUBACK, i.e. (durability = "sync") on disk.
    cloud.stop();
    let mut acked = BTreeSet::new();
    let mut refused = Vec::new();
    for i in 0..OUTAGE_MESSAGES {
        for device in &site {
            match device.publish(&format!("outage.{i}")) {
                Ok(payload) => {
                    acked.insert(payload);
                }
                Err(e) => refused.push(format!("{} outage.{i}: {e}", device.name)),
            }
        }
    }
    eprintln!(
        "outage: {} of {} messages acknowledged",
        acked.len(),
        OUTAGE_MESSAGES * site.len()
    );

    // 3. SIGKILL, restart on the same data directory, then the cloud comes back.
    gw.kill9();
    drop(ssh);
    let gw = start_gateway(&data, &config);
    assert!(
        gw.wait_for_log("bridge queue recovered", DEADLINE),
        "{}",
        gw.logs()
    );
    cloud.restart();
    let missing = wait_all(&received, &acked);
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages lost: {missing:?}\nafter restart:\n{}",
        missing.len(),
        acked.len(),
        gw.logs()
    );
    assert!(
        refused.is_empty(),
        "publishes not acknowledged during the outage: {refused:#?}"
    );

    // 4. The restarted gateway serves all three devices again (a new SSH tunnel).
    let (_ssh, ssh_local) = ssh_forward(&ssh_dir, ssh_port);
    let mut after = BTreeSet::new();
    for device in &devices(ssh_local) {
        let sent = device.publish("after");
        after.insert(sent.unwrap_or_else(|e| panic!("{}: {e}\n{}", device.name, gw.logs())));
    }
    let missing = wait_all(&received, &after);
    assert!(missing.is_empty(), "{missing:?}\n{}", gw.logs());
    assert_topics(&received);
    eprintln!(
        "FIGURES: {} distinct messages at the cloud, {} with duplicates",
        received.distinct(),
        received.total()
    );
}

// ---- standalone-proxy.toml ---------------------------------------------------------

/// The example's sample ACL (from its `[acl]` comment): the dashboard reads plant data,
/// every user reads and writes below `devices/<user>/`.
const PROXY_ACL: &str = "user dashboard\ntopic read plant/#\npattern readwrite devices/%u/#\n";

/// An MQTT 3.1.1 client over WebSocket over TLS, blocking (mosquitto_pub has no
/// WebSocket support): CONNECT with a password, one QoS 1 PUBLISH, PUBACK, DISCONNECT.
mod wss {
    use std::net::TcpStream;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::ServerName;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

    use crate::common::pki::client_config;
    use crate::common::raw_client::{hand_made_packet, put_string};

    type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    /// The next MQTT packet (first byte, body), reading WebSocket frames as needed.
    fn next_packet(ws: &mut WebSocket<Tls>, buf: &mut Vec<u8>) -> Result<(u8, Vec<u8>), String> {
        loop {
            let mut len = 0usize;
            for (i, byte) in buf.iter().enumerate().skip(1).take(4) {
                len |= usize::from(byte & 0x7f) << (7 * (i - 1));
                if byte & 0x80 == 0 {
                    if buf.len() >= i + 1 + len {
                        let first = buf[0];
                        let body = buf[i + 1..i + 1 + len].to_vec();
                        buf.drain(..i + 1 + len);
                        return Ok((first, body));
                    }
                    break;
                }
            }
            match ws.read().map_err(|e| e.to_string())? {
                Message::Binary(data) => buf.extend(data),
                Message::Ping(_) | Message::Pong(_) => {}
                other => return Err(format!("unexpected frame {other:?}")),
            }
        }
    }

    /// Publishes `payload` on `topic` at QoS 1 as `user`; Ok once the PUBACK arrived.
    pub fn publish(
        port: u16,
        ca: &Path,
        (user, password): (&str, &str),
        topic: &str,
        payload: &str,
    ) -> Result<(), String> {
        let config = client_config(ca, None);
        let name = ServerName::try_from("localhost").unwrap();
        let tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut request = format!("wss://localhost:{port}/mqtt")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        let (mut ws, _) = tungstenite::client(request, rustls::StreamOwned::new(tls, tcp))
            .map_err(|e| format!("WebSocket handshake: {e}"))?;

        // CONNECT: MQTT 3.1.1, user name + password + clean session, keep-alive 60 s.
        let mut connect = Vec::new();
        put_string(&mut connect, b"MQTT");
        connect.extend_from_slice(&[4, 0xC2, 0, 60]);
        for field in [&format!("wss-{user}"), user, password] {
            put_string(&mut connect, field.as_bytes());
        }
        let mut publish = Vec::new();
        put_string(&mut publish, topic.as_bytes());
        publish.extend_from_slice(&[0, 1]);
        publish.extend_from_slice(payload.as_bytes());
        let mut buf = Vec::new();
        let send = |ws: &mut WebSocket<Tls>, bytes: Vec<u8>| {
            ws.send(Message::Binary(bytes)).map_err(|e| e.to_string())
        };
        send(&mut ws, hand_made_packet(0x10, &connect))?;
        let connack = next_packet(&mut ws, &mut buf)?;
        if connack != (0x20, vec![0, 0]) {
            return Err(format!("CONNACK {connack:?}"));
        }
        send(&mut ws, hand_made_packet(0x32, &publish))?;
        let puback = next_packet(&mut ws, &mut buf)?;
        if puback != (0x40, vec![0, 1]) {
            return Err(format!("expected PUBACK, got {puback:?}"));
        }
        send(&mut ws, hand_made_packet(0xE0, &[]))?;
        let _ = ws.close(None);
        let _ = ws.flush();
        Ok(())
    }
}

#[test]
fn standalone_proxy_example_checks_passwords_and_acl_in_front_of_mosquitto() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs_dir = dir.join("certs");
    ca_with_server(&certs_dir, "proxy test CA", Some("broker.example.com"));
    let ca = certs_dir.join("ca.pem");
    let passwords = dir.join("passwords");
    for user in ["dev1", "dev2", "dashboard"] {
        add_password(&passwords, user, &format!("pw-of-{user}"));
    }
    let acl = dir.join("acl");
    std::fs::write(&acl, PROXY_ACL).unwrap();

    // The existing broker: mosquitto without authentication.
    let broker = Cloud::start(&dir.join("broker"), "");
    let (tls_port, wss_port) = (free_port(), free_port());
    let mut text = example("standalone-proxy.toml");
    swap(
        &mut text,
        "upstream = \"127.0.0.1:1883\"",
        &format!("upstream = \"{}\"", broker.addr()),
    );
    swap(&mut text, "0.0.0.0:8883", &format!("127.0.0.1:{tls_port}"));
    swap(&mut text, "0.0.0.0:443", &format!("127.0.0.1:{wss_port}"));
    let server_files = certs_dir.join("servers").join("broker.example.com");
    swap(
        &mut text,
        "/etc/mqgate/tls/broker.example.com",
        &server_files.display().to_string(),
    );
    swap(
        &mut text,
        "/etc/mqgate/passwords",
        &passwords.display().to_string(),
    );
    swap(&mut text, "/etc/mqgate/acl", &acl.display().to_string());
    assert_localized(&text);
    let config = dir.join("proxy.toml");
    std::fs::write(&config, &text).unwrap();
    config_check(&config);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mqgate"));
    cmd.args(["proxy", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info");
    let proxy = Lines::spawn(cmd, "proxy", true);
    // Both sockets are bound before either is logged.
    let up = wait_until(DEADLINE, || proxy.any("kind=tls") && proxy.any("kind=wss"));
    assert!(up, "the proxy did not listen:\n{:#?}", proxy.all());
    let proxy_log = || proxy.all().join("\n");

    // What reaches the broker, seen directly on it.
    let watcher = MosquittoSub::start(broker.port, "broker-watch", "#", 1);
    let at_broker = watcher.received.clone();

    // The dashboard subscribes to everything through the proxy (TLS, ALPN "mqtt" as the
    // listener offers); deliveries are filtered per topic by its read rights.
    let mut sub = Command::new("stdbuf");
    sub.args(["-oL", "mosquitto_sub", "-d", "-v", "-h", "localhost"])
        .args([
            "-p",
            &tls_port.to_string(),
            "--tls-alpn",
            "mqtt",
            "--cafile",
        ])
        .arg(&ca)
        .args([
            "-u",
            "dashboard",
            "-P",
            "pw-of-dashboard",
            "-i",
            "dashboard",
        ])
        .args(["-q", "1", "-t", "#"]);
    let dashboard = Lines::spawn(sub, "dashboard", false);
    assert!(
        wait_until(DEADLINE, || dashboard.any("received SUBACK")),
        "dashboard not subscribed: {:#?}\n{}",
        dashboard.all(),
        proxy_log()
    );

    let tls_pub = |user: &str, password: &str, topic: &str, payload: &str| {
        let mut cmd = mosquitto_pub(
            "localhost",
            tls_port,
            &format!("tls-{user}"),
            topic,
            payload,
        );
        cmd.args(["--tls-alpn", "mqtt", "--cafile"])
            .arg(&ca)
            .args(["-u", user, "-P", password]);
        cmd.output().unwrap()
    };

    // A wrong password is refused at CONNECT.
    let out = tls_pub("dev1", "wrong", "devices/dev1/t", "dev1.bad-password");
    assert!(!out.status.success(), "a wrong password was accepted");

    // dev1 over TLS: writes outside devices/dev1/ are dropped, its own topic goes
    // through. The denied ones go first: once dev1.ok is at the broker, they would be too.
    for (topic, payload) in [
        ("devices/dev2/t", "dev1.spoofed"),
        ("plant/line1", "dev1.plant"),
    ] {
        let out = tls_pub("dev1", "pw-of-dev1", topic, payload);
        assert!(
            out.status.success(),
            "MQTT 3.1.1 denies silently: {}",
            failure(&out)
        );
    }
    let out = tls_pub("dev1", "pw-of-dev1", "devices/dev1/t", "dev1.ok");
    assert!(out.status.success(), "{}\n{}", failure(&out), proxy_log());

    // dev2 over WebSocket over TLS.
    wss::publish(
        wss_port,
        &ca,
        ("dev2", "pw-of-dev2"),
        "devices/dev2/t",
        "dev2.ok",
    )
    .unwrap_or_else(|e| panic!("wss publish: {e}\n{}", proxy_log()));

    let want: BTreeSet<String> = ["dev1.ok", "dev2.ok"].map(String::from).into();
    let missing = wait_all(&at_broker, &want);
    assert!(
        missing.is_empty(),
        "not at the broker: {missing:?}\n{}",
        proxy_log()
    );
    for denied in ["dev1.spoofed", "dev1.plant", "dev1.bad-password"] {
        assert!(
            !at_broker.contains(denied),
            "{denied} reached the broker: {:?}",
            at_broker.log()
        );
    }
    assert!(at_broker
        .log()
        .contains(&"devices/dev1/t dev1.ok".to_owned()));

    // Deliveries: the plant publishes straight to the broker, a device command first,
    // then plant data. The dashboard gets the plant data and nothing else (not dev1.ok
    // or dev2.ok either, published while it was subscribed).
    for (topic, payload) in [("devices/dev1/cmd", "secret"), ("plant/line1", "p1")] {
        let out = mosquitto_pub("127.0.0.1", broker.port, "plant", topic, payload)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", failure(&out));
    }
    let messages = || -> Vec<String> {
        dashboard
            .all()
            .into_iter()
            .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed"))
            .collect()
    };
    assert!(
        wait_until(DEADLINE, || !messages().is_empty()),
        "nothing delivered to the dashboard: {:#?}\n{}",
        dashboard.all(),
        proxy_log()
    );
    assert_eq!(messages(), ["plant/line1 p1"]);
}
