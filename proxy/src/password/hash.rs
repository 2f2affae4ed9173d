//! Stored password hashes: argon2id PHC strings (ours and mosquitto 2.1's 64-byte-salt
//! ones), mosquitto `$7$` (PBKDF2-HMAC-SHA512) and `$6$` (salted SHA-512). Decoding,
//! verification in constant time, and new argon2id hashes.

use std::fmt;
use std::num::NonZeroU32;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::error::Error;

/// mosquitto's base64: standard alphabet; we accept it with or without `=` padding.
const MOSQ_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// PHC strings: standard alphabet, no padding.
const PHC_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Salt length of new argon2id hashes (bytes; RFC 9106 recommends 16).
const NEW_SALT_LEN: usize = 16;
/// Tag length of new argon2id hashes (bytes).
const NEW_HASH_LEN: usize = 32;
/// mosquitto's `$6$`/`$7$` digest length (SHA-512).
const SHA512_LEN: usize = 64;
/// Largest argon2 memory cost we agree to compute (4 GiB), so a corrupt file cannot
/// make one verification allocate without bound.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;

/// Cost parameters of argon2id hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    /// OWASP's recommendation: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Argon2Cost {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl From<&mqgate_config::Argon2Params> for Argon2Cost {
    fn from(p: &mqgate_config::Argon2Params) -> Self {
        Argon2Cost {
            memory_kib: p.memory_kib,
            iterations: p.iterations,
            parallelism: p.parallelism,
        }
    }
}

impl Argon2Cost {
    fn params(self, out_len: usize) -> Result<Params, Error> {
        if self.memory_kib > MAX_MEMORY_KIB {
            return Err(Error::Argon2Params(format!(
                "memory {} KiB exceeds {MAX_MEMORY_KIB} KiB",
                self.memory_kib
            )));
        }
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(out_len),
        )
        .map_err(|e| Error::Argon2Params(e.to_string()))
    }

    /// Checks that these parameters can hash (argon2's ranges).
    pub fn validate(self) -> Result<(), Error> {
        self.params(NEW_HASH_LEN).map(|_| ())
    }
}

/// A decoded password hash from a password file.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// `$argon2id$v=..$m=..,t=..,p=..$salt$hash` (any salt length, including mosquitto's 64).
    Argon2id {
        /// argon2 version (0x10 or 0x13).
        version: u32,
        /// Cost parameters.
        cost: Argon2Cost,
        /// Raw salt.
        salt: Vec<u8>,
        /// Raw tag.
        hash: Vec<u8>,
    },
    /// mosquitto `$7$iterations$salt$hash`: PBKDF2-HMAC-SHA512, 64-byte output.
    Pbkdf2Sha512 {
        /// PBKDF2 iterations.
        iterations: NonZeroU32,
        /// Raw salt (12 or 64 bytes).
        salt: Vec<u8>,
        /// Raw 64-byte digest.
        hash: Vec<u8>,
    },
    /// mosquitto `$6$salt$hash`: SHA-512(password ‖ salt).
    Sha512 {
        /// Raw salt (12 or 64 bytes).
        salt: Vec<u8>,
        /// Raw 64-byte digest.
        hash: Vec<u8>,
    },
}

impl fmt::Debug for StoredHash {
    /// Shows the scheme and cost only; salts and digests are redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredHash::Argon2id { cost, .. } => f
                .debug_struct("Argon2id")
                .field("cost", cost)
                .finish_non_exhaustive(),
            StoredHash::Pbkdf2Sha512 { iterations, .. } => f
                .debug_struct("Pbkdf2Sha512")
                .field("iterations", iterations)
                .finish_non_exhaustive(),
            StoredHash::Sha512 { .. } => f.debug_struct("Sha512").finish_non_exhaustive(),
        }
    }
}

fn b64(engine: &GeneralPurpose, s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    engine.decode(s).map_err(|_| Error::BadHash(what))
}

