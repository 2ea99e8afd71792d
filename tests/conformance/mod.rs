//! The behaviour every `Store` must show, run against each of them from `tests/store.rs` (the
//! local folder, the in-memory store, a prefixed store, S3 on LocalStack). What a store can do
//! is given as data (`Capabilities`), not guessed from its name. Compiled only for tests.

use std::io::Read;

use chrono::Timelike as _;
use std::time::{Duration, Instant};

use pgtier::config::StorageClass;
use pgtier::store::{Condition, PutOptions, Store, StoreError};
use pgtier::ui::Progress;

/// What a store supports, so the suite checks exactly that.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Archive classes (GLACIER, DEEP_ARCHIVE) are unreadable until thawed.
    pub archive_classes: bool,
    /// Write a file large enough for a multipart upload (S3 uploads above 16 MiB in parts).
    pub multipart: bool,
    /// Object Lock is enforced (a bucket created with it, or the memory store).
    pub object_lock: bool,
    /// A COMPLIANCE lock cannot be shortened (moto lets it be: `audit` flags such a store).
    pub refuses_shortening: bool,
}

fn read_all(store: &dyn Store, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    store.get(key).unwrap_or_else(|e| panic!("get {key}: {e}")).read_to_end(&mut out).unwrap_or_else(|e| panic!("reading {key}: {e}"));
    out
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// One named behaviour; each writes only under its own keys, so one failing hides no other.
type Check = fn(&dyn Store, &str, Capabilities);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("small objects: write, read back, metadata, listing", small_objects),
    ("files, multipart, and bytes that are not the ones named", files),
    ("copies keep the sha256; archive classes need a thaw", copies),
    ("missing objects and deletes", missing_and_deletes),
    ("keys that could escape are refused", bad_keys),
    ("Object Lock", object_lock),
    ("conditional writes, and listings streamed in key order", conditional_writes),
];

/// Runs every check under `prefix` (which must be empty in the store), each on its own, and
/// fails naming every check that deviated and how.
pub fn run_all(store: &dyn Store, prefix: &str, can: Capabilities) {
    let mut failed = Vec::new();
    for (name, check) in CHECKS {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(store, prefix, can))) {
            let why = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            failed.push(format!("{name}: {why}"));
        }
    }
    assert!(failed.is_empty(), "{} of {} conformance checks failed:\n{}", failed.len(), CHECKS.len(), failed.join("\n"));
}

fn small_objects(store: &dyn Store, prefix: &str, _: Capabilities) {
    let k = |name: &str| format!("{prefix}/small/{name}");
    let standard = PutOptions::standard();
    let body = b"manifest bytes".to_vec();
    store.put_bytes(&k("a/one.json"), &body, &PutOptions { class: StorageClass::Standard, sha256: Some(sha(&body)), lock: None }).unwrap();
    let h = store.head(&k("a/one.json")).unwrap();
    assert_eq!(h.size, body.len() as u64, "head size");
    assert_eq!(h.sha256.as_deref(), Some(sha(&body).as_str()), "head returns the stored sha256");
    assert_eq!(h.class(), StorageClass::Standard);
    assert!(h.thaw.readable());
    assert_eq!(read_all(store, &k("a/one.json")), body);
    store.put_bytes(&k("b/two.json"), b"2", &standard).unwrap();
    let listed: Vec<String> = store.list(&k("a/")).unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(listed, vec![k("a/one.json")], "list is limited to the prefix");
    let all = store.list(&k("")).unwrap();
    assert_eq!(
        all.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
        vec![k("a/one.json").as_str(), k("b/two.json").as_str()],
        "list is in key order"
    );
    assert_eq!(all[0].size, body.len() as u64);
}

