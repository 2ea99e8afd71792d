//! The store conformance suite against every store: the local folder, the in-memory store, a
//! store seen through a prefix, and S3 on LocalStack.

mod conformance;
mod support;

use std::sync::Arc;

use conformance::Capabilities;
use pgtier::remote::PrefixStore;
use pgtier::store::{LocalStore, MemoryStore, S3Options, S3Store, StaticCredentials, Store};
use support::localstack::{localstack, moto};

#[test]
fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(
        &LocalStore::new(dir.path()),
        "conf",
        Capabilities { archive_classes: false, multipart: false, object_lock: false, refuses_shortening: false },
    );
}

#[test]
fn memory_store_conforms() {
    conformance::run_all(
        &MemoryStore::new(2),
        "conf",
        Capabilities { archive_classes: true, multipart: false, object_lock: true, refuses_shortening: true },
    );
}

#[test]
fn a_prefixed_store_conforms_and_stays_inside_its_prefix() {
    let inner = Arc::new(MemoryStore::new(2));
    let outside = pgtier::store::PutOptions::standard();
    inner.put_bytes("elsewhere/x", b"x", &outside).unwrap();
    conformance::run_all(
        &PrefixStore::new(inner.clone(), "backups/pg"),
        "conf",
        Capabilities { archive_classes: true, multipart: false, object_lock: true, refuses_shortening: true },
    );
    assert!(inner.list("").unwrap().iter().all(|o| o.key.starts_with("backups/pg/conf/") || o.key == "elsewhere/x"));
}

fn s3(bucket: &str) -> S3Store {
    s3_at(&localstack().endpoint, bucket)
}

fn s3_at(endpoint: &str, bucket: &str) -> S3Store {
    // Credentials are given, not set in the environment: the test binary is threaded.
    S3Store::new(&S3Options {
        bucket: bucket.into(),
        endpoint_url: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        timeout: std::time::Duration::from_secs(60),
        connect_timeout: std::time::Duration::from_secs(10),
        attempts: 6,
        concurrency: 4,
        checksums_when_required: false,
        name: "default".into(),
        credentials: Some(StaticCredentials { access_key_id: "test".into(), secret_access_key: "test".into() }),
    })
    .unwrap()
}

#[test]
fn s3_store_conforms() {
    let bucket = localstack().bucket();
    let store = s3(&bucket);
    conformance::run_all(
        &store,
        "conf",
        Capabilities { archive_classes: true, multipart: true, object_lock: false, refuses_shortening: false },
    );
    // What the store wrote is what the aws CLI sees.
    let objects = localstack().objects(&bucket, "conf/files/");
    assert!(
        objects.iter().any(|(k, class, size)| k == "conf/files/f2.dump.gz" && class == "STANDARD_IA" && *size == 20 * 1024 * 1024 + 123),
        "{objects:?}"
    );
    let head = localstack().aws_json(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "conf/files/f2.dump.gz",
        "--checksum-mode",
        "ENABLED",
    ]);
    assert!(head["ChecksumCRC32C"].is_string(), "multipart uploads carry a full-object CRC32C: {head}");
    assert_eq!(head["ChecksumType"], "FULL_OBJECT", "{head}");
}

#[test]
fn a_missing_bucket_is_named() {
    let store = s3("pgtier-no-such-bucket");
    let err = store.list("x/").unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn s3_store_with_object_lock_conforms() {
    let bucket = localstack().locked_bucket();
    let store = s3(&bucket);
    conformance::run_all(
        &store,
        "conf",
        Capabilities { archive_classes: true, multipart: false, object_lock: true, refuses_shortening: true },
    );
    // The aws CLI sees the lock pgtier set, and cannot delete the locked version either.
    let head = localstack().aws_json(&["s3api", "head-object", "--bucket", &bucket, "--key", "conf/locked/one.json"]);
    assert_eq!(head["ObjectLockMode"], "COMPLIANCE", "{head}");
    let version = head["VersionId"].as_str().unwrap().to_string();
    let out = localstack().aws(&["s3api", "delete-object", "--bucket", &bucket, "--key", "conf/locked/one.json", "--version-id", &version]);
    assert!(!out.status.success(), "the aws CLI cannot delete a locked version either");
}

#[test]
fn s3_store_conforms_on_moto() {
    let bucket = moto().bucket();
    let store = s3_at(&moto().endpoint, &bucket);
    conformance::run_all(
        &store,
        "conf",
        Capabilities { archive_classes: true, multipart: true, object_lock: false, refuses_shortening: false },
    );
    let locked = moto().locked_bucket();
    let store = s3_at(&moto().endpoint, &locked);
    // moto refuses deleting a locked version but lets a COMPLIANCE lock be shortened.
    conformance::run_all(
        &store,
        "conf",
        Capabilities { archive_classes: false, multipart: false, object_lock: true, refuses_shortening: false },
    );
}
