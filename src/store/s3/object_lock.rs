//! S3 Object Lock: retention on writes, reading it back, deleting every version of a key, the
//! operations `audit` uses to prove a lock holds, and `remote init`'s bucket set-up.

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, VersioningConfiguration,
};
use chrono::{DateTime, Utc};

use super::S3Store;
use crate::store::{BucketState, Locks, ObjectLock, SetupStep, StoreError, check_key};
use crate::vocab::LockMode;

pub(super) fn mode(l: &ObjectLock) -> ObjectLockMode {
    ObjectLockMode::from(l.mode.as_str())
}

pub(super) fn until(l: &ObjectLock) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(l.until.timestamp())
}

pub(super) fn from_head(mode: Option<&ObjectLockMode>, until: Option<&aws_smithy_types::DateTime>) -> Option<ObjectLock> {
    let mode = LockMode::parse(mode?.as_str())?;
    let until = DateTime::<Utc>::from_timestamp(until?.secs(), 0)?;
    Some(ObjectLock { mode, until })
}

/// Base64 of the MD5 of `bytes`, for `Content-MD5`.
pub(super) fn md5_b64(bytes: &[u8]) -> String {
    use md5::Digest as _;
    super::b64(&md5::Md5::digest(bytes))
}

/// For stores that reject the newer checksum headers: a request the SDK gives a checksum even
/// when only required (bucket settings, retention) carries a Content-MD5 of its body instead.
pub(super) fn old_style(r: &mut aws_sdk_s3::config::http::HttpRequest) {
    let names: Vec<String> = r
        .headers()
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| k.starts_with("x-amz-checksum-") || k == "x-amz-sdk-checksum-algorithm" || k == "x-amz-trailer")
        .collect();
    if names.is_empty() {
        return;
    }
    for n in &names {
        r.headers_mut().remove(n.as_str());
    }
    let md5 = md5_b64(r.body().bytes().unwrap_or_default());
    r.headers_mut().insert("content-md5", md5);
}

/// Sends a fluent request, old style when the newer checksum headers are off.
macro_rules! send {
    ($store:expr, $req:expr) => {
        if $store.legacy() { $req.customize().mutate_request(old_style).send().await } else { $req.send().await }
    };
}

/// The lifecycle rule id pgtier owns for keys under `prefix`.
fn rule_id(prefix: &str) -> String {
    if prefix.is_empty() { "pgtier".to_string() } else { format!("pgtier {prefix}") }
}

impl S3Store {
    /// Deletes every version (and delete marker) of `key`, so nothing is left behind in a
    /// versioned bucket; in an unversioned one that is the object itself.
    pub(super) fn delete_all_versions(&self, key: &str) -> Result<(), StoreError> {
        self.block(async {
            let listed = self.client().list_object_versions().bucket(&self.bucket).prefix(key).send().await;
            let listed = match listed {
                Ok(l) => l,
                // A store without versions: delete the object itself.
                Err(e) if matches!(e.code(), Some("NotImplemented" | "MethodNotAllowed")) => {
                    self.client().delete_object().bucket(&self.bucket).key(key).send().await.map_err(|e| self.other("deleting", key, e))?;
                    return Ok(());
                }
                Err(e) => return Err(self.other("listing the versions of", key, e)),
            };
            let mut ids: Vec<String> =
                listed.versions().iter().filter(|v| v.key() == Some(key)).filter_map(|v| v.version_id().map(str::to_string)).collect();
            ids.extend(listed.delete_markers().iter().filter(|m| m.key() == Some(key)).filter_map(|m| m.version_id().map(str::to_string)));
            if ids.is_empty() {
                // Nothing listed (a store that lists no versions): delete the current object.
                self.client().delete_object().bucket(&self.bucket).key(key).send().await.map_err(|e| self.other("deleting", key, e))?;
                return Ok(());
            }
            for id in ids {
                let req = self.client().delete_object().bucket(&self.bucket).key(key);
                let req = if id == "null" { req } else { req.version_id(&id) };
                req.send().await.map_err(|e| self.other("deleting", key, e))?;
            }
            Ok(())
        })
    }
}

impl Locks for S3Store {
    fn put_retention(&self, key: &str, lock: &ObjectLock, bypass_governance: bool) -> Result<(), StoreError> {
        check_key(key)?;
        let retention =
            ObjectLockRetention::builder().mode(ObjectLockRetentionMode::from(lock.mode.as_str())).retain_until_date(until(lock)).build();
        self.block(async {
            let mut req = self.client().put_object_retention().bucket(&self.bucket).key(key).retention(retention);
            if bypass_governance {
                req = req.bypass_governance_retention(true);
            }
            send!(self, req).map_err(|e| self.other("setting the lock of", key, e))?;
            Ok(())
        })
    }

    fn current_version(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        self.block(async {
            let o = self.client().head_object().bucket(&self.bucket).key(key).send().await.map_err(|e| self.other("reading", key, e))?;
            Ok(o.version_id().unwrap_or("null").to_string())
        })
    }

    fn delete_version(&self, key: &str, version: &str, bypass_governance: bool) -> Result<(), StoreError> {
        check_key(key)?;
        self.block(async {
            let mut req = self.client().delete_object().bucket(&self.bucket).key(key).version_id(version);
            if bypass_governance {
                req = req.bypass_governance_retention(true);
            }
            req.send().await.map_err(|e| self.other("deleting a version of", key, e))?;
            Ok(())
        })
    }

