//! Object stores for off-site copies: one small trait, a local-folder store (`file://`, for NAS
//! mounts), an S3 store, and an in-memory store for unit tests. Every one of them passes the
//! conformance suite in `tests/conformance/`, so they are proven to behave alike.

mod local;
pub mod memory;
mod s3;

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};

pub use local::LocalStore;
pub use memory::MemoryStore;
pub use s3::{S3Options, S3Store, StaticCredentials};

use crate::ui::Progress;
use crate::vocab::{LockMode, StorageClass};

pub use crate::error::StoreError;

/// Whether an archived object can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thaw {
    /// Readable as it is.
    NotNeeded,
    /// Archived, no thaw requested.
    Needed,
    /// A thaw was requested and is not finished.
    InProgress,
    /// Thawed; readable until the expiry.
    Done { until: Option<DateTime<Utc>> },
}

impl Thaw {
    /// Whether a GET would succeed now.
    pub fn readable(self) -> bool {
        matches!(self, Thaw::NotNeeded | Thaw::Done { .. })
    }
}

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// None where the store has no classes or does not say (S3 omits STANDARD in HEAD).
    pub storage_class: Option<StorageClass>,
    pub last_modified: Option<DateTime<Utc>>,
    /// The SHA-256 (hex) pgtier stored with the object, which it writes only for bytes it
    /// hashed as it sent them; only HEAD returns it.
    pub sha256: Option<String>,
    /// The store's own SHA-256 (hex) of the object's bytes, where it keeps one for the whole
    /// object (S3 for single-request uploads and their copies); only HEAD returns it.
    pub content_sha256: Option<String>,
    pub thaw: Thaw,
    /// Its Object Lock retention, where the store has one; only HEAD returns it.
    pub lock: Option<ObjectLock>,
}

/// An Object Lock retention: nobody (COMPLIANCE), or nobody without the right to bypass it
/// (GOVERNANCE), can delete this version or shorten the lock before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ObjectLock {
    pub mode: LockMode,
    pub until: DateTime<Utc>,
}

impl ObjectLock {
    /// Whether the lock still holds at `now`.
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        self.until > now
    }
}

/// A bucket's versioning and Object Lock, as `remote init` and `audit` see them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BucketState {
    pub exists: bool,
    pub versioning: bool,
    pub object_lock: bool,
}

/// The operations of S3 Object Lock, for stores that have it.
pub trait Locks: Send + Sync {
    /// Sets `key`'s retention (current version). Shortening it, or changing a GOVERNANCE lock
    /// without `bypass_governance`, fails where the lock holds.
    fn put_retention(&self, key: &str, lock: &ObjectLock, bypass_governance: bool) -> Result<(), StoreError>;
    /// The current version's id of `key`.
    fn current_version(&self, key: &str) -> Result<String, StoreError>;
    /// Deletes one version of `key` for good; fails while a lock holds it.
    fn delete_version(&self, key: &str, version: &str, bypass_governance: bool) -> Result<(), StoreError>;
    /// The bucket's state.
    fn bucket(&self) -> Result<BucketState, StoreError>;
    /// Creates the bucket if it is missing (with Object Lock when `lock`), enables versioning
    /// (and Object Lock on an existing bucket when asked and the store allows it), and sets
    /// lifecycle rules for the keys under `prefix`: noncurrent versions expire a day after they
    /// stop being current (a version still locked stays until its lock ends), unfinished
    /// uploads are aborted after 7 days. Returns what it did and what it could not do.
    fn setup(&self, prefix: &str, lock: bool, dry_run: bool) -> Result<Vec<SetupStep>, StoreError>;
}

/// One step of setting a bucket up, in the words said to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupStep {
    /// Done, already so, or (with `dry_run`) what would be done.
    Done(String),
    /// Could not be done; says what to do instead.
    Failed(String),
}

impl std::fmt::Display for SetupStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupStep::Done(s) | SetupStep::Failed(s) => f.write_str(s),
        }
    }
}

impl ObjectMeta {
    /// The storage class, with S3's default spelled out.
    pub fn class(&self) -> StorageClass {
        self.storage_class.unwrap_or(StorageClass::Standard)
    }
}

/// The condition of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// No object has the key (`If-None-Match: *`).
    Absent,
    /// The object's ETag is this one (`If-Match`).
    Matches(&'a str),
}

/// How to write an object.
#[derive(Debug, Clone)]
pub struct PutOptions {
    pub class: StorageClass,
    /// SHA-256 (hex) of the bytes, stored with the object and, where the store can, checked by it.
    pub sha256: Option<String>,
    /// Object Lock retention for the new version (only stores with `locks()`).
    pub lock: Option<ObjectLock>,
}

impl PutOptions {
    /// A STANDARD object with no SHA-256 and no lock (manifests, test objects).
    pub fn standard() -> PutOptions {
        PutOptions { class: StorageClass::Standard, sha256: None, lock: None }
    }
}

/// An object store. Keys are `/`-separated paths without a leading `/`.
pub trait Store: Send + Sync {
    /// Where this store is, for messages (`s3://bucket`, `file:///mnt/nas`).
    fn describe(&self) -> String;

