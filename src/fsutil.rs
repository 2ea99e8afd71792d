//! Crash-safe file handling: private folders, files that appear only when complete, and
//! temporary names that a later run can tell apart from live ones.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Suffix of a file being written; a `.name.partial` never counts as a backup.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Creates `dir` and its missing parents with mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).at(dir)?;
    let meta = std::fs::symlink_metadata(dir).at(dir)?;
    if meta.file_type().is_symlink() {
        return Err(crate::failed!("{} is a symbolic link: pgtier does not change the mode of a folder it does not own", dir.display()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).at(dir)?;
    }
    Ok(())
}

/// Opens one of pgtier's own files for reading without following a symbolic link: a link
/// where a backup should be (to `/etc/shadow`, say) is refused, never read or uploaded.
pub fn open_own(path: &Path) -> Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            crate::failed!("{}: is a symbolic link; pgtier does not follow links in its folders", path.display())
        } else {
            Error::io(path, e)
        }
    })
}

/// Refuses `dir` (an env folder) when it or its project or env folder is a symbolic link:
/// pgtier would otherwise chmod, list and delete in a folder it does not own. The backup root
/// itself may be a link (a mount elsewhere).
pub fn check_not_linked(dir: &Path) -> Result<()> {
    for p in dir.ancestors().take(3) {
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(crate::failed!(
                "{} is a symbolic link: pgtier does not follow links below backup_root (point backup_root at the real folder instead)",
                p.display()
            ));
        }
    }
    Ok(())
}

/// The crash marker of backup `stem` in `dir`: present from just before its file takes its
/// final name until its manifest is written, so a file without a manifest is deleted only when
/// pgtier can prove it wrote it (and crashed).
pub fn pending_marker(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(".{stem}.pending"))
}

/// Makes an existing file private (0600), as every backup file is.
pub fn ensure_private_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).at(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).at(path)?;
    }
    Ok(())
}

/// fsyncs a folder so a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Writes `bytes` to `path` atomically (temporary name, fsync, rename, fsync folder), mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut partial = PartialFile::create(path)?;
    partial.file().write_all(bytes).at(partial.path())?;
    partial.commit()
}

/// A file being written under `.NAME.partial` beside its final name, locked while open so
/// cleanup can tell a live writer from a crashed one. Dropped without `commit`, it is removed.
#[derive(Debug)]
pub struct PartialFile {
    file: Option<File>,
    partial: PathBuf,
    target: PathBuf,
}

impl PartialFile {
    /// The temporary name used for `target`.
    pub fn partial_path(target: &Path) -> PathBuf {
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        target.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"))
    }

