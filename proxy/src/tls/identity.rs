//! The identity of a verified client certificate: its subject CN, or its first subject
//! alternative name of a configured type (`[listener.tls] identity`).

use mqgate_config::CertIdentity;
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// How `field` is named in log lines ("CN", "DNS SAN", ...).
pub fn identity_field_name(field: CertIdentity) -> &'static str {
    match field {
        CertIdentity::Cn => "CN",
        CertIdentity::SanDns => "DNS SAN",
        CertIdentity::SanEmail => "e-mail SAN",
        CertIdentity::SanUri => "URI SAN",
    }
}

/// The serial number of a certificate, as its raw big-endian bytes (as a CRL lists it).
pub fn certificate_serial(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(normalize_serial(parsed.raw_serial()))
}

/// The serial numbers a CRL revokes (raw big-endian bytes).
pub fn revoked_serials(crl: &[u8]) -> Vec<Vec<u8>> {
    match x509_parser::parse_x509_crl(crl) {
        Ok((_, crl)) => crl
            .iter_revoked_certificates()
            .map(|r| normalize_serial(r.raw_serial()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// When a CRL says the next one will be issued, if it says.
pub fn crl_next_update(crl: &[u8]) -> Option<std::time::SystemTime> {
    let (_, crl) = x509_parser::parse_x509_crl(crl).ok()?;
    let secs = crl.next_update()?.timestamp();
    let secs = u64::try_from(secs).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// A serial without the sign byte DER may put in front.
fn normalize_serial(raw: &[u8]) -> Vec<u8> {
    let mut s = raw;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s.to_vec()
}

/// The subject CN of a (verified) client certificate.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    certificate_identity(cert, CertIdentity::Cn)
}

/// The value of `field` in `cert`: the subject CN, or the first subject alternative name
/// of the chosen type. `None` when the certificate lacks it (or does not parse).
pub fn certificate_identity(cert: &CertificateDer<'_>, field: CertIdentity) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if field == CertIdentity::Cn {
        let cn = parsed.subject().iter_common_name().next()?;
        return cn.as_str().ok().map(str::to_owned);
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value
        .general_names
        .iter()
        .find_map(|name| match (field, name) {
            (CertIdentity::SanDns, GeneralName::DNSName(v))
            | (CertIdentity::SanEmail, GeneralName::RFC822Name(v))
            | (CertIdentity::SanUri, GeneralName::URI(v)) => Some((*v).to_owned()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(cn: Option<&str>, sans: Vec<SanType>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.subject_alt_names = sans;
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn each_field_is_found_and_the_first_san_of_a_type_wins() {
        let c = cert(
            Some("device-7"),
            vec![
                SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
                SanType::DnsName("d7.example.com".try_into().unwrap()),
                SanType::DnsName("second.example.com".try_into().unwrap()),
                SanType::URI("spiffe://site/device-7".try_into().unwrap()),
            ],
        );
        assert_eq!(common_name(&c).as_deref(), Some("device-7"));
        let get = |f| certificate_identity(&c, f);
        assert_eq!(get(CertIdentity::SanDns).as_deref(), Some("d7.example.com"));
        assert_eq!(
            get(CertIdentity::SanEmail).as_deref(),
            Some("ops@example.com")
        );
        assert_eq!(
            get(CertIdentity::SanUri).as_deref(),
            Some("spiffe://site/device-7")
        );
    }

    #[test]
    fn a_missing_field_is_none() {
        let c = cert(None, vec![SanType::DnsName("only.dns".try_into().unwrap())]);
        assert_eq!(certificate_identity(&c, CertIdentity::Cn), None);
        assert_eq!(certificate_identity(&c, CertIdentity::SanUri), None);
        assert_eq!(certificate_identity(&c, CertIdentity::SanEmail), None);
        let bare = cert(Some("x"), vec![]);
        assert_eq!(certificate_identity(&bare, CertIdentity::SanDns), None);
        assert_eq!(
            certificate_identity(&CertificateDer::from(vec![1, 2, 3]), CertIdentity::Cn),
            None
        );
    }
}
