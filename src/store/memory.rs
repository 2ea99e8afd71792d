//! An in-memory store for unit tests. Archive classes behave as in S3: GET and copy fail until a
//! thaw is requested and finished; `thaw_polls` makes a thaw report "in progress" for that many
//! HEADs first, which LocalStack (thawing at once) cannot show.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;

use super::{ObjectMeta, PutOptions, Store, StoreError, Thaw, check_key};
use crate::config::StorageClass;
use crate::ui::Progress;

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
        let thaw = if opts.class.needs_thaw() { Thaw::Needed } else { Thaw::NotNeeded };
        let meta = ObjectMeta {
            key: key.to_string(),
            size: bytes.len() as u64,
            storage_class: Some(opts.class),
            last_modified: Some(Utc::now()),
            sha256: opts.sha256.clone(),
            thaw,
        };
        self.objects.lock().expect("store").insert(key.to_string(), Object { bytes, meta, thaw_left: None });
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
            .map(|o| ObjectMeta { sha256: None, ..o.meta.clone() })
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
        self.insert(key, bytes, opts);
        Ok(())
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], opts: &PutOptions) -> Result<(), StoreError> {
        check_key(key)?;
        self.insert(key, bytes.to_vec(), opts);
        Ok(())
    }

    fn copy(&self, from: &str, to: &str, class: StorageClass) -> Result<(), StoreError> {
        check_key(to)?;
        let src = self.readable(from)?;
        self.insert(to, src.bytes, &PutOptions { class, sha256: src.meta.sha256 });
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(Box::new(std::io::Cursor::new(self.readable(key)?.bytes)))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().expect("store").remove(key);
        Ok(())
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
