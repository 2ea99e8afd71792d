//! The store conformance suite against LocalStack's S3 (the local-folder and memory stores run
//! it in unit tests).

mod support;

use pgtier::config::{RemoteConfig, RemoteUrl};
use pgtier::store::{S3Store, Store, conformance};
use support::localstack::localstack;

fn s3(bucket: &str) -> S3Store {
    let ls = localstack();
    // SAFETY (test set-up): the SDK reads credentials from the environment; set before any thread reads it.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let remote = RemoteConfig {
        url: RemoteUrl::S3 { bucket: bucket.into(), prefix: String::new() },
        endpoint_url: Some(ls.endpoint.clone()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        restore_tier: "Standard".into(),
        restore_days: 1,
        concurrency: 4,
    };
    S3Store::new(&remote, bucket).unwrap()
}

#[test]
fn s3_store_conforms() {
    let bucket = localstack().bucket();
    let store = s3(&bucket);
    conformance::run_all(&store, "conf", true);
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
