//! Passwords: stored hashes, the password file, and the costed, throttled verifier.

mod cache;
mod file;
mod hash;
mod input;
mod throttle;
mod verifier;

pub use file::{check_username, PasswordFile};
pub use hash::{Argon2Cost, StoredHash};
pub use input::read_password;
pub use throttle::ThrottleSettings;
pub use verifier::{Verifier, VerifierSettings};