fn files(store: &dyn Store, prefix: &str, can: Capabilities) {
    let k = |name: &str| format!("{prefix}/{name}");
    let dir = tempfile::tempdir().unwrap();
    let sizes: &[usize] = if can.multipart { &[0, 1000, 20 * 1024 * 1024 + 123] } else { &[0, 1000, 3 * 1024 * 1024 + 5] };
    for (i, size) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*size).map(|j| (j * 31 % 251) as u8 ^ (j / 4096) as u8).collect();
        let path = dir.path().join(format!("f{i}"));
        std::fs::write(&path, &data).unwrap();
        let key = k(&format!("files/f{i}.dump.gz"));
        store
            .put_file(
                &key,
                &path,
                &PutOptions { class: StorageClass::StandardIa, sha256: Some(sha(&data)), lock: None },
                &Progress::hidden(),
            )
            .unwrap_or_else(|e| panic!("put_file {size} bytes: {e}"));
        let h = store.head(&key).unwrap();
        assert_eq!((h.size, h.class(), h.sha256.clone()), (*size as u64, StorageClass::StandardIa, Some(sha(&data))), "{size} bytes");
        assert_eq!(sha(&read_all(store, &key)), sha(&data), "{size} bytes read back");
        // Bytes that are not the ones named (a file corrupted on disk) are never stored: the
        // upload hashes what it sends and refuses to finish.
        if *size > 0 {
            let wrong = k(&format!("files/wrong{i}.dump.gz"));
            let refused = store.put_file(
                &wrong,
                &path,
                &PutOptions { class: StorageClass::Standard, sha256: Some(sha(b"other bytes")), lock: None },
                &Progress::hidden(),
            );
            assert!(matches!(refused, Err(StoreError::Mismatch(_))), "{size} bytes under another sha256: {refused:?}");
            assert!(matches!(store.head(&wrong), Err(StoreError::NotFound(_))), "{size} bytes: nothing stored under {wrong}");
        }
    }
}

/// A 1000-byte object under `key`, in STANDARD_IA, as the copy checks start from.
fn put_source(store: &dyn Store, key: &str) {
    let data: Vec<u8> = (0..1000).map(|j| (j * 31 % 251) as u8).collect();
    store.put_bytes(key, &data, &PutOptions { class: StorageClass::StandardIa, sha256: Some(sha(&data)), lock: None }).unwrap();
}

