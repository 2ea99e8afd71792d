//! Many agents, one bucket: the lease per project/env in the bucket (conditional writes on
//! LocalStack and moto), two agents racing night after night with random starts and SIGKILLs,
//! a holder stalled past its lease (SIGSTOP) that must delete nothing once it wakes, and a store
//! that ignores conditional writes, found out and said.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::localstack::{LocalStack, localstack, moto, remote_yaml_at};
use support::proxy::{Proxy, Verdict};
use support::{Scratch, cluster, db_name, json};

/// Daily copies only, three of them, locally and off-site; no drills.
const POLICY: &str = "verify: never\ntiers:\n  daily: {keep: 3, locations: [local, remote]}\n";

fn night(day: u32, second: u32) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2025, 3, 1).unwrap() + chrono::Duration::days(day as i64);
    format!("{t}T02:00:{second:02}Z")
}

/// An agent: its own host folder (backup_root), the shared database and bucket.
fn agent(db: &str, remote: &str, ttl: &str) -> Scratch {
    let c = cluster();
    let s = Scratch::new(
        &format!("shop:\n{}    policy: small\n", c.database_block(&[("production", db)])),
        &format!("{remote}lease_ttl: {ttl}\n"),
    );
    s.write("policies/small.yml", POLICY);
    s
}

/// The database backups in the bucket, by night (UTC date), from the data objects' keys.
fn nights_in_bucket(ls: &LocalStack, bucket: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, _, _) in ls.objects(bucket, "fleet/shop/production/") {
        let name = key.rsplit('/').next().unwrap();
        if let Some(rest) = name.strip_prefix("db_")
            && !name.ends_with(".json")
        {
            out.entry(rest[..8].to_string()).or_default().insert(name.split('.').next().unwrap().to_string());
        }
    }
    out
}

fn spawn(s: &Scratch, args: &[&str]) -> Child {
    s.cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Off-site deletions a finished run reports, summed over its envs and destinations.
fn reported_deletions(stdout: &[u8]) -> u64 {
    let v = json(stdout);
    v["envs"].as_array().unwrap().iter().flat_map(|e| e["syncs"].as_array().unwrap()).map(|s| s["deleted"].as_u64().unwrap()).sum()
}

fn rand_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom_fill(&mut b);
    u64::from_le_bytes(b) % n
}

fn getrandom_fill(b: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(b).unwrap();
}

#[test]
fn two_agents_racing_every_night_leave_one_backup_a_night_and_delete_nothing_kept() {
    let c = cluster();
    let db = db_name("race");
    c.create_sample_db(&db, 20);
    let ls = localstack();
    let bucket = ls.bucket();
    let remote = ls.remote_yaml(&bucket, "fleet");
    let agents = [agent(&db, &remote, "3s"), agent(&db, &remote, "3s")];
    let mut kills = 0;
    for day in 1..=10u32 {
        let before: BTreeSet<String> = ls.objects(&bucket, "fleet/").into_iter().map(|(k, _, _)| k).collect();
        // Each agent's clock says a different second of the same night, as two hosts' would.
        let nows = [night(day, rand_below(30) as u32), night(day, 30 + rand_below(29) as u32)];
        let first = rand_below(2) as usize;
        let mut children: Vec<(usize, Child, Instant)> = Vec::new();
        for i in [first, 1 - first] {
            children.push((i, spawn(&agents[i], &["run", "--json", "--now", &nows[i], "--wait-lock", "60s"]), Instant::now()));
            std::thread::sleep(Duration::from_millis(rand_below(400)));
        }
        // Every third night one agent dies at a random moment, as a host that loses power.
        let victim = (day % 3 == 0).then(|| rand_below(2) as usize);
        if let Some(v) = victim {
            std::thread::sleep(Duration::from_millis(rand_below(1500)));
            let (_, child, _) = children.iter_mut().find(|(i, _, _)| *i == v).unwrap();
            let _ = child.kill();
            kills += 1;
        }
        let mut reported = 0;
        for (i, child, _) in children {
            let out = child.wait_with_output().unwrap();
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if Some(i) == victim && out.status.code().is_none() {
                continue;
            }
            assert!(out.status.success(), "night {day}, agent {i}: {stdout}\n{stderr}");
            reported += reported_deletions(&out.stdout);
        }
        let after: BTreeSet<String> = ls.objects(&bucket, "fleet/").into_iter().map(|(k, _, _)| k).collect();
        let gone = before.difference(&after).filter(|k| !k.ends_with(".json")).count() as u64;
        assert!(reported <= gone, "night {day}: the runs reported {reported} off-site deletions, {gone} data objects are gone");
        assert!(!after.iter().any(|k| k.ends_with(".pgtier-lease")), "night {day}: a finished run left its lease behind: {after:?}");
        // A killed agent's night is finished by the next night's runs: checked from then on.
        let nights = nights_in_bucket(ls, &bucket);
        let settled = if victim.is_some() { day - 1 } else { day };
        // Daily keep 3: the last three nights, each with exactly one backup.
        for d in day.saturating_sub(2).max(1)..=settled {
            let date = night(d, 0)[..10].replace('-', "");
            let got = nights.get(&date).cloned().unwrap_or_default();
            assert_eq!(got.len(), 1, "night {d} (checked on night {day}) has {} backups in the bucket: {got:?}\n{nights:?}", got.len());
        }
    }
    assert!(kills >= 3);
}

