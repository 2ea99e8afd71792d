//! The reliability campaign: a crash (SIGKILL, via PGTIER_FAILPOINT) at every stage, S3 faults
//! through a misbehaving proxy, full and read-only disks, PostgreSQL failing under pgtier, and
//! concurrent commands. After each: every earlier backup is intact and listed, nothing partial is
//! listed, the database is unchanged, and the next run completes and cleans up.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use support::localstack::{localstack, remote_yaml_at};
use support::proxy::{Proxy, Verdict};
use support::{Cluster, Mount, Scratch, cluster, db_name, json, sh, wait_until};

fn night(day: u32) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2025, 4, 30).unwrap() + chrono::Duration::days(day as i64);
    format!("{t}T02:00:00Z")
}

/// A project with `nights` nightly runs behind it, synced to its own bucket when `s3`.
fn setup(db: &str, nights: u32, s3: bool, extra: &str) -> (Scratch, String) {
    let c = cluster();
    let bucket = if s3 { localstack().bucket() } else { String::new() };
    let remote = if s3 { localstack().remote_yaml(&bucket, "r") } else { String::new() };
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", db)])), &format!("{remote}{extra}"));
    s.write("policies/default.yml", "tiers:\n  daily: {keep_days: 7, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n  monthly: {keep: 3, locations: [remote], storage_class: GLACIER}\n");
    for d in 1..=nights {
        s.ok(&["run", "--now", &night(d)]);
    }
    (s, bucket)
}

/// Runs pgtier with a failpoint armed and checks that it died there.
fn crash(s: &Scratch, point: &str, args: &[&str]) {
    let out = s.cmd(args).env("PGTIER_FAILPOINT", point).output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "expected a crash at {point}; exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Listed local backups: name -> sha256.
fn listed(s: &Scratch) -> BTreeMap<String, String> {
    let v: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--json"]));
    v.as_array().unwrap().iter().map(|r| (r["backup"].as_str().unwrap().to_string(), r["sha256"].as_str().unwrap().to_string())).collect()
}

/// Every backup in `before` is still listed, and its file still has its checksum.
fn assert_intact(s: &Scratch, before: &BTreeMap<String, String>) {
    let now = listed(s);
    for (name, sha) in before {
        assert_eq!(now.get(name), Some(sha), "{name} must still be listed with its checksum");
        let file = std::fs::read_dir(s.env_dir("shop", "production")).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(&format!("{name}.")) && !f.ends_with(".json")
        });
        let file = file.unwrap_or_else(|| panic!("{name}'s file is gone"));
        assert_eq!(sh(&format!("sha256sum '{}' | cut -d' ' -f1", file.display())).trim(), sha, "{name}'s bytes changed");
    }
}

fn hidden(s: &Scratch) -> Vec<String> {
    s.files("shop", "production").into_iter().filter(|f| f.starts_with('.') && f != ".pgtier-lock").collect()
}

