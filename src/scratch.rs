//! A private folder for pgtier's temporary files (a decrypted archive spooled for
//! `pg_restore --jobs`, restore lists): `{backup_root}/.tmp`, mode 0700, where the backup host's
//! key and disk policy hold, instead of the system's shared temporary folder. Every file's name
//! carries its process id, and what a killed pgtier left is removed at the next start.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Result;

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// The folder's name under the backup root.
pub const NAME: &str = ".tmp";

/// Remembers the backup root; nothing is created until a temporary file is needed.
pub fn init(backup_root: &Path) {
    let _ = ROOT.set(backup_root.to_path_buf());
}

/// `{backup_root}/.tmp`, created (0700) and swept of what dead pgtier processes left; None when
/// the backup root does not exist or cannot be written (a host-loss restore, a read-only root),
/// and then temporary files go to the system's temporary folder.
fn dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = ROOT.get().filter(|r| r.is_dir())?;
        let dir = root.join(NAME);
        crate::fsutil::ensure_private_dir(&dir).ok()?;
        sweep(&dir);
        Some(dir)
    })
    .clone()
}

/// Removes what killed pgtier processes left (the nightly run calls this).
pub fn sweep_stale() {
    let _ = dir();
}

/// A new private temporary file named `pgtier-{what}-{pid}-…`.
pub fn tempfile(what: &str) -> Result<tempfile::NamedTempFile> {
    let prefix = format!("pgtier-{what}-{}-", std::process::id());
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    match dir() {
        Some(dir) => b.tempfile_in(dir),
        None => b.tempfile(),
    }
    .map_err(|e| crate::failed!("cannot create a temporary file: {e}"))
}

/// Removes `pgtier-*-{pid}-*` files whose process no longer exists.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid: Option<i32> = name.strip_prefix("pgtier-").and_then(|r| r.split('-').nth(1)).and_then(|p| p.parse().ok());
        if let Some(pid) = pid
            && !crate::fsutil::process_alive(pid)
        {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!("removed {}, left by pgtier process {pid}", e.path().display()),
                Err(err) => tracing::warn!("could not remove {}: {err}", e.path().display()),
            }
        }
    }
}
