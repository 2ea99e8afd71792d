//! Reliability round two: clocks that jump, symbolic links, signals, leftovers, the tools'
//! environment, a lost S3 answer and hostile config values. One test per defect, each of which
//! lost backups, hung or leaked before it was fixed.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::localstack::{localstack, remote_yaml_at};
use support::proxy::{Proxy, Verdict};
use support::{Scratch, cluster, db_name, json, wait_until};

/// A scratch with a NAS-style `file://` remote and the guide's default policy.
fn with_file_remote(db: &str) -> (Scratch, std::path::PathBuf) {
    let c = cluster();
    let nas = tempfile::tempdir().unwrap().keep();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", db)])),
        &format!("remote:\n  url: file://{}\n", nas.display()),
    );
    (s, nas)
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_clock_behind_or_ahead_never_deletes_a_backup() {
    let c = cluster();
    let db = db_name("clock");
    c.create_sample_db(&db, 20);
    let (s, nas) = with_file_remote(&db);
    for day in 14..=16 {
        s.ok(&["run", "--now", &format!("2024-05-{day}T02:00:00Z")]);
    }
    let local = s.files("shop", "production");
    let remote = files_under(&nas);
    assert!(remote.len() >= 6, "{remote:?}");

    // The clock is set back to 1 May: the run backs up and uploads, but deletes nothing.
    let out = s.run(&["run", "--now", "2024-05-01T02:00:00Z"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the clock is behind"), "{}", String::from_utf8_lossy(&out.stderr));
    let after = s.files("shop", "production");
    assert!(local.iter().all(|f| after.contains(f)), "nothing local was deleted: {local:?} vs {after:?}");
    let after_remote = files_under(&nas);
    assert!(remote.iter().all(|f| after_remote.contains(f)), "nothing off-site was deleted");
    let out = s.run(&["audit", "--now", "2024-05-01T03:00:00Z"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "audit finds the clock problem: {text}");
    assert!(text.contains("[clock]") || text.contains("clock"), "{text}");

    // One night with the clock far ahead, then back to normal, then still ahead: nothing goes.
    s.ok(&["run", "--now", "2099-01-01T02:00:00Z"]);
    let before = s.files("shop", "production");
    s.ok(&["run", "--now", "2024-05-17T02:00:00Z"]);
    s.ok(&["run", "--now", "2099-03-01T02:00:00Z"]);
    let after = s.files("shop", "production");
    assert!(before.iter().all(|f| after.contains(f)), "a forward jump deletes nothing: {before:?} vs {after:?}");
}

#[test]
fn symbolic_links_are_refused_and_foreign_files_stay() {
    let c = cluster();
    let db = db_name("links");
    c.create_sample_db(&db, 10);
    let (s, nas) = with_file_remote(&db);
    let path = s.ok(&["backup", "shop", "production"]);
    let path = std::path::Path::new(path.trim()).to_path_buf();
    // The backup file is replaced by a link to a secret: never read, never uploaded.
    let secret = s.write("secret.txt", "root:$6$very-secret-hash");
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&secret, &path).unwrap();
    let out = s.run(&["sync"]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for f in files_under(&nas) {
        let body = std::fs::read_to_string(nas.join(&f)).unwrap_or_default();
        assert!(!body.contains("very-secret-hash"), "the link was followed and uploaded as {f}");
    }
    let out = s.run(&["audit"]);
    let audit = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(audit.contains("symbolic link"), "audit names the link: {audit}\n(sync said: {text})");
    std::fs::remove_file(&path).unwrap();

    // A file of pgtier's naming copied in by hand (a recovery drill) is foreign: never deleted.
    let env_dir = s.env_dir("shop", "production");
    std::fs::write(env_dir.join("db_20200101_020000.dump.gz"), b"fetched by hand").unwrap();
    s.run(&["run"]);
    assert!(env_dir.join("db_20200101_020000.dump.gz").exists(), "a file pgtier did not write was deleted");

    // A linked env folder: refused, and the folder it points at is neither chmodded nor cleaned.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(elsewhere.path().join("db_20200101_020000.dump.gz"), b"someone else's").unwrap();
    std::fs::remove_dir_all(&env_dir).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &env_dir).unwrap();
    let err = s.fails(1, &["backup", "shop", "production"]);
    assert!(err.contains("symbolic link"), "{err}");
    s.run(&["run"]);
    assert_eq!(std::fs::metadata(elsewhere.path()).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(elsewhere.path().join("db_20200101_020000.dump.gz").exists());
}

/// Starts pgtier, sends `signal` after `after`, and returns (exit code, how long it took to exit).
fn signalled(s: &Scratch, args: &[&str], stdin: Stdio, signal: i32, after: Duration) -> (Option<i32>, Duration, String) {
    let mut child = s.cmd(args).stdin(stdin).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(after);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), sent.elapsed(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pgtier {args:?} still running 30 s after signal {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_signal_ends_every_command_within_seconds_with_130_and_cleans_up() {
    let c = cluster();
    let db = db_name("signals");
    c.create_sample_db(&db, 20_000);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), "");
    s.ok(&["backup", "shop", "production"]);
    for (args, signal, after) in [
        (vec!["verify", "shop", "production"], libc::SIGTERM, Duration::from_millis(30)),
        (vec!["verify", "shop", "production"], libc::SIGINT, Duration::from_millis(400)),
        (vec!["run"], libc::SIGTERM, Duration::from_millis(600)),
        (vec!["restore", "shop", "production", "--target-db", "signalled_copy"], libc::SIGTERM, Duration::from_millis(500)),
    ] {
        let (code, took, err) = signalled(&s, &args, Stdio::null(), signal, after);
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?} to stop: {err}");
        assert!(matches!(code, Some(130) | Some(0)), "{args:?}: exit {code:?}: {err}");
        wait_until(Duration::from_secs(10), "temporary databases to go", || {
            c.dbs_like("pgtier_tmp_").iter().all(|d| !d.ends_with(&format!("verify_{db}")) && !d.ends_with("signalled_copy"))
        });
        // An interrupted drill proves nothing about the backup, so nothing is recorded.
        let m = std::fs::read_dir(s.env_dir("shop", "production"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect::<String>();
        assert!(!m.contains("\"ok\": false"), "an interrupted drill was recorded as a failure: {m}");
    }
    // stdin that never ends: `yes 'select 1;' | pgtier restore … -`.
    let mut yes = std::process::Command::new("yes").arg("select 1;").stdout(Stdio::piped()).spawn().unwrap();
    let (code, took, err) = signalled(
        &s,
        &["restore", "shop", "production", "-", "--target-db", "from_stdin"],
        Stdio::from(yes.stdout.take().unwrap()),
        libc::SIGTERM,
        Duration::from_secs(2),
    );
    let _ = yes.kill();
    let _ = yes.wait();
    assert!(took < Duration::from_secs(10), "restore from stdin took {took:?} to stop: {err}");
    assert_eq!(code, Some(130), "{err}");
    wait_until(Duration::from_secs(10), "the temporary database to go", || c.temp_dbs_for("from_stdin").is_empty());
    // The lock is free again.
    s.ok(&["run"]);
}

#[test]
fn a_killed_parallel_restore_leaves_nothing_decrypted_in_the_system_temp_folder() {
    let c = cluster();
    let db = db_name("leftover");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    c.psql(&db, "CREATE TABLE t AS SELECT i, md5(i::text) AS h FROM generate_series(1, 200000) i");
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), "");
    s.ok(&["backup", "shop", "production"]);
    let tmp_before: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgtier-restore-") || n.starts_with("pgtier-pgpass-"))
        .collect();
    let out = s
        .cmd(&["restore", "shop", "production", "--target-db", "spooled", "--jobs", "2"])
        .env("PGTIER_FAILPOINT", "stream:1MiB")
        .output()
        .unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&out.status), Some(9), "{}", String::from_utf8_lossy(&out.stderr));
    let spool = s.backup_root().join(".tmp");
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().any(|n| n.starts_with("pgtier-restore-")), "the spool lives under backup_root/.tmp: {left:?}");
    let tmp_after: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgtier-restore-") || n.starts_with("pgtier-pgpass-"))
        .collect();
    assert_eq!(tmp_before, tmp_after, "nothing new in the system temp folder");
    s.ok(&["run"]);
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().flatten().collect();
    assert!(left.is_empty(), "the next run removes what the killed restore left");
}