    /// Every object whose key starts with `prefix`, in key order. Never includes objects still
    /// being written.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Every object whose key starts with `prefix`, in key order, given to `f` one at a time as
    /// the listing arrives (a listing of a whole fleet is never held in memory).
    fn list_each(&self, prefix: &str, f: &mut dyn FnMut(ObjectMeta) -> Result<(), StoreError>) -> Result<(), StoreError> {
        for o in self.list(prefix)? {
            f(o)?;
        }
        Ok(())
    }

    /// One object's metadata, including the stored SHA-256 and its thaw state.
    fn head(&self, key: &str) -> Result<ObjectMeta, StoreError>;

    /// Uploads the file at `path` to `key`. A write barrier: the object appears only complete,
    /// and an interrupted upload never leaves anything that lists or reads as the object.
    /// Re-running after an interruption resumes where the store allows it. With `opts.sha256`,
    /// the bytes are hashed as they are sent and the upload refuses to finish (`Mismatch`,
    /// nothing stored) when they are not those bytes (`check_sent`).
    fn put_file(&self, key: &str, path: &Path, opts: &PutOptions, progress: &Progress) -> Result<(), StoreError>;

    /// Writes a small object (a manifest) whole.
    fn put_bytes(&self, key: &str, bytes: &[u8], opts: &PutOptions) -> Result<(), StoreError>;

    /// Server-side copy of `from` to `to` with `class` (and `lock`, where the store has locks),
    /// keeping the stored SHA-256. Copying onto itself changes the class. Fails with `Archived`
    /// if `from` must be thawed first.
    fn copy(&self, from: &str, to: &str, class: StorageClass, lock: Option<&ObjectLock>) -> Result<(), StoreError>;

    /// A streaming reader of the object's bytes. Fails with `Archived` for an unthawed object.
    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Deletes one object for good: every version of it where the store keeps versions (a
    /// version still locked makes it fail). Deleting a missing object succeeds.
    fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Object Lock, where the store has it.
    fn locks(&self) -> Option<&dyn Locks> {
        None
    }

    /// Asks for an archived object to be thawed for `days` at retrieval `tier` (Bulk, Standard,
    /// Expedited). Potentially asynchronous: `head` reports progress. A repeated request is fine.
    fn request_thaw(&self, key: &str, days: u32, tier: &str) -> Result<(), StoreError>;

    /// Aborts unfinished multipart uploads under `prefix` except those for `keep` keys; returns
    /// how many were aborted.
    fn abort_incomplete(&self, prefix: &str, keep: &[String]) -> Result<usize, StoreError>;

    /// Writes the small object `bytes` to `key` only if `cond` holds (S3's `If-None-Match: *` or
    /// `If-Match`), atomically with the check, and returns the new content's ETag; `Precondition`
    /// when the condition does not hold. A store without conditional writes says so (`Other`).
    /// Whether a store that answers does honour them is for `lease::probe` to find out.
    fn put_if(&self, key: &str, bytes: &[u8], cond: Condition<'_>) -> Result<String, StoreError> {
        let _ = (bytes, cond);
        Err(StoreError::Other(format!("{}/{key}: {} has no conditional writes", self.describe(), self.describe())))
    }

    /// A small object's bytes (up to `max`) with its ETag, for a later `put_if(Matches)`.
    fn get_tagged(&self, key: &str, max: u64) -> Result<(Vec<u8>, String), StoreError> {
        let _ = max;
        Err(StoreError::Other(format!("{}/{key}: {} has no conditional writes", self.describe(), self.describe())))
    }

    /// How far this host's clock is ahead of the store's (negative: behind), from the `Date`
    /// of the store's latest answer; None where the store has no clock of its own or has not
    /// answered yet. An Object Lock ends by the store's clock, not this host's.
    fn clock_skew(&self) -> Option<chrono::Duration> {
        None
    }
}

/// Refuses to finish an upload whose bytes, hashed as they were read and sent, are not the
/// ones `opts.sha256` names: a copy counts as off-site only for the bytes the manifest
/// describes, whatever the store checks on its side.
pub fn check_sent(key: &str, opts: &PutOptions, sent_size: u64, sent_sha256: &str) -> Result<(), StoreError> {
    match &opts.sha256 {
        Some(want) if want != sent_sha256 => Err(StoreError::Mismatch(format!(
            "{key}: the bytes read for upload ({sent_size} bytes, sha256 {sent_sha256}) are not the ones the manifest describes \
             (sha256 {want}): the local file is corrupt or changed; nothing was stored"
        ))),
        _ => Ok(()),
    }
}

/// The ETag of a small object for stores that make their own (a folder, memory): its SHA-256.
pub fn content_etag(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("\"{}\"", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Checks a key before it becomes a path or a request.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.starts_with('/') || key.split('/').any(|c| c.is_empty() || c == "." || c == "..") || key.contains('\0') {
        return Err(StoreError::Other(format!("{key:?} is not a valid object key")));
    }
    Ok(())
}
