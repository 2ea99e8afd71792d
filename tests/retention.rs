//! Black-box tests of tiers and retention over real backup files: nightly replays with --now,
//! prune, policy simulate, audit and adopt.

mod support;

use std::collections::BTreeSet;

use support::{Scratch, cluster, db_name, json, sh};

const SMALL_POLICY: &str = "tagged_keep: 2\ntiers:\n  daily: {keep_days: 7}\n  weekly: {keep: 3}\n  monthly: {keep: 2}\n";

fn scratch(db: &str, policy: &str) -> Scratch {
    let c = cluster();
    let s = Scratch::new(&format!("app:\n{}    policy: small\n", c.database_block(&[("production", db), ("staging", db)])), "");
    s.write("policies/small.yml", policy);
    s
}

fn night(day: u32) -> String {
    // Day 1 = 2024-12-20; runs at 02:00 UTC.
    let t = chrono::NaiveDate::from_ymd_opt(2024, 12, 19).unwrap() + chrono::Duration::days(day as i64);
    format!("{}T02:00:00Z", t)
}

fn backups(s: &Scratch, env: &str) -> BTreeSet<String> {
    s.files("app", env).into_iter().filter(|f| f.ends_with(".json")).map(|f| f.trim_end_matches(".json").to_string()).collect()
}

#[test]
fn nightly_backup_and_prune_keep_exactly_what_simulate_predicts() {
    let c = cluster();
    let db = db_name("nightly");
    c.create_sample_db(&db, 3);
    let s = scratch(&db, SMALL_POLICY);
    for day in 1..=60 {
        let now = night(day);
        s.ok(&["backup", "app", "production", "--now", &now]);
        s.ok(&["prune", "app", "production", "--now", &now]);
    }
    let predicted: serde_json::Value = json(&s.ok(&["policy", "simulate", "small", "--days", "60", "--now", &night(60), "--json"]));
    let predicted: BTreeSet<String> = predicted
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["keep"] == true)
        .map(|r| {
            let t = chrono::DateTime::parse_from_rfc3339(r["created_at"].as_str().unwrap()).unwrap();
            t.format("db_%Y%m%d_%H%M%S").to_string()
        })
        .collect();
    assert_eq!(backups(&s, "production"), predicted);
    // 7 dailies, 3 weeklies, 2 monthlies (overlapping): the newest week's and month's firsts.
    assert!(predicted.contains("db_20250201_020000"), "first of February is a monthly: {predicted:?}");
    assert!(predicted.len() >= 7 && predicted.len() <= 12, "{predicted:?}");
    // Every data file has its manifest and nothing else is left behind.
    for f in s.files("app", "production") {
        assert!(f.ends_with(".json") || f.ends_with(".dump.gz") || f == ".pgtier-lock", "unexpected file {f}");
    }
}

#[test]
fn prune_dry_run_explains_every_decision_and_deletes_nothing() {
    let c = cluster();
    let db = db_name("dryrun");
    c.create_sample_db(&db, 3);
    let s = scratch(&db, "tiers:\n  daily: {keep: 2}\n");
    for day in 1..=4 {
        s.ok(&["backup", "app", "production", "--now", &night(day)]);
    }
    // A file the old scripts left, and another env's backups: never touched.
    let foreign = s.env_dir("app", "production").join("notes.txt");
    std::fs::write(&foreign, "hands off").unwrap();
    s.ok(&["backup", "app", "staging", "--now", &night(1)]);

    let out = s.ok(&["prune", "app", "production", "--dry-run", "--now", &night(4)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("delete") && lines[0].contains("2024-12-20 is older than the newest 2 days"), "{out}");
    assert!(lines[3].starts_with("keep") && lines[3].contains("newest backup: always kept"), "{out}");
    assert_eq!(backups(&s, "production").len(), 4);

    let json: serde_json::Value = json(&s.ok(&["prune", "app", "production", "--dry-run", "--json", "--now", &night(4)]));
    let entries = json[0]["entries"].as_array().unwrap();
    assert_eq!(entries.iter().filter(|e| e["action"] == "delete").count(), 2);
    assert!(entries.iter().all(|e| !e["reasons"].as_array().unwrap().is_empty()));

    s.ok(&["prune", "app", "production", "--now", &night(4)]);
    assert_eq!(backups(&s, "production"), BTreeSet::from(["db_20241222_020000".to_string(), "db_20241223_020000".to_string()]));
    assert!(foreign.exists());
    assert_eq!(backups(&s, "staging").len(), 1);
    // A second prune has nothing left to do.
    s.ok(&["prune", "app", "production", "--now", &night(4)]);
    assert_eq!(backups(&s, "production").len(), 2);
}

#[test]
fn tagged_backups_follow_their_own_count() {
    let c = cluster();
    let db = db_name("tagged");
    c.create_sample_db(&db, 3);
    let s = scratch(&db, "tagged_keep: 2\ntiers:\n  daily: {keep: 1}\n  weekly: {keep: 1}\n");
    s.ok(&["backup", "app", "production", "--now", "2025-01-06T02:00:00Z"]);
    for h in 10..14 {
        s.ok(&["backup", "app", "production", "--tag", "pre-deploy", "--now", &format!("2025-01-06T{h}:00:00Z")]);
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.env_dir("app", "production").join("db_20250106_100000.json")).unwrap()).unwrap();
    assert_eq!(m["tags"], serde_json::json!(["pre-deploy"]));
    assert_eq!(m["tiers"], serde_json::json!([]), "tagged backups never join tiers");
    s.ok(&["prune", "app", "production", "--now", "2025-01-06T15:00:00Z"]);
    assert_eq!(
        backups(&s, "production"),
        BTreeSet::from(["db_20250106_020000".to_string(), "db_20250106_120000".to_string(), "db_20250106_130000".to_string()])
    );
    let err = s.fails(2, &["backup", "app", "production", "--tag", "../x"]);
    assert!(err.contains("--tag"), "{err}");
}

