//! Where a fault meets a decision: a failed read, a corrupted file, a signal, a dying child, a
//! hostile answer. Each test puts pgtier at one such point and checks that it never answers
//! wrongly with exit 0, hangs, crashes or leaks.

mod support;

use std::process::Stdio;

use support::localstack::{localstack, remote_yaml_at};
use support::proxy::{Proxy, Verdict};
use support::{Scratch, cluster, db_name, json};

/// Nights from Monday 2025-05-26: night 8 is Monday 2025-06-02, the first of its ISO week, so
/// the newest backup then has a copy (and a manifest) in both the daily and the weekly tier.
fn night(n: u32) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2025, 5, 25).unwrap() + chrono::Duration::days(n as i64);
    format!("{t}T02:00:00Z")
}

fn stem(n: u32) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2025, 5, 25).unwrap() + chrono::Duration::days(n as i64);
    format!("db_{}_020000", t.format("%Y%m%d"))
}

const TWO_TIERS: &str =
    "tiers:\n  daily: {keep_days: 14, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n";

/// A project synced through `proxy` to its own bucket, with `nights` nights behind it; each
/// night's backup holds its number in `marker`, so a restore tells which one came back.
fn synced(db: &str, proxy: &Proxy, nights: u32) -> Scratch {
    let c = cluster();
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    c.psql(db, "CREATE TABLE marker (night int)");
    let bucket = localstack().bucket();
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "f"));
    s.write("policies/default.yml", TWO_TIERS);
    for n in 1..=nights {
        c.psql(db, &format!("DELETE FROM marker; INSERT INTO marker VALUES ({n})"));
        s.ok(&["run", "--now", &night(n)]);
    }
    s
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_remote_restore_never_takes_an_older_backup_when_the_newest_manifest_fails() {
    let c = cluster();
    let db = db_name("newest");
    let proxy = Proxy::start(&localstack().endpoint);
    let s = synced(&db, &proxy, 8);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let newest = stem(8);

    // The daily tier's manifest of the newest backup fails every time: the weekly tier's copy
    // of the same manifest is read instead, and the result says so.
    let daily = format!("/daily/{newest}.json");
    proxy.set_rule(move |r| if r.method == "GET" && r.target.contains(&daily) { Verdict::Fail(503, "SlowDown") } else { Verdict::Forward });
    let copy = db_name("newest_copy");
    let out = s
        .cmd(&["restore", "shop", "production", "--from", "remote", "--target-db", &copy, "--json"])
        .env("PGTIER_S3_MAX_ATTEMPTS", "2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rep: serde_json::Value = json(&out.stdout);
    assert_eq!(c.psql(&copy, "SELECT night FROM marker"), "8", "the newest backup came back: {rep}");
    let warnings = rep["warnings"].to_string();
    assert!(
        warnings.contains(&format!("daily manifest of {newest}")) && warnings.contains("another tier"),
        "the fallback is a warning: {rep}"
    );

    // Both manifests fail: no older backup in its place; the refusal names the newest and the
    // newest that does read, and nothing is created.
    let name = format!("/{newest}.json");
    proxy.set_rule(move |r| if r.method == "GET" && r.target.contains(&name) { Verdict::Fail(503, "SlowDown") } else { Verdict::Forward });
    let copy2 = db_name("newest_refused");
    let out = s
        .cmd(&["restore", "shop", "production", "--from", "remote", "--target-db", &copy2])
        .env("PGTIER_S3_MAX_ATTEMPTS", "2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(&newest) && said.contains(&stem(7)) && said.contains("cannot be read") && said.contains("SlowDown"), "{said}");
    assert!(!c.db_exists(&copy2) && c.temp_dbs_for(&copy2).is_empty(), "nothing was created");

    // A drill of the newest says the same, and is not recorded as proof of an older backup.
    let out = s.cmd(&["verify", "shop", "production", "--from", "remote"]).env("PGTIER_S3_MAX_ATTEMPTS", "2").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("NOT VERIFIED") && text(&out).contains(&newest), "{}", text(&out));

    // Named explicitly, the older one restores.
    proxy.set_rule(|_| Verdict::Forward);
    let copy3 = db_name("newest_named");
    s.ok(&["restore", "shop", "production", &stem(7), "--from", "remote", "--target-db", &copy3]);
    assert_eq!(c.psql(&copy3, "SELECT night FROM marker"), "7");
}

/// Flips one byte in the middle of a file (same size).
fn flip_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// The data file of backup `stem` in an env folder.
fn data_file(s: &Scratch, stem: &str) -> std::path::PathBuf {
    std::fs::read_dir(s.env_dir("shop", "production"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with(&format!("{stem}.")) && !f.ends_with(".json")
        })
        .unwrap_or_else(|| panic!("no data file for {stem}"))
}

#[test]
fn a_corrupted_local_file_never_becomes_a_confirmed_off_site_copy() {
    let c = cluster();
    let db = db_name("corrupt_up");
    c.create_sample_db(&db, 3000);
    let bucket = localstack().bucket();
    // The setting the docs recommend for R2, B2, GCS, Hetzner: the store checks no SHA-256.
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("{}  request_checksum_calculation: when_required\n", localstack().remote_yaml(&bucket, "c")),
    );
    s.write("policies/default.yml", TWO_TIERS);
    for n in 1..=7 {
        s.ok(&["run", "--now", &night(n)]);
    }
    // Night 8 (a Monday) is backed up, then one byte of its file flips on disk.
    s.ok(&["backup", "shop", "production", "--now", &night(8)]);
    let newest = stem(8);
    flip_byte(&data_file(&s, &newest));
    let out = s.run(&["sync", "--now", &night(8)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("corrupt"), "the refusal says why: {}", text(&out));
    let stored: Vec<String> = localstack().objects(&bucket, "c/").into_iter().map(|(k, _, _)| k).filter(|k| k.contains(&newest)).collect();
    assert!(stored.is_empty(), "nothing of the corrupted backup is off-site, in any tier: {stored:?}");
    let listed: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--all", "--json"]));
    let row = listed.as_array().unwrap().iter().find(|r| r["backup"] == newest.as_str()).unwrap().clone();
    assert!(row["remote"].as_array().unwrap().is_empty(), "list shows no off-site copy: {row}");

    // A copy damaged off-site (as an older pgtier could upload one: bad bytes, the manifest's
    // SHA-256 in its metadata) looks whole to a HEAD; reading it back finds it.
    let victim = stem(7);
    let file = data_file(&s, &victim);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file.with_file_name(format!("{victim}.json"))).unwrap()).unwrap();
    let damaged = s.path().join("damaged");
    std::fs::copy(&file, &damaged).unwrap();
    flip_byte(&damaged);
    let key = format!("c/shop/production/daily/{}", file.file_name().unwrap().to_string_lossy());
    let put = localstack().aws(&[
        "s3api",
        "put-object",
        "--bucket",
        &bucket,
        "--key",
        &key,
        "--body",
        damaged.to_str().unwrap(),
        "--metadata",
        &format!("sha256={}", manifest["sha256"].as_str().unwrap()),
    ]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let out = s.run(&["audit", "shop", "production", "--now", &night(8), "--read-data", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let audit: serde_json::Value = json(&out.stdout);
    let findings = audit["envs"][0]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["rule"] == "remote-checksum" && f["file"].as_str().unwrap().ends_with(&key)),
        "reading back names the damaged copy: {findings:#?}"
    );
    let read = &audit["envs"][0]["read_back"][0];
    assert!(read["copies_read"].as_u64().unwrap() >= 8 && read["mismatched"].as_u64() == Some(1), "{read}");
}