#[test]
fn a_second_agent_exits_11_naming_the_holder_and_waits_its_turn_with_wait_lock() {
    let c = cluster();
    let db = db_name("holder");
    c.create_sample_db(&db, 5);
    let ls = localstack();
    let bucket = ls.bucket();
    let remote = ls.remote_yaml(&bucket, "fleet");
    let (a, b) = (agent(&db, &remote, "20s"), agent(&db, &remote, "20s"));
    // A stops itself (SIGSTOP) while it holds the lease.
    a.set_env("PGTIER_FAILPOINT", "run:before-sync=stop");
    let mut holder = spawn(&a, &["run", "--now", &night(1, 0)]);
    support::wait_until(Duration::from_secs(60), "the first agent to stop holding its lease", || stopped(holder.id()));
    let out = b.run(&["run", "--now", &night(1, 5)]);
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{said}");
    assert!(said.contains("another pgtier agent holds the lease") && said.contains(&format!("pid {} (run)", holder.id())), "{said}");
    assert!(said.contains("expires in") && said.contains("--wait-lock"), "{said}");
    for cmd in [&["backup", "shop", "production"][..], &["sync"][..], &["prune"][..]] {
        let out = b.run(cmd);
        assert_eq!(out.status.code(), Some(11), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Let it go on: it finishes and releases the lease; B, waiting, then finds the night's
    // backup in the bucket and does not take a second one.
    let waiter = spawn(&b, &["run", "--json", "--now", &night(1, 5), "--wait-lock", "60s"]);
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(holder.id() as i32, libc::SIGCONT) };
    assert!(holder.wait().unwrap().success());
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out.stdout);
    let e = &v["envs"][0];
    assert!(e["backup"].is_null(), "{e}");
    assert!(e["warnings"].to_string().contains("already holds tonight's backup"), "{e}");
    assert_eq!(nights_in_bucket(ls, &bucket).values().map(BTreeSet::len).sum::<usize>(), 1);
}

fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('T'))
}

