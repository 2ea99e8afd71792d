//! Black-box tests of config loading, backup, list and restore against a real PostgreSQL.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use support::{Scratch, cluster, db_name, json, sh};

/// The reference guide's example block, verbatim, inside a platform file with other keys.
const GUIDE_PROJECTS: &str = r#"
filter-ical:
  # ... other config ...
  domains: [filter-ical.example.com]
  compose_file: docker-compose.yml

  database:
    type: postgresql
    container: postgres-platform
    databases:
      production: filterical_production
      staging: filterical_staging
    user: filterical_user

    backup:
      enabled: true
      retention_days: 30
      verify_on_restore: true

static-site:
  domains: [example.org]
"#;

fn scratch_for(db: &str) -> Scratch {
    let c = cluster();
    Scratch::new(&format!("app:\n  domains: [x]\n{}", c.database_block(&[("production", db)])), "")
}

fn manifest_of(s: &Scratch, project: &str, env: &str, stem: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(s.env_dir(project, env).join(format!("{stem}.json"))).unwrap()).unwrap()
}

fn stem_of(path: &str) -> String {
    let name = std::path::Path::new(path.trim()).file_name().unwrap().to_str().unwrap().to_string();
    name.split('.').next().unwrap().to_string()
}

#[test]
fn the_guides_projects_yml_loads_unchanged_and_platform_keys_are_ignored() {
    let s = Scratch::new(GUIDE_PROJECTS, "");
    let out = s.ok(&["config", "check", "--json"]);
    let v: serde_json::Value = json(&out);
    let p = &v["projects"][0];
    assert_eq!(p["name"], "filter-ical");
    assert_eq!(p["envs"]["production"], "filterical_production");
    assert_eq!(p["connection"], "container");
    assert_eq!(v["projects"].as_array().unwrap().len(), 1, "static-site has no database: block");
}

