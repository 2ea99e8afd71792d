//! The PostgreSQL tools pgtier runs (pg_dump, pg_dumpall, pg_restore, psql sessions) killed at
//! random points of every command that runs them: never a panic (exit 101), never a success
//! that did not happen, and a failure is alerted (the alert command, healthchecks' fail ping).
//! Bounded: a fixed number of rounds per command, a fixed seed (`PGTIER_CHAOS_SEED` replays
//! another).

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Recorder, Scratch, cluster, db_name, descendants, json};

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs `cmd`; kills the `nth` PostgreSQL tool it starts, `delay` after it appears. Returns the
/// output and which tool was killed (None when the command ended first).
fn with_a_child_killed(mut cmd: std::process::Command, nth: usize, delay: Duration) -> (std::process::Output, Option<String>) {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let root = child.id();
    let killed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (k, d) = (killed.clone(), done.clone());
    let killer = std::thread::spawn(move || {
        let mut seen: Vec<(u32, String)> = Vec::new();
        let mut seen_pids = BTreeSet::new();
        while !d.load(std::sync::atomic::Ordering::SeqCst) {
            for (pid, comm) in descendants(root) {
                if support::PG_TOOLS.contains(&comm.as_str()) && seen_pids.insert(pid) {
                    seen.push((pid, comm));
                }
            }
            // The nth tool, or the first one after it still running: most tools live for
            // milliseconds, so a kill that missed moves on to the next.
            let live = descendants(root);
            if let Some((pid, comm)) = seen.iter().skip(nth).find(|(p, _)| live.iter().any(|(q, _)| q == p)).cloned() {
                std::thread::sleep(delay);
                // Only if it still runs under pgtier (not reaped and reused).
                if descendants(root).iter().any(|(p, _)| *p == pid) {
                    // SAFETY: SIGKILL to a process of this test's own tree.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    *k.lock().unwrap() = Some(comm);
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    killer.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(180), "a command took {:?}", started.elapsed());
    let k = killed.lock().unwrap().clone();
    (out, k)
}

#[test]
fn killing_any_postgresql_tool_of_any_command_is_a_clean_failure_and_alerted() {
    let seed: u64 = std::env::var("PGTIER_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x6b11_c41d);
    let mut rng = Rng(seed | 1);
    let c = cluster();
    let db = db_name("children");
    c.create_sample_db(&db, 20000);
    let rec = Recorder::start(false);
    let nas = tempfile::tempdir().unwrap();
    let alerts = nas.path().join("alerts.jsonl");
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!(
            "globals: {{enabled: true}}\nremote:\n  url: file://{}/store\nalerts:\n  command: cat >> {}\n  healthchecks: {}/hc/night\n  timeout_seconds: 3\n",
            nas.path().display(),
            alerts.display(),
            rec.base
        ),
    );
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 30, locations: [local, remote]}\nverify: daily\n");
    let night = |n: u32| format!("2025-03-{n:02}T02:00:00Z");
    s.ok(&["run", "--now", &night(1)]);
    let expected = c.fingerprint(&db);
    let alerts_now = || std::fs::read_to_string(&alerts).map(|t| t.lines().count()).unwrap_or(0);

    let mut n = 1;
    let mut kills: BTreeSet<String> = BTreeSet::new();
    let mut log = Vec::new();
    for round in 0..3 {
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("backup", vec!["backup".into(), "shop".into(), "production".into(), "--json".into()]),
            ("run", vec!["run".into(), "--json".into()]),
            ("verify", vec!["verify".into(), "shop".into(), "production".into()]),
            ("restore", vec!["restore".into(), "shop".into(), "production".into(), "--target-db".into(), format!("{db}_r{round}")]),
            (
                "restore --table",
                vec![
                    "restore".into(),
                    "shop".into(),
                    "production".into(),
                    "--table".into(),
                    "users".into(),
                    "--target-db".into(),
                    format!("{db}_t{round}"),
                ],
            ),
            (
                "restore --jobs",
                vec![
                    "restore".into(),
                    "shop".into(),
                    "production".into(),
                    "--jobs".into(),
                    "2".into(),
                    "--target-db".into(),
                    format!("{db}_j{round}"),
                ],
            ),
            ("restore-globals", vec!["restore-globals".into(), "shop".into(), "production".into()]),
            ("doctor", vec!["doctor".into()]),
        ];
        for (what, mut args) in cases {
            if what == "run" || what == "backup" {
                n += 1;
                args.extend(["--now".into(), night(n)]);
            }
            let nth = rng.below(4) as usize;
            let delay = Duration::from_millis(rng.below(30));
            let (alerts_before, pings_before) = (alerts_now(), rec.to("/hc/night/fail").len());
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let (out, killed) = with_a_child_killed(s.cmd(&argv), nth, delay);
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            let code = out.status.code();
            log.push(format!("{what}: killed {killed:?} (child {nth}, +{delay:?}) -> {code:?}"));
            assert_ne!(code, Some(101), "{what}: a panic (seed {seed}, {log:?}):\n{said}");
            assert!(!said.contains("panicked"), "{what}: a panic (seed {seed}):\n{said}");
            assert!(matches!(code, Some(0) | Some(1)), "{what}: exit {code:?} (seed {seed}):\n{said}");
            let Some(tool) = killed else { continue };
            kills.insert(format!("{what}: {tool}"));
            if code == Some(0) {
                // A success must be real: what the command says it did happened.
                match what {
                    "restore" | "restore --jobs" => assert_eq!(
                        c.fingerprint(argv.last().unwrap()),
                        expected,
                        "{what}: exit 0 after {tool} was killed, but the data differs\n{said}"
                    ),
                    "restore --table" => {
                        let rows = "SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u";
                        assert_eq!(
                            c.psql(argv.last().unwrap(), rows),
                            c.psql(&db, rows),
                            "{what}: exit 0 after {tool} was killed, but the table differs\n{said}"
                        );
                    }
                    "backup" => {
                        let b = json(&out.stdout);
                        assert!(std::path::Path::new(b["path"].as_str().unwrap()).is_file(), "{what}: exit 0 without a backup: {said}");
                    }
                    "run" => assert!(json(&out.stdout)["ok"] == true, "{said}"),
                    _ => {}
                }
                continue;
            }
            // A failure is said in words, and alerted where the command alerts.
            let in_words = match what {
                "run" => json(&out.stdout)["envs"][0]["errors"].as_array().is_some_and(|e| !e.is_empty()),
                _ => said.contains("ERROR") || said.contains("FAILED") || said.contains("FAIL") || said.contains("NOT VERIFIED"),
            };
            assert!(in_words, "{what}: the failure is not said: {said}");
            if matches!(what, "backup" | "run" | "verify") {
                assert!(alerts_now() > alerts_before, "{what}: the failure after {tool} was killed was not alerted\n{said}");
            }
            if what == "run" {
                assert!(rec.to("/hc/night/fail").len() > pings_before, "run: no healthchecks fail ping after {tool} was killed");
            }
        }
    }
    eprintln!("seed {seed}: killed {kills:?}\n{}", log.join("\n"));
    assert!(kills.len() >= 8, "too few kills landed to mean anything (seed {seed}): {kills:?}\n{}", log.join("\n"));
    // Nothing the killed commands left stays: the next run cleans up.
    n += 1;
    s.ok(&["run", "--now", &night(n)]);
    assert!(c.temp_dbs_for(&db).is_empty() && c.temp_dbs_for(&format!("verify_{db}")).is_empty(), "temporary databases left");
}
