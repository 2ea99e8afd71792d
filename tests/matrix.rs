//! Every PostgreSQL major pgtier supports, 13 to 18, each with its own server and the client
//! tools of its major (14's for 13), installed by pgmajors/install.sh: backup (with row counts,
//! the fingerprint and the real number of large objects), run, verify, restore beside, the
//! swap, one table (ordinary, partitioned, one partition), --jobs, restore-globals, a
//! restore from S3 and a parallel dump (directory format) drilled and restored, run as the
//! application's own role (owner of the database, CREATEDB, not a superuser). Then the upgrade: a backup of each major restores onto every newer one,
//! giving back the same data, sequences, large objects, properties and canonical schema.

mod support;

use support::localstack::localstack;
use support::matrix::OWNER;
use support::{Cluster, Scratch, db_name, json, versioned_root};

/// A scratch project for `db` on `c`, connecting as the database's owner, synced to its own
/// bucket, with every major's client tools installed as on a Debian host.
fn scratch(c: &Cluster, db: &str) -> Scratch {
    let bucket = localstack().bucket();
    let s = Scratch::new(
        &format!(
            "shop:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: {OWNER}\n    databases:\n      production: {db}\n",
            c.port
        ),
        &localstack().remote_yaml(&bucket, "m"),
    );
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\nverify: daily\n");
    s.set_env("PGTIER_PG_VERSIONED_ROOT", versioned_root().display().to_string());
    s
}

/// Rows and content of `tables` in `db`.
fn hashes(c: &Cluster, db: &str, tables: &[&str]) -> Vec<String> {
    let all = c.table_hashes(db);
    tables.iter().map(|t| all.get(*t).cloned().unwrap_or_else(|| format!("{t} missing"))).collect()
}

fn large_objects(major: u32) -> u32 {
    // From 17, pg_dump groups large objects 1,000 to a BLOB METADATA entry: cross a group.
    if major >= 17 { 1200 } else { 3 }
}