/// Starts `cmd`, sends `sig` once `ready` says so (or after `after`), and returns the exit code
/// and how long the command outlived the signal.
fn signal_when(
    mut cmd: std::process::Command,
    sig: i32,
    after: std::time::Duration,
    ready: impl Fn() -> bool,
) -> (Option<i32>, std::time::Duration, String) {
    use std::time::{Duration, Instant};
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while !(ready() && started.elapsed() >= after) {
        assert!(child.try_wait().unwrap().is_none(), "the command ended before the signal");
        assert!(started.elapsed() < Duration::from_secs(120), "never ready for the signal");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let signalled = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if signalled.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = signalled.elapsed();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), took, text(&out))
}

#[test]
fn a_signal_ends_every_wait_on_the_network_within_seconds() {
    use std::time::Duration;
    let c = cluster();
    let db = db_name("stalled");
    c.create_sample_db(&db, 200);
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "s"));
    // An endpoint that accepts and never answers.
    proxy.set_rule(|_| Verdict::Stall);
    for args in [
        vec!["remote", "init"],
        vec!["run", "--now", &night(1)],
        vec!["restore", "shop", "production", "--from", "remote", "--target-db", "never"],
    ] {
        let seen = proxy.count(|_| true);
        let p = &proxy;
        let (code, took, said) = signal_when(s.cmd(&args), libc::SIGTERM, Duration::from_millis(300), || p.count(|_| true) > seen);
        assert_eq!(code, Some(130), "{args:?}: {said}");
        assert!(took < Duration::from_secs(10), "{args:?} outlived SIGTERM by {took:?}: {said}");
    }
    proxy.release();

    // Without a signal, a stalled endpoint gives up in bounded time, saying what to change.
    let slow = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("{}  timeout_seconds: 2\n  attempts: 2\n", remote_yaml_at(&proxy.endpoint, &bucket, "s")),
    );
    let stalled = Proxy::start(&localstack().endpoint);
    slow.write("pgtier.yml", &std::fs::read_to_string(slow.path().join("pgtier.yml")).unwrap().replace(&proxy.endpoint, &stalled.endpoint));
    stalled.set_rule(|_| Verdict::Stall);
    let started = std::time::Instant::now();
    let out = slow.cmd(&["remote", "init"]).env_remove("PGTIER_S3_MAX_ATTEMPTS").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(20), "gave up after {:?}", started.elapsed());
    assert!(text(&out).contains("no answer within 2 s") && text(&out).contains("timeout_seconds"), "{}", text(&out));
    stalled.release();
}

