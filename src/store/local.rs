//! A store in a local folder (`file:///mnt/nas/pgtier`), for NAS mounts. Objects are files;
//! storage class and SHA-256 live in a hidden sidecar (`.NAME.meta`) so the store reports them
//! like S3 does. Writes are staged to a temporary name and renamed into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ObjectMeta, PutOptions, Store, StoreError, Thaw, check_key};
use crate::fsutil::{PartialFile, ensure_private_dir};
use crate::ui::Progress;
use crate::vocab::StorageClass;

/// A folder used as an object store.
pub struct LocalStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Sidecar {
    storage_class: String,
    sha256: Option<String>,
}

impl LocalStore {
    pub fn new(root: &Path) -> LocalStore {
        LocalStore { root: root.to_path_buf() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn sidecar_path(path: &Path) -> PathBuf {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        path.with_file_name(format!(".{name}.meta"))
    }

    fn io(&self, key: &str, e: std::io::Error) -> StoreError {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound(format!("{}/{key}", self.describe()))
        } else {
            StoreError::Other(format!("{}/{key}: {e}", self.describe()))
        }
    }

    fn meta_of(&self, key: &str, path: &Path) -> Result<ObjectMeta, StoreError> {
        let m = std::fs::metadata(path).map_err(|e| self.io(key, e))?;
        let sidecar: Option<Sidecar> =
            crate::fsutil::read_small(&Self::sidecar_path(path), 64 * 1024).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let last_modified: Option<DateTime<Utc>> = m.modified().ok().map(DateTime::<Utc>::from);
        Ok(ObjectMeta {
            key: key.to_string(),
            size: m.len(),
            storage_class: sidecar.as_ref().and_then(|s| StorageClass::parse(&s.storage_class)),
            last_modified,
            sha256: sidecar.and_then(|s| s.sha256),
            thaw: Thaw::NotNeeded,
            lock: None,
            content_sha256: None,
        })
    }

    /// Writes `fill` into `key`'s place atomically, with its sidecar written first.
    fn write(
        &self,
        key: &str,
        opts: &PutOptions,
        fill: impl FnOnce(&mut std::fs::File) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if opts.lock.is_some() {
            return Err(StoreError::Other(format!("{}: a folder cannot hold a locked copy", self.describe())));
        }
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a folder");
        ensure_private_dir(dir).map_err(|e| StoreError::Other(e.to_string()))?;
        let sidecar = Sidecar { storage_class: opts.class.as_str().to_string(), sha256: opts.sha256.clone() };
        crate::fsutil::write_atomic(&Self::sidecar_path(&path), &serde_json::to_vec(&sidecar).expect("sidecar"))
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let mut partial = PartialFile::create(&path).map_err(|e| StoreError::Other(e.to_string()))?;
        fill(partial.file())?;
        partial.commit().map_err(|e| StoreError::Other(e.to_string()))
    }
}

impl LocalStore {
    fn walk(&self, dir: &Path, prefix: &str, f: &mut dyn FnMut(ObjectMeta) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::Other(format!("{}: {e}", dir.display()))),
        };
        let mut here: Vec<(String, PathBuf, bool)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::Other(format!("{}: {e}", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(&self.root) else { continue };
            let key = rel.to_string_lossy().into_owned();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) || prefix.is_empty() {
                    here.push((format!("{key}/"), path, true));
                }
            } else if key.starts_with(prefix) {
                here.push((key, path, false));
            }
        }
        here.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, path, is_dir) in here {
            if is_dir {
                self.walk(&path, prefix, f)?;
            } else {
                let mut m = self.meta_of(&key, &path)?;
                m.sha256 = None; // like S3, a listing does not carry user metadata
                f(m)?;
            }
        }
        Ok(())
    }
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        self.list_each(prefix, &mut |m| {
            out.push(m);
            Ok(())
        })?;
        Ok(out)
    }

    /// Depth first, each folder's entries sorted as their keys sort (a folder as `name/`), so
    /// the keys come in key order with one folder's entries in memory at a time.
    fn list_each(&self, prefix: &str, f: &mut dyn FnMut(ObjectMeta) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.walk(&self.root.clone(), prefix, f)
    }

    fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let path = self.path(key)?;
        self.meta_of(key, &path)
    }

    fn put_file(&self, key: &str, path: &Path, opts: &PutOptions, progress: &Progress) -> Result<(), StoreError> {
        let src = crate::fsutil::open_own(path).map_err(|e| StoreError::Other(e.to_string()))?;
        let (mut src, digest) = crate::pipeline::HashReader::new(src);
        self.write(key, opts, |f| {
            crate::pipeline::copy_counted(&mut src, f, progress).map_err(|e| self.io(key, e))?;
            // Hashed as written: only the manifest's bytes are committed under the key.
            let d = digest.get().ok_or_else(|| StoreError::Other(format!("{}: not read to its end", path.display())))?;
            super::check_sent(&format!("{}/{key}", self.describe()), opts, d.size, &d.sha256)
        })
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], opts: &PutOptions) -> Result<(), StoreError> {
        self.write(key, opts, |f| f.write_all(bytes).map_err(|e| self.io(key, e)))
    }

    fn copy(&self, from: &str, to: &str, class: StorageClass, lock: Option<&super::ObjectLock>) -> Result<(), StoreError> {
        if lock.is_some() {
            return Err(StoreError::Other(format!("{}: a folder cannot hold a locked copy", self.describe())));
        }
        let src_meta = self.head(from)?;
        let opts = PutOptions { class, sha256: src_meta.sha256, lock: None };
        if from == to {
            let path = self.path(to)?;
            let sidecar = Sidecar { storage_class: class.as_str().to_string(), sha256: opts.sha256 };
            return crate::fsutil::write_atomic(&Self::sidecar_path(&path), &serde_json::to_vec(&sidecar).expect("sidecar"))
                .map_err(|e| StoreError::Other(e.to_string()));
        }
        let mut src = std::fs::File::open(self.path(from)?).map_err(|e| self.io(from, e))?;
        self.write(to, &opts, |f| std::io::copy(&mut src, f).map(|_| ()).map_err(|e| self.io(to, e)))
    }

    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let f = std::fs::File::open(self.path(key)?).map_err(|e| self.io(key, e))?;
        Ok(Box::new(f))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        for p in [path.clone(), Self::sidecar_path(&path)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(key, e)),
            }
        }
        Ok(())
    }

    fn request_thaw(&self, _key: &str, _days: u32, _tier: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Under an flock of `.{name}.cond` beside the object (NFS v4 and SMB carry it to every
    /// host), the check and the rename into place are one step.
    fn put_if(&self, key: &str, bytes: &[u8], cond: super::Condition<'_>) -> Result<String, StoreError> {
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a folder");
        ensure_private_dir(dir).map_err(|e| StoreError::Other(e.to_string()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let guard_path = path.with_file_name(format!(".{name}.cond"));
        let guard = crate::fsutil::open_lock_file(&guard_path).map_err(|e| StoreError::Other(e.to_string()))?;
        // SAFETY: flock on a descriptor this function owns; released when it is closed.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&guard), libc::LOCK_EX) } != 0 {
            return Err(self.io(key, std::io::Error::last_os_error()));
        }
        let now = match std::fs::read(&path) {
            Ok(b) => Some(super::content_etag(&b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io(key, e)),
        };
        match (cond, now) {
            (super::Condition::Absent, None) => {}
            (super::Condition::Matches(want), Some(have)) if want == have => {}
            _ => return Err(StoreError::Precondition(format!("{}/{key}: the condition does not hold", self.describe()))),
        }
        self.write(key, &PutOptions::standard(), |f| f.write_all(bytes).map_err(|e| self.io(key, e)))?;
        drop(guard);
        Ok(super::content_etag(bytes))
    }

    fn get_tagged(&self, key: &str, max: u64) -> Result<(Vec<u8>, String), StoreError> {
        let path = self.path(key)?;
        let bytes = crate::fsutil::read_small(&path, max).map_err(|e| match std::fs::metadata(&path) {
            Err(io) => self.io(key, io),
            Ok(_) => StoreError::Other(e.to_string()),
        })?;
        let etag = super::content_etag(&bytes);
        Ok((bytes, etag))
    }

    fn abort_incomplete(&self, prefix: &str, keep: &[String]) -> Result<usize, StoreError> {
        // Stale `.NAME.partial` files of crashed writers are this store's unfinished uploads.
        let mut n = 0;
        let dir = self.root.join(prefix);
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(p);
                } else if name.starts_with('.') && name.ends_with(crate::fsutil::PARTIAL_SUFFIX) {
                    let target = name.trim_start_matches('.').trim_end_matches(crate::fsutil::PARTIAL_SUFFIX);
                    let key =
                        p.with_file_name(target).strip_prefix(&self.root).map(|k| k.to_string_lossy().into_owned()).unwrap_or_default();
                    if !keep.contains(&key) && crate::fsutil::remove_if_stale(&p).map_err(|e| StoreError::Other(e.to_string()))? {
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}
