//! `mqgate run` with a mutual-TLS listener in front of broker-lite, certificates issued by
//! `mqgate certs`: a device certificate's CN becomes the MQTT identity that the ACL sees,
//! and after `certs revoke` + `crl` + SIGHUP the revoked device is refused. With
//! `identity = "san-email"`, an openssl-made certificate's e-mail SAN is the identity instead.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{run_mqgate, Mqgate};

fn certs(dir: &Path, args: &[&str]) {
    let mut all = vec!["certs", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run_mqgate(&all);
    assert_eq!(code, 0, "mqgate certs {args:?}: {stdout}{stderr}");
}

/// `mosquitto_pub` over TLS with a device certificate. Messages are retained, so a
/// subscriber sees them whether it subscribed before or after.
fn publish_as(certs_dir: &Path, device: &str, port: u16, topic: &str, message: &str) -> Output {
    let cert = certs_dir.join(format!("devices/{device}.pem"));
    let key = certs_dir.join(format!("devices/{device}.key"));
    Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port.to_string(), "-q", "1", "-r"])
        .args(["-i", &format!("pub-{device}"), "-t", topic, "-m", message])
        .arg("--cafile")
        .arg(certs_dir.join("ca.pem"))
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .output()
        .expect("run mosquitto_pub")
}

/// An anonymous subscriber on the plain listener that prints one message and exits.
fn subscribe(port: u16, filter: &str) -> Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-v"])
        .args(["-t", filter, "-C", "1", "-W", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub")
}

#[test]
fn device_certificate_is_the_identity_and_revocation_applies_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("certs");
    certs(&ca, &["init", "--name", "test site CA"]);
    certs(
        &ca,
        &["issue-server", "--dns", "localhost", "--ip", "127.0.0.1"],
    );
    certs(&ca, &["issue-device", "sensor1"]);
    certs(&ca, &["issue-device", "sensor2"]);
    certs(&ca, &["crl"]);

    // Anonymous clients (the plain listener) may read sensors/#; each device may write
    // only below its own name.
    let acl = tmp.path().join("acl");
    std::fs::write(&acl, "topic read sensors/#\n\npattern write sensors/%u/#\n").unwrap();
    let config = tmp.path().join("mqgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[listener]]
kind = "tls"
bind = "127.0.0.1:0"
[listener.tls]
cert = "{ca}/servers/localhost.pem"
key = "{ca}/servers/localhost.key"
client_ca = "{ca}/ca.pem"
crl = "{ca}/crl.pem"
client_cert = "required"
use_identity_as_username = true

[[listener]]
kind = "tcp"
bind = "127.0.0.1:0"

[auth]
allow_anonymous = true

[acl]
file = "{acl}"
"#,
            ca = ca.display(),
            acl = acl.display()
        ),
    )
    .unwrap();
    let mqgate = Mqgate::start_with_config(&tmp.path().join("data"), &config);
    let tls_port = mqgate.listener("tls").expect("tls listener logged").port();
    let tcp_port = mqgate.addr.port();

    // sensor1 may not write to sensor2's topic (the ACL sees the CN as user name); its
    // own topic goes through. The subscriber gets exactly the allowed message.
    let sub = subscribe(tcp_port, "sensors/#");
    let denied = publish_as(&ca, "sensor1", tls_port, "sensors/sensor2/temp", "spoofed");
    assert!(
        denied.status.success(),
        "3.1.1 denial is silent: {denied:?}"
    );
    let ok = publish_as(&ca, "sensor1", tls_port, "sensors/sensor1/temp", "21.5");
    assert!(ok.status.success(), "{ok:?}");
    let out = sub.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sensors/sensor1/temp 21.5"
    );

    // Revoke sensor1, write the CRL, SIGHUP: sensor1's handshake now fails, sensor2 works.
    certs(&ca, &["revoke", "sensor1"]);
    certs(&ca, &["crl"]);
    mqgate.signal("HUP");
    assert!(
        mqgate.wait_for_log("SIGHUP", Duration::from_secs(20)),
        "{}",
        mqgate.logs()
    );
    let refused = publish_as(&ca, "sensor1", tls_port, "sensors/sensor1/temp", "22.0");
    assert!(
        !refused.status.success(),
        "a revoked certificate must be refused"
    );
    assert!(
        mqgate.wait_for_log("revoked", Duration::from_secs(20)),
        "one log line naming the revocation: {}",
        mqgate.logs()
    );
    let sub = subscribe(tcp_port, "sensors/sensor2/#");
    let other = publish_as(&ca, "sensor2", tls_port, "sensors/sensor2/temp", "19.0");
    assert!(other.status.success(), "{other:?}");
    let out = sub.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sensors/sensor2/temp 19.0"
    );
}