#[test]
fn a_holder_stalled_past_its_lease_deletes_nothing_after_it_wakes_and_says_so() {
    let c = cluster();
    let db = db_name("stall");
    c.create_sample_db(&db, 5);
    let ls = localstack();
    let bucket = ls.bucket();
    let remote = ls.remote_yaml(&bucket, "fleet");
    let (a, b) = (agent(&db, &remote, "3s"), agent(&db, &remote, "3s"));
    // Three nights by A: the fourth lets the first go, locally and off-site.
    for d in 1..=3 {
        a.ok(&["run", "--now", &night(d, 0)]);
    }
    let before: BTreeSet<String> = ls.objects(&bucket, "fleet/").into_iter().map(|(k, _, _)| k).collect();
    let local_before = a.files("shop", "production");
    a.set_env("PGTIER_FAILPOINT", "run:before-sync=stop");
    let stalled = spawn(&a, &["run", "--json", "--now", &night(4, 0)]);
    support::wait_until(Duration::from_secs(60), "the agent to stall", || stopped(stalled.id()));
    // Past the expiry another agent takes the lease over, and runs its own night.
    std::thread::sleep(Duration::from_secs(4));
    let other = b.run(&["run", "--json", "--now", &night(4, 30)]);
    assert!(other.status.success(), "{}", String::from_utf8_lossy(&other.stderr));
    let mid: BTreeSet<String> = ls.objects(&bucket, "fleet/").into_iter().map(|(k, _, _)| k).collect();
    unsafe { libc::kill(stalled.id() as i32, libc::SIGCONT) };
    let out = stalled.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("lease lost") && said.contains("nothing was deleted after that"), "{said}");
    let after: BTreeSet<String> = ls.objects(&bucket, "fleet/").into_iter().map(|(k, _, _)| k).collect();
    assert!(mid.difference(&after).next().is_none(), "the stalled agent deleted {:?}", mid.difference(&after).collect::<Vec<_>>());
    assert_eq!(reported_deletions(&out.stdout), 0, "{said}");
    // Locally too: every file of the first three nights is still there.
    let local_after = a.files("shop", "production");
    assert!(local_before.iter().all(|f| local_after.contains(f)), "{local_before:?} -> {local_after:?}");
    assert!(mid.difference(&before).any(|k| k.contains(&night(4, 30)[..10].replace('-', ""))), "the other agent's night went off-site");
}

#[test]
fn the_lease_works_on_moto_too() {
    let c = cluster();
    let db = db_name("moto");
    c.create_sample_db(&db, 5);
    let m = moto();
    let bucket = m.bucket();
    let remote = m.remote_yaml(&bucket, "fleet");
    let (a, b) = (agent(&db, &remote, "20s"), agent(&db, &remote, "20s"));
    let doctor = a.run(&["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("conditional writes honoured"), "{said}");
    a.set_env("PGTIER_FAILPOINT", "run:before-sync=stop");
    let mut holder = spawn(&a, &["run", "--now", &night(1, 0)]);
    support::wait_until(Duration::from_secs(60), "the first agent to stop holding its lease", || stopped(holder.id()));
    let out = b.run(&["run", "--now", &night(1, 5)]);
    assert_eq!(out.status.code(), Some(11), "{}", String::from_utf8_lossy(&out.stdout));
    unsafe { libc::kill(holder.id() as i32, libc::SIGCONT) };
    assert!(holder.wait().unwrap().success());
    b.ok(&["run", "--now", &night(1, 5)]);
}

#[test]
fn a_store_that_ignores_conditional_writes_is_found_out_and_the_lease_does_not_pretend() {
    let c = cluster();
    let db = db_name("nocond");
    c.create_sample_db(&db, 5);
    let ls = localstack();
    let bucket = ls.bucket();
    let proxy = Proxy::start(&ls.endpoint);
    proxy.set_rule(|_| Verdict::ForwardWithout(&["if-none-match", "if-match"]));
    let a = agent(&db, &remote_yaml_at(&proxy.endpoint, &bucket, "fleet"), "20s");
    let init = a.ok(&["remote", "init"]);
    assert!(init.contains("conditional writes are NOT honoured") && init.contains("If-None-Match"), "{init}");
    let doctor = a.run(&["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("conditional writes are not honoured"), "{said}");
    let out = a.ok(&["run", "--now", &night(1, 0)]);
    assert!(out.contains("does not honour conditional writes") && out.contains("only runs on this host"), "{out}");
    assert_eq!(nights_in_bucket(ls, &bucket).len(), 1, "the night's backup still went off-site");
}
