//! A private folder for pgtier's temporary files (a decrypted archive spooled for
//! `pg_restore --jobs`, a directory-format dump on its way into or out of its tar stream,
//! restore lists): `{backup_root}/.tmp` (or `scratch_dir:`), mode 0700,
//! where the backup host's key and disk policy hold, never the system's shared temporary
//! folder. Every file's name carries its process id; what a killed pgtier left is removed when
//! the next command starts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::Result;

/// The configured folder.
static CONFIGURED: OnceLock<PathBuf> = OnceLock::new();

/// The default folder's name under the backup root.
pub const NAME: &str = ".tmp";

/// Remembers the scratch folder and sweeps what dead pgtier processes left in it (and, from
/// older versions, in the system's temporary folder). Nothing is created until a temporary
/// file is needed.
pub fn init(dir: &Path) {
    let _ = CONFIGURED.set(dir.to_path_buf());
    sweep_stale();
}

/// The scratch folder, created (0700, with its parents: after a host loss the backup root
/// may not exist yet) on first use.
fn dir() -> Result<PathBuf> {
    static READY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = CONFIGURED.get().ok_or("no scratch folder is configured")?;
            crate::fsutil::ensure_private_dir(dir).map_err(|e| {
                format!("cannot create the scratch folder {} ({e}): make it writable, or set scratch_dir in pgtier.yml to a private folder with room", dir.display())
            })?;
            Ok(dir.clone())
        })
        .clone()
        .map_err(|e| crate::failed!("{e}"))
}

/// Removes what killed pgtier processes left in the scratch folder, and what older versions
/// left in the system's temporary folder.
pub fn sweep_stale() {
    if let Some(dir) = CONFIGURED.get().filter(|d| d.is_dir()) {
        sweep(dir);
    }
    sweep(&std::env::temp_dir());
}

/// A new private temporary file named `pgtier-{what}-{pid}-…` in the scratch folder.
pub fn tempfile(what: &str) -> Result<tempfile::NamedTempFile> {
    let dir = dir()?;
    tempfile::Builder::new()
        .prefix(&format!("pgtier-{what}-{}-", std::process::id()))
        .tempfile_in(&dir)
        .map_err(|e| crate::failed!("cannot create a temporary file in {}: {e}", dir.display()))
}

/// A new private temporary folder named `pgtier-{what}-{pid}-…` in the scratch folder, removed
/// with everything in it when dropped.
pub fn tempdir(what: &str) -> Result<tempfile::TempDir> {
    let dir = dir()?;
    let made = tempfile::Builder::new()
        .prefix(&format!("pgtier-{what}-{}-", std::process::id()))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir_in(&dir)
        .map_err(|e| crate::failed!("cannot create a temporary folder in {}: {e}", dir.display()))?;
    Ok(made)
}

/// The room a directory-format dump unpacked into the scratch folder needs beyond its stored
/// `size`: a margin for the filesystem's own blocks (1% and 1 MiB).
pub fn unpack_margin(size: u64) -> u64 {
    size / 100 + (1 << 20)
}

/// The scratch folder and the bytes free there for this user.
pub fn free_space() -> Result<(PathBuf, u64)> {
    let dir = dir()?;
    let free = crate::fsutil::free_space(&dir)?;
    Ok((dir, free))
}

/// Removes this user's `pgtier-*-{pid}-*` files and folders whose process no longer exists.
fn sweep(dir: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid: Option<i32> = name.strip_prefix("pgtier-").and_then(|r| r.split('-').nth(1)).and_then(|p| p.parse().ok());
        let Some(pid) = pid else { continue };
        let Ok(meta) = e.metadata() else { continue };
        let ours = (meta.is_file() || meta.is_dir()) && meta.uid() == me;
        if ours && !crate::fsutil::process_alive(pid) {
            let removed = if meta.is_dir() { std::fs::remove_dir_all(e.path()) } else { std::fs::remove_file(e.path()) };
            match removed {
                Ok(()) => tracing::info!("removed {}, left by pgtier process {pid}", e.path().display()),
                Err(err) => tracing::warn!("could not remove {}: {err}", e.path().display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn files_of_dead_processes_are_swept_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join("pgtier-restore-999999999-abc");
        let alive = dir.path().join(format!("pgtier-restore-{}-abc", std::process::id()));
        let foreign = dir.path().join("other-999999999-abc");
        for p in [&dead, &alive, &foreign] {
            std::fs::write(p, b"x").unwrap();
        }
        let dead_dir = dir.path().join("pgtier-dump-999999999-abc");
        std::fs::create_dir_all(dead_dir.join("inner")).unwrap();
        std::fs::write(dead_dir.join("inner/toc.dat"), b"x").unwrap();
        super::sweep(dir.path());
        assert!(!dead.exists() && alive.exists() && foreign.exists());
        assert!(!dead_dir.exists(), "a dead process's folder goes with what is in it");
    }
}
