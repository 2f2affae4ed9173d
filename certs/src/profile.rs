//! Certificate profiles (device = clientAuth, server = serverAuth), key types, names and SANs.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, OtherNameValue, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::{CertsError, Result};

/// How far `not_before` is set in the past, so devices with a slightly late clock accept
/// a certificate issued a moment ago.
pub(crate) const BACKDATE: Duration = Duration::hours(1);

/// Longest subject CN (RFC 5280 ub-common-name).
const MAX_NAME_LEN: usize = 64;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A device (MQTT client): extended key usage clientAuth.
    Device,
    /// A server (TLS listener): extended key usage serverAuth.
    Server,
}

impl Profile {
    /// The one extended key usage this profile grants.
    pub(crate) fn eku(self) -> ExtendedKeyUsagePurpose {
        match self {
            Profile::Device => ExtendedKeyUsagePurpose::ClientAuth,
            Profile::Server => ExtendedKeyUsagePurpose::ServerAuth,
        }
    }

    /// Sub-directory of the certs directory where this profile's files are written.
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Profile::Device => "devices",
            Profile::Server => "servers",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Device => "device",
            Profile::Server => "server",
        })
    }
}

/// Private key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256 (the default: every TLS stack speaks it).
    #[default]
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    /// Generates a fresh key pair.
    pub(crate) fn generate(self) -> Result<KeyPair> {
        let alg = match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        };
        KeyPair::generate_for(alg).map_err(|source| CertsError::Generate {
            what: format!("{self} key"),
            source,
        })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Ed25519 => "ed25519",
        })
    }
}

impl FromStr for KeyType {
    type Err = CertsError;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa" | "p256" | "ec" => Ok(KeyType::EcdsaP256),
            "ed25519" => Ok(KeyType::Ed25519),
            _ => Err(CertsError::UnknownKeyType(s.to_string())),
        }
    }
}

/// Checks a device id or server name: it becomes the subject CN and a file name, so it
/// must be 1..=64 characters of `A-Z a-z 0-9 . _ -` and not start with a dot or dash.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(CertsError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return invalid("must be 1 to 64 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return invalid("must not start with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Renders a SAN as stored in the inventory (`dns:NAME`, `ip:ADDR`, `uri:URI`, `email:ADDR`).
pub(crate) fn san_to_string(san: &SanType) -> Option<String> {
    match san {
        SanType::DnsName(n) => Some(format!("dns:{}", n.as_str())),
        SanType::IpAddress(ip) => Some(format!("ip:{ip}")),
        SanType::URI(u) => Some(format!("uri:{}", u.as_str())),
        SanType::Rfc822Name(e) => Some(format!("email:{}", e.as_str())),
        _ => None,
    }
}

/// Renders a SAN for people, in openssl's `subjectAltName` syntax (`DNS:NAME`, `IP:ADDR`,
/// `URI:URI`, `email:ADDR`, `otherName:OID;UTF8:VALUE`). Unlike [`san_to_string`] it
/// covers every kind, so nothing certified goes unreported.
pub(crate) fn san_display(san: &SanType) -> String {
    match san {
        SanType::DnsName(n) => format!("DNS:{}", n.as_str()),
        SanType::IpAddress(ip) => format!("IP:{ip}"),
        SanType::URI(u) => format!("URI:{}", u.as_str()),
        SanType::Rfc822Name(e) => format!("email:{}", e.as_str()),
        SanType::OtherName((oid, value)) => {
            let oid: Vec<String> = oid.iter().map(u64::to_string).collect();
            let value = match value {
                OtherNameValue::Utf8String(s) => format!("UTF8:{s}"),
                other => format!("{other:?}"),
            };
            format!("otherName:{};{value}", oid.join("."))
        }
        other => format!("{other:?}"),
    }
}

/// Parses the inventory form of a SAN back; the error says what is wrong with it.
pub(crate) fn san_from_string(s: &str) -> std::result::Result<SanType, String> {
    let (kind, value) = s.split_once(':').unwrap_or(("dns", s));
    let ia5 = |v: &str| {
        v.try_into()
            .map_err(|e: rcgen::Error| format!("{s:?}: {e}"))
    };
    Ok(match kind {
        "ip" => SanType::IpAddress(value.parse::<IpAddr>().map_err(|e| format!("{s:?}: {e}"))?),
        "uri" => SanType::URI(ia5(value)?),
        "email" => SanType::Rfc822Name(ia5(value)?),
        "dns" => SanType::DnsName(ia5(value)?),
        _ => return Err(format!("{s:?}: unknown kind {kind:?}")),
    })
}

/// Builds the SAN list of a server certificate from `--dns` and `--ip` values.
pub(crate) fn server_sans(dns: &[String], ips: &[IpAddr]) -> Result<Vec<SanType>> {
    let mut sans = Vec::with_capacity(dns.len() + ips.len());
    for name in dns {
        let ia5 = name
            .as_str()
            .try_into()
            .map_err(|source| CertsError::Generate {
                what: format!("DNS name {name:?}"),
                source,
            })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ips.iter().copied().map(SanType::IpAddress));
    Ok(sans)
}

/// Checks a validity in days: at least one day.
pub(crate) fn validity(days: u32) -> Result<Duration> {
    if days == 0 {
        return Err(CertsError::InvalidValidity {
            days,
            reason: "must be at least 1 day".into(),
        });
    }
    Ok(Duration::days(i64::from(days)))
}

/// Parameters of an end-entity certificate for `profile`, named `subject`.
pub(crate) fn end_entity_params(
    profile: Profile,
    subject: &str,
    sans: Vec<SanType>,
    serial: &[u8],
    now: OffsetDateTime,
    validity: Duration,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    // Explicit CA:false, plus subject and authority key identifiers for chain building.
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![profile.eku()];
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("sensor9").is_ok());
        assert!(validate_name("gw-1.site_a").is_ok());
        for bad in ["", ".hidden", "-x", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(
                matches!(validate_name(bad), Err(CertsError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sans_round_trip_through_strings() {
        let sans = server_sans(&["gw.local".into()], &["10.0.0.1".parse().unwrap()]).unwrap();
        let text: Vec<_> = sans.iter().filter_map(san_to_string).collect();
        assert_eq!(text, ["dns:gw.local", "ip:10.0.0.1"]);
        let back: Vec<_> = text.iter().map(|s| san_from_string(s).unwrap()).collect();
        assert_eq!(back, sans);
    }

    #[test]
    fn every_san_kind_is_displayed() {
        let mut sans = server_sans(&["gw.local".into()], &["::1".parse().unwrap()]).unwrap();
        sans.push(san_from_string("uri:spiffe://site/admin").unwrap());
        sans.push(san_from_string("email:a@b.c").unwrap());
        sans.push(SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            "upn@site".into(),
        )));
        let shown: Vec<_> = sans.iter().map(san_display).collect();
        assert_eq!(
            shown,
            [
                "DNS:gw.local",
                "IP:::1",
                "URI:spiffe://site/admin",
                "email:a@b.c",
                "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn@site",
            ]
        );
    }

    #[test]
    fn key_types_parse_and_generate() {
        assert_eq!("ED25519".parse::<KeyType>().unwrap(), KeyType::Ed25519);
        assert!(matches!(
            "rsa".parse::<KeyType>(),
            Err(CertsError::UnknownKeyType(_))
        ));
        let k = KeyType::Ed25519.generate().unwrap();
        assert_eq!(k.algorithm(), &rcgen::PKCS_ED25519);
        assert!(validity(0).is_err());
    }
}
