//! Certificates made with `mqgate certs`, and rustls client configurations trusting them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::run_mqgate;

/// `mqgate certs --dir DIR ARGS...`, which must succeed.
pub fn certs(dir: &Path, args: &[&str]) {
    let mut all = vec!["certs", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, out, err) = run_mqgate(&all);
    assert_eq!(code, 0, "mqgate certs {args:?}: {out}{err}");
}

/// `mqgate certs init --name CA_NAME` in `dir`, then `issue-server` for `localhost` and
/// 127.0.0.1, named `server` (by default after its first DNS name: `localhost`).
pub fn ca_with_server(dir: &Path, ca_name: &str, server: Option<&str>) {
    certs(dir, &["init", "--name", ca_name]);
    let mut args = vec!["issue-server"];
    if let Some(name) = server {
        args.extend(["--name", name]);
    }
    args.extend(["--dns", "localhost", "--ip", "127.0.0.1"]);
    certs(dir, &args);
}

/// A TLS client configuration (ring, safe default versions) trusting the certificates in
/// the PEM file `ca`; with `client = Some((chain, key))` it presents that certificate
/// chain and key (PEM files), else no client certificate.
pub fn client_config(ca: &Path, client: Option<(&Path, &Path)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match client {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(chain)
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    }
}