    /// Creates the temporary file exclusively: fails with `AlreadyExists` if another writer has it.
    pub fn create(target: &Path) -> Result<PartialFile> {
        let partial = Self::partial_path(target);
        match Self::try_create(target) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Error::Failed(format!("{} is being written by another pgtier process", partial.display()))),
            Err(e) => Err(e),
        }
    }

    /// Like `create`, but returns `None` when a live writer already holds the name. A stale
    /// partial left by a crashed writer is removed and the name taken over.
    ///
    /// The file is created and locked under a name of its own first, then linked to the shared
    /// name: a partial is never visible unlocked, so no other writer can take it for a crashed
    /// one's and remove it (which let two backups claim the same name).
    pub fn try_create(target: &Path) -> Result<Option<PartialFile>> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let partial = Self::partial_path(target);
        let own_name = format!(
            "{}.{}-{}{PARTIAL_SUFFIX}",
            partial.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().trim_end_matches(PARTIAL_SUFFIX),
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let own = partial.with_file_name(own_name);
        let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&own).at(&own)?;
        try_lock(&file).at(&own)?;
        let mut linked = Ok(false);
        for _ in 0..2 {
            linked = match std::fs::hard_link(&own, &partial) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match remove_if_stale(&partial) {
                    Ok(true) => continue,
                    Ok(false) => Ok(false),
                    Err(e) => Err(e),
                },
                // A filesystem without hard links (some NAS mounts): create the shared name directly.
                Err(_) => {
                    let _ = std::fs::remove_file(&own);
                    return Self::create_unlinked(target, partial);
                }
            };
            break;
        }
        let _ = std::fs::remove_file(&own);
        match linked? {
            true => Ok(Some(PartialFile { file: Some(file), partial, target: target.to_path_buf() })),
            false => Ok(None),
        }
    }

    /// `try_create` where hard links are not supported: exclusive create, then lock.
    fn create_unlinked(target: &Path, partial: PathBuf) -> Result<Option<PartialFile>> {
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial) {
                Ok(file) => {
                    try_lock(&file).at(&partial)?;
                    return Ok(Some(PartialFile { file: Some(file), partial, target: target.to_path_buf() }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !remove_if_stale(&partial)? {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(Error::io(&partial, e)),
            }
        }
        Ok(None)
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("partial file is open until commit")
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// The name the file will have once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// fsyncs, renames to the final name and fsyncs the folder.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("commit once");
        file.sync_all().at(&self.partial)?;
        crate::fault::point("file:before-rename");
        std::fs::rename(&self.partial, &self.target).at(&self.target)?;
        drop(file);
        // A bare file name's folder is the current one (its parent is the empty path).
        if let Some(dir) = self.target.parent() {
            sync_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?;
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// An exclusive lock on a folder's `.pgtier-lock` file, held until dropped. Serialises the
/// decisions that must see every manifest of an env (tier assignment, pruning).
///
/// The lock file counts its holders: each acquisition writes the count one higher. A listing
/// read under the lock keeps the count it left; finding the same count (and the folder's same
/// modification time) under the next lock proves no pgtier process changed the folder in
/// between, so the listing need not be read again.
pub struct DirLock {
    file: File,
    before: u64,
}

impl DirLock {
    /// Blocks until the lock on `dir` is ours.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        DirLock::acquire_file(&dir.join(".pgtier-lock"))
    }

    /// Blocks until the lock on the file `path` is ours.
    pub fn acquire_file(path: &Path) -> Result<DirLock> {
        let path = path.to_path_buf();
        let file = open_lock_file(&path)?;
        // SAFETY: flock on a valid open descriptor has no memory-safety preconditions.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(Error::io(&path, std::io::Error::last_os_error()));
        }
        let mut text = String::new();
        // An unreadable or foreign count only costs the next holder a fresh read of the folder.
        let before = (&file).read_to_string(&mut text).ok().and_then(|_| text.trim().parse::<u64>().ok()).unwrap_or(0);
        let lock = DirLock { file, before };
        let count = format!("{}\n", lock.ours());
        lock.file.set_len(0).and_then(|_| lock.file.write_all_at(count.as_bytes(), 0)).at(&path)?;
        Ok(lock)
    }

    /// The count the previous holder left.
    pub fn before(&self) -> u64 {
        self.before
    }

    /// The count this holder left: a listing read or updated under this lock carries it.
    pub fn ours(&self) -> u64 {
        self.before.wrapping_add(1)
    }
}

/// Removes a `.partial` file if no live writer holds its lock; returns whether it is gone.
pub fn remove_if_stale(partial: &Path) -> Result<bool> {
    let file = match File::open(partial) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(Error::io(partial, e)),
    };
    match try_lock(&file) {
        Ok(()) => {
            std::fs::remove_file(partial)
                .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                .at(partial)?;
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(Error::io(partial, e)),
    }
}

/// Takes an exclusive flock without waiting; it lives as long as the file descriptor.
pub fn try_lock(file: &File) -> std::io::Result<()> {
    // SAFETY: flock on a valid open descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Free bytes available to unprivileged users on the filesystem holding `path`.
pub fn free_space(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Failed(format!("{}: path contains NUL", path.display())))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Warns when a secret file can be read by group or others.
pub fn warn_if_loose(path: &Path, what: &str) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{what} {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        );
    }
}

/// This host's name, as the kernel has it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// Whether process `pid` exists on this host (EPERM: it exists, owned by someone else).
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    pid == std::process::id() as i32
        || unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes `p`; a file already gone is fine.
pub fn remove_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Key files, recipients files and secrets are small: a larger file is refused rather than
/// read whole.
pub const SMALL_FILE_MAX: u64 = 1 << 20;

/// Reads a small file (a key, a secret, a sidecar) whole, refusing one larger than `max` bytes
/// without reading it.
pub fn read_small(path: &Path, max: u64) -> Result<Vec<u8>> {
    let mut f = File::open(path).at(path)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut f, max + 1), &mut bytes).at(path)?;
    if bytes.len() as u64 > max {
        return Err(crate::failed!("{}: larger than {} bytes; that is not a file pgtier expects here", path.display(), max));
    }
    Ok(bytes)
}

/// Reads the first line of a secret file, without its line ending.
pub fn read_secret_line(path: &Path) -> Result<zeroize::Zeroizing<String>> {
    let bytes = zeroize::Zeroizing::new(read_small(path, SMALL_FILE_MAX)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| crate::failed!("{}: is not UTF-8 text", path.display()))?;
    let line = text.split('\n').next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(crate::failed!("{}: the first line is empty", path.display()));
    }
    Ok(zeroize::Zeroizing::new(line.to_string()))
}

/// Opens (creating, 0600) a lock file, never through a symbolic link: a link there must not
/// get its target overwritten.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| link_refused(path, e))
}

/// The error for a lock file that could not be opened, saying so plainly when it is a link.
fn link_refused(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        return crate::failed!(
            "{} is a symbolic link: pgtier does not lock (and so overwrite) a file through a link; remove it",
            path.display()
        );
    }
    Error::io(path, e)
}