#[test]
fn no_deletion_starts_after_a_signal_and_the_run_says_130() {
    use std::time::Duration;
    let db = db_name("sigdel");
    let proxy = Proxy::start(&localstack().endpoint);
    let s = synced(&db, &proxy, 6);
    // The policy now keeps one day off-site: five nights of daily copies are due for deletion,
    // and each DELETE takes a second to answer.
    s.write("policies/default.yml", "tiers:\n  daily: {keep_days: 1, locations: [local, remote]}\n  weekly: {keep: 4, locations: [remote], storage_class: STANDARD_IA}\n");
    proxy.set_rule(|r| if r.method == "DELETE" { Verdict::Delay(Duration::from_secs(1)) } else { Verdict::Forward });
    // Deletions of backup copies (not the scratch object of the conditional-write probe).
    let deletes = || proxy.count(|r| r.method == "DELETE" && r.target.contains("/daily/"));
    let (code, took, said) = signal_when(s.cmd(&["sync", "--now", &night(7)]), libc::SIGTERM, Duration::ZERO, || deletes() >= 1);
    let at_signal = deletes();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(code, Some(130), "{said}");
    assert!(took < Duration::from_secs(10), "outlived SIGTERM by {took:?}");
    assert!(deletes() <= at_signal, "a deletion started after the signal: {} DELETEs, {at_signal} when it arrived\n{said}", deletes());
    // The next sync finishes the job.
    proxy.set_rule(|_| Verdict::Forward);
    s.ok(&["sync", "--now", &night(7)]);
}

