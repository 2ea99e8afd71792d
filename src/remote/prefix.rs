//! A store seen through a key prefix (object_store's `PrefixStore`): every key given to it is
//! under the prefix, every key it returns has the prefix taken off. The configured remote
//! (`s3://bucket/some/prefix`) is one of these, so the rest of pgtier works with keys relative
//! to the URL the operator wrote and can never reach outside it.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::store::{BucketState, Locks, ObjectLock, ObjectMeta, PutOptions, Store, StoreError};
use crate::ui::Progress;
use crate::vocab::StorageClass;

/// `inner`, limited to the keys under `prefix`.
pub struct PrefixStore {
    inner: Arc<dyn Store>,
    /// Without a leading or trailing `/`; empty for the whole store.
    prefix: String,
}

impl PrefixStore {
    pub fn new(inner: Arc<dyn Store>, prefix: &str) -> PrefixStore {
        PrefixStore { inner, prefix: prefix.trim_matches('/').to_string() }
    }

    fn full(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    fn strip(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if !self.prefix.is_empty() {
            meta.key = meta.key.strip_prefix(&self.prefix).and_then(|k| k.strip_prefix('/')).unwrap_or(&meta.key).to_string();
        }
        meta
    }
}

impl Store for PrefixStore {
    fn describe(&self) -> String {
        if self.prefix.is_empty() { self.inner.describe() } else { format!("{}/{}", self.inner.describe(), self.prefix) }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        Ok(self.inner.list(&self.full(prefix))?.into_iter().map(|m| self.strip(m)).collect())
    }

    fn list_each(&self, prefix: &str, f: &mut dyn FnMut(ObjectMeta) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.inner.list_each(&self.full(prefix), &mut |m| f(self.strip(m)))
    }

    fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.inner.head(&self.full(key)).map(|m| self.strip(m))
    }

    fn put_file(&self, key: &str, path: &Path, opts: &PutOptions, progress: &Progress) -> Result<(), StoreError> {
        self.inner.put_file(&self.full(key), path, opts, progress)
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], opts: &PutOptions) -> Result<(), StoreError> {
        self.inner.put_bytes(&self.full(key), bytes, opts)
    }

    fn put_if(&self, key: &str, bytes: &[u8], cond: crate::store::Condition<'_>) -> Result<String, StoreError> {
        self.inner.put_if(&self.full(key), bytes, cond)
    }

    fn get_tagged(&self, key: &str, max: u64) -> Result<(Vec<u8>, String), StoreError> {
        self.inner.get_tagged(&self.full(key), max)
    }

    fn clock_skew(&self) -> Option<chrono::Duration> {
        self.inner.clock_skew()
    }

    fn copy(&self, from: &str, to: &str, class: StorageClass, lock: Option<&ObjectLock>) -> Result<(), StoreError> {
        self.inner.copy(&self.full(from), &self.full(to), class, lock)
    }

    fn locks(&self) -> Option<&dyn Locks> {
        self.inner.locks().map(|_| self as &dyn Locks)
    }

    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        self.inner.get(&self.full(key))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        crate::remote::lease::may_delete().map_err(|e| StoreError::Other(format!("{}/{key}: {e}", self.describe())))?;
        self.inner.delete(&self.full(key))
    }

    fn request_thaw(&self, key: &str, days: u32, tier: &str) -> Result<(), StoreError> {
        self.inner.request_thaw(&self.full(key), days, tier)
    }

    fn abort_incomplete(&self, prefix: &str, keep: &[String]) -> Result<usize, StoreError> {
        let keep: Vec<String> = keep.iter().map(|k| self.full(k)).collect();
        self.inner.abort_incomplete(&self.full(prefix), &keep)
    }
}

impl Locks for PrefixStore {
    fn put_retention(&self, key: &str, lock: &ObjectLock, bypass_governance: bool) -> Result<(), StoreError> {
        self.inner_locks()?.put_retention(&self.full(key), lock, bypass_governance)
    }

    fn current_version(&self, key: &str) -> Result<String, StoreError> {
        self.inner_locks()?.current_version(&self.full(key))
    }

    fn delete_version(&self, key: &str, version: &str, bypass_governance: bool) -> Result<(), StoreError> {
        crate::remote::lease::may_delete().map_err(|e| StoreError::Other(format!("{}/{key}: {e}", self.describe())))?;
        self.inner_locks()?.delete_version(&self.full(key), version, bypass_governance)
    }

    fn bucket(&self) -> Result<BucketState, StoreError> {
        self.inner_locks()?.bucket()
    }

    fn setup(&self, prefix: &str, lock: bool, dry_run: bool) -> Result<Vec<crate::store::SetupStep>, StoreError> {
        let full = if prefix.is_empty() { self.prefix.clone() } else { self.full(prefix) };
        self.inner_locks()?.setup(&full, lock, dry_run)
    }
}

impl PrefixStore {
    fn inner_locks(&self) -> Result<&dyn Locks, StoreError> {
        self.inner.locks().ok_or_else(|| StoreError::Other(format!("{} has no Object Lock", self.inner.describe())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn keys_go_in_under_the_prefix_and_come_out_without_it() {
        let shared = Arc::new(MemoryStore::new(0));
        let standard = PutOptions::standard();
        shared.put_bytes("outside/x", b"not ours", &standard).unwrap();
        let p = PrefixStore::new(shared.clone(), "/backups/pg/");
        p.put_bytes("shop/production/daily/a.json", b"{}", &standard).unwrap();
        assert!(shared.head("backups/pg/shop/production/daily/a.json").is_ok());
        assert_eq!(p.head("shop/production/daily/a.json").unwrap().key, "shop/production/daily/a.json");
        let keys: Vec<String> = p.list("").unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(keys, vec!["shop/production/daily/a.json"], "nothing outside the prefix is seen");
        p.copy("shop/production/daily/a.json", "shop/production/weekly/a.json", StorageClass::StandardIa, None).unwrap();
        p.delete("shop/production/daily/a.json").unwrap();
        let all: Vec<String> = shared.list("").unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(all, vec!["backups/pg/shop/production/weekly/a.json", "outside/x"]);
        assert_eq!(p.describe(), format!("{}/backups/pg", shared.describe()));
    }
}