/// mosquitto's decoder accepts 12- (≤2.0) or 64-byte (2.1) salts only.
fn mosquitto_salt(s: &str) -> Result<Vec<u8>, Error> {
    let salt = b64(&MOSQ_B64, s, "salt is not base64")?;
    if salt.len() != 12 && salt.len() != 64 {
        return Err(Error::BadHash("salt must be 12 or 64 bytes"));
    }
    Ok(salt)
}

fn mosquitto_digest(s: &str) -> Result<Vec<u8>, Error> {
    let hash = b64(&MOSQ_B64, s, "digest is not base64")?;
    if hash.len() != SHA512_LEN {
        return Err(Error::BadHash("digest must be 64 bytes"));
    }
    Ok(hash)
}

impl StoredHash {
    /// Decodes the hash field of a password-file line.
    pub fn parse(s: &str) -> Result<StoredHash, Error> {
        if let Some(rest) = s.strip_prefix("$argon2id$") {
            return parse_argon2id(rest);
        }
        if let Some(rest) = s.strip_prefix("$7$") {
            let mut parts = rest.split('$');
            let (Some(it), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(Error::BadHash("$7$ needs iterations$salt$hash"));
            };
            let iterations = it
                .parse::<u32>()
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or(Error::BadHash("$7$ iterations must be a positive integer"))?;
            return Ok(StoredHash::Pbkdf2Sha512 {
                iterations,
                salt: mosquitto_salt(salt)?,
                hash: mosquitto_digest(hash)?,
            });
        }
        if let Some(rest) = s.strip_prefix("$6$") {
            let Some((salt, hash)) = rest.split_once('$') else {
                return Err(Error::BadHash("$6$ needs salt$hash"));
            };
            return Ok(StoredHash::Sha512 {
                salt: mosquitto_salt(salt)?,
                hash: mosquitto_digest(hash)?,
            });
        }
        Err(Error::BadHash(
            "unknown scheme (expected $argon2id$, $7$ or $6$)",
        ))
    }

    /// A new argon2id hash of `password` with a random salt.
    pub fn new_argon2id(password: &[u8], cost: Argon2Cost) -> Result<StoredHash, Error> {
        let mut salt = vec![0u8; NEW_SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::Hashing("no system randomness".into()))?;
        let hash = argon2id_raw(password, &salt, cost, Version::V0x13, NEW_HASH_LEN)?;
        Ok(StoredHash::Argon2id {
            version: 0x13,
            cost,
            salt,
            hash,
        })
    }

    /// Whether `password` matches, compared in constant time. Malformed parameters count
    /// as a mismatch.
    pub fn verify(&self, password: &[u8]) -> bool {
        let computed = match self {
            StoredHash::Argon2id {
                version,
                cost,
                salt,
                hash,
            } => {
                let version = if *version == 0x10 {
                    Version::V0x10
                } else {
                    Version::V0x13
                };
                match argon2id_raw(password, salt, *cost, version, hash.len()) {
                    Ok(h) => h,
                    Err(_) => return false,
                }
            }
            StoredHash::Pbkdf2Sha512 {
                iterations, salt, ..
            } => {
                let mut out = vec![0u8; SHA512_LEN];
                ring::pbkdf2::derive(
                    ring::pbkdf2::PBKDF2_HMAC_SHA512,
                    *iterations,
                    salt,
                    password,
                    &mut out,
                );
                out
            }
            StoredHash::Sha512 { salt, .. } => {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
                ctx.update(password);
                ctx.update(salt);
                ctx.finish().as_ref().to_vec()
            }
        };
        let stored = match self {
            StoredHash::Argon2id { hash, .. }
            | StoredHash::Pbkdf2Sha512 { hash, .. }
            | StoredHash::Sha512 { hash, .. } => hash,
        };
        bool::from(computed.ct_eq(stored))
    }

