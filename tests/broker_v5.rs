//! MQTT 5 against the real `mqgate run` binary with mosquitto's v5 clients: a persistent
//! v5 session (session expiry) keeps a queued message with its properties across a
//! graceful restart.

#![allow(clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::Mqgate;

const WAIT: Duration = Duration::from_secs(30);

fn run(tool: &str, mqgate: &Mqgate, args: &[&str]) -> Output {
    let port = mqgate.addr.port().to_string();
    let mut cmd = std::process::Command::new(tool);
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5"])
        .args(args);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto clients installed");
    let deadline = std::time::Instant::now() + WAIT;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{tool} {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn start(dir: &Path) -> Mqgate {
    Mqgate::start(dir, &[])
}

#[test]
fn v5_session_and_message_properties_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut mqgate = start(dir.path());
    let session = ["-c", "-i", "v5dev", "-x", "600"];
    // Subscribe (QoS 1) and leave: -E exits once the subscription is acknowledged.
    let out = run(
        "mosquitto_sub",
        &mqgate,
        &[&session[..], &["-q", "1", "-t", "v5/#", "-E"]].concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let out = run(
        "mosquitto_pub",
        &mqgate,
        &[
            "-q",
            "1",
            "-t",
            "v5/a",
            "-m",
            "queued",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "message-expiry-interval",
            "600",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(mqgate.terminate().success());

    let mqgate = start(dir.path());
    let out = run(
        "mosquitto_sub",
        &mqgate,
        &[
            &session[..],
            &["-q", "1", "-t", "v5/#", "-C", "1", "-F", "%t|%p|%P|%C|%E"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(
        &fields[..4],
        ["v5/a", "queued", "k:v", "text/plain"],
        "{line}"
    );
    let left: u32 = fields[4].parse().unwrap();
    assert!((500..=600).contains(&left), "{line}");
}