#[test]
fn a_drill_whose_sessions_are_terminated_fails_cleanly_and_is_alerted() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let c = cluster();
    let db = db_name("terminated");
    c.create_sample_db(&db, 5000);
    let rec = support::Recorder::start(false);
    let tmp = tempfile::tempdir().unwrap();
    let alerts = tmp.path().join("alerts.jsonl");
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("alerts:\n  command: cat >> {}\n  healthchecks: {}/hc/n\n  timeout_seconds: 3\n", alerts.display(), rec.base),
    );
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 30, locations: [local]}\nverify: daily\n");
    // Every connection to the drill's temporary database is terminated as soon as it appears.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let port = c.port;
    let bindir = c.bindir.clone();
    let killer = std::thread::spawn(move || {
        while !st.load(Ordering::SeqCst) {
            let _ = std::process::Command::new(bindir.join("psql"))
                .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &port.to_string(), "-d", "postgres", "-c"])
                .arg("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE 'pgtier_tmp_%' AND pid <> pg_backend_pid()")
                .output();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let out = s.run(&["run", "--now", "2025-03-01T02:00:00Z"]);
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    let said = std::fs::read_to_string(&alerts).unwrap_or_default();
    assert!(said.contains("\"operation\":\"verify\""), "the failed drill is alerted: {said:?}\n{}", text(&out));
    assert_eq!(rec.to("/hc/n/fail").len(), 1, "healthchecks gets the fail ping");
}

#[test]
fn nothing_decrypted_outlives_a_killed_host_loss_restore() {
    let c = cluster();
    let db = db_name("leak");
    c.psql("postgres", &format!("CREATE DATABASE {db}"));
    c.psql(&db, "CREATE TABLE t AS SELECT i, md5(i::text) AS h FROM generate_series(1, 300000) i; CREATE INDEX ON t (h)");
    let bucket = localstack().bucket();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("key.txt");
    let out = std::process::Command::new("age-keygen").arg("-o").arg(&key).output().expect("age-keygen (install age)");
    let public = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!(
            "{}encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\n",
            localstack().remote_yaml(&bucket, "l"),
            key.display()
        ),
    );
    s.ok(&["run", "--now", &night(1)]);
    // The host is lost; the restore runs with a system temporary folder of its own, to see
    // that nothing lands there.
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let systmp = tempfile::tempdir().unwrap();
    let target = db_name("leak_copy");
    let spool_dir = s.backup_root().join(".tmp");
    let mut child = s
        .cmd(&["restore", "shop", "production", "--from", "remote", "--jobs", "2", "--target-db", &target])
        .env("TMPDIR", systmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once the decrypted archive is spooled and the temporary database exists.
    support::wait_until(std::time::Duration::from_secs(120), "the spool and the temporary database", || {
        let spooled = std::fs::read_dir(&spool_dir)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("pgtier-restore-")))
            .unwrap_or(false);
        spooled && !c.temp_dbs_for(&target).is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(std::fs::read_dir(systmp.path()).unwrap().count(), 0, "nothing in the system temporary folder");
    assert!(!c.temp_dbs_for(&target).is_empty(), "the killed restore left its temporary database");
    // The next command of any kind sweeps the spool; the next run drops the database.
    s.ok(&["list", "shop", "production", "--remote"]);
    let left: Vec<_> = std::fs::read_dir(&spool_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "the next command removes the decrypted spool: {left:?}");
    s.ok(&["run", "--now", &night(2)]);
    assert!(c.temp_dbs_for(&target).is_empty(), "the next run drops the temporary database");
}

/// An HTTP receiver that answers every request with 200 and a body of `size` bytes, streamed
/// for as long as the client reads.
fn flood(size: u64) -> String {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n");
                let chunk = vec![b'x'; 1 << 20];
                let mut sent = 0;
                while sent < size && conn.write_all(&chunk).is_ok() {
                    sent += chunk.len() as u64;
                }
            });
        }
    });
    base
}

