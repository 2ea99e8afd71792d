//! The S3 store (aws-sdk-s3; any S3-compatible endpoint). Large files go up as multipart uploads
//! with parallel parts, each carrying a CRC32C the store checks, and a full-object CRC32C at
//! completion; small ones as one PUT carrying their SHA-256. A killed upload stays invisible and
//! is resumed part by part by the next run; a failed one is aborted. Downloads stream and resume
//! with a ranged GET if the connection drops.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{GlacierJobParameters, MetadataDirective, RestoreRequest, Tier};
use chrono::{DateTime, Utc};

mod download;
mod multipart;
mod object_lock;
mod options;
mod runtime;

pub use options::{S3Options, StaticCredentials};

use runtime::{StoreClock, runtime, until_signal};

use super::{ObjectMeta, PutOptions, Store, StoreError, Thaw, check_key};
use crate::ui::Progress;
use crate::vocab::StorageClass;

/// Objects up to this size go up in one PUT.
const SINGLE_PUT_MAX: u64 = 16 << 20;
/// The smallest part pgtier uses (S3's minimum is 5 MiB).
const MIN_PART: u64 = 8 << 20;
/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;
/// S3's limit for a single CopyObject.
const COPY_MAX: u64 = 5 << 30;

/// An S3 bucket.
pub struct S3Store {
    /// Sends the newer checksum headers where a request supports them.
    full: Client,
    /// Sends them only where an operation requires them, for stores that reject them.
    plain: Client,
    /// Whether to use `plain`: configured (`request_checksum_calculation: when_required`) or
    /// switched on once when the store rejected the headers.
    legacy: std::sync::atomic::AtomicBool,
    bucket: String,
    /// Shared with open downloads, which must outlive the store that started them.
    rt: Arc<tokio::runtime::Runtime>,
    concurrency: usize,
    /// What a request that timed out says: how long, how many attempts, the setting to change.
    patience: String,
    /// The store's clock, as its answers tell it.
    clock: StoreClock,
    /// The region requests go to (a new bucket is made there).
    region: Option<String>,
}

/// The part size that fits `size` in 10,000 parts, whole MiB, at least 8 MiB (a 5 TB object
/// gets 500 MiB parts).
pub fn part_size(size: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS);
    needed.div_ceil(1 << 20).saturating_mul(1 << 20).max(MIN_PART)
}

fn b64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// Whether an error is a store refusing the newer checksum headers or an `aws-chunked` body, as
/// several S3-compatible stores do (`InvalidArgument: Unsupported header 'x-amz-checksum-…'`).
pub(super) fn rejects_checksums(code: Option<&str>, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    matches!(code, Some("InvalidArgument" | "NotImplemented" | "InvalidRequest" | "BadRequest" | "InvalidDigest"))
        && (m.contains("checksum") || m.contains("x-amz-") || m.contains("chunked") || m.contains("trailer"))
}

/// A readable message for an SDK error, with the S3 error code when there is one.
/// What a request without credentials says.
const NO_CREDENTIALS: &str = "no AWS credentials found: pgtier looked in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), the shared files (~/.aws/credentials, AWS_PROFILE), web identity and the instance role; set one of them for this host";

/// Whether the SDK failed for want of credentials: it says so only deep in a dispatch or
/// construction failure's chain, in its own words (read here, at the boundary, once).
fn no_credentials<E: std::error::Error + 'static>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    if !matches!(e, SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)) {
        return false;
    }
    let text = DisplayErrorContext(e).to_string();
    text.contains("credentials")
        && (text.contains("no providers") || text.contains("loading credentials") || text.contains("CredentialsNotLoaded"))
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String {
    if no_credentials(e) {
        return NO_CREDENTIALS.to_string();
    }
    // In words: the S3 error code and message, or the innermost cause, never the SDK's
    // debug rendering of its whole chain.
    let status = http_status(e).map(|s| format!("HTTP {s}")).unwrap_or_else(|| "no HTTP status".into());
    match e {
        SdkError::DispatchFailure(_) => format!("cannot reach the S3 endpoint: {}", crate::error::innermost(e)),
        SdkError::TimeoutError(_) => "the S3 request timed out".to_string(),
        SdkError::ServiceError(_) => match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => format!("{c} ({status})"),
            (None, Some(m)) => format!("{m} ({status})"),
            (None, None) => format!("the store answered {status} without saying why"),
        },
        SdkError::ResponseError(_) => format!("the store's answer could not be read ({status}): {}", crate::error::innermost(e)),
        _ => crate::error::innermost(e),
    }
}

