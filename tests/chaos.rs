//! Chaos: many replayed nights of `pgtier run` (age-encrypted, synced through a proxy that
//! fails S3 requests at random), each killed (SIGKILL), signalled (SIGTERM), robbed of one of
//! its PostgreSQL tools (SIGKILL to pg_dump, psql, pg_restore…) or left alone at a random
//! moment. Then a ledger check: every backup a run reported complete is present and sound here
//! or off-site (the policy prunes nothing in this window); nothing decrypted or secret is left
//! in any temporary folder; no process outlived its SIGTERM by more than 10 s; no run panicked.
//! Last, host-loss restores through the faulty proxy (errors, drops, corrupted bodies): each
//! brings back the newest backup or refuses, never an older one. Bounded: a fixed number of
//! nights, a fixed seed (`PGTIER_CHAOS_SEED` replays another).

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::localstack::{localstack, remote_yaml_at};
use support::proxy::{Proxy, Verdict};
use support::{Scratch, cluster, db_name, json, kill_a_pg_tool, require_tool};

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn night(day: u64) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).unwrap() + chrono::Duration::days(day as i64);
    format!("{t}T02:00:00Z")
}

/// A proxy rule failing a tenth of requests with 503 SlowDown and a tenth by dropping the
/// connection, and with `corrupt` a tenth of downloads with a byte flipped on the way.
fn faults(seed: &Arc<AtomicU64>, corrupt: bool) -> impl Fn(&support::proxy::Request) -> Verdict + Send + Sync + 'static {
    let fs = Arc::clone(seed);
    move |r| {
        let mut x = fs.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        fs.store(x, Ordering::Relaxed);
        match x % 10 {
            0 => Verdict::Fail(503, "SlowDown"),
            1 => Verdict::Drop,
            2 if corrupt && r.method == "GET" => Verdict::Corrupt,
            _ => Verdict::Forward,
        }
    }
}

fn temp_leftovers() -> BTreeSet<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgtier-restore-") || n.starts_with("pgtier-pgpass-") || n.starts_with("pgtier-list-"))
        .collect()
}

