//! Library-level tests of the CA: init, issue, CSR, renew, revoke, CRL and error cases.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::fs;
use std::os::unix::fs::PermissionsExt;

use mqgate_certs::{
    init, Ca, CertsDir, CertsError, InitOptions, IssueRequest, KeyType, OffsetDateTime, Profile,
    Reason, Status,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

fn opts(force: bool) -> InitOptions {
    InitOptions {
        name: "Lib CA".into(),
        key_type: KeyType::EcdsaP256,
        validity_days: 1000,
        force,
    }
}

fn device(name: &str) -> IssueRequest {
    IssueRequest {
        profile: Profile::Device,
        name: name.into(),
        dns: vec![],
        ips: vec![],
        key_type: KeyType::EcdsaP256,
        validity_days: 365,
        force: false,
    }
}

fn new_ca() -> (tempfile::TempDir, Ca) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CertsDir::new(tmp.path().join("certs"));
    init(&dir, &opts(false), OffsetDateTime::now_utc()).unwrap();
    (tmp, Ca::open(dir).unwrap())
}

#[test]
fn init_refuses_twice_and_force_sets_the_old_ca_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = CertsDir::new(tmp.path().join("c"));
    let now = OffsetDateTime::now_utc();
    assert!(matches!(
        Ca::open(dir.clone()),
        Err(CertsError::NoCa { .. })
    ));
    init(&dir, &opts(false), now).unwrap();
    let mode = fs::metadata(dir.ca_key()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(matches!(
        init(&dir, &opts(false), now),
        Err(CertsError::CaExists { .. })
    ));
    let old = fs::read(dir.ca_cert()).unwrap();
    init(&dir, &opts(true), now).unwrap();
    let aside = dir
        .root()
        .join(format!("replaced-{}", now.unix_timestamp()));
    assert_eq!(fs::read(aside.join("ca.pem")).unwrap(), old);
    assert!(Ca::open(dir).unwrap().warnings().is_empty());
}

#[test]
fn subjects_are_unique_among_valid_certificates() {
    let (_tmp, ca) = new_ca();
    let now = OffsetDateTime::now_utc();
    let first = ca.issue(&device("d1"), now).unwrap();
    assert!(matches!(
        ca.issue(&device("d1"), now),
        Err(CertsError::SubjectInUse { .. })
    ));
    let forced = ca
        .issue(
            &IssueRequest {
                force: true,
                ..device("d1")
            },
            now,
        )
        .unwrap();
    assert_ne!(first.record.serial, forced.record.serial);
    assert_eq!(ca.inventory().unwrap().certs.len(), 2);

    // Once every d1 is revoked the subject is free again.
    let (revoked, crl) = ca.revoke("d1", Reason::Superseded, now).unwrap();
    assert_eq!(revoked.len(), 2);
    assert_eq!(crl.revoked, 2);
    assert_eq!(crl.number, 1);
    ca.issue(&device("d1"), now).unwrap();
}

#[test]
fn revoke_by_serial_renew_and_crl_numbers() {
    let (_tmp, ca) = new_ca();
    let now = OffsetDateTime::now_utc();
    let a = ca.issue(&device("a"), now).unwrap();
    let renewed = ca.renew("a", 30, None, now).unwrap();
    let inv = ca.inventory().unwrap();
    assert_eq!(inv.valid_for_subject("a", now).count(), 2);
    assert_eq!(renewed.key, None, "renew keeps the key unless asked");

    let (revoked, _) = ca
        .revoke(&a.record.serial.to_lowercase(), Reason::KeyCompromise, now)
        .unwrap();
    assert_eq!(revoked.len(), 1);
    let inv = ca.inventory().unwrap();
    let rec = inv.by_serial(&a.record.serial).unwrap();
    assert_eq!(rec.status(now), Status::Revoked);
    assert_eq!(rec.revocation_reason, Some(Reason::KeyCompromise));
    assert_eq!(
        inv.by_serial(&renewed.record.serial).unwrap().status(now),
        Status::Valid
    );
    assert_eq!(ca.write_crl(7, now).unwrap().number, 2);
    assert!(matches!(
        ca.revoke(&a.record.serial, Reason::Unspecified, now),
        Err(CertsError::AlreadyRevoked { .. })
    ));
    assert!(matches!(
        ca.renew("nobody", 30, None, now),
        Err(CertsError::NotFound { .. })
    ));
}

#[test]
fn validity_is_bounded_by_the_ca() {
    let (_tmp, ca) = new_ca();
    let now = OffsetDateTime::now_utc();
    let long = IssueRequest {
        validity_days: 2000,
        ..device("long")
    };
    assert!(matches!(
        ca.issue(&long, now),
        Err(CertsError::InvalidValidity { .. })
    ));
    let zero = IssueRequest {
        validity_days: 0,
        ..device("zero")
    };
    assert!(matches!(
        ca.issue(&zero, now),
        Err(CertsError::InvalidValidity { .. })
    ));
    let server = IssueRequest {
        profile: Profile::Server,
        ..device("srv")
    };
    assert!(matches!(
        ca.issue(&server, now),
        Err(CertsError::NoServerNames)
    ));
}

#[test]
fn csr_signing_uses_the_requesters_key() {
    let (tmp, ca) = new_ca();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "csr-dev");
    params.distinguished_name = dn;
    let csr = tmp.path().join("d.csr");
    fs::write(&csr, params.serialize_request(&key).unwrap().pem().unwrap()).unwrap();
    let issued = ca
        .sign_csr(&csr, Profile::Device, 365, false, OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(issued.record.subject, "csr-dev");
    assert_eq!(issued.key, None);
    let pem = fs::read_to_string(&issued.cert).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&p.contents).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data,
        key.public_key_raw()
    );
}

#[test]
fn corrupt_or_mismatched_keys_and_loose_modes_are_reported() {
    let (tmp, ca) = new_ca();
    let dir = ca.dir().clone();
    fs::set_permissions(dir.ca_key(), fs::Permissions::from_mode(0o644)).unwrap();
    let warned = Ca::open(dir.clone()).unwrap();
    assert_eq!(warned.warnings().len(), 1);
    assert!(warned.warnings()[0].is_key);

    let other = CertsDir::new(tmp.path().join("other"));
    init(&other, &opts(false), OffsetDateTime::now_utc()).unwrap();
    fs::copy(other.ca_key(), dir.ca_key()).unwrap();
    assert!(matches!(
        Ca::open(dir.clone()),
        Err(CertsError::KeyMismatch { .. })
    ));

    fs::write(dir.ca_key(), "garbage").unwrap();
    let err = Ca::open(dir.clone()).unwrap_err();
    assert!(matches!(err, CertsError::CorruptKey { .. }), "{err}");
    assert!(err.to_string().contains("ca.key"));
}