#[test]
fn a_crash_mid_deletion_is_finished_by_the_next_prune() {
    let c = cluster();
    let db = db_name("tomb");
    c.create_sample_db(&db, 3);
    let s = scratch(&db, "tiers:\n  daily: {keep: 1}\n");
    s.ok(&["backup", "app", "production", "--now", &night(1)]);
    s.ok(&["backup", "app", "production", "--now", &night(2)]);
    // What a crash after the first step of deleting db_20241220 looks like.
    let dir = s.env_dir("app", "production");
    std::fs::rename(dir.join("db_20241220_020000.json"), dir.join(".db_20241220_020000.json.deleting")).unwrap();
    let listed: serde_json::Value = json(&s.ok(&["list", "app", "production", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "a backup being deleted is no longer listed");
    s.ok(&["prune", "app", "production", "--now", &night(2)]);
    assert_eq!(s.files("app", "production").iter().filter(|f| f.contains("20241220")).count(), 0, "{:?}", s.files("app", "production"));
}

#[test]
fn audit_finds_corruption_staleness_and_overdue_deletions() {
    let c = cluster();
    let db = db_name("audit");
    c.create_sample_db(&db, 3);
    let s = scratch(&db, "tiers:\n  daily: {keep: 2}\n");
    let s_env = |env: &str| vec!["audit".to_string(), "app".into(), env.into()];
    s.ok(&["backup", "app", "production", "--now", &night(1)]);
    s.ok(&["backup", "app", "staging", "--now", &night(1)]);
    let args: Vec<String> = [s_env("production"), vec!["--now".into(), night(1)]].concat();
    let out = s.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("audit: ok"), "{out}");

    // Three days without a backup: stale.
    let args: Vec<String> = [s_env("production"), vec!["--now".into(), night(4)]].concat();
    let out = s.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[stale]") && text.contains("limit 26 h"), "{text}");

    // Backups the policy deletes but nobody pruned, and a flipped byte.
    for day in 2..=4 {
        s.ok(&["backup", "app", "production", "--now", &night(day)]);
    }
    let path = s.env_dir("app", "production").join("db_20241223_020000.dump.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let out = s.run(&["audit", "app", "production", "--json", "--now", &night(4)]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = json(&out.stdout);
    let findings = v["envs"][0]["findings"].as_array().unwrap();
    let rules: Vec<_> = findings.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules.iter().filter(|r| **r == "due-for-deletion").count(), 2, "{findings:?}");
    assert!(
        findings.iter().any(|f| f["rule"] == "checksum" && f["file"].as_str().unwrap().ends_with("db_20241223_020000.dump.gz")),
        "{findings:?}"
    );
    // Every backup's decision is printed too.
    assert_eq!(v["envs"][0]["plan"]["entries"].as_array().unwrap().len(), 4);
}

#[test]
fn audit_flags_a_storage_class_kept_shorter_than_it_bills() {
    let c = cluster();
    let db = db_name("billing");
    c.create_sample_db(&db, 1);
    let s = scratch(&db, "tiers:\n  daily: {keep: 3}\n  weekly: {keep: 2, locations: [remote], storage_class: GLACIER}\n");
    s.ok(&["backup", "app", "production", "--now", &night(1)]);
    let out = s.run(&["audit", "app", "production", "--now", &night(1)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[storage-class-duration]")
            && text.contains("small.yml (tiers.weekly.storage_class)")
            && text.contains("GLACIER bills at least 90 days"),
        "{text}"
    );
    // Notes are details: audit shows them from -v on, beside the findings.
    let out = s.run(&["-v", "audit", "app", "production", "--now", &night(1)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[storage-class-duration]") && text.contains("no remote: configured"), "no remote is a note: {text}");
}

#[test]
fn old_script_dumps_are_foreign_until_adopted_then_join_the_tiers() {
    let c = cluster();
    let db = db_name("adopt");
    c.create_sample_db(&db, 12);
    let s = scratch(&db, "tiers:\n  daily: {keep: 2}\n  monthly: {keep: 6}\n");
    let dir = s.env_dir("app", "production");
    std::fs::create_dir_all(&dir).unwrap();
    // As the guide's backup_database wrote them: pg_dump --format=custom --compress=9 > db_*.sql.gz
    for name in ["db_20241101_020000.sql.gz", "db_20241102_020000.sql.gz", "db_20241201_020000.sql.gz"] {
        sh(&format!(
            "'{}' --format=custom --compress=9 -h 127.0.0.1 -p {} -U postgres -d {db} > '{}'",
            c.bindir.join("pg_dump").display(),
            c.port,
            dir.join(name).display()
        ));
    }
    // Foreign: listed as such, never pruned.
    s.ok(&["prune", "app", "production", "--now", "2025-01-10T00:00:00Z"]);
    assert_eq!(s.files("app", "production").iter().filter(|f| f.ends_with(".sql.gz")).count(), 3);

    let out = s.ok(&["adopt", "app", "production"]);
    assert!(out.contains("3 file(s) adopted"), "{out}");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("db_20241101_020000.json")).unwrap()).unwrap();
    assert_eq!(m["adopted"], true);
    assert_eq!(m["format"], "custom");
    assert_eq!(m["tiers"], serde_json::json!(["daily", "monthly"]));
    let m2: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("db_20241102_020000.json")).unwrap()).unwrap();
    assert_eq!(m2["tiers"], serde_json::json!(["daily"]));
    assert_eq!(s.ok(&["adopt", "app", "production"]).trim(), "0 file(s) adopted", "adopting twice does nothing");

    // An adopted dump restores (no row counts to compare: a warning, not a failure).
    let side = db_name("adopt_side");
    s.ok(&["restore", "app", "production", "db_20241102_020000", "--target-db", &side]);
    assert_eq!(c.fingerprint(&side), c.fingerprint(&db));

    // Now they are pgtier's: the daily that is not a monthly goes.
    s.ok(&["backup", "app", "production", "--now", "2025-01-10T02:00:00Z"]);
    s.ok(&["backup", "app", "production", "--now", "2025-01-11T02:00:00Z"]);
    s.ok(&["prune", "app", "production", "--now", "2025-01-11T03:00:00Z"]);
    let left = backups(&s, "production");
    assert!(!left.contains("db_20241102_020000") && left.contains("db_20241101_020000") && left.contains("db_20241201_020000"), "{left:?}");
}

