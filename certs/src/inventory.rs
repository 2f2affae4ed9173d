//! The inventory of issued certificates (`inventory.toml` in the certs directory).

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{CertsError, Result};
use crate::fsio;
use crate::profile::Profile;
use crate::revoke::Reason;

/// Days before expiry from which `list` highlights a certificate.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Everything the CA has issued, plus the CRL counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Number of the last CRL written (CRL numbers must increase).
    #[serde(default)]
    pub crl_number: u64,
    /// Issued certificates, oldest first.
    #[serde(default, rename = "cert")]
    pub certs: Vec<Record>,
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Serial number, upper-case hex.
    pub serial: String,
    /// Subject common name (device id or server name).
    pub subject: String,
    /// Device (clientAuth) or server (serverAuth).
    pub profile: Profile,
    /// Subject alternative names, as `dns:NAME` or `ip:ADDR`.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Archived copy of the certificate, relative to the certs directory.
    pub file: String,
    /// When it was revoked, if it was.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked, if it was.
    #[serde(default)]
    pub revocation_reason: Option<Reason>,
}

/// Where a certificate stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Within its validity and not revoked.
    Valid,
    /// Revoked (whatever its dates).
    Revoked,
    /// Past its not-after date.
    Expired,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Valid => "valid",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        })
    }
}

impl Record {
    /// Status at `now`.
    pub fn status(&self, now: OffsetDateTime) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if now > self.not_after {
            Status::Expired
        } else {
            Status::Valid
        }
    }

    /// Whole days until not-after (negative once expired).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }

    /// True if valid now and expiring within [`EXPIRY_WARNING_DAYS`].
    pub fn expiring_soon(&self, now: OffsetDateTime) -> bool {
        self.status(now) == Status::Valid && self.days_left(now) < EXPIRY_WARNING_DAYS
    }
}

impl Inventory {
    /// Loads the inventory; a missing file is an empty inventory.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = fsio::read_text(path)?;
        toml::from_str(&text).map_err(|source| CertsError::CorruptInventory {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the inventory atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).map_err(|source| CertsError::InventoryWrite {
            path: path.to_path_buf(),
            source,
        })?;
        fsio::write_atomic(path, text.as_bytes(), fsio::PUBLIC_MODE)
    }

    /// The certificate with this canonical serial.
    pub fn by_serial(&self, serial: &str) -> Option<&Record> {
        self.certs.iter().find(|r| r.serial == serial)
    }

    /// Valid certificates carrying `subject` at `now`.
    pub fn valid_for_subject<'a>(
        &'a self,
        subject: &'a str,
        now: OffsetDateTime,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.certs
            .iter()
            .filter(move |r| r.subject == subject && r.status(now) == Status::Valid)
    }

    /// The most recently issued, unrevoked certificate for `subject` (expired ones count:
    /// an expired certificate can be renewed).
    pub fn latest_unrevoked(&self, subject: &str) -> Option<&Record> {
        self.certs
            .iter()
            .filter(|r| r.subject == subject && r.revoked_at.is_none())
            .max_by_key(|r| r.not_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::Duration;

    fn record(serial: &str, subject: &str, not_after: OffsetDateTime) -> Record {
        Record {
            serial: serial.into(),
            subject: subject.into(),
            profile: Profile::Device,
            sans: vec![],
            not_before: not_after - Duration::days(365),
            not_after,
            file: format!("issued/{serial}.pem"),
            revoked_at: None,
            revocation_reason: None,
        }
    }

    #[test]
    fn status_days_left_and_expiry_highlight() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let mut r = record("01", "a", now + Duration::days(10));
        assert_eq!(r.status(now), Status::Valid);
        assert_eq!(r.days_left(now), 10);
        assert!(r.expiring_soon(now));
        assert!(!r.expiring_soon(now - Duration::days(40)));
        assert_eq!(r.status(now + Duration::days(11)), Status::Expired);
        r.revoked_at = Some(now);
        assert_eq!(r.status(now), Status::Revoked);
        assert!(!r.expiring_soon(now));
    }

    #[test]
    fn save_load_round_trip_and_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.toml");
        assert_eq!(Inventory::load(&path).unwrap(), Inventory::default());
        let now = datetime!(2026-01-01 0:00 UTC);
        let mut inv = Inventory {
            crl_number: 3,
            certs: vec![
                record("01", "a", now),
                record("02", "a", now + Duration::days(1)),
            ],
        };
        inv.certs[0].revoked_at = Some(now);
        inv.certs[0].revocation_reason = Some(Reason::KeyCompromise);
        inv.save(&path).unwrap();
        let back = Inventory::load(&path).unwrap();
        assert_eq!(back, inv);
        assert_eq!(back.latest_unrevoked("a").unwrap().serial, "02");
        assert_eq!(back.valid_for_subject("a", now).count(), 1);

        std::fs::write(&path, "cert = 5").unwrap();
        let err = Inventory::load(&path).unwrap_err();
        assert!(matches!(err, CertsError::CorruptInventory { .. }), "{err}");
    }
}
