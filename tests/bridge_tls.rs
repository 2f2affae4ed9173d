//! A TLS upstream with mutual authentication: mosquitto with `require_certificate true`,
//! certificates made with the openssl command at test time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bridge_support;
mod common;

use std::path::Path;
use std::process::Command;

use bridge_support::{
    free_port, gateway_config, publish_all, sock, subscribe, wait_until, Cloud, DEADLINE,
};
use common::Mqgate;
use rumqttc::QoS;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    ]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, pem, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        let subj = format!("/CN={who}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bridges_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs);
    let plain = free_port();
    let c = |f: &str| certs.join(f).display().to_string();
    let tls = format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nlistener {plain} 127.0.0.1\n",
        c("ca.pem"),
        c("server.pem"),
        c("server.key")
    );
    let cloud = Cloud::start(&dir.path().join("cloud"), &tls);
    let toml = format!(
        r#"
[[bridge]]
name = "secure"
addresses = ["{}"]
transport = "tls"
[bridge.tls]
ca = "{}"
cert = "{}"
key = "{}"
sni = "localhost"
[[bridge.topic]]
topic = "secure/#"
direction = "out"
qos = 1
"#,
        cloud.addr(),
        c("ca.pem"),
        c("client.pem"),
        c("client.key")
    );
    let config = gateway_config(dir.path(), &toml);
    let gw = Mqgate::start(
        &dir.path().join("gw"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(
        gw.wait_for_log("bridge: connected upstream", DEADLINE),
        "no TLS connection:\n{}",
        gw.logs()
    );
    assert!(gw.wait_for_log("bridge: subscribed to the local broker", DEADLINE));
    let at_cloud = subscribe(sock(plain), "cloud-sub", "secure/#", QoS::AtLeastOnce).await;
    let n = publish_all(
        gw.addr,
        "site-pub",
        "secure/t",
        QoS::AtLeastOnce,
        ["over-tls".to_owned()],
        |_| {},
    )
    .await;
    assert_eq!(n, 1);
    assert!(tokio::task::block_in_place(|| wait_until(DEADLINE, || {
        at_cloud.contains("over-tls")
    })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_upstream_refuses_a_bridge_without_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs);
    let c = |f: &str| certs.join(f).display().to_string();
    let tls = format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        c("ca.pem"),
        c("server.pem"),
        c("server.key")
    );
    let cloud = Cloud::start(&dir.path().join("cloud"), &tls);
    let toml = format!(
        "[[bridge]]\nname = \"nocert\"\naddresses = [\"{}\"]\ntransport = \"tls\"\n\
         [bridge.tls]\nca = \"{}\"\n[[bridge.topic]]\ntopic = \"a/#\"\n",
        cloud.addr(),
        c("ca.pem")
    );
    let config = gateway_config(dir.path(), &toml);
    let gw = Mqgate::start(
        &dir.path().join("gw"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(
        gw.wait_for_log("upstream connection failed or lost", DEADLINE),
        "{}",
        gw.logs()
    );
    assert!(!gw.logs().contains("bridge: connected upstream"));
}
