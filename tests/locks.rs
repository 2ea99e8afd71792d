//! Immutable tiers on LocalStack, which enforces Object Lock on versions: `remote init` makes the
//! bucket; a locked tier's copy cannot be deleted or have its lock shortened with the aws CLI;
//! sync keeps it with the reason until its date, then deletes it for real (no version left);
//! audit proves the locks with its canary, reports the horizon, and finds an unlocked copy in a
//! locked tier. Lock dates are real ones: the store judges them by its own clock.

mod support;

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use support::localstack::localstack;
use support::{Scratch, cluster, db_name, json};

fn at(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn versions(bucket: &str, key: &str) -> usize {
    let v = localstack().aws_json(&["s3api", "list-object-versions", "--bucket", bucket, "--prefix", key]);
    v["Versions"].as_array().map_or(0, |a| a.len()) + v["DeleteMarkers"].as_array().map_or(0, |a| a.len())
}

#[test]
fn a_locked_tier_keeps_its_copies_until_their_date_then_lets_them_go() {
    // Not across midnight: the two nights below must fall on consecutive days.
    while Utc::now().num_seconds_from_midnight() > 86_400 - 120 {
        std::thread::sleep(Duration::from_secs(5));
    }
    let c = cluster();
    let db = db_name("locked");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket_name();
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &localstack().remote_yaml(&bucket, "p"));
    let policy = "tiers:\n  daily: {keep: 1, locations: [local, remote], object_lock: COMPLIANCE, object_lock_days: 1}\n  weekly: {keep: 4, locations: [remote]}\n";
    s.write("policies/default.yml", policy);

    // remote init creates the bucket with versioning, Object Lock and the lifecycle rules.
    let dry = s.ok(&["remote", "init", "--dry-run"]);
    assert!(dry.contains("would create bucket") && dry.contains("Object Lock"), "{dry}");
    let init = s.ok(&["remote", "init"]);
    assert!(init.contains(&format!("create bucket {bucket} with Object Lock")), "{init}");
    let lock_conf = localstack().aws_json(&["s3api", "get-object-lock-configuration", "--bucket", &bucket]);
    assert_eq!(lock_conf["ObjectLockConfiguration"]["ObjectLockEnabled"], "Enabled", "{lock_conf}");
    let versioning = localstack().aws_json(&["s3api", "get-bucket-versioning", "--bucket", &bucket]);
    assert_eq!(versioning["Status"], "Enabled");
    let lifecycle = localstack().aws_json(&["s3api", "get-bucket-lifecycle-configuration", "--bucket", &bucket]);
    assert!(lifecycle.to_string().contains("NoncurrentVersionExpiration"), "{lifecycle}");
    assert!(s.ok(&["remote", "init"]).contains("versioning: already enabled"), "init is idempotent");

    // Night 1, dated a day before now + 40 s: its daily copy is locked until now + 40 s.
    let t0 = Utc::now().with_nanosecond(0).unwrap();
    let night1 = t0 - chrono::Duration::days(1) + chrono::Duration::seconds(40);
    s.ok(&["run", "--now", &at(night1)]);
    let stem = format!("db_{}", night1.format("%Y%m%d_%H%M%S"));
    let key = format!("p/shop/production/daily/{stem}.dump.gz");
    let head = localstack().aws_json(&["s3api", "head-object", "--bucket", &bucket, "--key", &key]);
    assert_eq!(head["ObjectLockMode"], "COMPLIANCE", "{head}");
    let until: DateTime<Utc> = head["ObjectLockRetainUntilDate"].as_str().unwrap().parse().unwrap();
    assert_eq!(until, night1 + chrono::Duration::days(1), "the lock follows the tier's rule (object_lock_days: 1)");
    let manifest_head =
        localstack().aws_json(&["s3api", "head-object", "--bucket", &bucket, "--key", &format!("p/shop/production/daily/{stem}.json")]);
    assert_eq!(manifest_head["ObjectLockMode"], "COMPLIANCE", "the manifest is locked too");

    // Whoever holds the credentials cannot delete the locked version or shorten its lock.
    let version = head["VersionId"].as_str().unwrap().to_string();
    let del = localstack().aws(&["s3api", "delete-object", "--bucket", &bucket, "--key", &key, "--version-id", &version]);
    assert!(!del.status.success(), "deleting a locked version must fail");
    let shorter = at(t0 + chrono::Duration::seconds(5));
    let retention = format!("Mode=COMPLIANCE,RetainUntilDate={shorter}");
    let short = localstack().aws(&["s3api", "put-object-retention", "--bucket", &bucket, "--key", &key, "--retention", &retention]);
    assert!(!short.status.success(), "shortening a COMPLIANCE lock must fail");

    // Night 2: the daily tier no longer keeps night 1, but its copy is locked: it is kept with
    // the reason, and nothing fails.
    let night2 = t0 + chrono::Duration::seconds(5);
    let plan = s.ok(&["sync", "--dry-run", "--now", &at(night2)]);
    s.ok(&["run", "--now", &at(night2)]);
    let plan_after = s.ok(&["sync", "--dry-run", "--now", &at(night2)]);
    assert!(plan.contains("locked (COMPLIANCE) until") || plan_after.contains("locked (COMPLIANCE) until"), "{plan}\n{plan_after}");
    assert!(versions(&bucket, &key) >= 1);
    let audit = s.run(&["-v", "audit", "--now", &at(night2)]);
    let audit_out = String::from_utf8_lossy(&audit.stdout);
    assert!(audit_out.contains("kept until") && audit_out.contains("locked (COMPLIANCE)"), "{audit_out}");
    assert!(
        audit_out.contains("daily on default: COMPLIANCE") && audit_out.contains("delete refused") && audit_out.contains("shorten refused"),
        "{audit_out}"
    );
    assert!(!audit_out.contains("lock-not-enforced") && !audit_out.contains("lock-can-be-shortened"), "{audit_out}");

    // Once the lock has ended (real time), the next sync deletes the copy for real.
    while Utc::now() <= until + chrono::Duration::seconds(1) {
        std::thread::sleep(Duration::from_millis(500));
    }
    s.ok(&["sync", "--now", &at(Utc::now())]);
    assert_eq!(versions(&bucket, &key), 0, "no version left behind");
    assert_eq!(versions(&bucket, &format!("p/shop/production/daily/{stem}.json")), 0);

    // A tier that becomes locked: its copies already there are found unlocked, then locked by sync.
    s.write(
        "policies/default.yml",
        &policy.replace("weekly: {keep: 4, locations: [remote]}", "weekly: {keep: 4, locations: [remote], object_lock: GOVERNANCE}"),
    );
    let audit = s.run(&["audit", "--json", "--now", &at(Utc::now())]);
    let v: serde_json::Value = json(&audit.stdout);
    let rules: Vec<String> = v["envs"][0]["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap().to_string()).collect();
    assert!(rules.contains(&"unlocked-copy".to_string()), "{v}");
    let synced = s.ok(&["sync", "--now", &at(Utc::now())]);
    assert!(synced.contains("lock "), "{synced}");
    let weekly = format!("p/shop/production/weekly/{stem}.dump.gz");
    let head = localstack().aws_json(&["s3api", "head-object", "--bucket", &bucket, "--key", &weekly]);
    assert_eq!(head["ObjectLockMode"], "GOVERNANCE", "{head}");
    let audit = s.run(&["audit", "--json", "--now", &at(Utc::now())]);
    let v: serde_json::Value = json(&audit.stdout);
    let rules: Vec<String> = v["envs"][0]["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap().to_string()).collect();
    assert!(!rules.contains(&"unlocked-copy".to_string()), "{v}");
    // LocalStack's test credentials may bypass GOVERNANCE retention, and audit says so.
    assert!(rules.contains(&"governance-bypass".to_string()), "{v}");
    let locks = v["envs"][0]["locks"].as_array().unwrap();
    assert!(locks.iter().any(|l| l["tier"] == "weekly" && l["mode"] == "GOVERNANCE" && l["locked_copies"].as_u64() >= Some(1)), "{v}");
}

#[test]
fn a_locked_tier_on_a_bucket_without_object_lock_is_a_finding() {
    let c = cluster();
    let db = db_name("nolock");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket();
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &localstack().remote_yaml(&bucket, "p"));
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 7, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], object_lock: GOVERNANCE}\n",
    );
    s.ok(&["backup", "shop", "production"]);
    let out = s.run(&["audit"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("lock-not-enabled") && stdout.contains("pgtier remote init"), "{stdout}");
}