#[test]
fn bad_policies_are_load_errors_naming_file_and_key() {
    let cases = [
        ("tiers:\n  daily: {keep: -3}\n", "tiers.daily.keep"),
        ("tiers:\n  daily: {keep: 0}\n", "tiers.daily.keep"),
        ("tiers:\n  minutely: {keep: 3}\n  daily: {keep: 1}\n", "tiers.minutely"),
        ("tiers:\n  hourly: {keep: 3, locations: [remote], storage_class: GLACIER_IR}\n  daily: {keep: 1}\n", "tiers.hourly.storage_class"),
        ("tiers:\n  daily: {keep: 3, storage_class: FROZEN}\n", "tiers.daily.storage_class"),
        ("tiers: {}\n", "tiers"),
        ("tiers:\n  weekly: {keep: 3}\n", "tiers.daily"),
        ("tiers:\n  daily: {keep: 3, keep_days: 4}\n", "tiers.daily"),
        ("tiers:\n  daily: {keep: 3, locations: [moon]}\n", "tiers.daily.locations"),
        ("compression: lz4\ntiers:\n  daily: {keep: 3}\n", "compression"),
        ("tiers:\n  daily: {keep: 3, kept: 4}\n", "tiers.daily"),
    ];
    for (yaml, key) in cases {
        let s = Scratch::new("", "");
        s.write("policies/p.yml", yaml);
        let err = s.fails(2, &["config", "check"]);
        assert!(err.contains("p.yml") && err.contains(key), "{yaml:?}: expected {key} in {err}");
    }
    let s = Scratch::new("", "");
    let err = s.fails(2, &["prune", "ghost", "production"]);
    assert!(err.contains("unknown project \"ghost\""), "{err}");
    let err = s.fails(2, &["policy", "simulate", "nope", "--days", "3"]);
    assert!(err.contains("unknown policy \"nope\""), "{err}");
}

#[test]
fn simulate_json_is_a_list_of_decisions() {
    let s = Scratch::new("", "");
    let v: serde_json::Value = json(&s.ok(&["policy", "simulate", "default", "--days", "400", "--now", "2025-06-30T12:00:00Z", "--json"]));
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 400);
    assert_eq!(rows[399]["created_at"], "2025-06-30T02:00:00Z");
    for r in rows {
        assert!(r["keep"].is_boolean() && r["tiers"].is_array() && r["reasons"].is_array());
    }
    let kept = rows.iter().filter(|r| r["keep"] == true).count();
    // 30 dailies + 12 weeklies + 12 monthlies, minus the overlaps of this calendar.
    assert!((45..=54).contains(&kept), "{kept}");
}
