//! S3-compatible stores: pgtier works on a store that rejects the newer `x-amz-checksum-*`
//! headers (seen through a loopback proxy that answers as such stores do), falling back once
//! with one warning, or never sending them with `request_checksum_calculation: when_required`;
//! the SHA-256 is still checked end to end on every download.

mod support;

use support::localstack::{localstack, moto, remote_yaml_at};
use support::proxy::{Proxy, strict_checksums};
use support::{Scratch, cluster, db_name};

fn big_db(c: &support::Cluster, name: &str) {
    c.psql("postgres", &format!("CREATE DATABASE {name}"));
    // Incompressible rows, so the backup is over 16 MiB and goes up in parts.
    c.psql(name, "CREATE TABLE blob AS SELECT i, decode(string_agg(md5(i::text || j::text), ''), 'hex') AS b FROM generate_series(1, 24) i, generate_series(1, 65536) j GROUP BY i");
}

#[test]
fn a_store_rejecting_the_new_checksum_headers_works_after_one_fallback() {
    let c = cluster();
    let db = db_name("strict");
    big_db(c, &db);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    proxy.set_rule(strict_checksums);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "p"));
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 7, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n",
    );
    s.ok(&["backup", "shop", "production", "--now", "2025-01-06T02:00:00Z"]);
    let out = s.cmd(&["sync", "--now", "2025-01-06T02:00:00Z"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches("rejects the newer checksum headers").count(), 1, "one warning:\n{stderr}");
    assert!(stderr.contains("request_checksum_calculation: when_required"), "it names the setting:\n{stderr}");
    assert!(stdout.contains("uploaded 1, copied 1"), "{stdout}");
    let keys: Vec<String> = localstack().objects(&bucket, "p/").into_iter().map(|o| o.0).collect();
    assert!(keys.contains(&"p/shop/production/weekly/db_20250106_020000.dump.gz".to_string()), "{keys:?}");
    // A restore from that store checks the SHA-256 end to end.
    let expected = c.fingerprint(&db);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let side = db_name("strict_side");
    s.ok(&["restore", "shop", "production", "--from", "remote", "--target-db", &side]);
    assert_eq!(c.fingerprint(&side), expected);
}

#[test]
fn when_required_never_sends_the_new_checksum_headers() {
    let c = cluster();
    let db = db_name("whenreq");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    proxy.set_rule(strict_checksums);
    let remote = remote_yaml_at(&proxy.endpoint, &bucket, "p") + "  request_checksum_calculation: when_required\n";
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote);
    let out = s.cmd(&["run", "--now", "2025-01-06T02:00:00Z"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("rejects"), "no fallback was needed:\n{stderr}");
    assert_eq!(proxy.count(|r| r.has_new_checksums()), 0, "no request carried the newer checksum headers");
    assert!(proxy.count(|r| r.method == "PUT") > 0);
    let side = db_name("whenreq_side");
    s.ok(&["restore", "shop", "production", "--from", "remote", "--target-db", &side]);
    assert_eq!(c.fingerprint(&side), c.fingerprint(&db));
}

/// The same sync and restore scenario on any S3 server: three nights fill the daily (local and
/// off-site), weekly (STANDARD_IA) and monthly (GLACIER) tiers by one upload and server-side
/// copies; a locked tier's copies carry their lock; after the host is lost, the newest backup
/// restores from the remote (thawing the monthly copy when asked for it) and matches the original.
fn sync_and_restore_on(server: &support::localstack::LocalStack, endpoint: &str, what: &str) {
    let c = cluster();
    let db = db_name("compat");
    c.create_sample_db(&db, 30);
    let bucket = server.bucket_name();
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(endpoint, &bucket, "p"));
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 2, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA, object_lock: GOVERNANCE, object_lock_days: 2}\n  monthly: {keep: 3, locations: [remote], storage_class: GLACIER}\n",
    );
    let init = s.ok(&["remote", "init"]);
    assert!(init.contains("Object Lock"), "{what}: {init}");
    let now = chrono::Utc::now();
    let nights: Vec<String> = (0..3).rev().map(|d| (now - chrono::Duration::days(d)).format("%Y-%m-%dT%H:%M:%SZ").to_string()).collect();
    for n in &nights {
        let out = s.cmd(&["run", "--now", n]).output().unwrap();
        assert!(
            out.status.success(),
            "{what}: night {n}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let objects = server.objects(&bucket, "p/shop/production/");
    let first = format!("db_{}", chrono::DateTime::parse_from_rfc3339(&nights[0]).unwrap().format("%Y%m%d_%H%M%S"));
    let class_of = |tier: &str| objects.iter().find(|o| o.0 == format!("p/shop/production/{tier}/{first}.dump.gz")).map(|o| o.1.clone());
    assert_eq!(class_of("monthly").as_deref(), Some("GLACIER"), "{what}: {objects:?}");
    assert_eq!(class_of("weekly").as_deref(), Some("STANDARD_IA"), "{what}: {objects:?}");
    let head =
        server.aws_json(&["s3api", "head-object", "--bucket", &bucket, "--key", &format!("p/shop/production/weekly/{first}.dump.gz")]);
    assert_eq!(head["ObjectLockMode"], "GOVERNANCE", "{what}: {head}");
    // Host loss: the newest backup comes back from the remote, checked against its SHA-256.
    let expected = c.fingerprint(&db);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let side = db_name("compat_side");
    s.ok(&["restore", "shop", "production", "--from", "remote", "--target-db", &side]);
    assert_eq!(c.fingerprint(&side), expected, "{what}");
    // The first backup lives on only in the monthly (GLACIER) and weekly tiers.
    let side2 = db_name("compat_old");
    s.ok(&["restore", "shop", "production", &first, "--from", "remote", "--wait", "2m", "--wait-poll", "1s", "--target-db", &side2]);
    assert!(c.db_exists(&side2), "{what}");
}

#[test]
fn localstack_passes_the_sync_and_restore_scenario() {
    sync_and_restore_on(localstack(), &localstack().endpoint, "LocalStack");
}

#[test]
fn moto_passes_the_sync_and_restore_scenario() {
    sync_and_restore_on(moto(), &moto().endpoint, "moto");
}

#[test]
fn moto_behind_a_strict_checksum_proxy_passes_the_sync_and_restore_scenario() {
    let proxy = Proxy::start(&moto().endpoint);
    proxy.set_rule(strict_checksums);
    sync_and_restore_on(moto(), &proxy.endpoint, "moto behind the strict proxy");
}
