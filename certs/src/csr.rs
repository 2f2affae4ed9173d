//! Reading a certificate signing request and deciding whether this CA will sign it.

use std::path::Path;

use rcgen::{
    CertificateSigningRequestParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, PublicKey, SanType,
};

use crate::error::{CertsError, Result};
use crate::profile::{validate_name, Profile};

/// A CSR that verified and passed this CA's policy.
#[derive(Debug)]
pub(crate) struct AcceptedCsr {
    /// The subject CN, which becomes the certificate's only subject attribute.
    pub subject: String,
    /// The SANs the requester asked for. Not trusted: the caller decides whether any of
    /// them are certified (a SAN can be a listener's MQTT identity).
    pub requested_sans: Vec<SanType>,
    /// The requester's public key.
    pub public_key: PublicKey,
}

/// Parses the CSR in `bytes` (PEM or DER), verifies its self-signature and applies the
/// policy: no CA rights, no EKU other than the one `profile` grants, a usable subject CN.
pub(crate) fn accept(path: &Path, bytes: &[u8], profile: Profile) -> Result<AcceptedCsr> {
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => {
            CertificateSigningRequestParams::from_pem(text)
        }
        _ => CertificateSigningRequestParams::from_der(&bytes.into()),
    };
    let csr = parsed.map_err(|e| match e {
        rcgen::Error::CouldNotParseCertificationRequest => CertsError::CsrUnreadable {
            path: path.to_path_buf(),
            reason: "not a PKCS#10 certificate signing request (PEM or DER)".into(),
        },
        rcgen::Error::InvalidCertificationRequestSignature => CertsError::CsrSignature {
            path: path.to_path_buf(),
        },
        source => CertsError::CsrUnsupported {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let params = csr.params;

    if let IsCa::Ca(_) = params.is_ca {
        return Err(CertsError::CsrRequestsCa {
            path: path.to_path_buf(),
            what: "basicConstraints CA:true".into(),
        });
    }
    for ku in &params.key_usages {
        if matches!(ku, KeyUsagePurpose::KeyCertSign | KeyUsagePurpose::CrlSign) {
            return Err(CertsError::CsrRequestsCa {
                path: path.to_path_buf(),
                what: format!("key usage {ku:?}"),
            });
        }
    }
    let granted = profile.eku();
    if let Some(eku) = params.extended_key_usages.iter().find(|e| **e != granted) {
        return Err(CertsError::CsrEkuNotGranted {
            path: path.to_path_buf(),
            eku: eku_name(eku),
            profile: profile.to_string(),
        });
    }

    let subject = params
        .distinguished_name
        .get(&DnType::CommonName)
        .and_then(dn_text)
        .ok_or_else(|| CertsError::CsrNoCommonName {
            path: path.to_path_buf(),
        })?;
    validate_name(&subject)?;

    Ok(AcceptedCsr {
        subject,
        requested_sans: params.subject_alt_names,
        public_key: csr.public_key,
    })
}

/// The text of a DN attribute, for the string types a CN can have.
fn dn_text(value: &DnValue) -> Option<String> {
    match value {
        DnValue::Utf8String(s) => Some(s.clone()),
        DnValue::PrintableString(s) => Some(s.as_str().to_string()),
        DnValue::Ia5String(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The usual name of an extended key usage.
fn eku_name(eku: &ExtendedKeyUsagePurpose) -> String {
    match eku {
        ExtendedKeyUsagePurpose::Any => "anyExtendedKeyUsage".into(),
        ExtendedKeyUsagePurpose::ServerAuth => "serverAuth".into(),
        ExtendedKeyUsagePurpose::ClientAuth => "clientAuth".into(),
        ExtendedKeyUsagePurpose::CodeSigning => "codeSigning".into(),
        ExtendedKeyUsagePurpose::EmailProtection => "emailProtection".into(),
        ExtendedKeyUsagePurpose::TimeStamping => "timeStamping".into(),
        ExtendedKeyUsagePurpose::OcspSigning => "OCSPSigning".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, KeyPair};

    fn csr_pem(cn: Option<&str>, edit: impl FnOnce(&mut CertificateParams)) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(cn) = cn {
            dn.push(DnType::CommonName, cn);
        }
        params.distinguished_name = dn;
        edit(&mut params);
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn check(pem: &str, profile: Profile) -> Result<AcceptedCsr> {
        accept(Path::new("req.csr"), pem.as_bytes(), profile)
    }

    #[test]
    fn plain_device_csr_is_accepted() {
        let ok = check(&csr_pem(Some("sensor9"), |_| {}), Profile::Device).unwrap();
        assert_eq!(ok.subject, "sensor9");
        let ok = check(
            &csr_pem(Some("sensor9"), |p| {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]
            }),
            Profile::Device,
        )
        .unwrap();
        assert_eq!(ok.subject, "sensor9");
    }

    #[test]
    fn requested_sans_are_reported_not_trusted() {
        let uri: SanType = SanType::URI("spiffe://site/admin".try_into().unwrap());
        let pem = csr_pem(Some("sensor9"), |p| p.subject_alt_names = vec![uri.clone()]);
        let ok = check(&pem, Profile::Device).unwrap();
        assert_eq!(ok.subject, "sensor9");
        assert_eq!(ok.requested_sans, [uri]);
    }

    #[test]
    fn ca_requests_are_refused() {
        let pem = csr_pem(Some("evil"), |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
        });
        assert!(matches!(
            check(&pem, Profile::Device),
            Err(CertsError::CsrRequestsCa { .. })
        ));
        let pem = csr_pem(Some("evil"), |p| {
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign]
        });
        assert!(matches!(
            check(&pem, Profile::Device),
            Err(CertsError::CsrRequestsCa { .. })
        ));
    }

    #[test]
    fn foreign_eku_is_refused() {
        let pem = csr_pem(Some("dev"), |p| {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
        });
        let err = check(&pem, Profile::Device).unwrap_err();
        assert!(err.to_string().contains("serverAuth"), "{err}");
        assert!(check(&pem, Profile::Server).is_ok());
    }

    #[test]
    fn missing_cn_garbage_and_bad_signature() {
        assert!(matches!(
            check(&csr_pem(None, |_| {}), Profile::Device),
            Err(CertsError::CsrNoCommonName { .. })
        ));
        assert!(matches!(
            check("hello", Profile::Device),
            Err(CertsError::CsrUnreadable { .. })
        ));
        // Flip the last byte of the DER (inside the signature).
        let pem = csr_pem(Some("dev"), |_| {});
        let mut der = pem_der(&pem);
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let err = accept(Path::new("bad.der"), &der, Profile::Device).unwrap_err();
        assert!(matches!(err, CertsError::CsrSignature { .. }), "{err}");
    }

    fn pem_der(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }
}