/// The next run completes and leaves no temporary files, temporary databases or unfinished uploads.
fn next_run_cleans_up(s: &Scratch, db: &str, bucket: &str, day: u32) {
    s.ok(&["run", "--now", &night(day)]);
    assert_eq!(hidden(s), Vec::<String>::new(), "temporary files left");
    assert!(
        cluster().temp_dbs_for(db).is_empty() && cluster().temp_dbs_for(&format!("verify_{db}")).is_empty(),
        "temporary databases left"
    );
    if !bucket.is_empty() {
        let ups = localstack().aws_json(&["s3api", "list-multipart-uploads", "--bucket", bucket]);
        assert!(ups["Uploads"].as_array().is_none_or(|a| a.is_empty()), "unfinished uploads left: {ups}");
    }
    let audit = s.run(&["audit", "shop", "production", "--now", &night(day)]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(!text.contains("[checksum]") && !text.contains("[broken-manifest]") && !text.contains("[missing-offsite]"), "{text}");
}

// ---- crashes at every stage -------------------------------------------------------------

#[test]
fn crash_while_dumping_compressing_and_encrypting() {
    let db = db_name("crashdump");
    cluster().create_sample_db(&db, 20000);
    let keys = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("age-keygen").arg("-o").arg(keys.path().join("k")).output().expect("age-keygen (install age)");
    let public = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    let (s, bucket) = setup(
        &db,
        2,
        true,
        &format!("encryption: {{type: age, recipients: [{public}], identity_file: {}}}\n", keys.path().join("k").display()),
    );
    let before = listed(&s);
    crash(&s, "stream:1MiB", &["backup", "shop", "production", "--now", &night(3)]);
    assert!(hidden(&s).iter().any(|f| f.ends_with(".partial")), "the crash left its temporary file: {:?}", s.files("shop", "production"));
    assert_eq!(listed(&s).len(), before.len(), "no partial file is listed as a backup");
    assert_intact(&s, &before);
    next_run_cleans_up(&s, &db, &bucket, 3);
    assert_intact(&s, &before);
}

#[test]
fn crash_before_the_rename_and_before_the_manifest() {
    let db = db_name("crashrename");
    cluster().create_sample_db(&db, 500);
    let (s, bucket) = setup(&db, 2, false, "");
    let before = listed(&s);
    crash(&s, "file:before-rename", &["backup", "shop", "production", "--now", &night(3)]);
    assert_eq!(listed(&s), before);
    crash(&s, "backup:before-manifest", &["backup", "shop", "production", "--now", &night(3)]);
    assert_eq!(listed(&s), before, "a file without its manifest is not a backup");
    assert!(s.files("shop", "production").iter().any(|f| f.starts_with("db_20250503_020000") && f.ends_with(".dump.gz")));
    next_run_cleans_up(&s, &db, &bucket, 3);
    assert_intact(&s, &before);
    // The crashed file is gone; the run's own backup of that night took the next name.
    assert!(listed(&s).keys().any(|k| k.starts_with("db_20250503_020000")));
}

#[test]
fn crash_after_an_upload_before_its_manifest() {
    let db = db_name("crashupload");
    cluster().create_sample_db(&db, 200);
    let (s, bucket) = setup(&db, 1, true, "");
    s.ok(&["backup", "shop", "production", "--now", &night(2)]);
    crash(&s, "sync:after-upload", &["sync", "--now", &night(2)]);
    let keys: Vec<String> = localstack().objects(&bucket, "r/").into_iter().map(|o| o.0).collect();
    assert!(
        keys.iter().any(|k| k.ends_with("daily/db_20250502_020000.dump.gz"))
            && !keys.iter().any(|k| k.ends_with("daily/db_20250502_020000.json")),
        "{keys:?}"
    );
    let v: serde_json::Value = json(&s.ok(&["sync", "--json", "--now", &night(2)]));
    assert_eq!(v["uploaded"], 0, "the uploaded copy is confirmed and kept, never uploaded twice: {v}");
    next_run_cleans_up(&s, &db, &bucket, 2);
}

#[test]
fn crash_mid_multipart_upload() {
    let c = cluster();
    let db = db_name("crashmultipart");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    c.psql(&db, "CREATE TABLE blob AS SELECT i, decode(string_agg(md5(i::text || j::text), ''), 'hex') AS b FROM generate_series(1, 24) i, generate_series(1, 65536) j GROUP BY i");
    let (s, bucket) = setup(&db, 1, true, "");
    s.ok(&["backup", "shop", "production", "--now", &night(2)]);
    crash(&s, "upload:after-part", &["sync", "--now", &night(2)]);
    assert!(!localstack().objects(&bucket, "r/").iter().any(|o| o.0.contains("db_20250502")), "a half upload is not an object");
    next_run_cleans_up(&s, &db, &bucket, 2);
    let head = localstack().aws_json(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "r/shop/production/daily/db_20250502_020000.dump.gz",
    ]);
    assert_eq!(head["Metadata"]["sha256"].as_str(), listed(&s).get("db_20250502_020000").map(String::as_str));
}

