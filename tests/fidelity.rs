//! Restore fidelity on a database like real ones (tests/fixtures/rich.sql: partitions,
//! inheritance, large objects, ICU, RLS, a subscription, odd names, database settings and
//! grants). Every restore path is compared with the original by schema dump, per-table content
//! hashes, sequence values, large objects and database properties. One test per defect of the
//! restore-fidelity issue, each of which failed before it was fixed.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{Cluster, Scratch, cluster, db_name, json};

fn scratch_on(c: &Cluster, db: &str) -> Scratch {
    Scratch::new(&format!("fx:\n{}", c.database_block(&[("production", db)])), "")
}

fn rich(prefix: &str) -> (&'static Cluster, String, Scratch) {
    let c = cluster();
    let db = db_name(prefix);
    c.create_rich_db(&db);
    let s = scratch_on(c, &db);
    s.ok(&["backup", "fx", "production"]);
    (c, db, s)
}

#[test]
fn whole_database_restores_give_back_everything_on_every_path() {
    let (c, db, s) = rich("fid_whole");
    let original = c.snapshot(&db);

    // Beside the original.
    let copy = db_name("fid_copy");
    let out = s.ok(&["restore", "fx", "production", "--target-db", &copy]);
    assert!(out.contains("schema objects and database properties") && out.contains("2 large objects"), "{out}");
    original.assert_same(&c.snapshot(&copy), "--target-db");

    // With parallel jobs.
    let par = db_name("fid_jobs");
    s.ok(&["restore", "fx", "production", "--target-db", &par, "--jobs", "2"]);
    original.assert_same(&c.snapshot(&par), "--jobs 2");

    // In place of a database that changed since: settings, grants and data all come back.
    c.psql(&db, "DELETE FROM app.event_refs; DELETE FROM app.events; UPDATE app.orders SET note = 'changed'; SELECT lo_unlink(424242);");
    c.psql(
        "postgres",
        &format!(
            "ALTER DATABASE \"{db}\" RESET search_path; GRANT CONNECT ON DATABASE \"{db}\" TO PUBLIC; COMMENT ON DATABASE \"{db}\" IS NULL"
        ),
    );
    s.ok(&["restore", "fx", "production", "--force", "--drop-old"]);
    original.assert_same(&c.snapshot(&db), "swap");
    // The application's unqualified names resolve again through the database's search_path.
    assert_eq!(c.psql(&db, "SELECT count(*) FROM orders"), "1200");
}

#[test]
fn a_restore_onto_a_new_server_from_s3_gives_back_everything() {
    use support::localstack::localstack;
    let c = cluster();
    let db = db_name("fid_remote");
    c.create_rich_db(&db);
    let original = c.snapshot(&db);
    let bucket = localstack().bucket();
    let s = Scratch::new(&format!("fx:\n{}", c.database_block(&[("production", &db)])), &localstack().remote_yaml(&bucket, "fid"));
    s.ok(&["run", "fx", "production"]);
    let new = Cluster::start_new();
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    s.write("projects.yml", &format!("fx:\n{}", new.database_block(&[("production", &db)])));
    s.ok(&["restore-globals", "fx", "production", "--from", "remote"]);
    s.ok(&["restore", "fx", "production", "--from", "remote"]);
    original.assert_same(&new.snapshot(&db), "new server from S3");
}