#[test]
fn the_tools_get_no_aws_credentials_and_no_password_file_is_written() {
    let c = cluster();
    let db = db_name("toolenv");
    c.create_sample_db(&db, 5);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), "");
    let bindir = s.path().join("spybin");
    std::fs::create_dir_all(&bindir).unwrap();
    for tool in ["psql", "pg_restore"] {
        std::os::unix::fs::symlink(c.bindir.join(tool), bindir.join(tool)).unwrap();
    }
    let seen = s.path().join("env-seen.txt");
    s.write("spybin/pg_dump", &format!("#!/bin/sh\nenv >> '{}'\nexec '{}' \"$@\"\n", seen.display(), c.bindir.join("pg_dump").display()));
    std::fs::set_permissions(bindir.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: backups\npg_bindir: {}\n", bindir.display()));
    let out = s
        .cmd(&["backup", "shop", "production"])
        .env("AWS_SECRET_ACCESS_KEY", "super-secret-aws-key")
        .env("PGSSLMODE", "prefer")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(!env.contains("super-secret-aws-key") && !env.contains("AWS_"), "{env}");
    assert!(env.contains("PGSSLMODE=prefer") && env.contains("PATH="), "libpq's own settings still reach the tools: {env}");
}

#[test]
fn a_lost_answer_to_completing_an_upload_is_not_a_failure() {
    let c = cluster();
    let db = db_name("lostanswer");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    c.psql(&db, "CREATE TABLE blob AS SELECT i, decode(string_agg(md5(i::text || j::text), ''), 'hex') AS b FROM generate_series(1, 24) i, generate_series(1, 65536) j GROUP BY i");
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "p"));
    // Every answer to CompleteMultipartUpload is cut: the store completes it, the client never hears.
    proxy.set_rule(|r| if r.method == "POST" && r.target.contains("uploadId=") { Verdict::Truncate(0) } else { Verdict::Forward });
    let out = s.cmd(&["run"]).env("PGTIER_S3_MAX_ATTEMPTS", "2").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(localstack().objects(&bucket, "p/").iter().any(|o| o.0.contains("/daily/db_") && o.0.ends_with(".dump.gz")));
}