#[test]
fn crash_after_a_promotion_copy_and_mid_remote_delete() {
    let db = db_name("crashcopy");
    cluster().create_sample_db(&db, 100);
    let (s, bucket) = setup(&db, 0, true, "");
    s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    crash(&s, "sync:after-copy", &["sync", "--now", &night(1)]);
    s.ok(&["sync", "--now", &night(1)]);
    let tiers: Vec<String> = localstack().objects(&bucket, "r/").into_iter().filter(|o| o.0.ends_with(".dump.gz")).map(|o| o.1).collect();
    assert_eq!(tiers, ["STANDARD", "GLACIER", "STANDARD_IA"], "daily, monthly and weekly copies");
    // Eight nights later the daily copy goes: crash between its data and its manifest.
    for d in 2..=9 {
        s.ok(&["backup", "shop", "production", "--now", &night(d)]);
    }
    crash(&s, "sync:mid-delete", &["sync", "--now", &night(9)]);
    let keys: Vec<String> = localstack().objects(&bucket, "r/shop/production/daily/").into_iter().map(|o| o.0).collect();
    assert!(
        keys.iter().any(|k| k.ends_with("db_20250501_020000.json")) && !keys.iter().any(|k| k.ends_with("db_20250501_020000.dump.gz")),
        "{keys:?}"
    );
    next_run_cleans_up(&s, &db, &bucket, 9);
    let keys: Vec<String> = localstack().objects(&bucket, "r/shop/production/daily/").into_iter().map(|o| o.0).collect();
    assert!(!keys.iter().any(|k| k.contains("db_20250501_020000")), "the leftover manifest is removed: {keys:?}");
    assert_eq!(
        localstack().objects(&bucket, "r/shop/production/monthly/").iter().filter(|o| o.0.contains("db_20250501")).count(),
        2,
        "the monthly copy is untouched"
    );
}

#[test]
fn crash_during_restore_before_and_during_the_swap() {
    let c = cluster();
    let db = db_name("crashrestore");
    c.create_sample_db(&db, 20000);
    let (s, bucket) = setup(&db, 1, false, "");
    c.psql(&db, "INSERT INTO users (name) VALUES ('written after the backup')");
    let before = c.fingerprint(&db);
    for point in ["stream:1MiB", "restore:before-swap", "restore:mid-swap"] {
        crash(&s, point, &["restore", "shop", "production", "--force", "--now", &night(2)]);
        assert!(c.db_exists(&db), "{point}: the database is still there under its name");
        assert_eq!(c.fingerprint(&db), before, "{point}: the database is unchanged");
        assert!(c.dbs_like(&format!("{db}_pgtier_old")).is_empty(), "{point}: nothing was renamed");
        next_run_cleans_up(&s, &db, &bucket, 2);
    }
}

#[test]
fn crash_during_verify_and_mid_local_delete() {
    let db = db_name("crashverify");
    cluster().create_sample_db(&db, 1000);
    let (s, bucket) = setup(&db, 3, false, "");
    let before = listed(&s);
    crash(&s, "verify:restoring", &["verify", "shop", "production"]);
    next_run_cleans_up(&s, &db, &bucket, 3);
    assert_intact(&s, &before);
    // Prune, killed between the tombstone and the file: finished by the next run.
    for d in 4..=12 {
        s.ok(&["backup", "shop", "production", "--now", &night(d)]);
    }
    crash(&s, "prune:mid-delete", &["prune", "--now", &night(12)]);
    assert!(hidden(&s).iter().any(|f| f.ends_with(".json.deleting")), "{:?}", s.files("shop", "production"));
    // What the policy keeps at night 12 (daily keep_days 7): backups from 6 May on.
    let kept: BTreeMap<String, String> =
        listed(&s).into_iter().filter(|(k, _)| k.split('_').nth(1).is_some_and(|d| d >= "20250506")).collect();
    next_run_cleans_up(&s, &db, &bucket, 12);
    assert_intact(&s, &kept);
}

// ---- S3 faults ---------------------------------------------------------------------------

fn proxied(db: &str) -> (Scratch, String, Proxy) {
    let c = cluster();
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "p"));
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 5, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n",
    );
    (s, bucket, proxy)
}

#[test]
fn s3_going_away_mid_upload_fails_clearly_and_the_next_run_catches_up() {
    let c = cluster();
    let db = db_name("s3down");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    c.psql(&db, "CREATE TABLE blob AS SELECT i, decode(string_agg(md5(i::text || j::text), ''), 'hex') AS b FROM generate_series(1, 24) i, generate_series(1, 65536) j GROUP BY i");
    let (s, bucket, proxy) = proxied(&db);
    s.ok(&["run", "--now", &night(1)]);
    // S3 goes away after two more requests: every connection is cut.
    let start = proxy.count(|_| true) as u64;
    proxy.set_rule(move |r| if r.seq >= start + 2 { Verdict::Drop } else { Verdict::Forward });
    let out = s.cmd(&["run", "--now", &night(2)]).env("PGTIER_S3_MAX_ATTEMPTS", "3").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("sync"), "{text}");
    let local = listed(&s);
    assert!(local.contains_key("db_20250501_020000") && local.contains_key("db_20250502_020000"), "nothing local is lost: {local:?}");
    proxy.set_rule(|_| Verdict::Forward);
    next_run_cleans_up(&s, &db, &bucket, 2);
    assert!(localstack().objects(&bucket, "p/").iter().any(|o| o.0.ends_with("daily/db_20250502_020000.dump.gz")), "caught up");
}

