//! Off-site: tiers synced to LocalStack's S3 with their storage classes, checked with the aws CLI;
//! restores from remote (Glacier thaws included); an interrupted sync resumed; a host-loss drill.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use support::localstack::{localstack, remote_yaml_at};
use support::proxy::{Proxy, Verdict};
use support::{Cluster, Scratch, cluster, db_name, json, wait_until};

fn night(day: u32) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2024, 12, 31).unwrap() + chrono::Duration::days(day as i64);
    format!("{t}T02:00:00Z")
}

fn scratch(db: &str, bucket: &str, prefix: &str, extra: &str) -> Scratch {
    let c = cluster();
    let ls = localstack();
    Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", db)])), &format!("{}{extra}", ls.remote_yaml(bucket, prefix)))
}

/// Objects per tier folder: tier -> [(file, class)].
fn tiers(bucket: &str, prefix: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (key, class, _) in localstack().objects(bucket, prefix) {
        let rel = key.strip_prefix(prefix).unwrap();
        let (tier, file) = rel.split_once('/').unwrap();
        out.entry(tier.to_string()).or_default().push((file.to_string(), class));
    }
    out
}

fn data(v: &[(String, String)], kind: &str) -> Vec<String> {
    v.iter().filter(|(f, _)| f.starts_with(kind) && !f.ends_with(".json")).map(|(f, _)| f.split('.').next().unwrap().to_string()).collect()
}

