//! Operations: restore drills (verify), status, the run lock, alerts to a webhook and a command,
//! the Prometheus textfile, anomaly and disk-space warnings.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::localstack::localstack;
use support::{Scratch, cluster, db_name, json, wait_until};

fn scratch(db: &str, extra: &str) -> Scratch {
    let c = cluster();
    Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", db)])), extra)
}

/// An HTTP receiver on loopback that records the bodies POSTed to it.
fn receiver(status: u16) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice(&body) {
                g.lock().unwrap().push(v);
            }
            let _ = write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn verify_proves_a_good_backup_and_records_it_here_and_off_site() {
    let c = cluster();
    let db = db_name("verify");
    c.create_sample_db(&db, 200);
    let bucket = localstack().bucket();
    let s = scratch(&db, &localstack().remote_yaml(&bucket, "v"));
    s.ok(&["run", "--now", "2025-03-03T02:00:00Z"]);
    let out = s.ok(&["verify", "shop", "production", "--json", "--now", "2025-03-04T10:00:00Z"]);
    let v: serde_json::Value = json(&out);
    let r = &v[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["backup"], "db_20250303_020000");
    let users = r["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.users").unwrap();
    assert_eq!((users["expected"].as_u64(), users["restored"].as_u64()), (Some(200), Some(200)));
    assert!(r["indexes_checked"].as_u64().unwrap_or(0) >= 2, "amcheck ran on the btree indexes: {r}");
    // Recorded in the manifest here and beside each off-site copy.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.env_dir("shop", "production").join("db_20250303_020000.json")).unwrap()).unwrap();
    // The first drill was the nightly run's (verify: weekly), the second this one.
    assert_eq!(m["verifications"][1]["ok"], true);
    assert_eq!(m["verifications"][1]["at"], "2025-03-04T10:00:00Z");
    let remote = localstack().aws(&["s3", "cp", &format!("s3://{bucket}/v/shop/production/monthly/db_20250303_020000.json"), "-"]);
    let rm: serde_json::Value = serde_json::from_slice(&remote.stdout).unwrap();
    assert_eq!(rm["verifications"][1]["at"], "2025-03-04T10:00:00Z");
    // From the remote copy, and every backup with --all; --dry-run only says.
    let v: serde_json::Value = json(&s.ok(&["verify", "shop", "production", "--from", "remote", "--json"]));
    assert_eq!((v[0]["ok"].as_bool(), v[0]["from"].as_str()), (Some(true), Some("remote")));
    assert!(s.ok(&["verify", "--all", "--dry-run"]).contains("would verify shop/production db_20250303_020000"));
    assert!(c.temp_dbs_for(&format!("verify_{db}")).is_empty());
}