#[test]
fn an_alert_receiver_answering_gigabytes_costs_no_memory() {
    let c = cluster();
    let db = db_name("flood");
    c.create_sample_db(&db, 10);
    let base = flood(3 << 29);
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("alerts:\n  webhook: {base}/hook\n  slack: {base}/slack\n  success_ping: {base}/ok\n  timeout_seconds: 20\n"),
    );
    c.psql("postgres", &format!("ALTER DATABASE {db} RENAME TO {db}_gone"));
    let started = std::time::Instant::now();
    let out = s.cmd(&["run"]).env("PGTIER_REPORT_PEAK_RSS", "1").output().unwrap();
    c.psql("postgres", &format!("ALTER DATABASE {db}_gone RENAME TO {db}"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rss: u64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("pgtier-peak-rss-kib: ").and_then(|v| v.trim().parse().ok()))
        .expect("peak RSS reported");
    assert!(rss < 100 * 1024, "peak RSS {rss} KiB while receivers answered 1.5 GiB each");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
    // A good night's success ping is answered the same way.
    let out = s.cmd(&["run"]).env("PGTIER_REPORT_PEAK_RSS", "1").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn secrets_in_alert_channels_never_reach_any_output() {
    let c = cluster();
    let db = db_name("secrets");
    c.create_sample_db(&db, 10);
    let tmp = tempfile::tempdir().unwrap();
    let (smtp_port, _maildir) = support::smtp_server(tmp.path());
    let token = tmp.path().join("tg.token");
    std::fs::write(&token, "123456:TGSECRETTOKEN\n").unwrap();
    let mailpass = tmp.path().join("mail.pass");
    std::fs::write(&mailpass, "MAILSECRETPASS\n").unwrap();
    let ntfy_file = tmp.path().join("ntfy.url");
    std::fs::write(&ntfy_file, "http://127.0.0.1:1/ntfytopic-FILESECRET\n").unwrap();
    // Every channel points where nothing listens, so every delivery fails and says so.
    let dead = "http://127.0.0.1:1";
    let secrets = [
        "WHUSER",
        "WHPASS",
        "WHPATHSECRET",
        "WHQUERYSECRET",
        "SPPATHSECRET",
        "SPQUERYSECRET",
        "SLACKSECRET",
        "DISCORDSECRET",
        "TEAMSSIG",
        "NTFYPASS",
        "NTFYAUTH",
        "TGSECRETTOKEN",
        "MAILSECRETPASS",
        "0f1e2d3c-aaaa-bbbb-cccc-123456789abc",
        "ENVSECRET",
        "FILESECRET",
    ];
    let alerts = format!(
        "alerts:\n  webhook: http://WHUSER:WHPASS@127.0.0.1:1/hook/WHPATHSECRET?token=WHQUERYSECRET\n  success_ping: {dead}/ping/SPPATHSECRET?key=SPQUERYSECRET\n  slack: [{dead}/services/T0/B0/SLACKSECRET, \"env:PGTIER_TEST_SLACK\"]\n  discord: {dead}/api/webhooks/1/DISCORDSECRET\n  teams: \"{dead}/workflows/x?sig=TEAMSSIG\"\n  ntfy: [\"http://u:NTFYPASS@127.0.0.1:1/topic?auth=NTFYAUTH\", \"file:{}\"]\n  telegram: {{bot_token_file: {}, chat_id: \"1\", api_url: \"{dead}\"}}\n  email: {{smtp: \"127.0.0.1:{smtp_port}\", tls: none, username: ops, password_file: {}, from: a@b.example, to: [c@d.example]}}\n  healthchecks: {dead}/0f1e2d3c-aaaa-bbbb-cccc-123456789abc\n  timeout_seconds: 2\n",
        ntfy_file.display(),
        token.display(),
        mailpass.display()
    );
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &alerts);
    let mut everything = String::new();
    let mut run = |args: &[&str]| {
        let out = s.cmd(args).env("PGTIER_TEST_SLACK", "http://127.0.0.1:1/services/ENVSECRET").stdin(Stdio::null()).output().unwrap();
        everything += &format!("$ pgtier {}\n{}\n", args.join(" "), text(&out));
    };
    run(&["config", "check"]);
    run(&["config", "check", "--json"]);
    run(&["run"]);
    run(&["-v", "run", "--json"]);
    run(&["doctor"]);
    run(&["-v", "doctor", "--send-test-alert"]);
    run(&["doctor", "--send-test-alert", "--json"]);
    run(&["status"]);
    run(&["audit"]);
    // A failing night: every channel is tried and fails, saying where (without the secrets).
    c.psql("postgres", &format!("ALTER DATABASE {db} RENAME TO {db}_away"));
    run(&["run"]);
    run(&["-vv", "backup", "shop", "production"]);
    run(&["run", "--json"]);
    c.psql("postgres", &format!("ALTER DATABASE {db}_away RENAME TO {db}"));
    assert!(everything.contains("127.0.0.1:1"), "deliveries were tried and named:\n{everything}");
    for secret in secrets {
        assert!(!everything.contains(secret), "{secret} was printed:\n{everything}");
    }
    // A password never crosses the network in clear: tls: none only to a relay on this host.
    s.write(
        "pgtier.yml",
        &std::fs::read_to_string(s.path().join("pgtier.yml")).unwrap().replace(&format!("127.0.0.1:{smtp_port}"), "smtp.example.com:25"),
    );
    let said = s.fails(2, &["config", "check"]);
    assert!(said.contains("alerts.email[0].tls") && said.contains("in clear"), "{said}");
}