#[test]
fn forty_nights_put_each_tier_in_its_storage_class() {
    let c = cluster();
    let db = db_name("forty");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket();
    let s = scratch(&db, &bucket, "platform-backups", "");
    for day in 1..=40 {
        let out = s.run(&["run", "--now", &night(day)]);
        assert!(out.status.success(), "night {day}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let t = tiers(&bucket, "platform-backups/shop/production/");
    // daily: the last 30 days, STANDARD; weekly: first of each ISO week, STANDARD_IA;
    // monthly: first of each month, GLACIER. Manifests beside them, always STANDARD.
    let daily = data(&t["daily"], "db_");
    assert_eq!(daily.len(), 30, "{daily:?}");
    assert_eq!(daily.first().unwrap(), "db_20250111_020000");
    assert!(t["daily"].iter().all(|(_, class)| class == "STANDARD"));
    assert_eq!(
        data(&t["weekly"], "db_"),
        [
            "db_20250101_020000",
            "db_20250106_020000",
            "db_20250113_020000",
            "db_20250120_020000",
            "db_20250127_020000",
            "db_20250203_020000"
        ]
    );
    assert!(t["weekly"].iter().filter(|(f, _)| !f.ends_with(".json")).all(|(_, class)| class == "STANDARD_IA"), "{:?}", t["weekly"]);
    assert_eq!(data(&t["monthly"], "db_"), ["db_20250101_020000", "db_20250201_020000"]);
    assert!(t["monthly"].iter().filter(|(f, _)| !f.ends_with(".json")).all(|(_, class)| class == "GLACIER"), "{:?}", t["monthly"]);
    assert!(t.values().flatten().filter(|(f, _)| f.ends_with(".json")).all(|(_, class)| class == "STANDARD"));
    for v in t.values() {
        for f in data(v, "db_") {
            assert!(v.iter().any(|(x, _)| x == &format!("{f}.json")), "{f} has its manifest beside it");
        }
    }
    // The cluster's roles are saved and tiered the same way.
    assert_eq!(data(&t["monthly"], "globals_"), ["globals_20250101_020000", "globals_20250201_020000"]);
    // On the host: only what the daily tier keeps (the weeklies and monthlies live off-site).
    let local: Vec<_> = s.files("shop", "production").into_iter().filter(|f| f.starts_with("db_") && f.ends_with(".json")).collect();
    assert_eq!(local.len(), 30, "{local:?}");
    // A second sync finds nothing to do.
    let v: serde_json::Value = json(&s.ok(&["sync", "--json", "--now", &night(40)]));
    assert_eq!((v["uploaded"].as_u64(), v["copied"].as_u64(), v["deleted"].as_u64()), (Some(0), Some(0), Some(0)), "{v}");
    assert!(v["skipped"].as_u64().unwrap() >= 38, "{v}");
    // list --all shows where each backup lives.
    let rows: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--all", "--json", "--now", &night(40)]));
    let first = rows.as_array().unwrap().iter().find(|r| r["backup"] == "db_20250101_020000").unwrap();
    assert_eq!(first["locations"], serde_json::json!(["remote"]));
    let classes: Vec<_> = first["remote"].as_array().unwrap().iter().map(|c| c["storage_class"].as_str().unwrap()).collect();
    assert_eq!(classes, ["STANDARD_IA", "GLACIER"]);
}

#[test]
fn one_upload_then_server_side_copies() {
    let c = cluster();
    let db = db_name("copies");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket();
    let s = scratch(&db, &bucket, "p", "");
    s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    let dry: serde_json::Value = json(&s.ok(&["sync", "--dry-run", "--json", "--now", &night(1)]));
    assert_eq!((dry["uploaded"].as_u64(), dry["copied"].as_u64()), (Some(1), Some(2)), "{dry}");
    assert!(localstack().objects(&bucket, "p/").is_empty(), "--dry-run changes nothing");
    let v: serde_json::Value = json(&s.ok(&["sync", "--json", "--now", &night(1)]));
    assert_eq!(
        (v["uploaded"].as_u64(), v["copied"].as_u64(), v["deleted"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(2), Some(0), Some(0)),
        "{v}"
    );
    let v: serde_json::Value = json(&s.ok(&["sync", "--json", "--now", &night(1)]));
    assert_eq!((v["uploaded"].as_u64(), v["copied"].as_u64(), v["skipped"].as_u64()), (Some(0), Some(0), Some(3)), "{v}");
    // The stored sha256 and sizes are the manifest's.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.env_dir("shop", "production").join("db_20250101_020000.json")).unwrap()).unwrap();
    let head = localstack().aws_json(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "p/shop/production/weekly/db_20250101_020000.dump.gz",
    ]);
    assert_eq!(head["Metadata"]["sha256"], m["sha256"]);
    assert_eq!(head["ContentLength"], m["size"]);
    // Foreign objects under the prefix are never touched.
    std::fs::write(s.path().join("x"), "not ours").unwrap();
    localstack().aws_json(&[
        "s3api",
        "put-object",
        "--bucket",
        &bucket,
        "--key",
        "p/shop/production/daily/notes.txt",
        "--body",
        s.path().join("x").to_str().unwrap(),
    ]);
    localstack().aws_json(&[
        "s3api",
        "put-object",
        "--bucket",
        &bucket,
        "--key",
        "p/shop/production/daily/db_20200101_000000.dump.gz",
        "--body",
        s.path().join("x").to_str().unwrap(),
    ]);
    s.ok(&["backup", "shop", "production", "--now", &night(60)]);
    s.ok(&["prune", "--now", &night(60)]);
    s.ok(&["sync", "--now", &night(60)]);
    let keys: Vec<String> = localstack().objects(&bucket, "p/").into_iter().map(|(k, _, _)| k).collect();
    assert!(
        keys.contains(&"p/shop/production/daily/notes.txt".to_string())
            && keys.contains(&"p/shop/production/daily/db_20200101_000000.dump.gz".to_string()),
        "{keys:?}"
    );
}

#[test]
fn a_glacier_monthly_restores_after_its_thaw() {
    let c = cluster();
    let db = db_name("glacier");
    c.create_sample_db(&db, 40);
    let bucket = localstack().bucket();
    let s = scratch(&db, &bucket, "g", "");
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 1, locations: [local]}\n  monthly: {keep: 3, locations: [remote], storage_class: GLACIER}\n",
    );
    s.ok(&["backup", "shop", "production", "--now", "2025-01-31T02:00:00Z"]);
    s.ok(&["sync", "--now", "2025-01-31T02:00:00Z"]);
    let expected = c.fingerprint(&db);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let side = db_name("glacier_side");
    // Without --wait: the thaw is requested and pgtier says when to run again.
    // Exit 75 (EX_TEMPFAIL): a script can tell "run again later" from a failure.
    let err = s.fails(75, &["restore", "shop", "production", "db_20250131_020000", "--from", "remote", "--target-db", &side]);
    assert!(err.contains("is in GLACIER") && err.contains("thaw is under way") && err.contains("--wait"), "{err}");
    assert!(!c.db_exists(&side));
    let head = localstack().aws_json(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "g/shop/production/monthly/db_20250131_020000.dump.gz",
    ]);
    assert!(head["Restore"].is_string(), "RestoreObject was requested: {head}");
    // With --wait it completes (LocalStack thaws at once).
    let out = s.ok(&["restore", "shop", "production", "--from", "remote", "--wait", "10m", "--target-db", &side, "--json"]);
    let rep: serde_json::Value = json(&out);
    assert_eq!(rep["from"], "remote");
    assert_eq!(c.fingerprint(&side), expected);
    assert!(!s.backup_root().exists(), "a remote restore writes nothing under backup_root");
}