#[test]
fn verify_fails_on_corrupt_and_truncated_backups_and_cleans_up() {
    let c = cluster();
    let db = db_name("verifybad");
    c.create_sample_db(&db, 3000);
    let (url, got) = receiver(200);
    let s = scratch(&db, &format!("alerts: {{webhook: {url}}}\n"));
    let path = s.ok(&["backup", "shop", "production", "--now", "2025-03-03T02:00:00Z"]);
    let path = path.trim();
    let good = std::fs::read(path).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    std::fs::write(path, &flipped).unwrap();
    let out = s.run(&["verify", "shop", "production", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = json(&out.stdout);
    assert_eq!(v[0]["ok"], false);
    assert!(v[0]["error"].as_str().unwrap().contains("does not match its manifest"), "{v}");
    std::fs::write(path, &good[..good.len() / 2]).unwrap();
    let out = s.run(&["verify", "shop", "production", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(c.temp_dbs_for(&format!("verify_{db}")).is_empty(), "temporary databases left");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.env_dir("shop", "production").join("db_20250303_020000.json")).unwrap()).unwrap();
    assert_eq!(m["verifications"].as_array().unwrap().len(), 2, "failures are recorded too");
    assert!(m["verifications"].as_array().unwrap().iter().all(|x| x["ok"] == false));
    wait_until(Duration::from_secs(10), "the alerts", || got.lock().unwrap().len() >= 2);
    let a = got.lock().unwrap()[0].clone();
    assert_eq!(
        (a["project"].as_str(), a["env"].as_str(), a["operation"].as_str(), a["severity"].as_str()),
        (Some("shop"), Some("production"), Some("verify"), Some("error"))
    );
    assert!(a["error"].as_str().unwrap().contains("db_20250303_020000") && a["time"].is_string(), "{a}");
}

#[test]
fn an_interrupted_verify_leaves_nothing_the_next_run_does_not_clean_up() {
    let c = cluster();
    let db = db_name("verifykill");
    c.create_sample_db(&db, 60000);
    let s = scratch(&db, "");
    s.ok(&["backup", "shop", "production"]);
    let temp = format!("verify_{db}");
    // Ctrl-C: pgtier drops its temporary database and exits 130.
    let child = s.cmd(&["-v", "verify", "shop", "production"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_until(Duration::from_secs(30), "the drill's database", || !c.temp_dbs_for(&temp).is_empty());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        c.temp_dbs_for(&temp).is_empty(),
        "Ctrl-C must drop the drill's database: {:?} left; {}",
        c.temp_dbs_for(&temp),
        String::from_utf8_lossy(&out.stderr)
    );
    // kill -9: the database stays, and the next run drops it; a live pgtier's is left alone.
    let mut child = s.cmd(&["verify", "shop", "production"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until(Duration::from_secs(30), "the drill's database", || !c.temp_dbs_for(&temp).is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    let left = c.temp_dbs_for(&temp);
    assert_eq!(left.len(), 1);
    let live = format!("pgtier_tmp_{}_0_other", std::process::id());
    c.psql("postgres", &format!("CREATE DATABASE {live}"));
    // (Another test's run on this shared cluster may get to it first: either way it goes.)
    s.ok(&["run"]);
    assert!(c.temp_dbs_for(&temp).is_empty());
    assert!(c.db_exists(&live), "a live process's temporary database is not touched");
    c.psql("postgres", &format!("DROP DATABASE {live}"));
}

#[test]
fn status_is_the_deployment_manifest() {
    let c = cluster();
    let db = db_name("status");
    c.create_sample_db(&db, 5);
    let s = scratch(&db, "");
    s.ok(&["run", "--now", "2025-03-01T02:00:00Z"]);
    s.ok(&["backup", "shop", "production", "--tag", "pre-deploy", "--now", "2025-03-01T12:00:00Z"]);
    s.ok(&["run", "--now", "2025-03-02T02:00:00Z"]);
    s.ok(&["verify", "shop", "production", "--now", "2025-03-02T03:00:00Z"]);
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["status", "shop", "production"])).unwrap();
    assert_eq!(v["backup"], "db_20250302_020000");
    assert!(v["database_backup"].as_str().unwrap().ends_with("db_20250302_020000.dump.gz"));
    assert_eq!(v["latest_per_tier"]["monthly"]["backup"], "db_20250301_020000");
    assert_eq!(v["latest_per_tier"]["daily"]["backup"], "db_20250302_020000");
    assert_eq!(v["deployment_backup"]["backup"], "db_20250301_120000");
    assert_eq!(v["last_successful_verification"]["backup"], "db_20250302_020000");
    assert_eq!(v["offsite"]["configured"], false);
    assert_eq!(v["globals"], "globals_20250302_020000");
    assert!(v["last_run"]["last_success"].is_string());
}

#[test]
fn two_runs_never_overlap() {
    let c = cluster();
    let db = db_name("lock");
    c.create_sample_db(&db, 20000);
    let s = scratch(&db, "");
    let lock = s.backup_root().join(".pgtier.lock");
    std::fs::create_dir_all(s.backup_root()).unwrap();
    // Hold the lock as a run would (flock in another process).
    let mut holder = std::process::Command::new("flock").arg(&lock).args(["sleep", "30"]).spawn().expect("flock(1) from util-linux");
    wait_until(Duration::from_secs(10), "the lock", || {
        std::process::Command::new("flock").args(["-n"]).arg(&lock).arg("true").status().map(|s| !s.success()).unwrap_or(false)
    });
    // Exit 11: a script can tell "another run holds the lock" from a failure.
    let err = s.fails(11, &["run"]);
    assert!(err.contains("another pgtier run holds") && err.contains("--wait-lock"), "{err}");
    let waiting = s.cmd(&["run", "--wait-lock", "60s"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Release the holder only once the waiter has the lock file open (it is waiting on it).
    let fds = format!("/proc/{}/fd", waiting.id());
    wait_until(Duration::from_secs(10), "the waiter to open the lock", || {
        std::fs::read_dir(&fds)
            .map(|d| d.filter_map(|e| e.ok()).any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == lock)))
            .unwrap_or(false)
    });
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // And two real runs started together: one runs, the other is refused, nothing is lost.
    let a = s.cmd(&["run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let b = s.cmd(&["run"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    assert!(codes.contains(&Some(0)), "{codes:?}");
    let listed: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--json"]));
    let n = listed.as_array().unwrap().iter().filter(|r| r["kind"] == "database").count();
    assert!(n == 2 || n == 3, "{n} backups");
}

#[test]
fn failures_reach_the_webhook_and_the_command_and_an_unreachable_webhook_changes_nothing() {
    let c = cluster();
    let (url, got) = receiver(200);
    // An absolute path: the alert command runs wherever pgtier was started.
    let outbox = tempfile::tempdir().unwrap();
    let jsonl = outbox.path().join("alerts.jsonl");
    let s = Scratch::new(
        &format!(
            "shop:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: postgres\n    databases:\n      production: no_such_database\n",
            c.port
        ),
        &format!("alerts:\n  webhook: {url}\n  command: cat >> '{}'\n", jsonl.display()),
    );
    let out = s.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    wait_until(Duration::from_secs(10), "the webhook", || !got.lock().unwrap().is_empty());
    let a = got.lock().unwrap()[0].clone();
    assert_eq!((a["project"].as_str(), a["env"].as_str(), a["operation"].as_str()), (Some("shop"), Some("production"), Some("backup")));
    assert!(a["error"].as_str().unwrap().contains("no_such_database"), "{a}");
    let by_command = std::fs::read_to_string(&jsonl).unwrap();
    let first: serde_json::Value = serde_json::from_str(by_command.lines().next().unwrap()).unwrap();
    assert_eq!(first["operation"], "backup");
    // A backup command that fails alerts too.
    s.fails(1, &["backup", "shop", "production"]);
    wait_until(Duration::from_secs(10), "the second alert", || got.lock().unwrap().len() >= 2);

    // A successful run with a webhook nobody answers: logged, exit 0.
    let db = db_name("quiet");
    c.create_sample_db(&db, 3);
    let dead = format!("http://127.0.0.1:{}/hook", support::free_port());
    let s = scratch(&db, &format!("alerts:\n  webhook: {dead}\n  success_ping: {dead}\nmin_free_space: 1000TB\n"));
    let out = s.run(&["run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not deliver the alert") && err.contains("min_free_space"), "{err}");
}

#[test]
fn metrics_textfile_parses_as_prometheus_text_format() {
    let c = cluster();
    let db = db_name("metrics");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket();
    let s = scratch(&db, &format!("metrics: {{textfile: prom/pgtier.prom}}\n{}", localstack().remote_yaml(&bucket, "m")));
    s.write("policies/default.yml", "verify: daily\ntiers:\n  daily: {keep_days: 7, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n");
    s.ok(&["run", "--now", "2025-03-03T02:00:00Z"]);
    let text = std::fs::read_to_string(s.path().join("prom/pgtier.prom")).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(rest.starts_with("HELP ") || rest.starts_with("TYPE "), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        value.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {line}"));
        let (name, labels) = series.split_once('{').unwrap_or_else(|| panic!("no labels: {line}"));
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        assert!(labels.ends_with('}') && labels.contains("project=\"shop\"") && labels.contains("env=\"production\""), "{line}");
        assert!(text.contains(&format!("# TYPE {name} gauge")), "{name} has a TYPE line");
        names.insert(name.to_string());
    }
    for n in [
        "pgtier_last_success_timestamp_seconds",
        "pgtier_last_backup_size_bytes",
        "pgtier_last_duration_seconds",
        "pgtier_last_verify_success_timestamp_seconds",
        "pgtier_backups",
    ] {
        assert!(names.contains(n), "{n} missing from:\n{text}");
    }
    assert!(text.contains("pgtier_backups{project=\"shop\",env=\"production\",tier=\"weekly\",location=\"remote\"} 1"), "{text}");
    // The policy's daily verification ran and is in the manifest.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.env_dir("shop", "production").join("db_20250303_020000.json")).unwrap()).unwrap();
    assert_eq!(m["verifications"][0]["ok"], true);
}

#[test]
fn a_backup_that_shrinks_suddenly_raises_a_warning() {
    let c = cluster();
    let db = db_name("anomaly");
    c.create_sample_db(&db, 5000);
    let (url, got) = receiver(200);
    let s = scratch(&db, &format!("alerts: {{webhook: {url}}}\n"));
    s.ok(&["run", "--now", "2025-03-01T02:00:00Z"]);
    c.psql(&db, "DELETE FROM events; DELETE FROM users WHERE id > 100");
    let out = s.ok(&["run", "--now", "2025-03-02T02:00:00Z"]);
    assert!(out.contains("total rows fell"), "{out}");
    wait_until(Duration::from_secs(10), "the anomaly alert", || got.lock().unwrap().iter().any(|a| a["operation"] == "anomaly"));
    let a = got.lock().unwrap().iter().find(|a| a["operation"] == "anomaly").cloned().unwrap();
    assert_eq!(a["severity"], "warning");
}
