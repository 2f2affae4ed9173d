//! Revocation reasons and the CRL (`crl.pem`) built from the inventory.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use rcgen::{
    CertificateRevocationList, CertificateRevocationListParams, KeyIdMethod, KeyPair,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::{CertsError, Result};
use crate::inventory::Inventory;
use crate::serial;

/// Why a certificate was revoked (the RFC 5280 reason codes that make sense here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No reason given.
    Unspecified,
    /// The device's private key leaked.
    KeyCompromise,
    /// The CA key leaked.
    CaCompromise,
    /// The device changed owner or site.
    AffiliationChanged,
    /// Replaced by a newer certificate.
    Superseded,
    /// The device was decommissioned.
    CessationOfOperation,
    /// Access was withdrawn.
    PrivilegeWithdrawn,
}

impl Reason {
    /// Every reason, for help texts.
    pub const ALL: [Reason; 7] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
    ];

    /// The kebab-case name used on the command line and in the inventory.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "key-compromise",
            Reason::CaCompromise => "ca-compromise",
            Reason::AffiliationChanged => "affiliation-changed",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessation-of-operation",
            Reason::PrivilegeWithdrawn => "privilege-withdrawn",
        }
    }

    fn to_rcgen(self) -> RevocationReason {
        match self {
            Reason::Unspecified => RevocationReason::Unspecified,
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::CaCompromise => RevocationReason::CaCompromise,
            Reason::AffiliationChanged => RevocationReason::AffiliationChanged,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::PrivilegeWithdrawn => RevocationReason::PrivilegeWithdrawn,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = CertsError;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.to_ascii_lowercase().replace('_', "-");
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| CertsError::UnknownReason(s.to_string()))
    }
}

/// Signs a CRL listing every revoked certificate of `inventory`, numbered `crl_number`,
/// valid from `now` until `now + next_update`.
pub(crate) fn build_crl(
    inventory: &Inventory,
    inventory_path: &Path,
    issuer: &rcgen::Issuer<'_, KeyPair>,
    crl_number: u64,
    now: OffsetDateTime,
    next_update: Duration,
) -> Result<CertificateRevocationList> {
    let mut revoked_certs = Vec::new();
    for record in &inventory.certs {
        let Some(revoked_at) = record.revoked_at else {
            continue;
        };
        let bytes =
            serial::from_hex(&record.serial).ok_or_else(|| CertsError::BadInventoryEntry {
                path: inventory_path.to_path_buf(),
                serial: record.serial.clone(),
                reason: "serial is not hex".into(),
            })?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: revoked_at,
            reason_code: record.revocation_reason.map(Reason::to_rcgen),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + next_update,
        crl_number: SerialNumber::from(crl_number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params
        .signed_by(issuer)
        .map_err(|source| CertsError::Generate {
            what: "CRL".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_in_any_spelling() {
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>().unwrap(), r);
        }
        assert_eq!(
            "Key_Compromise".parse::<Reason>().unwrap(),
            Reason::KeyCompromise
        );
        assert!(matches!(
            "bored".parse::<Reason>(),
            Err(CertsError::UnknownReason(_))
        ));
    }
}