#[test]
fn flaky_s3_is_retried_with_backoff() {
    let c = cluster();
    let db = db_name("flaky");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    c.psql(&db, "CREATE TABLE blob AS SELECT i, decode(string_agg(md5(i::text || j::text), ''), 'hex') AS b FROM generate_series(1, 20) i, generate_series(1, 65536) j GROUP BY i");
    let (s, bucket, proxy) = proxied(&db);
    s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    proxy.set_rule(|r| match r.seq % 10 {
        1 => Verdict::Fail(503, "SlowDown"),
        4 => Verdict::Fail(500, "InternalError"),
        6 => Verdict::Drop,
        8 => Verdict::Delay(Duration::from_millis(300)),
        _ => Verdict::Forward,
    });
    let v: serde_json::Value = json(&s.ok(&["sync", "--json", "--now", &night(1)]));
    assert_eq!((v["uploaded"].as_u64(), v["copied"].as_u64()), (Some(1), Some(1)), "{v}");
    proxy.set_rule(|_| Verdict::Forward);
    let head = localstack().aws_json(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "p/shop/production/weekly/db_20250501_020000.dump.gz",
    ]);
    assert_eq!(head["Metadata"]["sha256"].as_str(), listed(&s).get("db_20250501_020000").map(String::as_str));
    assert!(proxy.count(|_| true) > 10);
}

#[test]
fn retries_run_out_with_a_clear_failure() {
    let db = db_name("s3503");
    cluster().create_sample_db(&db, 50);
    let (s, _bucket, proxy) = proxied(&db);
    s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    proxy.set_rule(|_| Verdict::Fail(503, "SlowDown"));
    let out = s.cmd(&["sync", "--now", &night(1)]).env("PGTIER_S3_MAX_ATTEMPTS", "2").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SlowDown"), "{err}");
    assert_eq!(listed(&s).len(), 1);
}

#[test]
fn a_download_cut_short_is_resumed() {
    let c = cluster();
    let db = db_name("cutdownload");
    c.create_sample_db(&db, 20000);
    let (s, _bucket, proxy) = proxied(&db);
    s.ok(&["run", "--now", &night(1)]);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c2 = cut.clone();
    proxy.set_rule(move |r| {
        if r.method == "GET" && r.target.contains("daily/db_20250501_020000.dump.gz") && !c2.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            Verdict::Truncate(300_000)
        } else {
            Verdict::Forward
        }
    });
    let t = db_name("cutdownload_t");
    let out = s.run(&["restore", "shop", "production", "--from", "remote", "--target-db", &t]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.fingerprint(&t), c.fingerprint(&db));
}

#[test]
fn a_large_download_comes_in_parallel_ranged_parts_and_a_part_cut_short_is_resumed() {
    let c = cluster();
    let db = db_name("rangeddownload");
    c.psql("postgres", &format!("CREATE DATABASE \"{db}\""));
    // About 90 MiB stored (no compression): past the size from which downloads go in parts.
    c.psql(&db, "CREATE TABLE big AS SELECT i, repeat(md5(i::text), 30) AS t FROM generate_series(1, 90000) i");
    // A second table: past 64 MiB of tables, the restore counts rows in parallel sessions.
    c.psql(&db, "CREATE TABLE second AS SELECT i, md5(i::text) AS t FROM generate_series(1, 5000) i");
    let (s, _bucket, proxy) = proxied(&db);
    s.write("policies/default.yml", "compression: none\ntiers:\n  daily: {keep: 5, locations: [local, remote]}\n");
    s.ok(&["run", "--now", &night(1)]);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c2 = cut.clone();
    proxy.set_rule(move |r| {
        let ranged = r.headers.iter().any(|h| h.starts_with("range: bytes=8388608-"));
        if r.method == "GET" && ranged && !c2.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Verdict::Truncate(1_000_000)
        } else {
            Verdict::Forward
        }
    });
    let t = db_name("rangeddownload_t");
    let out = s.run(&["restore", "shop", "production", "--from", "remote", "--target-db", &t]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cut.load(std::sync::atomic::Ordering::SeqCst), "the second part was asked for with its own range");
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"), "{}", String::from_utf8_lossy(&out.stderr));
    let parts = proxy.count(|r| r.method == "GET" && r.headers.iter().any(|h| h.starts_with("range: bytes=")));
    assert!(parts >= 12, "about 90 MiB in 8 MiB parts, one resumed: {parts} ranged GETs");
    assert_eq!(c.table_hashes(&t), c.table_hashes(&db));
}

