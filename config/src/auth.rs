//! `[auth]` and `[acl]`: who may connect, and what each client may publish and read.

use std::path::PathBuf;

use serde::Deserialize;

/// `[auth]`: client authentication.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `username:hash` file (argon2id PHC strings; mosquitto `$6$`/`$7$`/argon2 entries are read too).
    pub password_file: Option<PathBuf>,
    /// Accept clients that present neither a password nor a client certificate. Unset:
    /// yes without a `password_file`, no with one (see [`AuthConfig::anonymous_allowed`]).
    pub allow_anonymous: Option<bool>,
    /// Cost of new argon2id hashes; existing hashes carry their own.
    pub argon2: Argon2Params,
    /// Password verifications run at the same time; bounds CPU and memory in connect storms.
    pub max_concurrent_verifications: u32,
    /// Longest user name accepted, in bytes. A longer one is refused (bad user name or
    /// password) before it is hashed or remembered by the failed-login throttle, so
    /// random long names cannot grow its table.
    pub max_username_bytes: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            password_file: None,
            // Decided by anonymous_allowed(): on without a password file (the default
            // listener is loopback-only), off as soon as passwords are configured.
            allow_anonymous: None,
            argon2: Argon2Params::default(),
            // Two verifications use ~38 MiB with the default argon2 memory: safe on a Pi.
            max_concurrent_verifications: 2,
            max_username_bytes: 256,
        }
    }
}

impl AuthConfig {
    /// Whether clients without credentials are accepted: the explicit `allow_anonymous`,
    /// else true only when no `password_file` is configured. (Validation refuses a
    /// listener outside loopback whose clients are who their CONNECT user name says
    /// while this is true and no password file verifies the name.)
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.password_file.is_none())
    }
}

/// `[auth.argon2]`: argon2id cost parameters.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Params {
    /// Memory per hash in KiB (at least 8 × parallelism).
    pub memory_kib: u32,
    /// Passes over the memory (at least 1).
    pub iterations: u32,
    /// Lanes (at least 1).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        // OWASP Password Storage Cheat Sheet's argon2id minimum (m=19 MiB, t=2, p=1):
        // about 0.1 s on a Raspberry Pi 4, where mosquitto 2.1's 46 MiB would be costly.
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// `[acl]`: topic access control.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// mosquitto-format ACL file (`user`, `topic`, `pattern` lines). Without a file and
    /// without `[[acl.rule]]` tables, every authenticated client may publish and
    /// subscribe to everything.
    pub file: Option<PathBuf>,
    /// `[[acl.rule]]` tables: the same rules in TOML. They join the file's rules (file
    /// first, then these, list by list); evaluation is the same as for the file alone.
    #[serde(rename = "rule")]
    pub rules: Vec<AclRule>,
    /// MQTT 3.1.1 clients whose PUBLISH the ACL denies are disconnected instead of
    /// having the message acknowledged and dropped (mosquitto's behaviour, the default).
    /// MQTT 5 clients always get PUBACK/PUBREC 0x87 instead.
    pub disconnect_on_denied_publish: bool,
    /// Refuse instead of narrowing silently: a SUBSCRIBE filter reaching beyond the
    /// client's read grants is refused (SUBACK 0x80 / 0x87) even where it overlaps them;
    /// a denied PUBLISH disconnects (MQTT 5 QoS 0: DISCONNECT 0x87; QoS 1/2: PUBACK /
    /// PUBREC 0x87); a PUBLISH to any `$` topic is denied. (A CONNECT whose will topic
    /// is not writable is refused in either mode.)
    pub strict: bool,
}

/// One `[[acl.rule]]` table: the TOML form of an ACL file's `topic` or `pattern` line.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// The user this rule belongs to (a `topic` line under `user NAME`). Neither `user`
    /// nor `pattern`: an anonymous rule (a `topic` line before any `user` line).
    #[serde(default)]
    pub user: Option<String>,
    /// A `pattern` rule: applies to every client, with whole-level `%u` (user name) and
    /// `%c` (client id) substituted. Exclusive with `user`.
    #[serde(default)]
    pub pattern: bool,
    /// The topic filter (`+` and `#` allowed).
    pub topic: String,
    /// What the rule grants; `readwrite` when omitted, as in the file.
    #[serde(default)]
    pub access: AclAccess,
}

/// `access` of an `[[acl.rule]]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AclAccess {
    /// Receive messages on matching topics.
    Read,
    /// Publish to matching topics.
    Write,
    /// Both.
    #[default]
    ReadWrite,
    /// Nothing: checked before any allowing rule of the same list.
    Deny,
}