#[test]
fn output_into_a_closed_pipe_and_hostile_config_values_never_panic() {
    let c = cluster();
    let db = db_name("pipes");
    c.create_sample_db(&db, 5);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), "");
    for _ in 0..3 {
        s.ok(&["backup", "shop", "production"]);
    }
    for args in [vec!["list", "shop", "production"], vec!["prune", "--dry-run"], vec!["status", "shop", "production"]] {
        let mut child = s.cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    s.write("pgtier.yml", "projects: projects.yml\npolicies: policies\nbackup_root: backups\nmax_backup_age_hours: 3000000000000\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("max_backup_age_hours") && err.contains("at most"), "{err}");
    s.write("pgtier.yml", "projects: projects.yml\npolicies: policies\nbackup_root: backups\n");
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 1000000000000}\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(err.contains("keep") && err.contains("at most"), "{err}");
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7}\nverify: \"weekly\\u001b[2J\\u202e\"\n");
    let err = s.fails(2, &["config", "check"]);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{202e}'), "control characters reach the terminal: {err:?}");
}

#[test]
fn thousands_of_tables_back_up_with_the_default_lock_settings() {
    // The test cluster has max_connections 200 and the default max_locks_per_transaction (64):
    // 12,800 lock slots, about twice that with the shared memory's slack. pg_dump takes one per
    // table (10,000); counting rows in a second session took one per table and per index until
    // pg_dump exited (30,000 in all), and ran out.
    let c = cluster();
    let db = db_name("manytables");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    for batch in 0..20 {
        c.psql(
            &db,
            &format!("DO $$ BEGIN FOR i IN {}..{} LOOP EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY)', i); EXECUTE format('INSERT INTO t%s VALUES (1), (2)', i); END LOOP; END $$", batch * 500 + 1, batch * 500 + 500),
        );
    }
    assert_eq!(c.psql("postgres", "SHOW max_locks_per_transaction"), "64");
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), "");
    let path = s.ok(&["backup", "shop", "production"]);
    let stem = std::path::Path::new(path.trim()).file_name().unwrap().to_str().unwrap().split('.').next().unwrap().to_string();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.env_dir("shop", "production").join(format!("{stem}.json"))).unwrap()).unwrap();
    let tables = m["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 10000);
    assert!(tables.values().all(|n| n == 2), "rows counted from the dump itself");
}

#[test]
fn a_drill_that_cannot_reach_its_store_is_not_verified_and_records_nothing() {
    let c = cluster();
    let db = db_name("unreached");
    c.create_sample_db(&db, 50);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "u"));
    s.ok(&["run"]);
    let manifests = || -> String {
        std::fs::read_dir(s.env_dir("shop", "production"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    };
    let before = manifests();
    proxy.set_rule(|r| if r.method == "GET" && r.target.contains(".dump") { Verdict::Drop } else { Verdict::Forward });
    let out = s.cmd(&["verify", "shop", "production", "--from", "remote", "--json"]).env("PGTIER_S3_MAX_ATTEMPTS", "2").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = json(&out.stdout);
    assert_eq!(v[0]["outcome"], "not_verified", "{v}");
    proxy.set_rule(|_| Verdict::Forward);
    assert_eq!(manifests(), before, "a drill that proved nothing was recorded");
}

#[test]
fn a_store_that_rejects_uploads_gets_a_report_of_what_was_really_done() {
    let c = cluster();
    let db = db_name("rejects");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "p"));
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 7, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n",
    );
    s.ok(&["backup", "shop", "production", "--now", "2025-01-06T02:00:00Z"]);
    // Every PUT is refused as stores that reject the newer checksum headers refuse it.
    proxy.set_rule(|r| if r.method == "PUT" { Verdict::Fail(400, "InvalidArgument") } else { Verdict::Forward });
    let out = s.cmd(&["sync", "--now", "2025-01-06T02:00:00Z"]).env("PGTIER_S3_MAX_ATTEMPTS", "1").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.lines().any(|l| l.starts_with("done")), "nothing was done, so nothing is reported done:\n{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("NOT DONE") && l.contains("upload")), "{stdout}");
    assert!(stdout.contains("uploaded 0, copied 0"), "{stdout}");
    assert!(localstack().objects(&bucket, "p/").is_empty());
    // Once the store takes them, the same sync does the work and says so.
    proxy.set_rule(|_| Verdict::Forward);
    let stdout = s.ok(&["sync", "--now", "2025-01-06T02:00:00Z"]);
    assert!(stdout.lines().any(|l| l.starts_with("done") && l.contains("upload")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("done") && l.contains("copy")), "{stdout}");
}
