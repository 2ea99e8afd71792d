//! Several off-site destinations (`remotes:`): one dump goes to each; a destination holds its
//! own subset of tiers; one failing never stops the others and is named; local copies are
//! released only when every destination that should hold them has confirmed; after a host
//! loss, `--from NAME` and `--from auto` restore.

mod support;

use support::localstack::localstack;
use support::proxy::{Proxy, Verdict};
use support::{Scratch, cluster, db_name};

/// pgtier.yml's `remotes:` with an S3 destination `aws` at `endpoint` and a folder `nas`.
fn remotes(endpoint: &str, bucket: &str, nas: &std::path::Path, nas_tiers: &str) -> String {
    format!(
        "remotes:\n  - name: aws\n    url: s3://{bucket}/p\n    endpoint_url: {endpoint}\n    region: us-east-1\n    force_path_style: true\n  - name: nas\n    url: file://{}\n{nas_tiers}",
        nas.display()
    )
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn two_destinations_each_get_the_night_and_one_failing_never_stops_the_other() {
    let c = cluster();
    let db = db_name("twodest");
    c.create_sample_db(&db, 20);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let nas = tempfile::tempdir().unwrap();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &remotes(&proxy.endpoint, &bucket, nas.path(), "    tiers: [daily, weekly]\n"),
    );
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 1, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n  monthly: {keep: 3, locations: [remote], storage_class: GLACIER}\n",
    );
    // Monday: both destinations get the backup; only aws holds the monthly tier.
    s.ok(&["run", "--now", "2025-01-06T02:00:00Z"]);
    let aws: Vec<String> = localstack().objects(&bucket, "p/").into_iter().map(|o| o.0).collect();
    for tier in ["daily", "weekly", "monthly"] {
        assert!(aws.iter().any(|k| k == &format!("p/shop/production/{tier}/db_20250106_020000.dump.gz")), "aws {tier}: {aws:?}");
    }
    let on_nas = files_under(nas.path());
    for tier in ["daily", "weekly"] {
        assert!(on_nas.contains(&format!("shop/production/{tier}/db_20250106_020000.dump.gz")), "nas {tier}: {on_nas:?}");
    }
    assert!(!on_nas.iter().any(|f| f.contains("/monthly/")), "nas does not hold the monthly tier: {on_nas:?}");

    // Tuesday, with aws refusing everything: nas still gets the night, the run exits 1 naming
    // aws, and Monday's backup (now only weekly, off-site) stays here: aws cannot confirm it.
    proxy.set_rule(|_| Verdict::Fail(503, "ServiceUnavailable"));
    let out = s.cmd(&["run", "--now", "2025-01-07T02:00:00Z"]).env("PGTIER_S3_MAX_ATTEMPTS", "1").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(format!("{stdout}{stderr}").contains("destination aws"), "the broken destination is named:\n{stdout}\n{stderr}");
    assert!(files_under(nas.path()).contains(&"shop/production/daily/db_20250107_020000.dump.gz".to_string()));
    assert!(s.env_dir("shop", "production").join("db_20250106_020000.json").exists(), "kept until every destination confirms");
    let plan = s.ok(&["prune", "--dry-run", "--now", "2025-01-07T03:00:00Z"]);
    assert!(plan.contains("on aws") || plan.contains("keep"), "{plan}");

    // Wednesday, aws back: it catches up, and Monday's local copy goes.
    proxy.set_rule(|_| Verdict::Forward);
    s.ok(&["run", "--now", "2025-01-08T02:00:00Z"]);
    assert!(!s.env_dir("shop", "production").join("db_20250106_020000.json").exists());
    let aws: Vec<String> = localstack().objects(&bucket, "p/").into_iter().map(|o| o.0).collect();
    assert!(aws.iter().any(|k| k == "p/shop/production/daily/db_20250108_020000.dump.gz"), "{aws:?}");

    // list shows both destinations; status names them.
    let listed = s.ok(&["list", "shop", "production", "--all", "--json"]);
    assert!(listed.contains("\"destination\": \"aws\"") && listed.contains("\"destination\": \"nas\""), "{listed}");
    let status = s.ok(&["status", "shop", "production"]);
    assert!(status.contains("\"name\": \"aws\"") && status.contains("\"name\": \"nas\""), "{status}");

    // Host loss: restore from the named destination, and from auto.
    let expected = c.fingerprint(&db);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let from_nas = db_name("from_nas");
    s.ok(&["restore", "shop", "production", "--from", "nas", "--target-db", &from_nas]);
    assert_eq!(c.fingerprint(&from_nas), expected);
    let from_auto = db_name("from_auto");
    let out = s.ok(&["restore", "shop", "production", "--from", "auto", "--target-db", &from_auto, "--json"]);
    assert!(out.contains("\"from\": \"remote\""), "{out}");
    assert_eq!(c.fingerprint(&from_auto), expected);
    // An unknown destination is a usage error naming the configured ones.
    let err = s.fails(2, &["restore", "shop", "production", "--from", "tape", "--target-db", "nowhere"]);
    assert!(err.contains("tape") && err.contains("aws") && err.contains("nas"), "{err}");
}

#[test]
fn destinations_are_validated_at_load() {
    let nas = tempfile::tempdir().unwrap();
    let s = Scratch::new(
        "shop:\n  database:\n    type: postgresql\n    user: u\n    databases: {production: shop}\n",
        &format!("remotes:\n  - name: nas\n    url: file://{}\n    tiers: [daily]\n", nas.path().display()),
    );
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 7, locations: [local, remote]}\n  monthly: {keep: 3, locations: [remote], object_lock: COMPLIANCE}\n",
    );
    // The monthly tier lives off-site but nothing holds it.
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("monthly") && err.contains("no destination holds it"), "{err}");
    // A folder cannot hold a locked tier.
    s.write(
        "pgtier.yml",
        &format!(
            "projects: projects.yml\npolicies: policies\nbackup_root: backups\nremotes:\n  - name: nas\n    url: file://{}\n",
            nas.path().display()
        ),
    );
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("remotes[0].tiers") && err.contains("object_lock"), "{err}");
    // Both forms at once, duplicate names, reserved names.
    for (yaml, want) in [
        ("remote:\n  url: file:///x\nremotes:\n  - name: a\n    url: file:///y\n", "not both"),
        ("remotes:\n  - name: a\n    url: file:///x\n  - name: a\n    url: file:///y\n", "names two destinations"),
        ("remotes:\n  - name: auto\n    url: file:///x\n", "reserved"),
    ] {
        s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\n");
        s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: backups\n{yaml}"));
        let err = s.fails(2, &["config", "check"]);
        assert!(err.contains(want), "{yaml}: {err}");
    }
}
