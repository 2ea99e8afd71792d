//! One `run` per backup root: an flock on `{backup_root}/.pgtier.lock` that records who holds it,
//! so a second run can say so (or wait its turn with `--wait-lock`).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// The held lock; released when dropped (or when the process dies).
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

impl RunLock {
    /// Takes the lock, waiting up to `wait` if another run holds it.
    pub fn acquire(path: &Path, wait: Option<Duration>) -> Result<RunLock> {
        if let Some(dir) = path.parent() {
            crate::fsutil::ensure_private_dir(dir)?;
        }
        let mut file = crate::fsutil::open_lock_file(path)?;
        let started = Instant::now();
        loop {
            match crate::fsutil::try_lock(&file) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                    let mut holder = String::new();
                    let _ = file.rewind();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    match wait {
                        Some(w) if started.elapsed() < w && !crate::signals::interrupted() => {
                            std::thread::sleep(Duration::from_millis(200))
                        }
                        Some(w) => {
                            return Err(Error::Locked(format!(
                                "another pgtier run still holds {} after waiting {w:?} ({holder})",
                                path.display()
                            )));
                        }
                        None => {
                            return Err(Error::Locked(format!("another pgtier run holds {} ({holder})", path.display())));
                        }
                    }
                }
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        let me = format!("pid {} since {}", std::process::id(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
        file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(me.as_bytes())).and_then(|_| file.flush()).at(path)?;
        Ok(RunLock { _file: file, path: path.to_path_buf() })
    }
}

impl Drop for RunLock {
    /// The file keeps no stale "pid N since …" once the run is over (the flock goes with the
    /// descriptor).
    fn drop(&mut self) {
        let _ = self._file.set_len(0);
    }
}
