//! File writes for the CA: atomic replace (temp + rename), 0600 keys, permission checks.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{CertsError, Result};

/// Mode of private key files: owner read/write only.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificates, chains, CRLs and the inventory.
pub(crate) const PUBLIC_MODE: u32 = 0o644;
/// Mode of directories the CA creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| CertsError::io(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| CertsError::io(dir, e))
}

/// Writes `data` to `path` atomically: a temp file in the same directory, created with
/// `mode` (so a key is never readable by others, not even briefly), fsynced, then renamed.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` is masked by the umask on create; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(CertsError::io(path, e));
    }
    // Make the rename durable; failure to sync a directory is not worth failing for.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a whole file as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| CertsError::io(path, e))
}

/// A file or directory whose permissions let group or others in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionWarning {
    /// The file or directory.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// True for a private key, false for the certs directory.
    pub is_key: bool,
}

impl fmt::Display for PermissionWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_key {
            write!(
                f,
                "key {} is readable by group or others (mode {:04o}): run `chmod 600 {}`",
                self.path.display(),
                self.mode,
                self.path.display()
            )
        } else {
            write!(
                f,
                "certs directory {} is writable by group or others (mode {:04o}): run `chmod 700 {}`",
                self.path.display(),
                self.mode,
                self.path.display()
            )
        }
    }
}

/// Checks a key file: a warning if group or others may read or write it.
pub(crate) fn check_key_mode(path: &Path) -> Option<PermissionWarning> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then(|| PermissionWarning {
        path: path.to_path_buf(),
        mode,
        is_key: true,
    })
}

/// Checks the certs directory: a warning if group or others may write into it
/// (they could replace the CA certificate or the inventory).
pub(crate) fn check_dir_mode(path: &Path) -> Option<PermissionWarning> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    (mode & 0o022 != 0).then(|| PermissionWarning {
        path: path.to_path_buf(),
        mode,
        is_key: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_exact_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/k.key");
        write_atomic(&p, b"one", KEY_MODE).unwrap();
        write_atomic(&p, b"two", KEY_MODE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(check_key_mode(&p).is_none());
        // No temp files left behind.
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn readable_key_and_writable_dir_warn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        write_atomic(&p, b"k", 0o640).unwrap();
        let w = check_key_mode(&p).unwrap();
        assert_eq!(w.mode, 0o640);
        assert!(w.to_string().contains("chmod 600"));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_dir_mode(dir.path()).is_some());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_dir_mode(dir.path()).is_none());
    }
}