#[test]
fn config_errors_name_the_file_and_key_and_exit_2() {
    let bad = GUIDE_PROJECTS.replace("verify_on_restore: true", "verify_on_restore: true\n      retention_dayz: 3");
    let s = Scratch::new(&bad, "");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("projects.yml") && err.contains("filter-ical.database.backup") && err.contains("retention_dayz"), "{err}");

    let s = Scratch::new(&GUIDE_PROJECTS.replace("retention_days: 30", "retention_days: thirty"), "");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("filter-ical.database.backup.retention_days"), "{err}");

    let s = Scratch::new(GUIDE_PROJECTS, "remote:\n  url: ftp://x\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("pgtier.yml") && err.contains("remote.url"), "{err}");

    let s = Scratch::new(GUIDE_PROJECTS, "bogus_key: 1\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("pgtier.yml") && err.contains("bogus_key"), "{err}");

    let s = Scratch::new(&GUIDE_PROJECTS.replace("verify_on_restore: true", "verify_on_restore: true\n    policy: nightly"), "");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("filter-ical.database.policy") && err.contains("unknown policy \"nightly\""), "{err}");

    let s = Scratch::new(GUIDE_PROJECTS, "");
    s.write("policies/broken.yml", "tiers:\n  daily: {keep: 0}\n  hourly: {keep: 3}\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("broken.yml") && err.contains("tiers.daily.keep"), "{err}");

    // Every problem is reported, not only the first.
    let s = Scratch::new(&bad, "bogus_key: 1\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("bogus_key") && err.contains("retention_dayz"), "{err}");

    let s = Scratch::new("", "");
    s.write("pgtier.yml", "projects: missing.yml\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("missing.yml"), "{err}");

    // Duplicate keys are errors, not silently last-wins.
    s.write("pgtier.yml", "backup_root: /a\nbackup_root: /b\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("duplicate entry"), "{err}");
}

#[test]
fn unsafe_project_and_env_names_are_refused() {
    for (project, env) in [("../etc", "prod"), (".hidden", "prod"), ("a/b", "prod"), ("ok", "../../x"), ("ok", "pro d"), ("ok", "$(id)")] {
        let yml = format!("\"{project}\":\n  database:\n    type: postgresql\n    user: u\n    databases:\n      \"{env}\": db\n");
        let s = Scratch::new(&yml, "");
        let err = s.fails(2, &["config", "check"]);
        assert!(err.contains("name"), "{project}/{env}: {err}");
    }
    let s = Scratch::new(GUIDE_PROJECTS, "");
    let err = s.fails(2, &["backup", "nope", "production"]);
    assert!(err.contains("unknown project \"nope\""), "{err}");
    let err = s.fails(2, &["backup", "filter-ical", "qa"]);
    assert!(err.contains("no env \"qa\""), "{err}");
}

#[test]
fn backup_list_and_restore_round_trip() {
    let c = cluster();
    let db = db_name("roundtrip");
    c.create_sample_db(&db, 500);
    let s = scratch_for(&db);
    let path = s.ok(&["backup", "app", "production"]);
    let path = path.trim();
    assert!(path.ends_with(".dump.gz"), "{path}");
    assert!(std::path::Path::new(path).starts_with(s.env_dir("app", "production")));

    // Files 0600, folders 0700.
    assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    let stem = stem_of(path);
    let mpath = s.env_dir("app", "production").join(format!("{stem}.json"));
    assert_eq!(std::fs::metadata(&mpath).unwrap().permissions().mode() & 0o777, 0o600);
    for dir in [s.backup_root().join("app"), s.backup_root().join("app/production"), s.env_dir("app", "production")] {
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "{}", dir.display());
    }

    let m = manifest_of(&s, "app", "production", &stem);
    assert_eq!(m["project"], "app");
    assert_eq!(m["database"], db.as_str());
    assert_eq!(m["format"], "custom");
    assert_eq!(m["compression"], "gzip");
    assert_eq!(m["server_version"].as_str().unwrap().split('.').next(), Some("15"));
    assert_eq!(m["tables"]["public.users"], 500);
    assert_eq!(m["tables"]["public.events"], 1500);
    assert_eq!(m["tables"]["public.empty_table"], 0);
    assert_eq!(m["tables"]["billing.\"Invoices 2024\""], 17);
    assert_eq!(m["tiers"], serde_json::json!(["daily", "weekly", "monthly"]));
    let digest = sh(&format!("sha256sum '{path}' | cut -d' ' -f1"));
    assert_eq!(m["sha256"], digest.trim());
    assert_eq!(m["size"], std::fs::metadata(path).unwrap().len());

    assert_eq!(s.ok(&["list", "app", "production", "--latest"]).trim(), path);
    let rows: serde_json::Value = json(&s.ok(&["list", "app", "production", "--json"]));
    assert_eq!(rows[0]["backup"], stem.as_str());

    // Restore beside the original, by name.
    let side = db_name("roundtrip_side");
    let out = s.ok(&["restore", "app", "production", &stem, "--target-db", &side, "--json"]);
    let report: serde_json::Value = json(&out);
    assert_eq!(report["database"], side.as_str());
    assert_eq!(report["tables_checked"], 4);
    assert_eq!(c.fingerprint(&side), c.fingerprint(&db));
    assert!(c.temp_dbs_for(&side).is_empty(), "temporary databases left: {:?}", c.temp_dbs_for(&side));
}

#[test]
fn a_backup_restores_with_only_gunzip_and_pg_restore() {
    let c = cluster();
    let db = db_name("plaintools");
    c.create_sample_db(&db, 100);
    let s = scratch_for(&db);
    let path = s.ok(&["backup", "app", "production"]);
    let copy = db_name("plaintools_copy");
    c.psql("postgres", &format!("CREATE DATABASE {copy}"));
    sh(&format!(
        "gunzip -c '{}' | '{}' --exit-on-error -h 127.0.0.1 -p {} -U postgres -d {copy}",
        path.trim(),
        c.bindir.join("pg_restore").display(),
        c.port
    ));
    assert_eq!(c.fingerprint(&copy), c.fingerprint(&db));
}

#[test]
fn replacing_a_database_needs_force_and_keeps_the_old_one() {
    let c = cluster();
    let db = db_name("replace");
    c.create_sample_db(&db, 50);
    let s = scratch_for(&db);
    s.ok(&["backup", "app", "production", "--now", "2025-01-06T02:00:00Z"]);
    let before = c.fingerprint(&db);
    c.psql(&db, "DELETE FROM events; INSERT INTO users (name) VALUES ('after backup')");

    let err = s.fails(2, &["restore", "app", "production"]);
    assert!(err.contains("--force"), "{err}");
    assert_ne!(c.fingerprint(&db), before, "refused restore must not touch the database");

    // An open connection to the old database is ended by the swap.
    let mut holder = std::process::Command::new(c.bindir.join("psql"))
        .args(["-X", "-h", "127.0.0.1", "-U", "postgres", "-p", &c.port.to_string(), "-d", &db, "-c", "SELECT pg_sleep(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_until(std::time::Duration::from_secs(10), "the holder connection", || {
        c.psql("postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'")) != "0"
    });

    let out = s.ok(&["restore", "app", "production", "--force", "--now", "2025-01-07T10:00:00Z", "--json"]);
    let report: serde_json::Value = json(&out);
    assert_eq!(c.fingerprint(&db), before);
    let old = report["old_database"].as_str().unwrap().to_string();
    assert_eq!(old, format!("{db}_pgtier_old_20250107_100000"));
    assert!(c.db_exists(&old));
    assert!(c.psql(&old, "SELECT count(*) FROM users WHERE name = 'after backup'") == "1");
    let _ = holder.kill();
    let _ = holder.wait();

    // --drop-old drops the replaced database after the swap.
    let out = s.ok(&["restore", "app", "production", "--force", "--drop-old", "--now", "2025-01-08T10:00:00Z", "--json"]);
    let report: serde_json::Value = json(&out);
    assert!(report["old_database"].is_null());
    assert!(!c.db_exists(&format!("{db}_pgtier_old_20250108_100000")));
    assert_eq!(c.fingerprint(&db), before);
}

#[test]
fn restore_recreates_a_missing_database_without_force() {
    let c = cluster();
    let db = db_name("gone");
    c.create_sample_db(&db, 30);
    let s = scratch_for(&db);
    s.ok(&["backup", "app", "production"]);
    let before = c.fingerprint(&db);
    c.psql("postgres", &format!("DROP DATABASE {db}"));
    s.ok(&["restore", "app", "production"]);
    assert_eq!(c.fingerprint(&db), before);
}

#[test]
fn two_backups_in_the_same_second_never_overwrite_each_other() {
    let c = cluster();
    let db = db_name("samesecond");
    c.create_sample_db(&db, 20);
    let s = scratch_for(&db);
    let now = "2025-02-03T04:05:06Z";
    let children: Vec<_> = (0..3)
        .map(|_| s.cmd(&["backup", "app", "production", "--now", now]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let paths: Vec<String> = children
        .into_iter()
        .map(|ch| {
            let out = ch.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    let mut stems: Vec<String> = paths.iter().map(|p| stem_of(p)).collect();
    stems.sort();
    assert_eq!(stems, vec!["db_20250203_040506", "db_20250203_040506-2", "db_20250203_040506-3"]);
    let rows: serde_json::Value = json(&s.ok(&["list", "app", "production", "--json"]));
    assert_eq!(rows.as_array().unwrap().len(), 3);
    // Only the first of the day, week and month is promoted.
    let tiered: Vec<_> = rows.as_array().unwrap().iter().filter(|r| r["tiers"].as_array().unwrap().len() > 1).collect();
    assert_eq!(tiered.len(), 1);
}

#[test]
fn hand_made_dumps_restore_from_a_path_or_stdin_with_a_warning() {
    let c = cluster();
    let db = db_name("handmade");
    c.create_sample_db(&db, 40);
    let s = scratch_for(&db);
    let plain = s.path().join("by-hand.dump");
    sh(&format!("'{}' -Fc -h 127.0.0.1 -p {} -U postgres -d {db} -f '{}'", c.bindir.join("pg_dump").display(), c.port, plain.display()));
    sh(&format!("gzip -c '{}' > '{}.gz'", plain.display(), plain.display()));
    let expected = c.fingerprint(&db);

    let t1 = db_name("handmade_file");
    let out = s.run(&["restore", "app", "production", plain.to_str().unwrap(), "--target-db", &t1]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("warning: ") && String::from_utf8_lossy(&out.stdout).contains("no manifest"),
        "expected a warning"
    );
    assert_eq!(c.fingerprint(&t1), expected);

    let t2 = db_name("handmade_stdin");
    let out = s
        .cmd(&["restore", "app", "production", "-", "--target-db", &t2])
        .stdin(std::fs::File::open(format!("{}.gz", plain.display())).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.fingerprint(&t2), expected);

    // Plain SQL (pg_dump -Fp) goes through psql.
    let sql = s.path().join("by-hand.sql");
    sh(&format!("'{}' -Fp -h 127.0.0.1 -p {} -U postgres -d {db} -f '{}'", c.bindir.join("pg_dump").display(), c.port, sql.display()));
    let t3 = db_name("handmade_sql");
    s.ok(&["restore", "app", "production", sql.to_str().unwrap(), "--target-db", &t3]);
    assert_eq!(c.fingerprint(&t3), expected);
}

#[test]
fn corrupt_or_truncated_backups_are_refused_and_nothing_is_touched() {
    let c = cluster();
    let db = db_name("corrupt");
    c.create_sample_db(&db, 2000);
    let s = scratch_for(&db);
    let path = s.ok(&["backup", "app", "production"]);
    let path = path.trim().to_string();
    let before = c.fingerprint(&db);
    let good = std::fs::read(&path).unwrap();

    // A flipped byte: the checksum check refuses it before anything is touched.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&path, &bad).unwrap();
    let err = s.fails(1, &["restore", "app", "production", "--force"]);
    assert!(err.contains("does not match its manifest"), "{err}");
    assert_eq!(c.fingerprint(&db), before);

    // A truncated copy without a manifest: decoding fails, the half-made database is dropped.
    let cut = s.path().join("cut.dump.gz");
    std::fs::write(&cut, &good[..good.len() * 2 / 3]).unwrap();
    let err = s.fails(1, &["restore", "app", "production", cut.to_str().unwrap(), "--force"]);
    assert!(err.to_lowercase().contains("eof") || err.contains("corrupt") || err.contains("unexpected end"), "{err}");
    assert_eq!(c.fingerprint(&db), before);
    assert!(c.temp_dbs_for(&db).is_empty(), "temporary databases left: {:?}", c.temp_dbs_for(&db));
    assert!(c.dbs_like(&format!("{db}_pgtier_old")).is_empty());

    // Garbage is named as such.
    let junk = s.path().join("junk.bin");
    std::fs::write(&junk, [0u8, 1, 2, 3, 4, 5]).unwrap();
    let err = s.fails(1, &["restore", "app", "production", junk.to_str().unwrap(), "--target-db", "never_made"]);
    assert!(err.contains("unknown data"), "{err}");
    assert!(!c.db_exists("never_made"));
}

#[test]
fn a_failing_pg_dump_leaves_no_file_that_looks_like_a_backup() {
    let c = cluster();
    let db = db_name("dumpfail");
    c.create_sample_db(&db, 10);
    // A pg_dump that writes part of an archive, complains and fails, as one does midway.
    let s = scratch_for(&db);
    let bindir = s.path().join("fakebin");
    std::fs::create_dir_all(&bindir).unwrap();
    for tool in ["psql", "pg_restore"] {
        std::os::unix::fs::symlink(c.bindir.join(tool), bindir.join(tool)).unwrap();
    }
    s.write("fakebin/pg_dump", &format!("#!/bin/sh\nif [ \"$1\" = --version ]; then exec '{}' --version; fi\nprintf 'PGDMP partial archive'\necho 'pg_dump: error: Dumping the contents of table \"events\" failed: server closed the connection' >&2\nexit 1\n", c.bindir.join("pg_dump").display()));
    std::fs::set_permissions(bindir.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.write("pgtier.yml", &format!("projects: projects.yml\nbackup_root: backups\npg_bindir: {}\n", bindir.display()));
    let err = s.fails(1, &["backup", "app", "production"]);
    assert!(err.contains("Dumping the contents of table"), "pg_dump's stderr must be shown: {err}");
    assert_eq!(s.left_behind("app", "production"), Vec::<String>::new(), "no file may be left");
    let err = s.fails(1, &["list", "app", "production", "--latest"]);
    assert!(err.contains("no backups"), "{err}");
}

#[test]
fn an_older_pg_dump_is_refused() {
    let c = cluster();
    let db = db_name("oldtools");
    c.create_sample_db(&db, 1);
    let s = scratch_for(&db);
    let bindir = s.path().join("oldbin");
    std::fs::create_dir_all(&bindir).unwrap();
    std::os::unix::fs::symlink(c.bindir.join("psql"), bindir.join("psql")).unwrap();
    s.write("oldbin/pg_dump", "#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.11'\n");
    std::fs::set_permissions(bindir.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.write("pgtier.yml", &format!("projects: projects.yml\nbackup_root: backups\npg_bindir: {}\n", bindir.display()));
    // What this host cannot do is said before anything happens, naming what to install: exit 2.
    let err = s.fails(2, &["backup", "app", "production"]);
    assert!(
        err.contains("pg_dump 14.11") && err.contains("older than the server") && err.contains("Install the PostgreSQL 15 client tools"),
        "{err}"
    );
}

#[test]
fn a_table_lock_stalls_pg_dump_only_until_lock_wait_timeout() {
    let c = cluster();
    let db = db_name("locked");
    c.create_sample_db(&db, 10);
    let s = scratch_for(&db);
    s.write("pgtier.yml", "projects: projects.yml\nbackup_root: backups\nlock_wait_timeout: 1s\n");
    let mut locker = std::process::Command::new(c.bindir.join("psql"))
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
            &c.port.to_string(),
            "-d",
            &db,
            "-c",
            "BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_until(std::time::Duration::from_secs(10), "the lock", || {
        c.psql(&db, "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'events'::regclass") == "1"
    });
    let started = std::time::Instant::now();
    let err = s.fails(1, &["backup", "app", "production"]);
    let _ = locker.kill();
    let _ = locker.wait();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(err.contains("lock"), "{err}");
    assert!(s.left_behind("app", "production").is_empty(), "{:?}", s.files("app", "production"));
}

#[test]
fn password_file_goes_through_a_passfile_never_argv_or_logs() {
    let c = cluster();
    let db = db_name("pw");
    c.create_sample_db(&db, 5);
    let pw = "pw:with\\odd'chars";
    let s = Scratch::new(
        &format!(
            "app:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: pwuser\n    password_file: secret.txt\n    databases:\n      production: {db}\n",
            c.port
        ),
        "",
    );
    s.write("secret.txt", &format!("{pw}\nsecond line ignored\n"));
    std::fs::set_permissions(s.path().join("secret.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = s.run(&["-v", "backup", "app", "production"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("odd'chars"), "password leaked into logs: {stderr}");
    let stem = stem_of(&String::from_utf8_lossy(&out.stdout));
    let manifest = std::fs::read_to_string(s.env_dir("app", "production").join(format!("{stem}.json"))).unwrap();
    assert!(!manifest.contains("odd'chars"));
    // A wrong password fails clearly.
    s.write("secret.txt", "wrong\n");
    let err = s.fails(1, &["backup", "app", "production"]);
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn container_mode_runs_the_tools_through_docker_exec() {
    let c = cluster();
    let db = db_name("container");
    c.create_sample_db(&db, 25);
    let s = Scratch::new(
        &format!(
            "app:\n  database:\n    type: postgresql\n    container: pg-main\n    user: postgres\n    databases:\n      production: {db}\n    app_containers: [app-web, app-worker]\n"
        ),
        "",
    );
    // A docker stand-in: `exec -i [-e K[=V]]... CONTAINER TOOL ARGS` runs TOOL here against the
    // test cluster; stop/start are logged. It records argv so we can check no secret is in it.
    let log = s.path().join("docker.log");
    s.write(
        "bin/docker",
        &format!(
            r#"#!/bin/bash
echo "$*" >> '{log}'
case "$1" in
  stop|start) exit 0;;
  exec) shift;;
  *) echo "unexpected docker $1" >&2; exit 2;;
esac
[ "$1" = -i ] && shift
while [ "$1" = -e ]; do
  case "$2" in *=*) export "$2";; esac
  shift 2
done
container="$1"; shift
[ "$container" = pg-main ] || {{ echo "Error: No such container: $container" >&2; exit 1; }}
tool="$1"; shift
export PGHOST=127.0.0.1 PGPORT={port}
exec '{bindir}'/"$tool" "$@"
"#,
            log = log.display(),
            port = c.port,
            bindir = c.bindir.display()
        ),
    );
    std::fs::set_permissions(s.path().join("bin/docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path_env = format!("{}:{}", s.path().join("bin").display(), std::env::var("PATH").unwrap());
    let out = s.cmd(&["backup", "app", "production"]).env("PATH", &path_env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = c.fingerprint(&db);
    c.psql(&db, "DELETE FROM users WHERE id > 10 AND id NOT IN (SELECT user_id FROM events)");
    let out = s.cmd(&["restore", "app", "production", "--force"]).env("PATH", &path_env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.fingerprint(&db), before);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("exec -i -e PGUSER=postgres") && calls.contains("pg-main pg_dump --format=custom"), "{calls}");
    assert!(calls.contains("pg-main pg_restore"), "{calls}");
    let stops: Vec<_> = calls.lines().filter(|l| l.starts_with("stop ") || l.starts_with("start ")).collect();
    assert_eq!(stops, vec!["stop app-web", "stop app-worker", "start app-web", "start app-worker"]);
}

#[test]
fn restore_one_table_or_with_parallel_jobs() {
    let c = cluster();
    let db = db_name("tables");
    c.create_sample_db(&db, 300);
    let s = scratch_for(&db);
    s.ok(&["backup", "app", "production"]);
    let expected = c.fingerprint(&db);

    let par = db_name("tables_par");
    s.ok(&["restore", "app", "production", "--target-db", &par, "--jobs", "2"]);
    assert_eq!(c.fingerprint(&par), expected);

    // One table back into the live database after someone emptied it.
    c.psql(&db, "DELETE FROM billing.\"Invoices 2024\"");
    s.ok(&["restore", "app", "production", "--table", "billing.Invoices 2024", "--force"]);
    assert_eq!(c.psql(&db, "SELECT count(*) FROM billing.\"Invoices 2024\""), "17");
    assert_eq!(c.fingerprint(&db), expected);
}

#[test]
fn row_counts_come_from_the_dumps_snapshot_while_writes_go_on() {
    let c = cluster();
    let db = db_name("busy");
    c.create_sample_db(&db, 20000);
    let s = scratch_for(&db);
    // Keep inserting while the backup runs; the manifest's counts must match what was dumped.
    let writer = std::process::Command::new(c.bindir.join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &c.port.to_string(), "-d", &db, "-c"])
        .arg("DO $$ BEGIN FOR i IN 1..400 LOOP INSERT INTO events (user_id, payload) SELECT 1, '{}' FROM generate_series(1, 50); COMMIT; PERFORM pg_sleep(0.005); END LOOP; END $$")
        .spawn()
        .unwrap();
    s.ok(&["backup", "app", "production"]);
    let out = writer.wait_with_output().unwrap();
    assert!(out.status.success());
    let side = db_name("busy_side");
    // verify_on_restore compares every table's count with the manifest.
    let report: serde_json::Value = json(&s.ok(&["restore", "app", "production", "--target-db", &side, "--json"]));
    assert_eq!(report["tables_checked"], 4);
}

#[test]
fn an_unreachable_database_is_a_clear_failure() {
    let s = Scratch::new(
        &format!(
            "app:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: postgres\n    databases:\n      production: nothing\n",
            support::free_port()
        ),
        "",
    );
    let err = s.fails(1, &["backup", "app", "production"]);
    assert!(err.contains("cannot connect") || err.contains("Connection refused"), "{err}");
    assert!(s.left_behind("app", "production").is_empty(), "{:?}", s.files("app", "production"));
}