fn copies(store: &dyn Store, prefix: &str, can: Capabilities) {
    let k = |name: &str| format!("{prefix}/copies/{name}");
    let src = k("daily/f1.dump.gz");
    put_source(store, &src);
    let glacier = k("monthly/f1.dump.gz");
    store.copy(&src, &glacier, StorageClass::Glacier, None).unwrap();
    let h = store.head(&glacier).unwrap();
    assert_eq!(h.class(), StorageClass::Glacier);
    assert_eq!(h.sha256, store.head(&src).unwrap().sha256, "copy keeps the sha256");
    if can.archive_classes {
        assert!(!h.thaw.readable(), "a GLACIER object is not readable before a thaw");
        assert!(matches!(store.get(&glacier), Err(StoreError::Archived(_))), "GET of a GLACIER object fails as archived");
        assert!(
            matches!(store.copy(&glacier, &k("x/y"), StorageClass::Standard, None), Err(StoreError::Archived(_))),
            "copying from GLACIER needs a thaw"
        );
        store.request_thaw(&glacier, 1, "Standard").unwrap();
        store.request_thaw(&glacier, 1, "Standard").unwrap(); // a repeated request is fine
        let start = Instant::now();
        while !store.head(&glacier).unwrap().thaw.readable() {
            assert!(start.elapsed() < Duration::from_secs(30), "thaw did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(read_all(store, &glacier).len(), 1000);
    }
    // Copying onto itself changes the class.
    store.copy(&src, &src, StorageClass::Standard, None).unwrap();
    assert_eq!(store.head(&src).unwrap().class(), StorageClass::Standard);
    assert!(store.head(&src).unwrap().sha256.is_some(), "class change keeps the sha256");
}

fn missing_and_deletes(store: &dyn Store, prefix: &str, _: Capabilities) {
    let k = |name: &str| format!("{prefix}/gone/{name}");
    assert!(matches!(store.head(&k("nope")), Err(StoreError::NotFound(_))));
    assert!(matches!(store.get(&k("nope")), Err(StoreError::NotFound(_))));
    let key = k("one.dump.gz");
    put_source(store, &key);
    store.delete(&key).unwrap();
    assert!(matches!(store.head(&key), Err(StoreError::NotFound(_))));
    store.delete(&key).unwrap(); // deleting what is gone is fine
}

fn bad_keys(store: &dyn Store, prefix: &str, _: Capabilities) {
    for bad in ["", "/abs", "a/../b", "a//b", "./a"] {
        assert!(store.put_bytes(bad, b"x", &PutOptions::standard()).is_err(), "key {bad:?} must be refused");
    }
    store.abort_incomplete(&format!("{prefix}/"), &[]).unwrap();
}

/// A locked version is reported by HEAD, cannot be deleted or have its lock shortened;
/// lengthening it is allowed.
fn object_lock(store: &dyn Store, prefix: &str, can: Capabilities) {
    if !can.object_lock {
        return;
    }
    let k = |name: &str| format!("{prefix}/{name}");
    use pgtier::store::ObjectLock;
    let locks = store.locks().expect("a store with Object Lock offers its operations");
    let until = chrono::Utc::now() + chrono::Duration::hours(2);
    let lock = ObjectLock { mode: pgtier::config::LockMode::Compliance, until: until.with_nanosecond(0).unwrap() };
    let key = k("locked/one.json");
    store.put_bytes(&key, b"locked", &PutOptions { lock: Some(lock), ..PutOptions::standard() }).unwrap();
    assert_eq!(store.head(&key).unwrap().lock, Some(lock), "HEAD returns the lock");
    let version = locks.current_version(&key).unwrap();
    assert!(locks.delete_version(&key, &version, false).is_err(), "a locked version cannot be deleted");
    assert!(store.delete(&key).is_err(), "deleting every version fails while one is locked");
    let shorter = ObjectLock { until: lock.until - chrono::Duration::hours(1), ..lock };
    if can.refuses_shortening {
        assert!(locks.put_retention(&key, &shorter, false).is_err(), "a COMPLIANCE lock cannot be shortened");
    }
    let longer = ObjectLock { until: lock.until + chrono::Duration::hours(1), ..lock };
    locks.put_retention(&key, &longer, false).unwrap();
    assert_eq!(store.head(&key).unwrap().lock, Some(longer));
    let copy = k("locked/copy.json");
    store.copy(&key, &copy, StorageClass::Standard, Some(&lock)).unwrap();
    assert_eq!(store.head(&copy).unwrap().lock, Some(lock), "a copy takes the lock it is given");
}

/// The lease's ground: a create only where nothing is, a replace only of the version last seen,
/// each refused with `Precondition` otherwise; and a streamed listing that agrees with `list`,
/// with keys that sort around the folder separator (`a-b` before `a/`).
fn conditional_writes(store: &dyn Store, prefix: &str, _: Capabilities) {
    let k = |name: &str| format!("{prefix}/cond/{name}");
    let first = store.put_if(&k("lease"), b"one", Condition::Absent).unwrap();
    assert!(matches!(store.put_if(&k("lease"), b"two", Condition::Absent), Err(StoreError::Precondition(_))), "a second create is refused");
    let (bytes, etag) = store.get_tagged(&k("lease"), 1024).unwrap();
    assert_eq!((bytes.as_slice(), etag.as_str()), (b"one".as_slice(), first.as_str()));
    let second = store.put_if(&k("lease"), b"two", Condition::Matches(&first)).unwrap();
    assert_ne!(second, first);
    assert!(
        matches!(store.put_if(&k("lease"), b"three", Condition::Matches(&first)), Err(StoreError::Precondition(_))),
        "a replace of a version no longer current is refused"
    );
    assert_eq!(store.get_tagged(&k("lease"), 1024).unwrap().0, b"two");
    assert!(matches!(store.get_tagged(&k("none"), 1024), Err(StoreError::NotFound(_))));
    store.delete(&k("lease")).unwrap();
    store.put_if(&k("lease"), b"again", Condition::Absent).unwrap();
    for name in ["x/a/1", "x/a-b/1", "x/a.c", "x/b"] {
        store.put_bytes(&k(name), b"x", &PutOptions::standard()).unwrap();
    }
    let mut streamed = Vec::new();
    store
        .list_each(&k("x/"), &mut |m| {
            streamed.push(m.key);
            Ok(())
        })
        .unwrap();
    let listed: Vec<String> = store.list(&k("x/")).unwrap().into_iter().map(|m| m.key).collect();
    assert_eq!(streamed, listed);
    assert_eq!(streamed, ["x/a-b/1", "x/a.c", "x/a/1", "x/b"].map(k), "key order");
}
