//! Interoperability with mosquitto_pub / mosquitto_sub, including an MQTT 3.1 client.

mod support;

use std::process::Stdio;

use mqgate_protocol::QoS;
use support::*;
use tokio::process::Command;

fn have(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[tokio::test]
async fn mosquitto_pub_with_mqtt_3_1_and_mosquitto_sub() {
    assert!(
        have("mosquitto_pub") && have("mosquitto_sub"),
        "install mosquitto-clients"
    );
    let b = TestBroker::start(settings()).await;
    let port = b.addr.port().to_string();
    let mut raw = Raw::connect(b.addr, "raw", true).await;
    raw.subscribe("interop/#", QoS::AtLeastOnce).await;

    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            "mqttv31",
            "-q",
            "1",
            "-t",
            "interop/v31",
            "-m",
            "from 3.1",
            "-i",
            "v31",
        ])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let p = raw.recv_publish().await;
    assert_eq!(p.payload, "from 3.1");
    raw.ack(&p).await;

    // mosquitto_sub waits for one retained message, then exits.
    let mut publ = Raw::connect(b.addr, "pub", true).await;
    publ.publish_acked("interop/ret", b"retained", QoS::AtLeastOnce, true, 1)
        .await;
    let out = tokio::time::timeout(
        WAIT,
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                "mqttv311",
                "-q",
                "2",
                "-t",
                "interop/ret",
                "-C",
                "1",
            ])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "retained");
    b.shutdown().await;
}
