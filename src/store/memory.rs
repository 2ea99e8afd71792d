//! An in-memory store for unit tests. Archive classes behave as in S3: GET and copy fail until a
//! thaw is requested and finished; `thaw_polls` makes a thaw report "in progress" for that many
//! HEADs first, which LocalStack (thawing at once) cannot show.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;

use super::{BucketState, Locks, ObjectLock, ObjectMeta, PutOptions, Store, StoreError, Thaw, check_key};
use crate::ui::Progress;
use crate::vocab::StorageClass;

#[derive(Clone)]
struct Object {
    bytes: Vec<u8>,
    meta: ObjectMeta,
    /// HEADs left before a requested thaw completes.
    thaw_left: Option<u32>,
}

/// A store held in memory.
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Object>>,
    thaw_polls: u32,
}

impl MemoryStore {
    /// A store whose thaws finish after `thaw_polls` HEADs.
    pub fn new(thaw_polls: u32) -> MemoryStore {
        MemoryStore { objects: Mutex::new(BTreeMap::new()), thaw_polls }
    }

    fn insert(&self, key: &str, bytes: Vec<u8>, opts: &PutOptions) {
        let o = Self::object(key, bytes, opts);
        self.objects.lock().expect("store").insert(key.to_string(), o);
    }

    fn object(key: &str, bytes: Vec<u8>, opts: &PutOptions) -> Object {
        let thaw = if opts.class.needs_thaw() { Thaw::Needed } else { Thaw::NotNeeded };
        let meta = ObjectMeta {
            key: key.to_string(),
            size: bytes.len() as u64,
            storage_class: Some(opts.class),
            last_modified: Some(Utc::now()),
            sha256: opts.sha256.clone(),
            thaw,
            lock: opts.lock,
            content_sha256: None,
        };
        Object { bytes, meta, thaw_left: None }
    }

    /// The memory store keeps one version per key: replacing or deleting a locked one fails as
    /// S3 refuses to delete a locked version.
    fn refuse_if_locked(&self, key: &str, bypass_governance: bool) -> Result<(), StoreError> {
        let objects = self.objects.lock().expect("store");
        match objects.get(key).and_then(|o| o.meta.lock) {
            Some(l) if l.holds(Utc::now()) && !(bypass_governance && l.mode == crate::vocab::LockMode::Governance) => {
                Err(StoreError::Locked(format!("memory://{key}: AccessDenied: locked ({}) until {}", l.mode, l.until)))
            }
            _ => Ok(()),
        }
    }

    fn readable(&self, key: &str) -> Result<Object, StoreError> {
        let objects = self.objects.lock().expect("store");
        let o = objects.get(key).ok_or_else(|| StoreError::NotFound(format!("memory://{key}")))?;
        if !o.meta.thaw.readable() {
            return Err(StoreError::Archived(format!("memory://{key}")));
        }
        Ok(o.clone())
    }
}

impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory://".into()
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        Ok(self
            .objects
            .lock()
            .expect("store")
            .values()
            .filter(|o| o.meta.key.starts_with(prefix))
            .map(|o| ObjectMeta { sha256: None, lock: None, ..o.meta.clone() })
            .collect())
    }

    fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let mut objects = self.objects.lock().expect("store");
        let o = objects.get_mut(key).ok_or_else(|| StoreError::NotFound(format!("memory://{key}")))?;
        if let Some(left) = o.thaw_left {
            if left == 0 {
                o.meta.thaw = Thaw::Done { until: Some(Utc::now() + chrono::Duration::days(1)) };
                o.thaw_left = None;
            } else {
                o.thaw_left = Some(left - 1);
            }
        }
        Ok(o.meta.clone())
    }

    fn put_file(&self, key: &str, path: &Path, opts: &PutOptions, progress: &Progress) -> Result<(), StoreError> {
        check_key(key)?;
        let bytes = std::fs::read(path).map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        progress.inc(bytes.len() as u64);
        use sha2::Digest as _;
        super::check_sent(key, opts, bytes.len() as u64, &hex::encode(sha2::Sha256::digest(&bytes)))?;
        self.insert(key, bytes, opts);
        Ok(())
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], opts: &PutOptions) -> Result<(), StoreError> {
        check_key(key)?;
        self.insert(key, bytes.to_vec(), opts);
        Ok(())
    }

    fn copy(&self, from: &str, to: &str, class: StorageClass, lock: Option<&ObjectLock>) -> Result<(), StoreError> {
        check_key(to)?;
        let src = self.readable(from)?;
        self.refuse_if_locked(to, false)?;
        self.insert(to, src.bytes, &PutOptions { class, sha256: src.meta.sha256, lock: lock.copied() });
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(std::io::Cursor::new(self.readable(key)?.bytes)))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.refuse_if_locked(key, false)?;
        self.objects.lock().expect("store").remove(key);
        Ok(())
    }

    fn locks(&self) -> Option<&dyn Locks> {
        Some(self)
    }

    fn put_if(&self, key: &str, bytes: &[u8], cond: super::Condition<'_>) -> Result<String, StoreError> {
        check_key(key)?;
        let etag = super::content_etag(bytes);
        let mut objects = self.objects.lock().expect("store");
        let now = objects.get(key).map(|o| super::content_etag(&o.bytes));
        match (cond, now) {
            (super::Condition::Absent, None) => {}
            (super::Condition::Matches(want), Some(have)) if want == have => {}
            _ => return Err(StoreError::Precondition(format!("memory://{key}: the condition does not hold"))),
        }
        objects.insert(key.to_string(), Self::object(key, bytes.to_vec(), &PutOptions::standard()));
        Ok(etag)
    }

    fn get_tagged(&self, key: &str, _max: u64) -> Result<(Vec<u8>, String), StoreError> {
        let o = self.readable(key)?;
        let etag = super::content_etag(&o.bytes);
        Ok((o.bytes, etag))
    }

    fn request_thaw(&self, key: &str, _days: u32, _tier: &str) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().expect("store");
        let o = objects.get_mut(key).ok_or_else(|| StoreError::NotFound(format!("memory://{key}")))?;
        if o.meta.thaw == Thaw::Needed {
            o.meta.thaw = Thaw::InProgress;
            o.thaw_left = Some(self.thaw_polls);
        }
        Ok(())
    }

    fn abort_incomplete(&self, _prefix: &str, _keep: &[String]) -> Result<usize, StoreError> {
        Ok(0)
    }
}

impl Locks for MemoryStore {
    fn put_retention(&self, key: &str, lock: &ObjectLock, bypass_governance: bool) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().expect("store");
        let o = objects.get_mut(key).ok_or_else(|| StoreError::NotFound(format!("memory://{key}")))?;
        if let Some(old) = o.meta.lock
            && old.holds(Utc::now())
            && (lock.until < old.until || lock.mode != old.mode)
            && !(bypass_governance && old.mode == crate::vocab::LockMode::Governance)
        {
            return Err(StoreError::Locked(format!("memory://{key}: AccessDenied: the lock cannot be shortened")));
        }
        o.meta.lock = Some(*lock);
        Ok(())
    }

    fn current_version(&self, key: &str) -> Result<String, StoreError> {
        self.head(key).map(|_| "v1".to_string())
    }

    fn delete_version(&self, key: &str, _version: &str, bypass_governance: bool) -> Result<(), StoreError> {
        self.refuse_if_locked(key, bypass_governance)?;
        self.objects.lock().expect("store").remove(key);
        Ok(())
    }

    fn bucket(&self) -> Result<BucketState, StoreError> {
        Ok(BucketState { exists: true, versioning: true, object_lock: true })
    }

    fn setup(&self, _prefix: &str, _lock: bool, _dry_run: bool) -> Result<Vec<crate::store::SetupStep>, StoreError> {
        Ok(Vec::new())
    }
}