#[test]
fn a_database_in_its_own_tablespace_comes_back_there_or_says_why_not() {
    // Its own server: a tablespace in the shared one would follow every globals dump.
    let c = &Cluster::start_new();
    let space = format!("fid_space_{}", support::unique());
    let dir = c.dir.join(&space);
    std::fs::create_dir_all(&dir).unwrap();
    if support::is_root() {
        assert!(std::process::Command::new("chown").arg("postgres:postgres").arg(&dir).status().unwrap().success());
    }
    c.psql("postgres", &format!("CREATE TABLESPACE {space} LOCATION '{}'", dir.display()));
    let db = db_name("fid_ts");
    c.psql("postgres", &format!("CREATE DATABASE {db} TABLESPACE {space}"));
    c.psql(&db, "CREATE TABLE t AS SELECT generate_series(1, 10) AS x");
    let s = scratch_on(c, &db);
    s.ok(&["backup", "fx", "production"]);
    let copy = db_name("fid_ts_copy");
    s.ok(&["restore", "fx", "production", "--target-db", &copy]);
    assert_eq!(c.database_properties(&copy), c.database_properties(&db));
    assert!(c.database_properties(&copy).ends_with(&format!("{space} || ")), "{}", c.database_properties(&copy));

    // A server without that tablespace: restored into the default one, with a warning naming it.
    let new = Cluster::start_new();
    s.write("projects.yml", &format!("fx:\n{}", new.database_block(&[("production", &db)])));
    let out = s.run(&["restore", "fx", "production", "--no-owner"]);
    let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("tablespace \"{space}\", which does not exist on this server")), "{err}");
    assert_eq!(new.psql(&db, "SELECT count(*) FROM t"), "10");
}

