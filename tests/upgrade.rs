//! Across PostgreSQL majors: a backup of one major restores (and is drilled) on every newer
//! one, giving back the same data, sequences, large objects, properties and canonical schema;
//! a downgrade is refused before anything is created; a host with only newer client tools than
//! its server still restores and drills, and one with only older tools names what to install;
//! fingerprints do not change with the pg_dump that took them.

mod support;

use support::matrix::OWNER;
use support::{Cluster, Scratch, db_name, json, pgmajors};

/// A folder of versioned client tools holding only `majors` (as a host with just those
/// installed), for PGTIER_PG_VERSIONED_ROOT.
fn tools_of(majors: &[u32]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for m in majors {
        std::os::unix::fs::symlink(pgmajors().join(format!("versions/{m}")), dir.path().join(m.to_string())).unwrap();
    }
    dir
}

/// A project backing up `db` on `c` as its owner, with the client tools under `tools`.
fn scratch(c: &Cluster, db: &str, tools: &std::path::Path) -> Scratch {
    let s = Scratch::new(&projects(c, db), "");
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 30, locations: [local]}\n");
    s.set_env("PGTIER_PG_VERSIONED_ROOT", tools.display().to_string());
    s
}

fn projects(c: &Cluster, db: &str) -> String {
    format!(
        "shop:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: {OWNER}\n    databases:\n      production: {db}\n",
        c.port
    )
}

#[test]
fn a_backup_of_each_major_restores_and_drills_on_every_newer_one() {
    let all = tools_of(&[14, 15, 16, 17, 18]);
    let clusters: Vec<Cluster> = (13..=18).map(Cluster::start_major).collect();
    let on = |m: u32| &clusters[(m - 13) as usize];
    // Every step, and the longest jump.
    for (from, to) in [(13, 14), (14, 15), (15, 16), (16, 17), (17, 18), (13, 18)] {
        let (src, dst) = (on(from), on(to));
        let db = db_name(&format!("up{from}"));
        src.create_matrix_db(&db, if from >= 17 { 1200 } else { 3 });
        let before = src.matrix_snapshot(&db);
        let schema = src.canonical_schema(&db);
        let s = scratch(src, &db, all.path());
        s.ok(&["backup", "shop", "production"]);
        // The host now points at the newer server (its roles first).
        s.write("projects.yml", &projects(dst, &db));
        let exists = dst.psql("postgres", &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{OWNER}'"));
        if exists != "1" {
            dst.psql("postgres", &format!("CREATE ROLE {OWNER} LOGIN CREATEDB"));
        }
        let target = db_name(&format!("up{from}_on{to}"));
        let rep: serde_json::Value = json(&s.ok(&["restore", "shop", "production", "--target-db", &target, "--json"]));
        let at = format!("{from} → {to}");
        before.assert_same(&dst.matrix_snapshot(&target), &at);
        assert_eq!(dst.canonical_schema(&target), schema, "{at}: the schema, in canonical form");
        assert!(rep["analyze_seconds"].is_number(), "{at}: {rep}");
        // The drill on the newer server proves the older backup, fingerprint included.
        let v: serde_json::Value = json(&s.ok(&["verify", "shop", "production", "--json"]));
        assert_eq!(v[0]["outcome"], "ok", "{at}: {v}");
        assert!(v[0]["fingerprint"].is_string(), "{at}: the fingerprints compared: {v}");
    }

    // The other way: refused before anything is created, naming both majors.
    let db = db_name("down17");
    on(17).create_matrix_db(&db, 3);
    let s = scratch(on(17), &db, all.path());
    s.ok(&["backup", "shop", "production"]);
    s.write("projects.yml", &projects(on(16), &db));
    let target = db_name("down17_on16");
    let said = s.fails(2, &["restore", "shop", "production", "--target-db", &target]);
    assert!(said.contains("downgrade") && said.contains("PostgreSQL 17") && said.contains("16"), "{said}");
    assert!(!on(16).db_exists(&target) && on(16).temp_dbs_for(&target).is_empty(), "nothing was created");
}

#[test]
fn newer_client_tools_than_the_server_still_restore_and_drill() {
    // A host with only the 17 and 18 client tools, and a 16 and a 13 server.
    let newer = tools_of(&[17, 18]);
    for major in [16, 13] {
        let c = Cluster::start_major(major);
        let db = db_name(&format!("newer{major}"));
        c.create_matrix_db(&db, 3);
        let before = c.matrix_snapshot(&db);
        let s = scratch(&c, &db, newer.path());
        let at = format!("PostgreSQL {major} with pg_restore 17");
        // pg_dump 17 writes LOCALE_PROVIDER, which a 13 server does not know: no panic, the
        // database comes back as it was.
        s.ok(&["backup", "shop", "production"]);
        let doctor = s.ok(&["doctor", "shop", "production"]);
        assert!(doctor.contains("pg_restore 17") && doctor.contains("through psql"), "{at}: doctor says which tool: {doctor}");
        let v: serde_json::Value = json(&s.ok(&["verify", "shop", "production", "--json"]));
        assert_eq!(v[0]["outcome"], "ok", "{at}: {v}");
        let target = db_name(&format!("newer{major}_copy"));
        let rep: serde_json::Value = json(&s.ok(&["restore", "shop", "production", "--target-db", &target, "--jobs", "2", "--json"]));
        before.assert_same(&c.matrix_snapshot(&target), &at);
        assert!(rep["warnings"].to_string().contains("one job"), "{at}: a parallel restore it cannot do is said: {rep}");
        assert!(!rep["warnings"].to_string().contains("could not recreate"), "{at}: the database is created as it was: {rep}");
        let table = db_name(&format!("newer{major}_t"));
        s.ok(&["restore", "shop", "production", "--table", "app.orders", "--target-db", &table]);
        assert_eq!(c.table_hashes(&table).get("app.orders"), before.tables.get("app.orders"), "{at}: --table");
    }
}

#[test]
fn older_tools_name_the_major_to_install_and_fingerprints_ignore_the_tools() {
    let c = Cluster::start_major(14);
    let db = db_name("tools14");
    c.create_matrix_db(&db, 3);
    let (t14, t17) = (tools_of(&[14]), tools_of(&[17]));
    let s = scratch(&c, &db, t17.path());
    s.ok(&["backup", "shop", "production", "--now", "2026-01-01T02:00:00Z"]);
    s.set_env("PGTIER_PG_VERSIONED_ROOT", t14.path().display().to_string());
    s.ok(&["backup", "shop", "production", "--now", "2026-01-02T02:00:00Z"]);
    // The same schema, taken by pg_dump 17 and by pg_dump 14: one fingerprint.
    let listed: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--json"]));
    let manifests: Vec<serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_slice(
                &std::fs::read(
                    std::path::Path::new(r["path"].as_str().unwrap()).with_file_name(format!("{}.json", r["backup"].as_str().unwrap())),
                )
                .unwrap(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(manifests.len(), 2);
    assert_ne!(manifests[0]["pg_dump_version"], manifests[1]["pg_dump_version"]);
    assert_eq!(manifests[0]["schema_fingerprint"], manifests[1]["schema_fingerprint"], "{manifests:?}");
    // pg_dump 17's archive with only pg_restore 14 here: exit 2 naming 17, nothing created.
    let target = db_name("tools14_copy");
    let said = s.fails(2, &["restore", "shop", "production", "db_20260101_020000", "--target-db", &target]);
    assert!(said.contains("pg_restore 17") && said.contains("Install the PostgreSQL 17 client tools"), "{said}");
    assert!(!c.db_exists(&target) && c.temp_dbs_for(&target).is_empty(), "nothing was created");
}