// ---- disk faults ---------------------------------------------------------------------------

#[test]
fn a_full_disk_fails_the_backup_cleanly() {
    let c = cluster();
    let db = db_name("diskfull");
    c.create_sample_db(&db, 10);
    let disk = Mount::tmpfs("2m");
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), "");
    s.write(
        "pgtier.yml",
        &format!("projects: projects.yml\npolicies: policies\nbackup_root: {}\nmin_free_space: 1MB\n", disk.path().display()),
    );
    let first = s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    c.psql(&db, "CREATE TABLE filler AS SELECT i, decode(string_agg(md5(i::text || j::text), ''), 'hex') AS b FROM generate_series(1, 4) i, generate_series(1, 65536) j GROUP BY i");
    let err = s.fails(1, &["backup", "shop", "production", "--now", &night(2)]);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(".partial"), "the error names the file: {err}");
    let env = disk.path().join("shop/production/database");
    let names: Vec<String> = std::fs::read_dir(&env).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "no partial file left: {names:?}");
    let v: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["path"].as_str(), Some(first.trim()));
    // And the backup still restores.
    let t = db_name("diskfull_t");
    s.ok(&["restore", "shop", "production", "--target-db", &t]);
    assert_eq!(c.psql(&t, "SELECT count(*) FROM users"), "10");
}

#[test]
fn a_full_disk_while_spooling_a_download_fails_cleanly() {
    let c = cluster();
    let db = db_name("spoolfull");
    c.create_sample_db(&db, 20000);
    let (s, _bucket) = setup(&db, 1, true, "");
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let before = c.fingerprint(&db);
    // The scratch folder (where the spool goes) is on a disk with room for the stored backup,
    // not for the decoded archive.
    let disk = Mount::tmpfs("4m");
    let cfg = s.path().join("pgtier.yml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}scratch_dir: {}\n", disk.path().display())).unwrap();
    let out = s.cmd(&["restore", "shop", "production", "--from", "remote", "--jobs", "2", "--force"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.fingerprint(&db), before);
    assert!(c.temp_dbs_for(&db).is_empty());
    assert_eq!(std::fs::read_dir(disk.path()).unwrap().count(), 0, "the spool file is removed");
}

#[test]
fn a_parallel_restore_with_less_room_than_the_stored_backup_refuses_before_anything() {
    let c = cluster();
    let db = db_name("spoolroom");
    c.create_sample_db(&db, 100_000);
    let (s, _bucket) = setup(&db, 1, false, "");
    let before = c.fingerprint(&db);
    let disk = Mount::tmpfs("1m");
    let cfg = s.path().join("pgtier.yml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}scratch_dir: {}\n", disk.path().display())).unwrap();
    let err = s.fails(1, &["restore", "shop", "production", "--jobs", "2", "--force"]);
    assert!(err.contains("spools the decoded archive") && err.contains("free there") && err.contains("nothing was changed"), "{err}");
    assert_eq!(c.fingerprint(&db), before);
    assert!(c.temp_dbs_for(&db).is_empty(), "no database was created");
}

#[test]
fn a_read_only_backup_root_fails_clearly_and_still_restores() {
    let c = cluster();
    let db = db_name("readonly");
    c.create_sample_db(&db, 30);
    let (s, _) = setup(&db, 1, false, "");
    let ro = Mount::read_only_bind(&s.backup_root());
    s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: {}\n", ro.path().display()));
    let err = s.fails(1, &["backup", "shop", "production", "--now", &night(2)]);
    assert!(err.contains("Read-only file system"), "{err}");
    let t = db_name("readonly_t");
    s.ok(&["restore", "shop", "production", "--target-db", &t]);
    assert_eq!(c.fingerprint(&t), c.fingerprint(&db));
}

// ---- PostgreSQL faults -------------------------------------------------------------------