#[test]
fn one_table_restores_whole_into_the_live_database_or_refuses() {
    let (c, db, s) = rich("fid_table");
    let original = c.snapshot(&db);

    // 1. A partitioned table: every partition's rows come back, partitions stay attached.
    c.psql(&db, "DELETE FROM app.event_refs WHERE id > 20; DELETE FROM app.events e WHERE NOT EXISTS (SELECT 1 FROM app.event_refs r WHERE r.event_id = e.id)");
    let out = s.ok(&["restore", "fx", "production", "--table", "app.events", "--force"]);
    assert!(out.contains("checked 6 table(s)"), "{out}");
    assert_eq!(c.psql(&db, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'app.events'::regclass"), "3");
    for t in ["app.events_2024_eu", "app.events_2024_us", "app.events_2025", "app.events_default"] {
        assert_eq!(c.table_hashes(&db)[t], original.tables[t], "{t}");
    }
    // event_refs was not part of the restore and kept its changed rows.
    assert_ne!(c.table_hashes(&db)["app.event_refs"], original.tables["app.event_refs"]);

    // 2. An ordinary table with triggers and an owned sequence: rows and sequence come back,
    // its structure stays, no trigger fires, no other table changes.
    c.psql(&db, "UPDATE app.orders SET note = 'changed' WHERE id < 50; SELECT setval('app.orders_id_seq', 5)");
    let audit_before = c.table_hashes(&db)["app.audit"].clone();
    s.ok(&["restore", "fx", "production", "--table", "orders", "--force"]);
    assert_eq!(c.table_hashes(&db)["app.orders"], original.tables["app.orders"]);
    assert_eq!(c.table_hashes(&db)["app.audit"], audit_before, "the audit trigger must not fire");
    assert_eq!(c.psql(&db, "SELECT last_value FROM app.orders_id_seq"), "1200");
    assert_eq!(c.schema_dump(&db), original.schema, "the structure is unchanged");
    c.psql(&db, "INSERT INTO app.orders (customer_id, qty, price) VALUES (1, 1, 1)"); // the application's next INSERT works

    // 3. A single partition restores as an attached partition.
    c.psql(&db, "DELETE FROM app.events_2025 WHERE id NOT IN (SELECT event_id FROM app.event_refs WHERE event_id IS NOT NULL)");
    s.ok(&["restore", "fx", "production", "--table", "app.events_2025", "--force"]);
    assert_eq!(c.psql(&db, "SELECT relispartition FROM pg_class WHERE oid = 'app.events_2025'::regclass"), "t");
    assert_eq!(c.table_hashes(&db)["app.events_2025"], original.tables["app.events_2025"]);

    // 4. A referenced table whose rows others still need: refused, nothing changed.
    c.psql(&db, "INSERT INTO app.customers (email, name) VALUES ('late@example.com', 'Late'); INSERT INTO app.orders (customer_id, qty, price) SELECT max(id), 1, 1 FROM app.customers");
    let before = c.table_hashes(&db);
    let err = s.fails(1, &["restore", "fx", "production", "--table", "app.customers", "--force"]);
    assert!(
        err.contains("rows of app.orders would reference rows of app.customers that the backup lacks")
            && err.contains("orders_customer_id_fkey"),
        "{err}"
    );
    assert_eq!(c.table_hashes(&db), before, "a refused restore changes nothing");
    c.psql(&db, "DELETE FROM app.orders WHERE id > 1200; DELETE FROM app.customers WHERE id > 300");
    s.ok(&["restore", "fx", "production", "--table", "app.customers", "--force"]);
    assert_eq!(c.table_hashes(&db)["app.customers"], original.tables["app.customers"]);

    // 5. Names as the manifest prints them, and dots inside quotes.
    c.psql(&db, "DELETE FROM \"my schema\".\"MixedCase\"; DELETE FROM \"my schema\".\"a.b\"");
    s.ok(&["restore", "fx", "production", "--table", "\"my schema\".\"MixedCase\"", "--force"]);
    s.ok(&["restore", "fx", "production", "--table", "\"my schema\".\"a.b\"", "--force"]);
    assert_eq!(c.table_hashes(&db)["\"my schema\".\"MixedCase\""], original.tables["\"my schema\".\"MixedCase\""]);
    assert_eq!(c.table_hashes(&db)["\"my schema\".\"a.b\""], original.tables["\"my schema\".\"a.b\""]);

    // 6. An unknown table is an error listing the nearest names.
    let err = s.fails(2, &["restore", "fx", "production", "--table", "app.ordres", "--force"]);
    assert!(err.contains("no such table") && err.contains("app.orders"), "{err}");

    // 7. A dropped table is created again with its indexes, constraints, triggers and grants.
    c.psql(&db, "DROP TABLE app.notes");
    s.ok(&["restore", "fx", "production", "--table", "app.notes", "--force"]);
    assert_eq!(c.table_hashes(&db)["app.notes"], original.tables["app.notes"]);
    assert_eq!(c.psql(&db, "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'app.notes'::regclass"), "t");
    assert_eq!(c.psql(&db, "SELECT count(*) FROM pg_policies WHERE tablename = 'notes'"), "2");

    // Put back what the steps above changed on purpose; then the whole database is the original.
    for t in ["app.event_refs", "app.orders", "app.audit"] {
        s.ok(&["restore", "fx", "production", "--table", t, "--force"]);
    }
    // A sequence the table does not own (a shared DEFAULT nextval) is left alone by design.
    c.psql(&db, "SELECT setval('app.invoice_no', 99999, true)");
    original.assert_same(&c.snapshot(&db), "after every table restore");
}

#[test]
fn one_table_into_a_new_database_brings_what_it_needs() {
    let (c, db, s) = rich("fid_table_new");
    let original = c.snapshot(&db);
    let target = db_name("fid_one");
    s.ok(&["restore", "fx", "production", "--table", "app.orders", "--target-db", &target]);
    assert_eq!(c.table_hashes(&target)["app.orders"], original.tables["app.orders"]);
    assert_eq!(c.psql(&target, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.orders'::regclass AND NOT tgisinternal"), "2");
    assert_eq!(c.psql(&target, "SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'"), "4");
    assert_eq!(c.psql(&target, "SELECT last_value FROM app.orders_id_seq"), "1200");
    assert_eq!(c.psql(&target, "SELECT to_regclass('app.customers') IS NULL"), "t", "only what the table needs");
    let target2 = db_name("fid_one_part");
    s.ok(&["restore", "fx", "production", "--table", "app.events", "--target-db", &target2]);
    for t in ["app.events_2024_eu", "app.events_2024_us", "app.events_2025", "app.events_default"] {
        assert_eq!(c.table_hashes(&target2)[t], original.tables[t], "{t}");
    }
}

#[test]
fn backups_succeed_where_the_database_sets_timeouts_pg_dump_overrides() {
    let c = cluster();
    let db = db_name("fid_guards");
    c.create_sample_db(&db, 2000);
    c.psql(
        "postgres",
        &format!(
            "ALTER DATABASE {db} SET statement_timeout = '1ms'; ALTER DATABASE {db} SET idle_in_transaction_session_timeout = '50ms'; ALTER DATABASE {db} SET lock_timeout = '1ms'"
        ),
    );
    let s = Scratch::new(&format!("app:\n{}", c.database_block(&[("production", &db)])), "");
    // A pg_dump that takes its time, so the snapshot-exporting session sits idle in its transaction.
    let bindir = s.path().join("slowbin");
    std::fs::create_dir_all(&bindir).unwrap();
    for tool in ["psql", "pg_restore"] {
        std::os::unix::fs::symlink(c.bindir.join(tool), bindir.join(tool)).unwrap();
    }
    s.write(
        "slowbin/pg_dump",
        &format!("#!/bin/sh\n[ \"$1\" = --version ] || sleep 1\nexec '{}' \"$@\"\n", c.bindir.join("pg_dump").display()),
    );
    std::fs::set_permissions(bindir.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: backups\npg_bindir: {}\n", bindir.display()));
    s.ok(&["backup", "app", "production"]);
    let copy = db_name("fid_guards_copy");
    s.ok(&["restore", "app", "production", "--target-db", &copy]);
    s.ok(&["verify", "app", "production"]);
    // The restored copy kept the guards (they are the database's settings); lift them to compare.
    assert_eq!(
        c.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '{copy}'")
        ),
        "1"
    );
    c.psql("postgres", &format!("ALTER DATABASE {db} RESET ALL; ALTER DATABASE {copy} RESET ALL"));
    assert_eq!(c.fingerprint(&copy), c.fingerprint(&db));
}

#[test]
fn a_hand_made_sql_file_restores_only_into_its_target() {
    let c = cluster();
    let db = db_name("fid_sql");
    c.create_sample_db(&db, 20);
    let s = Scratch::new(&format!("app:\n{}", c.database_block(&[("production", &db)])), "");
    // pg_dump -C: its preamble is skipped with a note, the data goes into --target-db.
    let file = s.path().join("create.sql");
    let out = std::process::Command::new(c.bindir.join("pg_dump"))
        .args(["-C", "-h", "127.0.0.1", "-U", "postgres", "-p", &c.port.to_string(), "-f"])
        .arg(&file)
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success());
    c.psql(&db, "INSERT INTO users (name) VALUES ('written after the dump')");
    let target = db_name("fid_sql_target");
    let out = s.run(&["restore", "app", "production", file.to_str().unwrap(), "--target-db", &target]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped the pg_dump -C preamble"));
    assert_eq!(c.psql(&target, "SELECT count(*) FROM users"), "20");
    assert_eq!(c.psql(&db, "SELECT count(*) FROM users"), "21", "the original was not written to");

    // Shell and connection commands are refused, and nothing is left behind.
    let marker = s.path().join("pwned");
    for (name, sql) in [
        ("shell.sql", format!("CREATE TABLE t (x int);\n\\! touch {}\n", marker.display())),
        ("inline.sql", format!("CREATE TABLE t (x int); \\! touch {}\n", marker.display())),
        ("connect.sql", format!("CREATE TABLE t (x int);\n\\connect {db}\nCREATE TABLE escaped (x int);\n")),
    ] {
        let f = s.write(name, &sql);
        let t = db_name("fid_sql_bad");
        let err = s.fails(2, &["restore", "app", "production", f.to_str().unwrap(), "--target-db", &t]);
        assert!(err.contains("refusing"), "{name}: {err}");
        assert!(!marker.exists(), "{name}: the shell command ran");
        assert!(!c.db_exists(&t) && c.temp_dbs_for(&t).is_empty(), "{name}: a database was left behind");
    }
    assert_eq!(c.psql(&db, "SELECT to_regclass('escaped') IS NULL"), "t");
}

#[test]
fn drills_run_on_a_server_without_the_database_or_its_roles_and_drop_subscriptions() {
    let (c, _db, s) = rich("fid_drill");
    // On the same server: owners and grants compared too; the subscription is dropped with the database.
    let out = s.ok(&["verify", "fx", "production"]);
    assert!(out.starts_with("ok"), "{out}");
    assert!(c.dbs_like("pgtier_tmp_").iter().all(|d| !d.contains("fid_drill")), "{:?}", c.dbs_like("pgtier_tmp_"));
    // On a drill host that has neither the database nor the roles.
    let drill = Cluster::start_new();
    let d = Scratch::new(&format!("fx:\n{}", drill.database_block(&[("production", "no_such_db")])), "");
    d.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: {}\n", s.backup_root().display()));
    let out = d.ok(&["verify", "fx", "production", "--json"]);
    let v: serde_json::Value = json(&out);
    assert_eq!(v[0]["ok"], true, "{v}");
    assert!(v[0]["notes"].to_string().contains("do not exist on this server"), "{v}");
    assert!(drill.dbs_like("pgtier_tmp_").is_empty());
}

#[test]
fn drop_old_after_a_swap_drops_a_database_with_a_subscription_and_names_collide_never() {
    let (c, db, s) = rich("fid_swap");
    let now = "2030-01-01T00:00:00Z";
    s.ok(&["restore", "fx", "production", "--force", "--now", now]);
    s.ok(&["restore", "fx", "production", "--force", "--now", now]);
    let olds = c.dbs_like(&format!("{db}_pgtier_old_"));
    assert_eq!(olds.len(), 2, "two restores in the same second keep two old databases: {olds:?}");
    s.ok(&["restore", "fx", "production", "--force", "--drop-old", "--now", now]);
    assert_eq!(c.dbs_like(&format!("{db}_pgtier_old_")).len(), 2, "the third old database, which holds a subscription, was dropped");
    assert_eq!(
        c.psql(&db, "SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = current_database()"),
        "1"
    );
}

#[test]
fn adopted_sql_backups_verify_as_restored_without_counts() {
    let c = cluster();
    let db = db_name("fid_adopt");
    c.create_sample_db(&db, 30);
    let s = Scratch::new(&format!("app:\n{}", c.database_block(&[("production", &db)])), "");
    let dir = s.env_dir("app", "production");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("db_20250101_020000.sql.gz");
    support::sh(&format!(
        "'{}' -h 127.0.0.1 -U postgres -p {} {db} | gzip > '{}'",
        c.bindir.join("pg_dump").display(),
        c.port,
        file.display()
    ));
    s.ok(&["adopt", "app", "production"]);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("db_20250101_020000.json")).unwrap()).unwrap();
    assert_eq!((m["format"].as_str(), m["compression"].as_str()), (Some("plain"), Some("gzip")), "{m}");
    let out = s.ok(&["verify", "app", "production", "--json"]);
    let v: serde_json::Value = json(&out);
    assert_eq!(v[0]["ok"], true, "{v}");
    assert!(v[0]["notes"].to_string().contains("no row counts to compare"), "{v}");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("db_20250101_020000.json")).unwrap()).unwrap();
    assert_eq!(m["verifications"][0]["ok"], true);
    assert!(m["verifications"][0]["note"].as_str().unwrap().contains("no row counts"), "{m}");
}

#[test]
fn a_flipped_byte_is_named_as_a_checksum_mismatch() {
    let c = cluster();
    let db = db_name("fid_flip");
    c.create_sample_db(&db, 500);
    let s = Scratch::new(&format!("app:\n{}", c.database_block(&[("production", &db)])), "");
    let path = s.ok(&["backup", "app", "production"]);
    let path = std::path::Path::new(path.trim());
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
    let out = s.run(&["verify", "app", "production"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("does not match its manifest") && text.contains("sha256"), "{text}");
}

#[test]
fn a_manifest_records_the_schema_fingerprint_and_large_objects() {
    let (_c, _db, s) = rich("fid_manifest");
    let dir = s.env_dir("fx", "production");
    let m = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).find(|e| e.file_name().to_string_lossy().ends_with(".json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(m.path()).unwrap()).unwrap();
    assert_eq!(m["large_objects"], 2, "{m}");
    assert_eq!(m["schema_fingerprint"].as_str().map(str::len), Some(64), "{m}");
}
