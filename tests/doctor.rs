//! `pgtier doctor`: on a good set-up (PostgreSQL, LocalStack made by `remote init`, age with its
//! identity, an alert command) every check is ok and a test alert arrives; each thing an operator
//! gets wrong (the port, the bucket, the credentials, the identity, the backup folder) gives
//! exactly one FAIL line naming it, with a fix, and exit 1. `config check` stays offline.

mod support;

use std::path::Path;
use std::process::Command;

use support::localstack::localstack;
use support::{Scratch, cluster, db_name, free_port, require_tool};

fn age_key(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    require_tool("age-keygen", "install the Debian package age (scripts/setup does)");
    let path = dir.join(name);
    let out = Command::new("age-keygen").arg("-o").arg(&path).output().unwrap();
    assert!(out.status.success(), "age-keygen: {}", String::from_utf8_lossy(&out.stderr));
    (path, String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string())
}

/// The doctor's lines that failed.
fn fail_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("FAIL")).collect()
}

/// Runs doctor, expects exit 1 and exactly one FAIL line containing every needle; returns stdout.
fn one_failure(out: std::process::Output, needles: &[&str]) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "doctor should exit 1:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let fails = fail_lines(&stdout);
    assert_eq!(fails.len(), 1, "exactly one FAIL line expected:\n{stdout}");
    for n in needles {
        assert!(fails[0].contains(n), "the FAIL line should name {n:?}:\n{stdout}");
    }
    // The line after it says what to do.
    let after = stdout.lines().skip_while(|l| !l.starts_with("FAIL")).nth(1).unwrap_or_default();
    assert!(after.contains("fix:"), "a FAIL line is followed by its fix:\n{stdout}");
    stdout
}

#[test]
fn doctor_is_all_ok_on_a_good_set_up_and_names_each_broken_thing() {
    let c = cluster();
    let db = db_name("doctor");
    c.create_sample_db(&db, 5);
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = age_key(keys.path(), "key.txt");
    let (other, _) = age_key(keys.path(), "other.txt");
    let bucket = localstack().bucket_name();
    let alerts = keys.path().join("alerts.jsonl");
    let projects = format!("shop:\n{}", c.database_block(&[("production", &db)]));
    let agent = |identity: &Path, bucket: &str| {
        format!(
            "encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\nalerts:\n  command: cat >> '{}'\n{}",
            identity.display(),
            alerts.display(),
            localstack().remote_yaml(bucket, "p")
        )
    };
    let s = Scratch::new(&projects, &agent(&identity, &bucket));
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 3, locations: [local, remote]}\n");

    // The bucket does not exist yet: one failure, naming it and `remote init`.
    let out = one_failure(s.run(&["doctor"]), &["remote default", &bucket, "does not exist"]);
    assert!(out.contains("pgtier remote init"), "{out}");
    // config check stays offline: it says nothing about the bucket.
    s.ok(&["config", "check"]);

    // All good: every line ok, and the test alert arrives.
    s.ok(&["remote", "init"]);
    let out = s.ok(&["doctor", "--send-test-alert"]);
    for l in out.lines().filter(|l| !l.is_empty() && !l.starts_with("all ")) {
        assert!(l.starts_with("ok "), "every check should be ok on a good set-up: {l}\n{out}");
    }
    for needle in [
        "backup_root",
        "shop/production database",
        "PostgreSQL 15",
        "pg_dump 15",
        "privileges",
        "snapshot",
        "encryption",
        "this host's key opens",
        "remote default",
        "wrote, read back and deleted",
        "versioning on",
        "test alert delivered",
    ] {
        assert!(out.contains(needle), "{needle}:\n{out}");
    }
    let alert = std::fs::read_to_string(&alerts).expect("the test alert reached the alert command");
    assert!(alert.contains("\"operation\":\"doctor\""), "{alert}");
    // It left nothing behind on the store.
    assert!(localstack().objects(&bucket, "").is_empty(), "doctor's scratch object was left in the bucket");
    // --json: one object in the envelope, every check in it.
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["doctor", "--json"])).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["command"], "doctor");
    assert_eq!(v["result"]["ok"], true);
    assert!(v["result"]["checks"].as_array().unwrap().iter().all(|c| c["status"] == "ok"), "{v}");

    // A wrong port.
    let port = free_port();
    s.write("projects.yml", &projects.replace(&format!("port: {}", c.port), &format!("port: {port}")));
    one_failure(s.run(&["doctor"]), &["shop/production database", &port.to_string()]);
    s.write("projects.yml", &projects);

    // No AWS credentials anywhere pgtier looks.
    let home = tempfile::tempdir().unwrap();
    let out = s
        .cmd(&["doctor"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("HOME", home.path())
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .output()
        .unwrap();
    let out = one_failure(out, &["remote default", "no AWS credentials found"]);
    assert!(out.contains("AWS_ACCESS_KEY_ID"), "the fix says where credentials go: {out}");

    // An identity that does not belong to the recipients.
    s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: backups\n{}", agent(&other, &bucket)));
    one_failure(s.run(&["doctor"]), &["shop encryption", "does not open"]);

    // A backup_root that cannot be written (a regular file stands where a folder should be).
    let blocker = s.write("not-a-folder", "x");
    s.write(
        "pgtier.yml",
        &format!("projects: projects.yml\npolicies: policies\nbackup_root: {}/backups\n{}", blocker.display(), agent(&identity, &bucket)),
    );
    one_failure(s.run(&["doctor"]), &["backup_root", "not-a-folder"]);

    // One project/env only, and an unknown one is a usage error.
    s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: backups\n{}", agent(&identity, &bucket)));
    s.ok(&["doctor", "shop", "production"]);
    let err = s.fails(2, &["doctor", "nope"]);
    assert!(err.contains("unknown project \"nope\""), "{err}");
}