#[test]
fn random_kills_and_signals_over_many_nights_lose_nothing() {
    require_tool("age-keygen", "install the Debian package age (scripts/setup does)");
    let seed: u64 = std::env::var("PGTIER_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c4a05);
    let nights: u64 = 30;
    let mut rng = Rng(seed);
    let c = cluster();
    let db = db_name("chaos");
    c.create_sample_db(&db, 300);
    // Each night's backup holds its night's number: a restore tells which one came back.
    c.psql(&db, "CREATE TABLE night (n int)");
    let bucket = localstack().bucket();
    let proxy = Proxy::start(&localstack().endpoint);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("key.txt");
    let out = std::process::Command::new("age-keygen").arg("-o").arg(&key).output().unwrap();
    let public = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!(
            "{}encryption:\n  type: age\n  recipients: [{public}]\n  identity_file: {}\n",
            remote_yaml_at(&proxy.endpoint, &bucket, "chaos"),
            key.display()
        ),
    );
    // Nothing is due for deletion within the window: every reported backup must survive.
    s.write("policies/default.yml", "tiers:\n  daily: {keep_days: 90, locations: [local, remote]}\n  weekly: {keep: 12, locations: [remote], storage_class: STANDARD_IA}\nverify: daily\n");
    // S3 fails a share of requests at random (503 SlowDown, dropped connections).
    let fault_seed = Arc::new(AtomicU64::new(seed | 1));
    proxy.set_rule(faults(&fault_seed, false));
    let tmp_before = temp_leftovers();

    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut worst_stop = Duration::ZERO;
    let mut fates = Vec::new();
    let mut tool_kills = 0;
    for d in 1..=nights {
        c.psql(&db, &format!("DELETE FROM night; INSERT INTO night VALUES ({d})"));
        let fate = rng.below(4); // 0: left alone, 1: SIGKILL, 2: SIGTERM, 3: one of its tools killed
        let delay = Duration::from_millis(rng.below(2500));
        let mut child = s
            .cmd(&["run", "--json", "--now", &night(d)])
            .env("PGTIER_S3_MAX_ATTEMPTS", "4")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut signalled_at = None;
        let mut tool_killed = false;
        loop {
            if let Some(_status) = child.try_wait().unwrap() {
                break;
            }
            // One tool a night; the run itself is left to end on its own.
            if fate == 3 && !tool_killed && started.elapsed() >= delay && kill_a_pg_tool(child.id()).is_some() {
                tool_kills += 1;
                tool_killed = true;
            }
            if (fate == 1 || fate == 2) && signalled_at.is_none() && started.elapsed() >= delay {
                let sig = if fate == 1 { libc::SIGKILL } else { libc::SIGTERM };
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child.id() as i32, sig) };
                signalled_at = Some(Instant::now());
            }
            if let Some(t) = signalled_at {
                assert!(t.elapsed() < Duration::from_secs(10), "night {d}: pgtier outlived its signal by 10 s (seed {seed})");
            }
            assert!(started.elapsed() < Duration::from_secs(120), "night {d}: a run took more than 2 minutes (seed {seed})");
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(t) = signalled_at {
            worst_stop = worst_stop.max(t.elapsed());
        }
        let out = child.wait_with_output().unwrap();
        fates.push((d, fate, delay, out.status.code()));
        assert_ne!(out.status.code(), Some(101), "night {d} panicked (seed {seed}): {}", String::from_utf8_lossy(&out.stderr));
        // A run that printed its report names the backups it completed.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            for e in v["result"]["envs"].as_array().into_iter().flatten() {
                if let Some(b) = e["backup"].as_str() {
                    reported.insert(b.to_string());
                }
            }
        }
    }

    // The faults stop; one more night catches up and cleans up.
    proxy.set_rule(|_| Verdict::Forward);
    c.psql(&db, &format!("DELETE FROM night; INSERT INTO night VALUES ({})", nights + 1));
    s.ok(&["run", "--now", &night(nights + 1)]);
    let listed: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--json"]));
    let present: BTreeSet<String> =
        listed.as_array().unwrap().iter().filter_map(|r| r["backup"].as_str().or(r["name"].as_str()).map(str::to_string)).collect();
    let missing: Vec<&String> = reported.iter().filter(|b| !present.contains(*b)).collect();
    assert!(missing.is_empty(), "backups reported complete are gone: {missing:?} (seed {seed}, fates {fates:?})");
    assert!(!reported.is_empty(), "no night completed a backup (seed {seed}, fates {fates:?})");
    // Every copy is sound: the audit re-hashes every local file and checks the remote copies.
    let out = s.run(&["audit", "--now", &night(nights + 1)]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("[checksum]") && !text.contains("[broken-manifest]"), "{text} (seed {seed})");
    // The newest backup restores with the key, and nothing decrypted or secret was left anywhere.
    let copy = db_name("chaos_copy");
    s.ok(&["restore", "shop", "production", "--target-db", &copy]);
    assert_eq!(temp_leftovers(), tmp_before, "pgtier left files in the system temp folder (seed {seed})");
    let scratch = s.backup_root().join(".tmp");
    let left: Vec<_> = std::fs::read_dir(&scratch).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "backup_root/.tmp still holds {left:?} after a clean run (seed {seed})");
    assert!(c.dbs_like("pgtier_tmp_").iter().all(|d| !d.contains(&db)), "temporary databases left (seed {seed})");

    // The host is lost; restores from S3 through the faulty proxy (errors, dropped connections,
    // bodies corrupted on the way) bring back the newest backup or refuse: never an older one.
    proxy.set_rule(faults(&fault_seed, true));
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let (mut restored, mut refused) = (0, 0);
    for i in 0..6 {
        let target = db_name(&format!("chaos_dr{i}"));
        let out = s
            .cmd(&["restore", "shop", "production", "--from", "remote", "--target-db", &target])
            .env("PGTIER_S3_MAX_ATTEMPTS", "3")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => {
                restored += 1;
                assert_eq!(
                    c.psql(&target, "SELECT n FROM night"),
                    (nights + 1).to_string(),
                    "an older backup came back (seed {seed}): {said}"
                );
            }
            Some(1) => {
                refused += 1;
                assert!(!c.db_exists(&target), "a refused restore left {target} (seed {seed})");
            }
            other => panic!("restore exited {other:?} (seed {seed}): {said}"),
        }
    }
    assert!(restored > 0, "no restore got through 20 % faults in six tries (seed {seed})");
    eprintln!(
        "chaos seed {seed}: {} nights, {} backups reported, {tool_kills} tools killed, slowest stop after SIGTERM {worst_stop:?}, host-loss restores: {restored} newest, {refused} refused",
        nights,
        reported.len()
    );
}