    /// Whether this hash should be replaced by an argon2id hash with `cost` after a
    /// successful login (legacy scheme, old version or different cost).
    pub fn needs_rehash(&self, cost: Argon2Cost) -> bool {
        match self {
            StoredHash::Argon2id {
                version,
                cost: c,
                salt,
                ..
            } => *version != 0x13 || *c != cost || salt.len() < NEW_SALT_LEN,
            _ => true,
        }
    }

    /// A short name of the scheme, for `passwd list` and logs.
    pub fn scheme(&self) -> &'static str {
        match self {
            StoredHash::Argon2id { .. } => "argon2id",
            StoredHash::Pbkdf2Sha512 { .. } => "pbkdf2-sha512 ($7$)",
            StoredHash::Sha512 { .. } => "sha512 ($6$)",
        }
    }

    /// The password-file encoding (PHC string or mosquitto `$7$`/`$6$`).
    pub fn encode(&self) -> String {
        match self {
            StoredHash::Argon2id {
                version,
                cost,
                salt,
                hash,
            } => format!(
                "$argon2id$v={version}$m={},t={},p={}${}${}",
                cost.memory_kib,
                cost.iterations,
                cost.parallelism,
                PHC_B64.encode(salt),
                PHC_B64.encode(hash)
            ),
            StoredHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => format!(
                "$7${iterations}${}${}",
                MOSQ_B64.encode(salt),
                MOSQ_B64.encode(hash)
            ),
            StoredHash::Sha512 { salt, hash } => {
                format!("$6${}${}", MOSQ_B64.encode(salt), MOSQ_B64.encode(hash))
            }
        }
    }
}

/// Parses `v=19$m=..,t=..,p=..$salt$hash` by hand: `password-hash`'s `Salt` refuses
/// salts longer than 64 base64 characters, and mosquitto 2.1 writes 64-byte salts.
fn parse_argon2id(rest: &str) -> Result<StoredHash, Error> {
    let mut parts = rest.split('$');
    let first = parts
        .next()
        .ok_or(Error::BadHash("empty argon2id string"))?;
    // The version field is optional in PHC strings (absent = 0x10).
    let (version, params) = match first.strip_prefix("v=") {
        Some(v) => {
            let version = v
                .parse::<u32>()
                .map_err(|_| Error::BadHash("argon2id version is not a number"))?;
            let params = parts
                .next()
                .ok_or(Error::BadHash("argon2id params missing"))?;
            (version, params)
        }
        None => (0x10, first),
    };
    if version != 0x10 && version != 0x13 {
        return Err(Error::BadHash("argon2id version must be 16 or 19"));
    }
    let (Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::BadHash("argon2id needs params$salt$hash"));
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in params.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or(Error::BadHash("argon2id parameter without '='"))?;
        let v = v
            .parse::<u32>()
            .map_err(|_| Error::BadHash("argon2id parameter is not a number"))?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return Err(Error::BadHash("unknown argon2id parameter")),
        }
    }
    let (Some(memory_kib), Some(iterations), Some(parallelism)) = (m, t, p) else {
        return Err(Error::BadHash("argon2id needs m, t and p"));
    };
    let cost = Argon2Cost {
        memory_kib,
        iterations,
        parallelism,
    };
    let salt = b64(&PHC_B64, salt, "argon2id salt is not base64")?;
    let hash = b64(&PHC_B64, hash, "argon2id hash is not base64")?;
    // Check ranges now so that a bad line is reported at load time, not at login.
    cost.params(hash.len())?;
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(Error::BadHash("argon2id salt shorter than 8 bytes"));
    }
    Ok(StoredHash::Argon2id {
        version,
        cost,
        salt,
        hash,
    })
}

fn argon2id_raw(
    password: &[u8],
    salt: &[u8],
    cost: Argon2Cost,
    version: Version,
    out_len: usize,
) -> Result<Vec<u8>, Error> {
    let params = cost.params(out_len)?;
    let mut out = vec![0u8; out_len];
    Argon2::new(Algorithm::Argon2id, version, params)
        .hash_password_into(password, salt, &mut out)
        .map_err(|e| Error::Hashing(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
#[path = "hash_tests.rs"]
mod tests;
