//! mqgate certs: a small CA that issues, signs and revokes device and server certificates.
//!
//! Everything lives in one certs directory (see [`CertsDir`]): the CA certificate and key,
//! an inventory of every certificate issued (`inventory.toml`, written atomically) and the
//! CRL. Keys are ECDSA P-256 (default) or Ed25519, generated with ring; serial numbers are
//! random, positive and 20 octets long.

mod ca;
mod csr;
mod error;
mod fsio;
mod inventory;
mod layout;
mod profile;
mod report;
mod revoke;
mod serial;

pub use ca::{
    init, Ca, CaInfo, CrlInfo, CsrRequest, InitOptions, IssueRequest, Issued,
    DEFAULT_CA_VALIDITY_DAYS, DEFAULT_CRL_DAYS, DEFAULT_VALIDITY_DAYS,
};
pub use error::{CertsError, Result};
pub use fsio::PermissionWarning;
pub use inventory::{Inventory, Record, Status, EXPIRY_WARNING_DAYS};
pub use layout::{CertsDir, OutputPaths};
pub use profile::{validate_name, KeyType, Profile};
pub use report::render_list;
pub use revoke::Reason;
pub use serial::{normalize as normalize_serial, to_hex as serial_hex};
/// The timestamp type of this crate's API (re-exported so callers need not depend on `time`).
pub use time::OffsetDateTime;
