//! The password file: mosquitto-compatible parsing (`user:hash` per line), and atomic,
//! 0600 rewrites that keep comments and unknown lines in place.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::password::hash::StoredHash;

/// Longest user name mosquitto 2.1 accepts (bytes); also the MQTT string limit.
const MAX_USERNAME_LEN: usize = 65_535;

/// One line of the file, kept so that a rewrite changes only what it must.
#[derive(Clone, PartialEq, Eq)]
enum Line {
    /// A `user:hash` entry.
    Entry { user: String, hash: StoredHash },
    /// A comment, blank line or a line without `:`, written back unchanged.
    Verbatim(String),
}

/// The parsed contents of a password file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    lines: Vec<Line>,
    index: HashMap<String, usize>,
}

impl fmt::Debug for PasswordFile {
    /// Lists user names and schemes only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.users().map(|(u, h)| (u, h.scheme())))
            .finish()
    }
}

/// Checks a user name for `passwd add`: what the file format can hold.
pub fn check_username(user: &str) -> Result<(), Error> {
    if user.is_empty() {
        return Err(Error::BadUserName("empty"));
    }
    if user.contains(':') {
        return Err(Error::BadUserName("contains ':'"));
    }
    if user.starts_with('#') {
        return Err(Error::BadUserName("starts with '#' (would be a comment)"));
    }
    if user != user.trim() {
        return Err(Error::BadUserName("leading or trailing blanks"));
    }
    if user.contains(['\n', '\r', '\0']) {
        return Err(Error::BadUserName("contains a line break or NUL"));
    }
    if user.len() > MAX_USERNAME_LEN {
        return Err(Error::BadUserName("longer than 65535 bytes"));
    }
    Ok(())
}

impl PasswordFile {
    /// Parses file contents as mosquitto does: `#` in column 0 is a comment, lines
    /// without `:` are skipped, the user is the text before the first `:` and the hash
    /// the text up to the next `:`, both trimmed of blanks. Empty user names, duplicate
    /// users and undecodable hashes are errors (as in mosquitto 2.1). `origin` names the
    /// file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<PasswordFile, Error> {
        let mut file = PasswordFile::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |reason: String| Error::PasswordFile {
                path: origin.to_path_buf(),
                line: i + 1,
                reason,
            };
            if raw.starts_with('#') || !raw.contains(':') {
                file.lines.push(Line::Verbatim(raw.to_owned()));
                continue;
            }
            let mut parts = raw.split(':');
            let user = parts
                .next()
                .unwrap_or_default()
                .trim_matches([' ', '\t', '\r']);
            let hash = parts
                .next()
                .unwrap_or_default()
                .trim_matches([' ', '\t', '\r']);
            if user.is_empty() {
                return Err(err("empty user name".into()));
            }
            if user.len() > MAX_USERNAME_LEN {
                return Err(err("user name longer than 65535 bytes".into()));
            }
            if file.index.contains_key(user) {
                return Err(err(format!("duplicate user {user:?}")));
            }
            let hash = StoredHash::parse(hash).map_err(|e| err(format!("user {user:?}: {e}")))?;
            file.index.insert(user.to_owned(), file.lines.len());
            file.lines.push(Line::Entry {
                user: user.to_owned(),
                hash,
            });
        }
        Ok(file)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<PasswordFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        PasswordFile::parse(&text, path)
    }

    /// Reads `path`, or returns an empty file if it does not exist.
    pub fn load_or_empty(path: &Path) -> Result<PasswordFile, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => PasswordFile::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PasswordFile::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The stored hash of `user`.
    pub fn get(&self, user: &str) -> Option<&StoredHash> {
        let i = *self.index.get(user)?;
        match &self.lines[i] {
            Line::Entry { hash, .. } => Some(hash),
            Line::Verbatim(_) => None,
        }
    }

    /// The entries in file order.
    pub fn users(&self) -> impl Iterator<Item = (&str, &StoredHash)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { user, hash } => Some((user.as_str(), hash)),
            Line::Verbatim(_) => None,
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Sets `user`'s hash (replacing in place, or appending a new entry).
    pub fn set(&mut self, user: &str, hash: StoredHash) {
        match self.index.get(user) {
            Some(&i) => {
                self.lines[i] = Line::Entry {
                    user: user.to_owned(),
                    hash,
                }
            }
            None => {
                self.index.insert(user.to_owned(), self.lines.len());
                self.lines.push(Line::Entry {
                    user: user.to_owned(),
                    hash,
                });
            }
        }
    }

    /// Removes `user`; false if absent.
    pub fn remove(&mut self, user: &str) -> bool {
        let Some(i) = self.index.remove(user) else {
            return false;
        };
        self.lines.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        true
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Entry { user, hash } => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(&hash.encode());
                }
                Line::Verbatim(s) => out.push_str(s),
            }
            out.push('\n');
        }
        out
    }

    /// Writes the file atomically: a 0600 temporary file in the same directory, synced,
    /// then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        write_atomic(path, self.to_text().as_bytes())
    }
}

/// Writes `data` to `path` through a 0600 temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "passwd".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        // A leftover temp file from a crash keeps its mode: force 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
