//! Parallel dumps (`backup.jobs` above 1): pg_dump's directory format written with several
//! connections, stored as one tar stream, through every path a backup takes: local and S3,
//! age and OpenPGP, the drill, one table, beside the original and in its place, after a host
//! loss, with the plain tools alone (`tar`, `pg_restore -j`), and a restore that has no room
//! to unpack refusing before it changes anything. Each restore is compared with the original
//! as tests/fidelity.rs compares them (schema, per-table content, sequences, large objects,
//! database properties) on the rich fixture.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::localstack::localstack;
use support::{Cluster, Mount, Scratch, cluster, db_name, json, require_tool, sh};

/// projects.yml for `db` on `c`, dumped with two connections.
fn parallel_project(c: &Cluster, db: &str) -> String {
    format!("fx:\n{}    backup:\n      jobs: 2\n", c.database_block(&[("production", db)]))
}

fn manifest_of(data: &Path) -> serde_json::Value {
    let stem = data.file_name().unwrap().to_string_lossy().split('.').next().unwrap().to_string();
    serde_json::from_slice(&std::fs::read(data.with_file_name(format!("{stem}.json"))).unwrap()).unwrap()
}

/// What is in the scratch folder (`backup_root/.tmp`).
fn scratch_left(s: &Scratch) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(s.backup_root().join(".tmp")) else { return Vec::new() };
    entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn age_key(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("key.txt");
    let out = std::process::Command::new("age-keygen").arg("-o").arg(&path).output().unwrap();
    assert!(out.status.success(), "age-keygen: {}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    (path, public)
}

#[test]
fn a_parallel_dump_is_one_tar_that_restores_everything_on_every_local_path() {
    let c = cluster();
    let db = db_name("dir_local");
    c.create_rich_db(&db);
    let original = c.snapshot(&db);
    let s = Scratch::new(&parallel_project(c, &db), "");

    let out = s.ok(&["backup", "fx", "production"]);
    let data = PathBuf::from(out.trim());
    assert!(data.to_string_lossy().ends_with(".tar"), "{out}");
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o600);
    let m = manifest_of(&data);
    assert_eq!(m["format"], "directory", "{m}");
    assert_eq!(m["tables"]["app.orders"], 1200, "rows are counted from the dump's files: {m}");
    assert_eq!(m["large_objects"], 2, "{m}");
    assert_eq!(m["schema_fingerprint"].as_str().map(str::len), Some(64), "{m}");
    assert_eq!(scratch_left(&s), Vec::<String>::new(), "the dump folder is gone once archived");

    // doctor says what restoring it needs in the scratch folder.
    let doctor = s.run(&["doctor", "fx", "production"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("fx/production scratch room") && said.contains("unpacks its dump folder there first"), "{said}");

    // The drill restores it the same way a restore does, and compares.
    let v = json(&s.ok(&["verify", "fx", "production", "--json"]));
    assert_eq!(v[0]["outcome"], "ok", "{v}");

    // Beside the original, in parallel by default.
    let copy = db_name("dir_copy");
    let rep = json(&s.ok(&["restore", "fx", "production", "--target-db", &copy, "--json"]));
    assert_eq!(rep["large_objects"], 2, "{rep}");
    original.assert_same(&c.snapshot(&copy), "directory dump beside");

    // One job.
    let one = db_name("dir_one");
    s.ok(&["restore", "fx", "production", "--target-db", &one, "--jobs", "1"]);
    original.assert_same(&c.snapshot(&one), "directory dump, one job");

    // One table, into the live database.
    c.psql(&db, "UPDATE app.orders SET note = 'changed'");
    s.ok(&["restore", "fx", "production", "--table", "app.orders", "--force"]);
    assert_eq!(c.psql(&db, "SELECT count(*) FROM app.orders WHERE note = 'changed'"), "0");

    // In place of a database that changed since.
    c.psql(&db, "DELETE FROM app.event_refs; DELETE FROM app.events; SELECT lo_unlink(424242);");
    s.ok(&["restore", "fx", "production", "--force", "--drop-old"]);
    original.assert_same(&c.snapshot(&db), "directory dump swapped in");
    assert_eq!(scratch_left(&s), Vec::<String>::new(), "nothing is left in the scratch folder");
}

#[test]
fn an_encrypted_parallel_dump_restores_from_s3_after_a_host_loss_and_with_plain_tools() {
    require_tool("age", "install the Debian package age (scripts/setup does)");
    require_tool("age-keygen", "install the Debian package age (scripts/setup does)");
    require_tool("tar", "install the Debian package tar");
    let c = cluster();
    let db = db_name("dir_s3");
    c.create_rich_db(&db);
    let original = c.snapshot(&db);
    let keys = tempfile::tempdir().unwrap();
    let (identity, public) = age_key(keys.path());
    let bucket = localstack().bucket();
    let agent = format!(
        "encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\n{}",
        identity.display(),
        localstack().remote_yaml(&bucket, "dir")
    );
    let s = Scratch::new(&parallel_project(c, &db), &agent);
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\nverify: never\n");
    s.ok(&["run", "fx", "production"]);
    let data = std::fs::read_dir(s.env_dir("fx", "production"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.age"))
        .expect("a .tar.age backup");

    // Without pgtier: age -d | tar -x, then pg_restore -j 2 of the folder.
    let plain = db_name("dir_plain");
    let out = tempfile::tempdir().unwrap();
    sh(&format!("age -d -i '{}' '{}' | tar -x -C '{}'", identity.display(), data.display(), out.path().display()));
    let folder = std::fs::read_dir(out.path()).unwrap().next().unwrap().unwrap().path();
    assert!(folder.join("toc.dat").is_file(), "one top folder holding toc.dat: {}", folder.display());
    c.psql("postgres", &format!("CREATE DATABASE \"{plain}\""));
    sh(&format!(
        "'{}' -j 2 --exit-on-error -h 127.0.0.1 -p {} -U postgres -d '{plain}' '{}'",
        c.bindir.join("pg_restore").display(),
        c.port,
        folder.display()
    ));
    assert_eq!(c.table_hashes(&plain), c.table_hashes(&db), "pg_restore -j alone gives back every table");

    // The host is lost: a new server, no local backups; the backup comes from S3.
    let new = Cluster::start_new();
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    s.write("projects.yml", &format!("fx:\n{}", new.database_block(&[("production", &db)])));
    s.ok(&["restore-globals", "fx", "production", "--from", "remote"]);
    let rep = json(&s.ok(&["restore", "fx", "production", "--from", "remote", "--json"]));
    assert_eq!(rep["from"], "remote", "{rep}");
    original.assert_same(&new.snapshot(&db), "directory dump from S3 onto a new server");
}

#[test]
fn an_openpgp_parallel_dump_restores_and_opens_with_gpg() {
    require_tool("gpg", "install the Debian package gnupg (scripts/setup --tests does)");
    let c = cluster();
    let db = db_name("dir_gpg");
    c.create_sample_db(&db, 300);
    let s = Scratch::new(&parallel_project(c, &db), "encryption:\n  type: gpg\n  passphrase_file: pass.txt\n");
    let pass = s.write("pass.txt", "correct horse\n");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let data = PathBuf::from(s.ok(&["backup", "fx", "production"]).trim());
    assert!(data.to_string_lossy().ends_with(".tar.gpg"), "{}", data.display());
    let listed = sh(&format!(
        "gpg --batch --quiet --homedir '{}' --pinentry-mode loopback --passphrase-file '{}' -d '{}' | tar -t",
        s.path().display(),
        pass.display(),
        data.display()
    ));
    assert!(listed.lines().nth(1).is_some_and(|l| l.ends_with("/toc.dat")), "toc.dat comes first: {listed}");
    let copy = db_name("dir_gpg_copy");
    s.ok(&["restore", "fx", "production", "--target-db", &copy]);
    assert_eq!(c.table_hashes(&copy), c.table_hashes(&db));
}

#[test]
fn a_restore_without_room_to_unpack_refuses_before_changing_anything() {
    let c = cluster();
    let db = db_name("dir_room");
    c.create_sample_db(&db, 20_000);
    let s = Scratch::new(&parallel_project(c, &db), "");
    s.ok(&["backup", "fx", "production"]);
    // A scratch folder on a filesystem far smaller than the backup.
    let small = Mount::tmpfs("1m");
    let cfg = std::fs::read_to_string(s.path().join("pgtier.yml")).unwrap();
    s.write("pgtier.yml", &format!("{cfg}scratch_dir: {}\n", small.path().join("tmp").display()));
    let before = c.table_hashes(&db);
    c.psql(&db, "INSERT INTO users (name) VALUES ('after the backup')");
    let err = s.fails(1, &["restore", "fx", "production", "--force"]);
    assert!(err.contains("directory-format dump") && err.contains("free") && err.contains("nothing was changed"), "{err}");
    assert_ne!(c.table_hashes(&db), before, "the live database is untouched");
    assert_eq!(c.psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgtier_tmp%{db}%'")), "0");
    let copy = db_name("dir_room_copy");
    s.fails(1, &["restore", "fx", "production", "--target-db", &copy]);
    assert!(!c.db_exists(&copy));
}

#[test]
fn a_download_corrupted_while_it_is_loaded_is_named_a_checksum_mismatch_and_changes_nothing() {
    // A plain tar, so a flipped byte reaches a data file that is loaded before the stream ends.
    let c = cluster();
    let db = db_name("dir_flip");
    c.create_sample_db(&db, 20_000);
    let proxy = support::proxy::Proxy::start(&localstack().endpoint);
    let bucket = localstack().bucket();
    let s = Scratch::new(&parallel_project(c, &db), &support::localstack::remote_yaml_at(&proxy.endpoint, &bucket, "flip"));
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\nverify: never\n");
    s.ok(&["run", "fx", "production"]);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    proxy.set_rule(|r| {
        if r.method == "GET" && r.target.contains(".tar") { support::proxy::Verdict::Corrupt } else { support::proxy::Verdict::Forward }
    });
    let copy = db_name("dir_flip_copy");
    let err = s.fails(1, &["restore", "fx", "production", "--from", "remote", "--target-db", &copy]);
    assert!(err.contains("a load failed while the backup arrived"), "the flipped byte broke a table's load: {err}");
    assert!(err.contains("do not match the manifest") && err.contains("sha256"), "the checksum speaks, not pg_restore: {err}");
    assert!(!c.db_exists(&copy), "nothing is created");
    assert!(c.temp_dbs_for(&copy).is_empty(), "the half-loaded database is dropped");
    assert!(scratch_left(&s).is_empty(), "the unpacked files are gone: {:?}", scratch_left(&s));
    // Read cleanly, the same copy restores.
    proxy.set_rule(|_| support::proxy::Verdict::Forward);
    let out = s
        .cmd(&["restore", "fx", "production", "--from", "remote", "--target-db", &copy])
        .env("PGTIER_LOG", "pgtier=debug")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("streams straight into its load as it arrives"), "the largest table loads while it downloads: {err}");
    assert_eq!(c.table_hashes(&copy), c.table_hashes(&db));
}

#[test]
fn adopt_leaves_a_tar_alone_and_says_why() {
    let c = cluster();
    let db = db_name("dir_adopt");
    c.create_sample_db(&db, 10);
    let s = Scratch::new(&parallel_project(c, &db), "");
    let dir = s.env_dir("fx", "production");
    std::fs::create_dir_all(&dir).unwrap();
    let dump = tempfile::tempdir().unwrap();
    sh(&format!(
        "'{}' -Fd -j 2 -h 127.0.0.1 -p {} -U postgres -f '{}/d' '{db}' && tar -C '{}' -czf '{}/db_20250101_020000.sql.gz' d",
        c.bindir.join("pg_dump").display(),
        c.port,
        dump.path().display(),
        dump.path().display(),
        dir.display()
    ));
    let out = s.run(&["adopt", "fx", "production"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds a tar") && err.contains("left alone"), "{err}");
    assert!(!dir.join("db_20250101_020000.json").exists(), "no manifest vouches for what was not read");
    // It restores knowingly from its path.
    let copy = db_name("dir_adopt_copy");
    s.ok(&["restore", "fx", "production", dir.join("db_20250101_020000.sql.gz").to_str().unwrap(), "--target-db", &copy]);
    assert_eq!(c.table_hashes(&copy), c.table_hashes(&db));
}

#[test]
fn a_parallel_dump_through_a_container_or_with_no_jobs_is_a_config_error() {
    let block = |jobs: &str, container: &str| {
        format!(
            "fx:\n  database:\n    type: postgresql\n{container}    user: u\n    databases: {{production: shop}}\n    backup: {{jobs: {jobs}}}\n"
        )
    };
    let s = Scratch::new(&block("2", "    container: pg\n"), "");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("backup.jobs") && err.contains("container \"pg\"") && err.contains("direct connection"), "{err}");
    s.write("projects.yml", &block("0", ""));
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("backup.jobs") && err.contains("positive"), "{err}");
    s.write("projects.yml", &block("1", "    container: pg\n"));
    s.ok(&["config", "check"]);
}

#[test]
fn a_parallel_dump_killed_before_it_is_archived_leaves_nothing_the_next_command_keeps() {
    let c = cluster();
    let db = db_name("dir_killed");
    c.create_sample_db(&db, 500);
    let s = Scratch::new(&parallel_project(c, &db), "");
    let out = s.cmd(&["backup", "fx", "production"]).env("PGTIER_FAILPOINT", "backup:dumped").output().unwrap();
    assert_eq!(out.status.code(), None, "killed at the point: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(scratch_left(&s).len(), 1, "the dump folder is there after the kill");
    s.run(&["list", "fx", "production"]);
    assert_eq!(scratch_left(&s), Vec::<String>::new(), "the next command removes what the killed one left");
    let data = PathBuf::from(s.ok(&["backup", "fx", "production"]).trim());
    assert_eq!(manifest_of(&data)["tables"]["public.users"], 500);
}
