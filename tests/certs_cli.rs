//! End-to-end tests of `mqgate certs`: the real binary, checked with the real `openssl`.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary certs directory and the commands to drive it.
struct Pki {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Pki {
    /// An empty certs directory (no CA yet).
    fn empty() -> Pki {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        Pki { _tmp: tmp, dir }
    }

    /// A certs directory with a fresh default CA.
    fn new() -> Pki {
        let pki = Pki::empty();
        pki.ok(&["init", "--name", "Test CA"]);
        pki
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn ca(&self) -> String {
        self.path("ca.pem").display().to_string()
    }

    /// Runs `mqgate certs --dir DIR ARGS...`.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mqgate"))
            .arg("certs")
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mqgate certs {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its one-line stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "mqgate certs {args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        err
    }

    /// `openssl verify -CAfile ca.pem EXTRA... CERT`: (success, output).
    fn verify(&self, cert: &Path, extra: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(["verify", "-CAfile", &self.ca()])
            .args(extra)
            .arg(cert)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn assert_verifies(&self, cert: &Path) {
        let (ok, text) = self.verify(cert, &[]);
        assert!(ok && text.contains(": OK"), "{}: {text}", cert.display());
    }
}

/// Runs openssl; panics unless it succeeds; returns stdout.
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn x509_text(cert: &Path) -> String {
    openssl(&[
        "x509",
        "-in",
        &cert.display().to_string(),
        "-text",
        "-noout",
    ])
}

/// `openssl x509 -checkend SECONDS`: true if the certificate is still valid then.
fn valid_in(cert: &Path, seconds: u64) -> bool {
    Command::new("openssl")
        .args(["x509", "-noout", "-checkend", &seconds.to_string(), "-in"])
        .arg(cert)
        .output()
        .unwrap()
        .status
        .success()
}

fn serial_of(cert: &Path) -> String {
    let out = openssl(&[
        "x509",
        "-noout",
        "-serial",
        "-in",
        &cert.display().to_string(),
    ]);
    out.trim().trim_start_matches("serial=").to_string()
}

fn pubkey_of(cert: &Path) -> String {
    openssl(&[
        "x509",
        "-noout",
        "-pubkey",
        "-in",
        &cert.display().to_string(),
    ])
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const DAY: u64 = 86_400;

#[test]
fn init_makes_a_ca_with_a_private_key_and_refuses_to_overwrite() {
    let pki = Pki::new();
    assert_eq!(mode(&pki.path("ca.key")), 0o600);
    let text = x509_text(&pki.path("ca.pem"));
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("Subject: CN = Test CA"), "{text}");
    assert!(text.contains("prime256v1"), "{text}");
    assert!(valid_in(&pki.path("ca.pem"), 3649 * DAY));
    assert!(!valid_in(&pki.path("ca.pem"), 3651 * DAY));

    let before = fs::read(pki.path("ca.pem")).unwrap();
    let err = pki.fails(&["init"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(fs::read(pki.path("ca.pem")).unwrap(), before);

    pki.ok(&["init", "--force"]);
    assert_ne!(fs::read(pki.path("ca.pem")).unwrap(), before);

    let ed = Pki::empty();
    ed.ok(&["init", "--key-type", "ed25519", "--validity-days", "30"]);
    assert!(x509_text(&ed.path("ca.pem")).contains("ED25519"));
    // A 365-day device certificate cannot outlive a 30-day CA; a 20-day one can.
    let err = ed.fails(&["issue-device", "edge1"]);
    assert!(err.contains("outlive the CA"), "{err}");
    ed.ok(&["issue-device", "edge1", "--validity-days", "20"]);
    ed.assert_verifies(&ed.path("devices/edge1.pem"));
}

#[test]
fn device_certificate_has_client_auth_cn_one_year_key_and_chain() {
    let pki = Pki::new();
    let out = pki.ok(&["issue-device", "sensor1"]);
    let cert = pki.path("devices/sensor1.pem");
    pki.assert_verifies(&cert);
    let (ok, text) = pki.verify(&cert, &["-purpose", "sslclient"]);
    assert!(ok, "{text}");
    let (ok, _) = pki.verify(&cert, &["-purpose", "sslserver"]);
    assert!(!ok, "a device certificate must not pass as a server");

    let text = x509_text(&cert);
    assert!(text.contains("Subject: CN = sensor1"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    // One year by default.
    assert!(valid_in(&cert, 364 * DAY));
    assert!(!valid_in(&cert, 366 * DAY));

    // Serial: 20 octets, positive, shown in the command output.
    let serial = serial_of(&cert);
    assert_eq!(serial.len(), 40, "{serial}");
    assert!(u8::from_str_radix(&serial[..2], 16).unwrap() < 0x80);
    assert!(out.contains(&serial), "{out}");

    assert_eq!(mode(&pki.path("devices/sensor1.key")), 0o600);
    let key_pub = openssl(&[
        "pkey",
        "-pubout",
        "-in",
        &pki.path("devices/sensor1.key").display().to_string(),
    ]);
    assert_eq!(key_pub, pubkey_of(&cert));
    let chain = fs::read_to_string(pki.path("devices/sensor1-chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(chain.ends_with(&fs::read_to_string(pki.path("ca.pem")).unwrap()));

    // Same subject again: refused, unless forced.
    let err = pki.fails(&["issue-device", "sensor1"]);
    assert!(
        err.contains("already exists") && err.contains(&serial),
        "{err}"
    );
    pki.ok(&["issue-device", "sensor1", "--force"]);
    assert_ne!(serial_of(&cert), serial);

    let err = pki.fails(&["issue-device", "../etc"]);
    assert!(err.contains("invalid name"), "{err}");
}

#[test]
fn server_certificate_has_server_auth_and_sans() {
    let pki = Pki::new();
    pki.ok(&[
        "issue-server",
        "--dns",
        "gw.local",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--ip",
        "::1",
    ]);
    let cert = pki.path("servers/gw.local.pem");
    pki.assert_verifies(&cert);
    let (ok, text) = pki.verify(&cert, &["-purpose", "sslserver"]);
    assert!(ok, "{text}");
    let text = x509_text(&cert);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(!text.contains("TLS Web Client Authentication"), "{text}");
    for san in [
        "DNS:gw.local",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(text.contains(san), "{san} missing: {text}");
    }
    assert!(text.contains("Subject: CN = gw.local"), "{text}");
    assert_eq!(mode(&pki.path("servers/gw.local.key")), 0o600);
    let (ok, _) = pki.verify(&cert, &["-verify_hostname", "gw.local"]);
    assert!(ok);
    let (ok, _) = pki.verify(&cert, &["-verify_hostname", "other.local"]);
    assert!(!ok);

    let err = pki.fails(&["issue-server"]);
    assert!(err.contains("--dns"), "{err}");
}

/// Makes a key and CSR with `openssl req`; returns the CSR path.
fn openssl_csr(dir: &Path, name: &str, subj: &str, addext: &[&str]) -> PathBuf {
    let csr = dir.join(format!("{name}.csr"));
    let key = dir.join(format!("{name}.key"));
    let mut args = vec![
        "req".to_string(),
        "-new".into(),
        "-newkey".into(),
        "ec".into(),
        "-pkeyopt".into(),
        "ec_paramgen_curve:prime256v1".into(),
        "-nodes".into(),
        "-keyout".into(),
        key.display().to_string(),
        "-out".into(),
        csr.display().to_string(),
        "-subj".into(),
        subj.into(),
    ];
    for ext in addext {
        args.push("-addext".into());
        args.push((*ext).into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&args);
    csr
}

#[test]
fn csr_from_openssl_is_signed_with_the_devices_own_key() {
    let pki = Pki::new();
    let work = pki._tmp.path();
    let csr = openssl_csr(work, "sensor9", "/CN=sensor9", &[]);
    let out = pki.ok(&["sign-csr", &csr.display().to_string()]);
    assert!(
        !out.contains("key (0600)"),
        "no key is written for a CSR: {out}"
    );
    let cert = pki.path("devices/sensor9.pem");
    pki.assert_verifies(&cert);
    let text = x509_text(&cert);
    assert!(text.contains("Subject: CN = sensor9"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!pki.path("devices/sensor9.key").exists());
    let device_pub = openssl(&[
        "pkey",
        "-pubout",
        "-in",
        &work.join("sensor9.key").display().to_string(),
    ]);
    assert_eq!(device_pub, pubkey_of(&cert));
    assert!(fs::read_to_string(pki.path("devices/sensor9-chain.pem"))
        .unwrap()
        .starts_with(&fs::read_to_string(&cert).unwrap()));

    // A server CSR with its SANs: refused unless they are explicitly kept.
    let csr = openssl_csr(
        work,
        "broker",
        "/CN=broker",
        &[
            "subjectAltName=DNS:broker.local",
            "extendedKeyUsage=serverAuth",
        ],
    );
    let csr = csr.display().to_string();
    let err = pki.fails(&["sign-csr", "--profile", "server", &csr]);
    assert!(
        err.contains("--keep-san") && err.contains("broker.local"),
        "{err}"
    );
    assert!(!pki.path("servers/broker.pem").exists());
    let out = pki.ok(&["sign-csr", "--profile", "server", "--keep-san", &csr]);
    assert!(out.contains("DNS:broker.local"), "{out}");
    let cert = pki.path("servers/broker.pem");
    pki.assert_verifies(&cert);
    let text = x509_text(&cert);
    assert!(
        text.contains("DNS:broker.local") && text.contains("TLS Web Server Authentication"),
        "{text}"
    );
}

/// A CSR for `sensor9` that asks for the SAN URI `spiffe://site/admin`: with a listener on
/// `identity = "san-uri"`, certifying it would log the device in as `admin`.
fn admin_san_csr(pki: &Pki) -> String {
    let csr = openssl_csr(
        pki._tmp.path(),
        "sensor9",
        "/CN=sensor9",
        &["subjectAltName=URI:spiffe://site/admin"],
    );
    csr.display().to_string()
}

#[test]
fn csr_sans_are_dropped_by_default_and_reported() {
    let pki = Pki::new();
    let csr = admin_san_csr(&pki);
    let out = pki.run(&["sign-csr", &csr]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");

    let cert = pki.path("devices/sensor9.pem");
    pki.assert_verifies(&cert);
    let text = x509_text(&cert);
    assert!(text.contains("Subject: CN = sensor9"), "{text}");
    assert!(!text.contains("Subject Alternative Name"), "{text}");
    assert!(!text.contains("URI:"), "{text}");
    assert!(!text.contains("spiffe://site/admin"), "{text}");

    // The dropped SAN is named on stderr, and not reported as signed.
    let dropped = stderr
        .lines()
        .find(|l| l.contains("spiffe://site/admin"))
        .unwrap_or_else(|| panic!("dropped SAN not reported: {stderr}"));
    assert!(dropped.contains("--keep-san"), "{stderr}");
    assert!(!stdout.contains("spiffe://site/admin"), "{stdout}");
    let inventory = fs::read_to_string(pki.path("inventory.toml")).unwrap();
    assert!(!inventory.contains("spiffe"), "{inventory}");

    // A CSR without SANs signs silently.
    let plain = openssl_csr(pki._tmp.path(), "plain", "/CN=plain", &[]);
    let out = pki.run(&["sign-csr", &plain.display().to_string()]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keep_san_certifies_and_prints_the_csr_sans() {
    let pki = Pki::new();
    let csr = admin_san_csr(&pki);
    let out = pki.run(&["sign-csr", "--keep-san", &csr]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");

    let cert = pki.path("devices/sensor9.pem");
    pki.assert_verifies(&cert);
    let text = x509_text(&cert);
    assert!(text.contains("URI:spiffe://site/admin"), "{text}");
    assert!(text.contains("Subject: CN = sensor9"), "{text}");
    let printed = format!("{stdout}{stderr}");
    let line = printed
        .lines()
        .find(|l| l.contains("spiffe://site/admin"))
        .unwrap_or_else(|| panic!("signed SAN not printed: {printed}"));
    assert!(line.contains("URI:spiffe://site/admin"), "{line}");

    // The help says what the flag does and why it is dangerous.
    let help = pki.ok(&["sign-csr", "--help"]);
    let flag = &help[help.find("--keep-san").unwrap()..];
    assert!(
        flag.contains("san-uri") && flag.contains("username"),
        "{help}"
    );
}

#[test]
fn bad_csrs_are_refused() {
    let pki = Pki::new();
    let work = pki._tmp.path();

    // Flip a byte in the signature (the last byte of the DER), then re-PEM it.
    let good = openssl_csr(work, "good", "/CN=good", &[]);
    let der = work.join("good.der");
    openssl(&[
        "req",
        "-in",
        &good.display().to_string(),
        "-outform",
        "DER",
        "-out",
        &der.display().to_string(),
    ]);
    let mut bytes = fs::read(&der).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad_der = work.join("bad.der");
    fs::write(&bad_der, &bytes).unwrap();
    let bad_pem = work.join("bad.csr");
    openssl(&[
        "req",
        "-inform",
        "DER",
        "-in",
        &bad_der.display().to_string(),
        "-outform",
        "PEM",
        "-out",
        &bad_pem.display().to_string(),
    ]);
    for bad in [&bad_pem, &bad_der] {
        let err = pki.fails(&["sign-csr", &bad.display().to_string()]);
        assert!(err.contains("does not verify"), "{err}");
    }

    let ca_csr = openssl_csr(
        work,
        "evil",
        "/CN=evil",
        &["basicConstraints=critical,CA:TRUE"],
    );
    let err = pki.fails(&["sign-csr", &ca_csr.display().to_string()]);
    assert!(err.contains("CA:true"), "{err}");

    let server_eku = openssl_csr(
        work,
        "sneaky",
        "/CN=sneaky",
        &["extendedKeyUsage=serverAuth"],
    );
    let err = pki.fails(&["sign-csr", &server_eku.display().to_string()]);
    assert!(err.contains("serverAuth"), "{err}");

    let garbage = work.join("garbage.csr");
    fs::write(&garbage, "not a csr").unwrap();
    let err = pki.fails(&["sign-csr", &garbage.display().to_string()]);
    assert!(err.contains("cannot read CSR"), "{err}");

    // Nothing was issued.
    assert!(
        !pki.path("devices").exists() || fs::read_dir(pki.path("devices")).unwrap().count() == 0
    );
}

#[test]
fn revoked_certificate_is_in_the_crl_and_fails_crl_check() {
    let pki = Pki::new();
    pki.ok(&["issue-device", "lost"]);
    pki.ok(&["issue-device", "kept"]);
    let lost = pki.path("devices/lost.pem");
    let kept = pki.path("devices/kept.pem");
    let lost_serial = serial_of(&lost);

    let out = pki.ok(&["revoke", "lost", "--reason", "key-compromise"]);
    assert!(out.contains(&lost_serial), "{out}");
    let crl = pki.path("crl.pem").display().to_string();
    let text = openssl(&["crl", "-in", &crl, "-text", "-noout"]);
    assert!(text.contains(&lost_serial), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Next Update"), "{text}");
    assert!(!text.contains(&serial_of(&kept)), "{text}");
    // The CRL is signed by the CA.
    openssl(&["crl", "-in", &crl, "-CAfile", &pki.ca(), "-noout"]);

    let (ok, text) = pki.verify(&lost, &["-crl_check", "-CRLfile", &crl]);
    assert!(!ok && text.contains("revoked"), "{text}");
    let (ok, text) = pki.verify(&kept, &["-crl_check", "-CRLfile", &crl]);
    assert!(ok, "{text}");

    let list = pki.ok(&["list"]);
    let row = list.lines().find(|l| l.contains(&lost_serial)).unwrap();
    assert!(row.contains("revoked"), "{list}");

    // Revoking again is an error; `crl` renumbers and keeps the entry; by serial works too.
    let err = pki.fails(&["revoke", "lost"]);
    assert!(err.contains("already revoked"), "{err}");
    let number = |crl: &str| openssl(&["crl", "-in", crl, "-noout", "-crlnumber"]);
    let before = number(&crl);
    pki.ok(&["crl", "--next-update-days", "7"]);
    assert_ne!(number(&crl), before);
    assert!(openssl(&["crl", "-in", &crl, "-text", "-noout"]).contains(&lost_serial));
    pki.ok(&["revoke", &serial_of(&kept).to_lowercase()]);
    let (ok, _) = pki.verify(&kept, &["-crl_check", "-CRLfile", &crl]);
    assert!(!ok);

    let err = pki.fails(&["revoke", "nobody"]);
    assert!(err.contains("no certificate matches"), "{err}");
    // A revoked subject may be issued again without --force.
    pki.ok(&["issue-device", "lost"]);
}

#[test]
fn renew_issues_a_new_certificate_and_keeps_the_old_one_valid() {
    let pki = Pki::new();
    pki.ok(&["issue-device", "r1", "--validity-days", "10"]);
    let cert = pki.path("devices/r1.pem");
    let old_serial = serial_of(&cert);
    let old_pub = pubkey_of(&cert);
    let list = pki.ok(&["list"]);
    let row = list.lines().find(|l| l.contains(&old_serial)).unwrap();
    assert!(
        row.starts_with('!'),
        "expiring certificate not highlighted: {list}"
    );
    assert!(list.contains("expire within 30 days"), "{list}");

    pki.ok(&["renew", "r1"]);
    let new_serial = serial_of(&cert);
    assert_ne!(new_serial, old_serial);
    pki.assert_verifies(&cert);
    assert!(valid_in(&cert, 364 * DAY));
    assert_eq!(pubkey_of(&cert), old_pub, "renew keeps the key by default");
    let old_copy = pki.path(&format!("issued/{old_serial}.pem"));
    pki.assert_verifies(&old_copy);
    let list = pki.ok(&["list"]);
    for s in [&old_serial, &new_serial] {
        let row = list.lines().find(|l| l.contains(s.as_str())).unwrap();
        assert!(row.contains("valid"), "{list}");
    }

    pki.ok(&["renew", "r1", "--new-key"]);
    assert_ne!(pubkey_of(&cert), old_pub);
    pki.assert_verifies(&cert);
    assert_eq!(mode(&pki.path("devices/r1.key")), 0o600);
    let key_pub = openssl(&[
        "pkey",
        "-pubout",
        "-in",
        &pki.path("devices/r1.key").display().to_string(),
    ]);
    assert_eq!(key_pub, pubkey_of(&cert));

    // Renewing a CSR-signed certificate re-certifies the device's own key.
    let csr = openssl_csr(pki._tmp.path(), "s2", "/CN=s2", &[]);
    pki.ok(&["sign-csr", &csr.display().to_string()]);
    let s2 = pki.path("devices/s2.pem");
    let s2_pub = pubkey_of(&s2);
    pki.ok(&["renew", "s2"]);
    pki.assert_verifies(&s2);
    assert_eq!(pubkey_of(&s2), s2_pub);

    pki.ok(&["revoke", "s2"]);
    let err = pki.fails(&["renew", "s2"]);
    assert!(err.contains("no certificate matches"), "{err}");
}

#[test]
fn clear_errors_for_missing_ca_corrupt_key_and_loose_permissions() {
    let pki = Pki::empty();
    let err = pki.fails(&["issue-device", "x"]);
    assert!(
        err.contains("no CA in") && err.contains("run `mqgate certs init` first"),
        "{err}"
    );
    assert!(err.contains(&pki.dir.display().to_string()), "{err}");
    pki.fails(&["list"]);

    let pki = Pki::new();
    fs::set_permissions(pki.path("ca.key"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = pki.run(&["list"]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning:") && err.contains("ca.key") && err.contains("chmod 600"),
        "{err}"
    );

    fs::write(
        pki.path("ca.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = pki.fails(&["issue-device", "x"]);
    assert!(
        err.contains("corrupt key") && err.contains("ca.key"),
        "{err}"
    );

    // A key that parses but belongs to another CA.
    let other = Pki::new();
    fs::copy(other.path("ca.key"), pki.path("ca.key")).unwrap();
    let err = pki.fails(&["list"]);
    assert!(err.contains("does not match"), "{err}");
}