#[test]
fn a_host_clock_ahead_of_the_store_waits_for_locks_instead_of_failing_every_night() {
    use chrono::{Timelike, Utc};
    let at = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let c = cluster();
    let db = db_name("skew");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket_name();
    let proxy = Proxy::start(&localstack().endpoint);
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &remote_yaml_at(&proxy.endpoint, &bucket, "k"));
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 1, locations: [local, remote], object_lock: GOVERNANCE, object_lock_days: 1}\n",
    );
    s.ok(&["remote", "init"]);
    // Night 1's daily copy is locked until an hour from now (the store's clock).
    let t0 = Utc::now().with_nanosecond(0).unwrap();
    s.ok(&["run", "--now", &at(t0 - chrono::Duration::days(1) + chrono::Duration::hours(1))]);
    // This host's clock now runs three hours ahead of the store's: its night 2 is at t0 + 3 h,
    // and the store's answers are dated three hours earlier than this host's clock.
    let store_time = (Utc::now() - chrono::Duration::hours(3)).format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    proxy.set_rule(move |_| Verdict::RewriteHeader("Date", store_time.clone()));
    let host = at(t0 + chrono::Duration::hours(3));
    let out = s.run(&["run", "--now", &host]);
    assert!(out.status.success(), "the night succeeds: {}", text(&out));
    assert!(text(&out).contains("clock is 3 h ahead"), "and says the clocks differ: {}", text(&out));
    let plan = s.ok(&["sync", "--dry-run", "--now", &host]);
    assert!(plan.contains("locked (GOVERNANCE)") && plan.contains("waits for the store's"), "the copy waits for its lock: {plan}");
    let audit = s.run(&["audit", "--now", &host, "--json"]);
    let v: serde_json::Value = json(&audit.stdout);
    assert!(v["envs"][0]["findings"].to_string().contains("clock-skew"), "{v}");
}