fn every_operation_on(major: u32) {
    let c = Cluster::start_major(major);
    let db = db_name(&format!("mx{major}"));
    let los = large_objects(major);
    c.create_matrix_db(&db, los);
    let before = c.matrix_snapshot(&db);
    let schema = c.canonical_schema(&db);
    let s = scratch(&c, &db);
    let at = format!("{major}: ");

    // A backup records the row counts, the fingerprint and every large object.
    let out = s.ok(&["backup", "shop", "production"]);
    let data = std::path::PathBuf::from(out.trim());
    let stem = data.file_name().unwrap().to_string_lossy().split('.').next().unwrap().to_string();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(data.with_file_name(format!("{stem}.json"))).unwrap()).unwrap();
    assert_eq!(m["large_objects"], los, "{at}{m}");
    assert_eq!(m["tables"]["app.orders"], 900, "{at}{m}");
    assert_eq!(m["tables"]["app.events_2025"].as_u64().map(|n| n > 0), Some(true), "{at}{m}");
    assert!(m["pg_dump_version"].as_str().unwrap().starts_with(&major.max(14).to_string()), "{at}{m}");
    assert_eq!(m["schema_fingerprint"].as_str().map(str::len), Some(64), "{at}{m}");

    // The nightly run: backup, sync to S3, the drill the policy schedules.
    let run: serde_json::Value = json(&s.ok(&["run", "--json"]));
    assert_eq!(run["envs"][0]["verified"], true, "{at}{run}");

    // A drill as the database's owner: what it cannot install (amcheck) it skips, and says so;
    // the counts, the schema and the fingerprint are compared.
    let v: serde_json::Value = json(&s.ok(&["verify", "shop", "production", "--json"]));
    assert_eq!(v[0]["outcome"], "ok", "{at}{v}");
    assert!(v[0]["skipped"].to_string().contains("amcheck"), "{at}{v}");
    assert!(v[0]["fingerprint"].is_string(), "{at}the fingerprint is compared: {v}");
    let listed = s.ok(&["list", "shop", "production"]);
    assert!(listed.contains("skipped amcheck"), "{at}{listed}");

    // Beside the original.
    let beside = db_name(&format!("mx{major}_beside"));
    let rep: serde_json::Value = json(&s.ok(&["restore", "shop", "production", "--target-db", &beside, "--json"]));
    assert_eq!(rep["large_objects"], los, "{at}{rep}");
    assert!(rep["analyze_seconds"].is_number(), "{at}the restored database is analysed: {rep}");
    before.assert_same(&c.matrix_snapshot(&beside), &format!("{at}restore beside"));
    assert_eq!(c.canonical_schema(&beside), schema, "{at}restore beside: schema");

    // The swap.
    let rep: serde_json::Value = json(&s.ok(&["restore", "shop", "production", "--force", "--json"]));
    assert_eq!(rep["replaced"], true, "{at}{rep}");
    before.assert_same(&c.matrix_snapshot(&db), &format!("{at}swap"));
    assert!(c.db_exists(rep["old_database"].as_str().unwrap()), "{at}the old database is kept");

    // One table: ordinary, partitioned (with its partitions), one partition.
    for (table, parts) in [
        ("app.orders", vec!["app.orders"]),
        ("app.events", vec!["app.events_2024_eu", "app.events_2024_us", "app.events_2025", "app.events_default"]),
        ("app.events_2025", vec!["app.events_2025"]),
    ] {
        let target = db_name(&format!("mx{major}_t"));
        s.ok(&["restore", "shop", "production", "--table", table, "--target-db", &target]);
        assert_eq!(hashes(&c, &target, &parts), hashes(&c, &db, &parts), "{at}--table {table}");
    }

    // In parallel.
    let jobs = db_name(&format!("mx{major}_jobs"));
    s.ok(&["restore", "shop", "production", "--jobs", "2", "--target-db", &jobs]);
    before.assert_same(&c.matrix_snapshot(&jobs), &format!("{at}--jobs 2"));

    // The roles, then the database, from S3.
    s.ok(&["restore-globals", "shop", "production"]);
    let remote = db_name(&format!("mx{major}_s3"));
    s.ok(&["restore", "shop", "production", "--from", "remote", "--target-db", &remote]);
    before.assert_same(&c.matrix_snapshot(&remote), &format!("{at}from S3"));
    assert_eq!(c.canonical_schema(&remote), schema, "{at}from S3: schema");

    // A parallel dump (directory format, one tar stream): counted, drilled, restored in parallel.
    let projects = std::fs::read_to_string(s.path().join("projects.yml")).unwrap();
    s.write("projects.yml", &format!("{projects}    backup:\n      jobs: 2\n"));
    let out = s.ok(&["backup", "shop", "production"]);
    let data = std::path::PathBuf::from(out.trim());
    let stem = data.file_name().unwrap().to_string_lossy().split('.').next().unwrap().to_string();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(data.with_file_name(format!("{stem}.json"))).unwrap()).unwrap();
    assert_eq!((m["format"].as_str(), m["large_objects"].as_u64()), (Some("directory"), Some(los as u64)), "{at}{m}");
    assert_eq!(m["tables"]["app.orders"], 900, "{at}{m}");
    let v: serde_json::Value = json(&s.ok(&["verify", "shop", "production", "--json"]));
    assert_eq!(v[0]["outcome"], "ok", "{at}directory drill: {v}");
    let dir = db_name(&format!("mx{major}_dir"));
    s.ok(&["restore", "shop", "production", "--target-db", &dir]);
    before.assert_same(&c.matrix_snapshot(&dir), &format!("{at}directory dump"));
    assert_eq!(c.canonical_schema(&dir), schema, "{at}directory dump: schema");
}

#[test]
fn postgresql_13() {
    every_operation_on(13);
}

#[test]
fn postgresql_14() {
    every_operation_on(14);
}

#[test]
fn postgresql_15() {
    every_operation_on(15);
}

#[test]
fn postgresql_16() {
    every_operation_on(16);
}

#[test]
fn postgresql_17() {
    every_operation_on(17);
}

#[test]
fn postgresql_18() {
    every_operation_on(18);
}