#[test]
fn the_server_stopping_mid_dump_is_a_clear_failure() {
    let own = Cluster::start_new();
    let db = "big";
    own.psql("postgres", "CREATE DATABASE big");
    own.psql(db, "CREATE TABLE t AS SELECT i, repeat(md5(i::text), 8) AS pad FROM generate_series(1, 1500000) i");
    let s = Scratch::new(&format!("shop:\n{}", own.database_block(&[("production", db)])), "");
    s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    let before = listed(&s);
    let child = s.cmd(&["backup", "shop", "production", "--now", &night(2)]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(Duration::from_secs(60), "the dump to be under way", || hidden(&s).iter().any(|f| f.ends_with(".partial")));
    let stop = if support::is_root() {
        sh(&format!(
            "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
            own.bindir.join("pg_ctl").display(),
            own.dir.join("data").display()
        ))
    } else {
        sh(&format!("'{}' -D '{}' -m immediate stop", own.bindir.join("pg_ctl").display(), own.dir.join("data").display()))
    };
    drop(stop);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    // libpq words a server that went away in several ways, depending on where it was caught.
    let lost = [
        "terminat",
        "server closed",
        "connection to server was lost",
        "could not receive data",
        "lost synchronization",
        "Connection reset",
        "Connection refused",
    ];
    assert!((err.contains("backup of shop/production") || err.contains("pg_dump")) && lost.iter().any(|w| err.contains(w)), "{err}");
    assert_eq!(listed(&s), before);
    assert!(hidden(&s).iter().all(|f| !f.ends_with(".partial")), "{:?}", hidden(&s));
    assert_intact(&s, &before);
}

#[test]
fn a_role_without_privileges_is_a_clear_failure() {
    let c = cluster();
    let db = db_name("noprivs");
    c.create_sample_db(&db, 5);
    let role = format!("limited_{}", support::unique());
    c.psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    c.psql(
        &db,
        &format!("GRANT CONNECT ON DATABASE {db} TO {role}; GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON users TO {role}"),
    );
    let s = Scratch::new(
        &format!(
            "shop:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: {role}\n    databases:\n      production: {db}\n",
            c.port
        ),
        "",
    );
    let err = s.fails(1, &["backup", "shop", "production"]);
    assert!(err.contains("permission denied"), "{err}");
    assert!(s.files("shop", "production").iter().all(|f| f.starts_with('.')), "{:?}", s.files("shop", "production"));
}

// ---- concurrency ---------------------------------------------------------------------------

#[test]
fn a_run_that_prunes_the_backup_being_restored_does_not_break_the_restore() {
    let c = cluster();
    let db = db_name("runrestore");
    c.create_sample_db(&db, 30000);
    let (s, _) = setup(&db, 1, false, "");
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 1}\n");
    let expected = c.fingerprint(&db);
    let t = db_name("runrestore_t");
    let restore = s
        .cmd(&["restore", "shop", "production", "db_20250501_020000", "--target-db", &t])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the restore to start", || !c.temp_dbs_for(&t).is_empty());
    c.psql(&db, "INSERT INTO users (name) VALUES ('after')");
    s.ok(&["run", "--now", &night(2)]);
    assert!(!listed(&s).contains_key("db_20250501_020000"), "the run pruned it");
    let out = restore.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.fingerprint(&t), expected);
}

#[test]
fn prune_during_sync_never_loses_an_off_site_copy() {
    let db = db_name("prunesync");
    cluster().create_sample_db(&db, 100);
    let (s, bucket) = setup(&db, 0, true, "");
    for d in 1..=12 {
        s.ok(&["backup", "shop", "production", "--now", &night(d)]);
    }
    let sync = s.cmd(&["sync", "--now", &night(12)]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let prune = s.cmd(&["prune", "--now", &night(12)]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (sync.wait_with_output().unwrap(), prune.wait_with_output().unwrap());
    // The two take turns through the env's lease in the bucket: the prune either ran after the
    // sync released it, or found it held and exited 11 naming the sync.
    let waited = b.status.code() == Some(11) && String::from_utf8_lossy(&b.stderr).contains("(sync)");
    assert!(
        a.status.success() && (b.status.success() || waited),
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    s.ok(&["run", "--now", &night(12)]);
    // Every backup the policy keeps is somewhere: weeklies and monthlies off-site, dailies here.
    let rows: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--all", "--json"]));
    for b in ["db_20250501_020000", "db_20250505_020000", "db_20250512_020000"] {
        let r = rows.as_array().unwrap().iter().find(|r| r["backup"] == b).unwrap_or_else(|| panic!("{b} lost: {rows}"));
        assert!(!r["remote"].as_array().unwrap().is_empty(), "{b} is off-site");
    }
    next_run_cleans_up(&s, &db, &bucket, 12);
}