#[test]
fn a_download_corrupted_on_the_way_is_read_again_before_a_drill_is_called_failed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = db_name("transit");
    let proxy = Proxy::start(&localstack().endpoint);
    let s = synced(&db, &proxy, 2);
    // The first download of the backup's bytes arrives with one byte flipped.
    let once = std::sync::Arc::new(AtomicBool::new(false));
    let o = once.clone();
    proxy.set_rule(move |r| {
        if r.method == "GET" && r.target.contains(".dump.") && !o.swap(true, Ordering::SeqCst) {
            Verdict::Corrupt
        } else {
            Verdict::Forward
        }
    });
    let out = s.run(&["verify", "shop", "production", "--from", "remote", "--json"]);
    assert!(out.status.success(), "a sound backup is proven: {}", text(&out));
    assert!(once.load(Ordering::SeqCst), "the corruption was injected");
    let v: serde_json::Value = json(&out.stdout);
    assert_eq!(v[0]["outcome"], "ok", "{v}");
    assert!(v[0]["warnings"].to_string().contains("read again"), "the retry is said: {v}");
    // A copy that is damaged in the store fails every read: that is a failed drill.
    proxy.set_rule(|r| if r.method == "GET" && r.target.contains(".dump.") { Verdict::Corrupt } else { Verdict::Forward });
    let out = s.run(&["verify", "shop", "production", "--from", "remote", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = json(&out.stdout);
    assert_eq!(v[0]["outcome"], "failed", "{v}");
}

#[test]
fn the_alert_command_gets_no_secrets_lock_files_are_never_followed_and_sync_says_what_was_done() {
    let c = cluster();
    let db = db_name("small");
    c.create_sample_db(&db, 10);
    let tmp = tempfile::tempdir().unwrap();
    let env_file = tmp.path().join("env.txt");
    let nas = tempfile::tempdir().unwrap();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("remote:\n  url: file://{}\nalerts:\n  command: env > {}\n", nas.path().display(), env_file.display()),
    );
    // The alert command sees a shell's environment, not pgtier's secrets.
    c.psql("postgres", &format!("ALTER DATABASE {db} RENAME TO {db}_x"));
    let out = s
        .cmd(&["backup", "shop", "production"])
        .env("AWS_SECRET_ACCESS_KEY", "AWSSECRET")
        .env("PGTIER_TEST_TOKEN", "TOKENSECRET")
        .output()
        .unwrap();
    c.psql("postgres", &format!("ALTER DATABASE {db}_x RENAME TO {db}"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let env = std::fs::read_to_string(&env_file).expect("the alert command ran");
    assert!(env.contains("PATH="), "{env}");
    assert!(!env.contains("AWSSECRET") && !env.contains("TOKENSECRET") && !env.contains("AWS_"), "{env}");

    // sync --json says, for every step, whether it was done.
    s.ok(&["backup", "shop", "production"]);
    let v: serde_json::Value = json(&s.ok(&["sync", "--json"]));
    let actions = v["actions"].as_array().unwrap();
    assert!(!actions.is_empty() && actions.iter().all(|a| a["done"] == true), "{v}");
    let v: serde_json::Value = json(&s.ok(&["sync", "--json", "--dry-run"]));
    assert!(v["actions"].as_array().unwrap().iter().all(|a| a["done"] == false), "{v}");

    // A manifest that lies about its file's size never starts an upload.
    let out = s.ok(&["backup", "shop", "production", "--now", "2030-01-01T02:00:00Z"]);
    let data = std::path::PathBuf::from(out.trim());
    let mpath = data.with_file_name(format!("{}.json", data.file_name().unwrap().to_string_lossy().split('.').next().unwrap()));
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["size"] = (m["size"].as_u64().unwrap() + 7).into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let out = s.run(&["sync", "--now", "2030-01-01T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("its manifest says"), "{}", text(&out));
    let stem = data.file_name().unwrap().to_string_lossy().split('.').next().unwrap().to_string();
    let stored: Vec<_> = walk(nas.path()).into_iter().filter(|p| p.contains(&stem)).collect();
    assert!(stored.is_empty(), "nothing of it is off-site: {stored:?}");
    std::fs::remove_file(&data).unwrap();
    std::fs::remove_file(&mpath).unwrap();

    // A lock file that is a symbolic link is refused; its target stays as it was.
    let precious = tmp.path().join("precious");
    std::fs::write(&precious, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&precious, s.backup_root().join(".pgtier.lock")).unwrap();
    let said = s.fails(1, &["run"]);
    assert!(said.contains("symbolic link"), "{said}");
    std::fs::remove_file(s.backup_root().join(".pgtier.lock")).unwrap();
    let dir_lock = s.env_dir("shop", "production").join(".pgtier-lock");
    let _ = std::fs::remove_file(&dir_lock);
    std::os::unix::fs::symlink(&precious, &dir_lock).unwrap();
    let said = s.fails(1, &["backup", "shop", "production"]);
    assert!(said.contains("symbolic link"), "{said}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");
}

/// Every file under `dir` (paths as text).
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn store_errors_are_said_in_words_once() {
    let c = cluster();
    let db = db_name("words");
    c.create_sample_db(&db, 10);
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &remote_yaml_at("http://127.0.0.1:1", "nobucket", "w"),
    );
    let out = s.cmd(&["run"]).env("PGTIER_S3_MAX_ATTEMPTS", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("cannot reach the S3 endpoint") && said.contains("Connection refused"), "{said}");
    for debris in ["DispatchFailure", "ConnectorError", "source:", "kind:", "destination default: destination default"] {
        assert!(!said.contains(debris), "{debris:?} in:\n{said}");
    }
}