fn http_status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl S3Store {
    /// A client for the configured endpoint: credentials from the standard chain (environment,
    /// profile, instance role), bounded retries with exponential backoff and jitter.
    pub fn new(remote: &S3Options) -> crate::error::Result<S3Store> {
        let rt = runtime()?;
        let region = remote.region.clone();
        let fixed = remote.credentials.clone();
        let conf = rt
            .block_on(until_signal(async move {
                let chain = RegionProviderChain::first_try(region.map(aws_config::Region::new))
                    .or_default_provider()
                    .or_else(aws_config::Region::new("us-east-1"));
                let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(chain);
                if let Some(c) = fixed {
                    loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                        c.access_key_id,
                        c.secret_access_key,
                        None,
                        None,
                        "pgtier-static",
                    ));
                }
                Ok(loader.load().await)
            }))
            .map_err(crate::error::Error::from)?;
        let attempts = std::env::var("PGTIER_S3_MAX_ATTEMPTS").ok().and_then(|v| v.parse().ok()).unwrap_or(remote.attempts).max(1);
        let mut b = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(remote.force_path_style)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(attempts)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .timeout_config(TimeoutConfig::builder().connect_timeout(remote.connect_timeout).read_timeout(remote.timeout).build());
        if let Some(e) = &remote.endpoint_url {
            b = b.endpoint_url(e);
        }
        // Downloads are checked end to end against the manifest's SHA-256 (and size), whatever
        // the store; the SDK's own check of a response checksum adds nothing to that and breaks
        // on stores that compute full-object checksums their own way (moto's CRC32C, say).
        b = b.response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
        let clock = StoreClock::default();
        b = b.interceptor(clock.clone());
        let plain = b
            .clone()
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(S3Store {
            full: Client::from_conf(b.build()),
            plain: Client::from_conf(plain),
            legacy: std::sync::atomic::AtomicBool::new(remote.checksums_when_required),
            bucket: remote.bucket.clone(),
            rt,
            concurrency: remote.concurrency.max(1),
            patience: format!(
                "no answer within {} s, {attempts} attempt{}: the endpoint is stalled or unreachable; check it, or raise timeout_seconds on destination {}",
                remote.timeout.as_secs(),
                if attempts == 1 { "" } else { "s" },
                remote.name
            ),
            clock,
            region: conf.region().map(|r| r.to_string()),
        })
    }

    /// Runs one operation (its requests, the SDK's retries and their backoff) on the store's
    /// runtime until it ends, or until SIGINT or SIGTERM: then it is abandoned at once
    /// (`Cancelled`), so no wait on the network outlives a signal by more than 50 ms.
    pub(super) fn block<T>(&self, op: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        if crate::signals::interrupted() {
            return Err(StoreError::Cancelled);
        }
        self.rt.block_on(until_signal(op))
    }

    /// The client to use now.
    pub(super) fn client(&self) -> &Client {
        if self.legacy() { &self.plain } else { &self.full }
    }

    /// Whether the newer checksum headers are off.
    pub(super) fn legacy(&self) -> bool {
        self.legacy.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs a write; if the store rejects the newer checksum headers, turns them off for the
    /// rest of the process, says so once (naming the setting), and runs it again. The SHA-256 in
    /// the object's metadata is still checked on every download.
    pub(super) fn with_fallback<T>(&self, f: impl Fn() -> Result<T, StoreError>) -> Result<T, StoreError> {
        match f() {
            Err(StoreError::ChecksumsRejected(m)) if !self.legacy() => {
                self.legacy.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!(
                    "s3://{} rejects the newer checksum headers ({m}); writing without them from now on. Set request_checksum_calculation: when_required on this destination to skip this first attempt",
                    self.bucket
                );
                f().map_err(|e| match e {
                    StoreError::ChecksumsRejected(m) => StoreError::Other(m),
                    other => other,
                })
            }
            Err(StoreError::ChecksumsRejected(m)) => Err(StoreError::Other(m)),
            other => other,
        }
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn other<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        what: &str,
        key: &str,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError {
        if rejects_checksums(e.code(), e.message().unwrap_or("")) {
            return StoreError::ChecksumsRejected(format!("{what} {}: {}", self.url(key), describe(&e)));
        }
        if no_credentials(&e) {
            return StoreError::NoCredentials(format!("{what} {}: {}", self.url(key), NO_CREDENTIALS));
        }
        let lock_words = e.message().is_some_and(|m| m.to_ascii_lowercase().contains("object lock"));
        match (e.code(), http_status(&e)) {
            (Some("NoSuchKey" | "NotFound"), _) | (_, Some(404))
                if e.code() != Some("NoSuchBucket") && e.code() != Some("NoSuchUpload") =>
            {
                StoreError::NotFound(self.url(key))
            }
            (Some("InvalidObjectState"), _) => StoreError::Archived(self.url(key)),
            (Some("InvalidRequest"), _) if lock_words => StoreError::Locked(format!(
                "{what} {}: bucket {:?} has no Object Lock, which a locked tier needs; run `pgtier remote init`",
                self.url(key),
                self.bucket
            )),
            (Some("NoSuchBucket"), _) => StoreError::NoSuchBucket(format!(
                "{what} {}: bucket {:?} does not exist (create it, or check remote.url)",
                self.url(key),
                self.bucket
            )),
            (Some("AccessDenied"), _) if lock_words => StoreError::Locked(format!("{what} {}: {}", self.url(key), describe(&e))),
            (Some("AccessDenied"), _) | (None, Some(403)) => {
                StoreError::AccessDenied(format!("{what} {}: access denied (check the credentials and the bucket policy)", self.url(key)))
            }
            (Some("PreconditionFailed"), _) | (_, Some(412)) => {
                StoreError::Precondition(format!("{what} {}: {}", self.url(key), describe(&e)))
            }
            _ if matches!(e, SdkError::TimeoutError(_)) || matches!(&e, SdkError::DispatchFailure(d) if d.is_timeout()) => {
                StoreError::Unreachable(format!("{what} {}: {}", self.url(key), self.patience))
            }
            _ if matches!(e, SdkError::DispatchFailure(_)) => {
                StoreError::Unreachable(format!("{what} {}: {}", self.url(key), describe(&e)))
            }
            _ => StoreError::Other(format!("{what} {}: {}", self.url(key), describe(&e))),
        }
    }

    /// One PUT of a small object, carrying its SHA-256 for the store to check (unless the
    /// newer checksum headers are off).
    fn put_bytes_once(&self, key: &str, bytes: &[u8], opts: &PutOptions) -> Result<(), StoreError> {
        // Read once: a fallback on another thread must not change this request half-way.
        let legacy = self.legacy();
        let sha = match (&opts.sha256, legacy) {
            (_, true) => None,
            (Some(h), false) => Some(hex::decode(h).map_err(|_| StoreError::Other(format!("{key}: sha256 is not hex")))?),
            (None, false) => {
                use sha2::Digest as _;
                Some(sha2::Sha256::digest(bytes).to_vec())
            }
        };
        let client = if legacy { &self.plain } else { &self.full };
        self.block(async {
            let mut req = client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .storage_class(opts.class.as_str().into())
                .body(ByteStream::from(bytes.to_vec()));
            if let Some(sha) = &sha {
                req = req.checksum_sha256(b64(sha));
            }
            if legacy || opts.lock.is_some() {
                // Every store checks an MD5, and Object Lock requires one (or an SDK checksum
                // algorithm header, which not every store takes from an explicit checksum).
                req = req.content_md5(object_lock::md5_b64(bytes));
            }
            if let Some(s) = &opts.sha256 {
                req = req.metadata("sha256", s);
            }
            if let Some(l) = &opts.lock {
                req = req.object_lock_mode(object_lock::mode(l)).object_lock_retain_until_date(object_lock::until(l));
            }
            req.send().await.map_err(|e| self.other("writing", key, e))?;
            Ok(())
        })
    }

    /// One conditional PUT of a small object; its ETag.
    fn put_if_once(&self, key: &str, bytes: &[u8], cond: super::Condition<'_>) -> Result<String, StoreError> {
        let legacy = self.legacy();
        let client = if legacy { &self.plain } else { &self.full };
        self.block(async {
            let mut req = client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                // A bucket with Object Lock wants an integrity header on every write.
                .content_md5(object_lock::md5_b64(bytes))
                .body(ByteStream::from(bytes.to_vec()));
            req = match cond {
                super::Condition::Absent => req.if_none_match("*"),
                super::Condition::Matches(etag) => req.if_match(etag),
            };
            let out = req.send().await.map_err(|e| self.other("writing", key, e))?;
            out.e_tag().map(str::to_string).ok_or_else(|| StoreError::Other(format!("writing {}: the store gave no ETag", self.url(key))))
        })
    }

    fn put_single(&self, key: &str, path: &Path, opts: &PutOptions, progress: &Progress) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut crate::fsutil::open_own(path).map_err(|e| StoreError::Other(e.to_string()))?, &mut bytes)
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        let len = bytes.len() as u64;
        {
            use sha2::Digest as _;
            super::check_sent(&self.url(key), opts, len, &hex::encode(sha2::Sha256::digest(&bytes)))?;
        }
        self.put_bytes_once(key, &bytes, opts)?;
        progress.inc(len);
        Ok(())
    }
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
fn encode_key(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parses `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`.
fn parse_restore(header: Option<&str>, archived: bool) -> Thaw {
    match header {
        None if archived => Thaw::Needed,
        None => Thaw::NotNeeded,
        Some(h) if h.contains("ongoing-request=\"true\"") => Thaw::InProgress,
        Some(h) => {
            let until = h
                .split("expiry-date=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                .map(|d| d.with_timezone(&Utc));
            Thaw::Done { until }
        }
    }
}

fn to_utc(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl Store for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        self.list_each(prefix, &mut |o| {
            out.push(o);
            Ok(())
        })?;
        Ok(out)
    }

    /// Page by page, each page's request made and answered before `f` sees its objects (so
    /// `f` may use the store itself).
    fn list_each(&self, prefix: &str, f: &mut dyn FnMut(ObjectMeta) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut token: Option<String> = None;
        loop {
            let page = self.block(async {
                self.client()
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| self.other("listing", prefix, e))
            })?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let class = o.storage_class().and_then(|c| StorageClass::parse(c.as_str()));
                f(ObjectMeta {
                    key: key.to_string(),
                    size: o.size().unwrap_or(0) as u64,
                    storage_class: class,
                    last_modified: to_utc(o.last_modified()),
                    sha256: None,
                    thaw: if class.is_some_and(StorageClass::needs_thaw) { Thaw::Needed } else { Thaw::NotNeeded },
                    lock: None,
                    content_sha256: None,
                })?;
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(()),
            }
        }
    }

    fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        check_key(key)?;
        self.block(async {
            let mut req = self.client().head_object().bucket(&self.bucket).key(key);
            if !self.legacy() {
                // The store's own checksum of the bytes, where it keeps one for the whole object.
                req = req.checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled);
            }
            let o = req.send().await.map_err(|e| self.other("reading", key, e))?;
            let class = o.storage_class().and_then(|c| StorageClass::parse(c.as_str()));
            let content_sha256 = o
                .checksum_sha256()
                .filter(|_| o.checksum_type() != Some(&aws_sdk_s3::types::ChecksumType::Composite))
                .filter(|c| !c.contains('-'))
                .and_then(|c| aws_smithy_types::base64::decode(c).ok())
                .filter(|b| b.len() == 32)
                .map(hex::encode);
            Ok(ObjectMeta {
                key: key.to_string(),
                size: o.content_length().unwrap_or(0) as u64,
                storage_class: class,
                last_modified: to_utc(o.last_modified()),
                sha256: o.metadata().and_then(|m| m.get("sha256")).cloned(),
                thaw: parse_restore(o.restore(), class.is_some_and(StorageClass::needs_thaw)),
                lock: object_lock::from_head(o.object_lock_mode(), o.object_lock_retain_until_date()),
                content_sha256,
            })
        })
    }

    fn put_file(&self, key: &str, path: &Path, opts: &PutOptions, progress: &Progress) -> Result<(), StoreError> {
        check_key(key)?;
        let size = crate::fsutil::open_own(path)
            .and_then(|f| f.metadata().map_err(|e| crate::error::Error::io(path, e)))
            .map_err(|e| StoreError::Other(e.to_string()))?
            .len();
        self.with_fallback(|| {
            if size <= SINGLE_PUT_MAX { self.put_single(key, path, opts, progress) } else { self.put_multipart(key, path, opts, progress) }
        })
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], opts: &PutOptions) -> Result<(), StoreError> {
        check_key(key)?;
        self.with_fallback(|| self.put_bytes_once(key, bytes, opts))
    }

    fn copy(&self, from: &str, to: &str, class: StorageClass, lock: Option<&super::ObjectLock>) -> Result<(), StoreError> {
        check_key(from)?;
        check_key(to)?;
        let src = self.head(from)?;
        if !src.thaw.readable() {
            return Err(StoreError::Archived(self.url(from)));
        }
        if src.size > COPY_MAX {
            return self.copy_multipart(from, to, class, src.size, src.sha256, lock);
        }
        self.block(async {
            let mut req = self
                .client()
                .copy_object()
                .bucket(&self.bucket)
                .key(to)
                .copy_source(format!("{}/{}", self.bucket, encode_key(from)))
                .storage_class(class.as_str().into())
                .metadata_directive(MetadataDirective::Copy);
            if let Some(l) = lock {
                req = req.object_lock_mode(object_lock::mode(l)).object_lock_retain_until_date(object_lock::until(l));
            }
            let sent = if lock.is_some() {
                // Some stores (moto) want a Content-MD5 on any write that sets a lock, even a
                // copy: the MD5 of its empty request body satisfies them and S3 alike.
                req.customize()
                    .mutate_request(|r| {
                        r.headers_mut().insert("content-md5", object_lock::md5_b64(b""));
                    })
                    .send()
                    .await
            } else {
                req.send().await
            };
            sent.map_err(|e| self.other(&format!("copying {} to", self.url(from)), to, e))?;
            Ok(())
        })
    }

    fn get(&self, key: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        check_key(key)?;
        self.download(key)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        self.delete_all_versions(key)
    }

    fn put_if(&self, key: &str, bytes: &[u8], cond: super::Condition<'_>) -> Result<String, StoreError> {
        check_key(key)?;
        self.with_fallback(|| self.put_if_once(key, bytes, cond))
    }

    fn get_tagged(&self, key: &str, max: u64) -> Result<(Vec<u8>, String), StoreError> {
        check_key(key)?;
        self.block(async {
            let out = self.client().get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| self.other("reading", key, e))?;
            if out.content_length().unwrap_or(0) as u64 > max {
                return Err(StoreError::Other(format!("reading {}: larger than {max} bytes", self.url(key))));
            }
            let etag = out.e_tag().map(str::to_string).unwrap_or_default();
            let body = out.body.collect().await.map_err(|e| StoreError::Unreachable(format!("reading {}: {e}", self.url(key))))?;
            Ok((body.into_bytes().to_vec(), etag))
        })
    }

    fn locks(&self) -> Option<&dyn super::Locks> {
        Some(self)
    }

    fn clock_skew(&self) -> Option<chrono::Duration> {
        self.clock.0.lock().ok().and_then(|s| *s)
    }

    fn request_thaw(&self, key: &str, days: u32, tier: &str) -> Result<(), StoreError> {
        check_key(key)?;
        self.block(async {
            let params = GlacierJobParameters::builder().tier(Tier::from(tier)).build().map_err(|e| StoreError::Other(e.to_string()))?;
            let req = RestoreRequest::builder().days(days as i32).glacier_job_parameters(params).build();
            match self.client().restore_object().bucket(&self.bucket).key(key).restore_request(req).send().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("RestoreAlreadyInProgress") => Ok(()),
                Err(e) => Err(self.other("requesting a thaw of", key, e)),
            }
        })
    }

    fn abort_incomplete(&self, prefix: &str, keep: &[String]) -> Result<usize, StoreError> {
        self.block(async {
            let mut n = 0;
            let mut key_marker: Option<String> = None;
            let mut id_marker: Option<String> = None;
            loop {
                let page = self
                    .client()
                    .list_multipart_uploads()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_key_marker(key_marker.clone())
                    .set_upload_id_marker(id_marker.clone())
                    .send()
                    .await
                    .map_err(|e| self.other("listing uploads under", prefix, e))?;
                for u in page.uploads() {
                    let (Some(k), Some(id)) = (u.key(), u.upload_id()) else { continue };
                    if keep.iter().any(|x| x == k) {
                        continue;
                    }
                    self.client()
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(k)
                        .upload_id(id)
                        .send()
                        .await
                        .map_err(|e| self.other("aborting the upload of", k, e))?;
                    tracing::info!("aborted an unfinished upload of {}", self.url(k));
                    n += 1;
                }
                if page.is_truncated() == Some(true) {
                    key_marker = page.next_key_marker().map(str::to_string);
                    id_marker = page.next_upload_id_marker().map(str::to_string);
                } else {
                    return Ok(n);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_fit_five_terabytes_in_ten_thousand_parts() {
        assert_eq!(part_size(1 << 30), 8 << 20);
        assert_eq!(part_size(80 << 30), 9 << 20);
        let five_tb = 5u64 * 1024 * 1024 * 1024 * 1024;
        let p = part_size(five_tb);
        assert!(five_tb.div_ceil(p) <= 10_000 && p.is_multiple_of(1 << 20), "{p}");
        assert!(p <= 5 << 30, "parts are at most 5 GiB");
    }

    #[test]
    fn restore_headers() {
        assert_eq!(parse_restore(None, true), Thaw::Needed);
        assert_eq!(parse_restore(None, false), Thaw::NotNeeded);
        assert_eq!(parse_restore(Some("ongoing-request=\"true\""), true), Thaw::InProgress);
        let done = parse_restore(Some("ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\""), true);
        assert!(matches!(done, Thaw::Done { until: Some(_) }));
    }
}