    fn bucket(&self) -> Result<BucketState, StoreError> {
        self.block(async {
            match self.client().head_bucket().bucket(&self.bucket).send().await {
                Ok(_) => {}
                Err(e)
                    if matches!(e.code(), Some("NotFound" | "NoSuchBucket"))
                        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
                {
                    return Ok(BucketState::default());
                }
                Err(e) => return Err(self.other("checking the bucket", "", e)),
            }
            let versioning = match self.client().get_bucket_versioning().bucket(&self.bucket).send().await {
                Ok(v) => v.status() == Some(&BucketVersioningStatus::Enabled),
                // Some stores (moto) answer with another XML root the SDK cannot parse; the
                // answer itself still says whether versioning is on.
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
                    .raw_response()
                    .and_then(|r| r.body().bytes())
                    .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
                Err(e) => return Err(self.other("reading the versioning of", "", e)),
            };
            let object_lock = match self.client().get_object_lock_configuration().bucket(&self.bucket).send().await {
                Ok(c) => c.object_lock_configuration().and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled),
                Err(_) => false,
            };
            Ok(BucketState { exists: true, versioning, object_lock })
        })
    }

    fn setup(&self, prefix: &str, lock: bool, dry_run: bool) -> Result<Vec<SetupStep>, StoreError> {
        self.with_fallback(|| self.setup_once(prefix, lock, dry_run))
    }
}

impl S3Store {
    fn setup_once(&self, prefix: &str, lock: bool, dry_run: bool) -> Result<Vec<SetupStep>, StoreError> {
        let state = Locks::bucket(self)?;
        let b = &self.bucket;
        let mut said = Vec::new();
        let would = |s: String| if dry_run { format!("would {s}") } else { s };
        self.block(async {
            if !state.exists {
                said.push(SetupStep::Done(would(format!("create bucket {b}{}", if lock { " with Object Lock" } else { "" }))));
                if !dry_run {
                    let mut req = self.client().create_bucket().bucket(b);
                    // Outside us-east-1, S3 wants the bucket's region said.
                    if let Some(region) = self.region.as_deref().filter(|r| *r != "us-east-1") {
                        req = req.create_bucket_configuration(
                            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                                .build(),
                        );
                    }
                    if lock {
                        req = req.object_lock_enabled_for_bucket(true);
                    }
                    req.send().await.map_err(|e| self.other("creating bucket", "", e))?;
                }
            } else {
                said.push(SetupStep::Done(format!("bucket {b} exists")));
            }
            if state.versioning {
                said.push(SetupStep::Done("versioning: already enabled".into()));
            } else {
                said.push(SetupStep::Done(would("enable versioning".into())));
                if !dry_run {
                    let conf = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
                    let req = self.client().put_bucket_versioning().bucket(b).versioning_configuration(conf);
                    send!(self, req).map_err(|e| self.other("enabling versioning on", "", e))?;
                }
            }
            if lock && state.exists && !state.object_lock {
                if dry_run {
                    said.push(SetupStep::Done("would enable Object Lock on the existing bucket (some stores allow this only at creation)".into()));
                } else {
                    let conf = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
                    let req = self.client().put_object_lock_configuration().bucket(b).object_lock_configuration(conf);
                    match send!(self, req) {
                        Ok(_) => said.push(SetupStep::Done("enabled Object Lock on the existing bucket".into())),
                        Err(e) => said.push(SetupStep::Failed(format!(
                            "COULD NOT enable Object Lock on the existing bucket ({}): this store allows it only at creation; create a new bucket with `pgtier remote init` and point the destination at it",
                            super::describe(&e)
                        ))),
                    }
                }
            } else if lock {
                said.push(SetupStep::Done(if state.exists { "Object Lock: already enabled".into() } else { "Object Lock: enabled at creation".into() }));
            }
            // Lifecycle: keep other rules, replace ours.
            let id = rule_id(prefix);
            let mut rules: Vec<LifecycleRule> = match self.client().get_bucket_lifecycle_configuration().bucket(b).send().await {
                Ok(c) => c.rules().iter().filter(|r| r.id() != Some(id.as_str())).cloned().collect(),
                Err(_) => Vec::new(),
            };
            let filter_prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
            let rule = LifecycleRule::builder()
                .id(&id)
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix(&filter_prefix).build())
                .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
                .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(7).build())
                .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build())
                .build()
                .map_err(|e| StoreError::Other(e.to_string()))?;
            rules.push(rule);
            let what = format!(
                "set lifecycle rule {id:?} on {}: noncurrent versions expire after 1 day (a locked one when its lock ends), unfinished uploads are aborted after 7 days",
                if filter_prefix.is_empty() { "the whole bucket".to_string() } else { filter_prefix.clone() }
            );
            if dry_run {
                said.push(SetupStep::Done(would(what)));
            } else {
                // Said as done only once the store took it.
                let conf = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().map_err(|e| StoreError::Other(e.to_string()))?;
                let req = self.client().put_bucket_lifecycle_configuration().bucket(b).lifecycle_configuration(conf);
                match send!(self, req) {
                    Ok(_) => said.push(SetupStep::Done(what)),
                    Err(e) => said.push(SetupStep::Failed(format!(
                        "COULD NOT set the lifecycle rules ({}): set them by hand, or old versions pile up",
                        super::describe(&e)
                    ))),
                }
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(said)
    }
}