#[test]
fn a_thaw_still_in_progress_is_waited_out() {
    let c = cluster();
    let db = db_name("thawing");
    c.create_sample_db(&db, 10);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "t"));
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 1, locations: [local]}\n  monthly: {keep: 3, locations: [remote], storage_class: DEEP_ARCHIVE}\n",
    );
    s.ok(&["backup", "shop", "production", "--now", "2025-03-01T02:00:00Z"]);
    s.ok(&["sync", "--now", "2025-03-01T02:00:00Z"]);
    // LocalStack thaws at once; the proxy makes the first three HEADs after the request say
    // "still in progress", as S3 does for hours.
    let heads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let h = heads.clone();
    proxy.set_rule(move |r| {
        if r.method == "HEAD" && r.target.contains("/monthly/") && h.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 4 {
            Verdict::RewriteHeader("x-amz-restore", "ongoing-request=\"true\"".into())
        } else {
            Verdict::Forward
        }
    });
    let side = db_name("thawing_side");
    let err = s.fails(75, &["restore", "shop", "production", "--from", "remote", "--target-db", &side]);
    assert!(err.contains("DEEP_ARCHIVE") && err.contains("up to 12 hours"), "{err}");
    let out = s.ok(&["restore", "shop", "production", "--from", "remote", "--wait", "1m", "--wait-poll", "100ms", "--target-db", &side]);
    assert!(out.contains("remote"), "{out}");
    assert!(heads.load(std::sync::atomic::Ordering::SeqCst) >= 4, "the in-progress answers were seen");
    assert_eq!(c.fingerprint(&side), c.fingerprint(&db));
    // A timeout while still thawing is a clear failure.
    heads.store(0, std::sync::atomic::Ordering::SeqCst);
    proxy.set_rule(|r| {
        if r.method == "HEAD" && r.target.contains("/monthly/") {
            Verdict::RewriteHeader("x-amz-restore", "ongoing-request=\"true\"".into())
        } else {
            Verdict::Forward
        }
    });
    let err = s.fails(
        75,
        &["restore", "shop", "production", "--from", "remote", "--wait", "1s", "--wait-poll", "100ms", "--target-db", &db_name("never")],
    );
    assert!(err.contains("still thawing"), "{err}");
}