/// `openssl`: a client key and a certificate signed by the `mqgate certs` CA, with
/// subject `/CN=<cn>` and the given `subjectAltName` extension value.
fn openssl_device(ca: &Path, dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!("subjectAltName={san}\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        &p(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca.join("ca.pem")),
        "-CAkey",
        &p(&ca.join("ca.key")),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]);
    (cert, key)
}

#[test]
fn a_configured_san_is_the_identity_and_a_certificate_without_it_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("certs");
    certs(&ca, &["init", "--name", "test site CA"]);
    certs(
        &ca,
        &["issue-server", "--dns", "localhost", "--ip", "127.0.0.1"],
    );
    // The CN claims an all-powerful user; the identity is the e-mail SAN.
    let (sensor9, sensor9_key) = openssl_device(
        &ca,
        tmp.path(),
        "sensor9",
        "cn-admin",
        "DNS:sensor9.example,email:sensor9@site",
    );
    let (no_email, no_email_key) =
        openssl_device(&ca, tmp.path(), "no-email", "cn-admin", "DNS:x.example");
    let acl = tmp.path().join("acl");
    std::fs::write(
        &acl,
        "topic read sensors/#\n\nuser sensor9@site\ntopic write sensors/sensor9/#\n\nuser cn-admin\ntopic write sensors/#\n",
    )
    .unwrap();
    let config = tmp.path().join("mqgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[listener]]
kind = "tls"
bind = "127.0.0.1:0"
[listener.tls]
cert = "{ca}/servers/localhost.pem"
key = "{ca}/servers/localhost.key"
client_ca = "{ca}/ca.pem"
client_cert = "required"
use_identity_as_username = true
identity = "san-email"

[[listener]]
kind = "tcp"
bind = "127.0.0.1:0"

[auth]
allow_anonymous = true

[acl]
file = "{acl}"
"#,
            ca = ca.display(),
            acl = acl.display()
        ),
    )
    .unwrap();
    let mqgate = Mqgate::start_with_config(&tmp.path().join("data"), &config);
    let tls_port = mqgate.listener("tls").expect("tls listener logged").port();
    let publish = |cert: &Path, key: &Path, topic: &str, message: &str| {
        Command::new("mosquitto_pub")
            .args([
                "-h",
                "localhost",
                "-p",
                &tls_port.to_string(),
                "-q",
                "1",
                "-r",
            ])
            .args(["-i", "pub-san", "-t", topic, "-m", message, "--cafile"])
            .arg(ca.join("ca.pem"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .output()
            .expect("run mosquitto_pub")
    };

    // The CN's rights do not apply: sensors/other is denied (acknowledged and dropped,
    // logged with the SAN as user); sensor9@site's own subtree goes through.
    let sub = subscribe(mqgate.addr.port(), "sensors/#");
    let denied = publish(&sensor9, &sensor9_key, "sensors/other/temp", "spoofed");
    assert!(denied.status.success(), "{denied:?}");
    assert!(
        mqgate.wait_for_log(
            "user=\"sensor9@site\" topic=\"sensors/other/temp\"",
            Duration::from_secs(20)
        ),
        "{}",
        mqgate.logs()
    );
    let ok = publish(&sensor9, &sensor9_key, "sensors/sensor9/temp", "20.0");
    assert!(ok.status.success(), "{ok:?}");
    let out = sub.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sensors/sensor9/temp 20.0"
    );

    // A valid certificate without an e-mail SAN is refused, with one clear line.
    let refused = publish(&no_email, &no_email_key, "sensors/other/temp", "x");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        mqgate.wait_for_log(
            "client certificate has no e-mail SAN to use as user name",
            Duration::from_secs(20)
        ),
        "{}",
        mqgate.logs()
    );
}