#[test]
fn a_killed_sync_leaves_no_object_and_the_next_one_resumes() {
    let c = cluster();
    let db = db_name("resume");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    // ~40 MB that gzip cannot shrink: a multipart upload of several 8 MiB parts.
    c.psql(&db, "CREATE TABLE blob AS SELECT i, decode(string_agg(md5(i::text || j::text), ''), 'hex') AS b FROM generate_series(1, 40) i, generate_series(1, 65536) j GROUP BY i");
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("{}  concurrency: 2\n", remote_yaml_at(&proxy.endpoint, &bucket, "r")),
    );
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 3, locations: [local, remote]}\n");
    s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    // Let two parts through, then stall every other part; kill -9 while stalled.
    proxy.set_rule(|r| if r.is_upload_part() && r.seq > 0 && count_parts(r) > 2 { Verdict::Stall } else { Verdict::Forward });
    let mut child = s.cmd(&["sync", "--now", &night(1)]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until(Duration::from_secs(60), "two parts uploaded", || proxy.count(|r| r.is_upload_part()) >= 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let key = "r/shop/production/daily/db_20250101_020000.dump.gz";
    assert!(!localstack().objects(&bucket, "r/").iter().any(|(k, _, _)| k == key), "an interrupted upload must not look like an object");
    let uploads = localstack().aws_json(&["s3api", "list-multipart-uploads", "--bucket", &bucket]);
    assert_eq!(uploads["Uploads"].as_array().map(|a| a.len()), Some(1), "{uploads}");
    proxy.set_rule(|_| Verdict::Forward);
    proxy.release();
    let out = s.run(&["sync", "--now", &night(1)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming the upload"), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.env_dir("shop", "production").join("db_20250101_020000.json")).unwrap()).unwrap();
    let head = localstack().aws_json(&["s3api", "head-object", "--bucket", &bucket, "--key", key]);
    assert_eq!(head["Metadata"]["sha256"], m["sha256"]);
    assert_eq!(head["ContentLength"], m["size"]);
    let uploads = localstack().aws_json(&["s3api", "list-multipart-uploads", "--bucket", &bucket]);
    assert!(uploads["Uploads"].as_array().is_none_or(|a| a.is_empty()), "{uploads}");
    // And it restores, checked against the manifest's sha256 while streaming.
    let side = db_name("resume_side");
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    s.ok(&["restore", "shop", "production", "--from", "remote", "--target-db", &side]);
    assert_eq!(c.psql(&side, "SELECT count(*) FROM blob"), "40");
}

/// The n-th UploadPart request seen (1-based) in this proxy's life, from its part number.
fn count_parts(r: &support::proxy::Request) -> u32 {
    r.target.split(['?', '&']).find_map(|p| p.strip_prefix("partNumber=")).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn host_loss_drill_onto_a_new_server() {
    let c = cluster();
    let db = db_name("hostloss");
    let owner = format!("owner_{}", support::unique());
    let reader = format!("reader_{}", support::unique());
    c.psql("postgres", &format!("CREATE ROLE {owner} LOGIN; CREATE ROLE {reader} NOLOGIN"));
    c.psql("postgres", &format!("CREATE DATABASE {db} OWNER {owner}"));
    c.psql(&db, &format!("SET ROLE {owner}; CREATE SCHEMA app; CREATE TABLE app.orders (id int PRIMARY KEY, note text); INSERT INTO app.orders SELECT i, 'order ' || i FROM generate_series(1, 500) i; GRANT USAGE ON SCHEMA app TO {reader}; GRANT SELECT ON app.orders TO {reader};"));
    let bucket = localstack().bucket();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("key.txt");
    let out = std::process::Command::new("age-keygen").arg("-o").arg(&key).output().expect("age-keygen (install age)");
    let public = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    let enc = format!("encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\n", key.display());
    let s = scratch(&db, &bucket, "dr", &enc);
    s.ok(&["run", "--now", &night(1)]);
    let expected = c.fingerprint(&db);

    // The host is gone: a new server, pgtier's config files, the key; no backup_root.
    let new = Cluster::start_new();
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    s.write("projects.yml", &format!("shop:\n{}", new.database_block(&[("production", &db)])));
    let out = s.ok(&["restore-globals", "shop", "production", "--from", "remote", "--json"]);
    let rep: serde_json::Value = json(&out);
    let created: Vec<&str> = rep["created_roles"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(created.contains(&owner.as_str()) && created.contains(&reader.as_str()), "{rep}");
    assert!(rep["skipped_roles"].as_array().unwrap().iter().any(|r| r == "postgres"), "existing roles are skipped: {rep}");
    s.ok(&["restore", "shop", "production", "--from", "remote"]);
    assert_eq!(new.fingerprint(&db), expected);
    assert_eq!(new.psql(&db, "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'"), owner);
    assert_eq!(new.psql("postgres", &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'")), owner);
    assert_eq!(new.psql(&db, &format!("SELECT has_table_privilege('{reader}', 'app.orders', 'SELECT')")), "t");
    assert!(!s.backup_root().exists());
}

#[test]
fn from_auto_prefers_a_good_local_copy_else_the_remote_one() {
    let c = cluster();
    let db = db_name("auto");
    c.create_sample_db(&db, 30);
    let bucket = localstack().bucket();
    let s = scratch(&db, &bucket, "a", "");
    s.ok(&["run", "--now", &night(1)]);
    let expected = c.fingerprint(&db);
    let t1 = db_name("auto_local");
    let rep: serde_json::Value = json(&s.ok(&["restore", "shop", "production", "--from", "auto", "--target-db", &t1, "--json"]));
    assert_eq!(rep["from"], "local");
    // A flipped byte in the local copy: auto goes off-site and says so.
    let path = s.env_dir("shop", "production").join("db_20250101_020000.dump.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let t2 = db_name("auto_remote");
    let out = s.run(&["restore", "shop", "production", "--from", "auto", "--target-db", &t2, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rep: serde_json::Value = json(&out.stdout);
    assert!(rep["warnings"].to_string().contains("no usable local copy"), "the fallback is said: {rep}");
    assert_eq!(rep["from"], "remote");
    assert_eq!(c.fingerprint(&t2), expected);
}

#[test]
fn a_remote_copy_that_does_not_match_its_manifest_is_refused() {
    let c = cluster();
    let db = db_name("badremote");
    c.create_sample_db(&db, 30);
    let bucket = localstack().bucket();
    let s = scratch(&db, &bucket, "b", "");
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 3, locations: [local, remote]}\n");
    s.ok(&["run", "--now", &night(1)]);
    // Same size, other bytes: only the streamed SHA-256 can tell.
    let key = "b/shop/production/daily/db_20250101_020000.dump.gz";
    let local = s.env_dir("shop", "production").join("db_20250101_020000.dump.gz");
    let mut bytes = std::fs::read(&local).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let bad = s.path().join("bad");
    std::fs::write(&bad, bytes).unwrap();
    let sha = support::sh(&format!("sha256sum '{}' | cut -d' ' -f1", local.display()));
    localstack().aws_json(&[
        "s3api",
        "put-object",
        "--bucket",
        &bucket,
        "--key",
        key,
        "--body",
        bad.to_str().unwrap(),
        "--metadata",
        &format!("sha256={}", sha.trim()),
    ]);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let before = c.fingerprint(&db);
    let err = s.fails(1, &["restore", "shop", "production", "--from", "remote", "--force"]);
    assert!(err.contains("do not match the manifest") || err.contains("corrupt") || err.contains("invalid"), "{err}");
    assert!(err.contains(key) || err.contains("db_20250101_020000"), "names the object: {err}");
    assert_eq!(c.fingerprint(&db), before);
    assert!(c.temp_dbs_for(&db).is_empty());
}

#[test]
fn a_missing_bucket_or_an_unreachable_endpoint_is_a_clear_failure() {
    let c = cluster();
    let db = db_name("nobucket");
    c.create_sample_db(&db, 3);
    let s = scratch(&db, "pgtier-this-bucket-does-not-exist", "x", "");
    s.ok(&["backup", "shop", "production", "--now", &night(1)]);
    let err = s.fails(1, &["sync", "--now", &night(1)]);
    assert!(err.contains("does not exist"), "{err}");
    let s2 = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!(
            "remote:\n  url: s3://b/x\n  endpoint_url: http://127.0.0.1:{}\n  region: us-east-1\n  force_path_style: true\n",
            support::free_port()
        ),
    );
    let out = s2.cmd(&["run", "--now", &night(1)]).env("PGTIER_S3_MAX_ATTEMPTS", "2").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("cannot reach the S3 endpoint"), "{text}");
    // The local backup was taken and kept: the policy wants it off-site and it is not there.
    assert_eq!(s2.files("shop", "production").iter().filter(|f| f.starts_with("db_") && f.ends_with(".json")).count(), 1);
}

#[test]
fn a_file_remote_for_nas_mounts() {
    let c = cluster();
    let db = db_name("nas");
    c.create_sample_db(&db, 20);
    let nas = tempfile::tempdir().unwrap();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("remote:\n  url: file://{}\n", nas.path().display()),
    );
    for day in 1..=3 {
        s.ok(&["run", "--now", &night(day)]);
    }
    let daily = nas.path().join("shop/production/daily");
    let names: Vec<String> = std::fs::read_dir(&daily)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("db_") && n.ends_with(".gz"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let t = db_name("nas_restore");
    s.ok(&["restore", "shop", "production", "--from", "remote", "--target-db", &t]);
    assert_eq!(c.fingerprint(&t), c.fingerprint(&db));
}
