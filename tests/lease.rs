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
        // Every third night one agent dies: at a random moment, as a host that loses power, or
        // (on nights 3 and 9) right after its backup and before its upload, so the other agent
        // takes the night while the dead one's copy waits on its disk.
        let victim = (day % 3 == 0).then(|| rand_below(2) as usize);
        let at_the_worst_moment = day % 6 == 3;
        let mut children: Vec<(usize, Child, Instant)> = Vec::new();
        for i in [first, 1 - first] {
            let mut cmd = agents[i].cmd(&["run", "--json", "--now", &nows[i], "--wait-lock", "60s"]);
            if at_the_worst_moment && victim == Some(i) {
                cmd.env("PGTIER_FAILPOINT", "run:before-sync");
            }
            children.push((i, cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(), Instant::now()));
            std::thread::sleep(Duration::from_millis(rand_below(400)));
        }
        if let Some(v) = victim.filter(|_| !at_the_worst_moment) {
            std::thread::sleep(Duration::from_millis(rand_below(1500)));
            let (_, child, _) = children.iter_mut().find(|(i, _, _)| *i == v).unwrap();
            let _ = child.kill();
        }
        if victim.is_some() {
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
        // A run that finished released its lease; a killed one may leave it (the next run of
        // its host, or any agent after the expiry, takes it over).
        if victim.is_none() {
            assert!(!after.iter().any(|k| k.ends_with(".pgtier-lease")), "night {day}: a finished run left its lease behind: {after:?}");
        }
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
    let ls = localstack();
    let (a, b, bucket) = pair(ls, "holder", "20s");
    let mut holder = holding(&a, &night(1, 0), false);
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

/// Two agents (two hosts' folders) on one new bucket of `store`, with a sample database.
fn pair(store: &LocalStack, name: &str, ttl: &str) -> (Scratch, Scratch, String) {
    let db = db_name(name);
    cluster().create_sample_db(&db, 5);
    let bucket = store.bucket();
    let remote = store.remote_yaml(&bucket, "fleet");
    (agent(&db, &remote, ttl), agent(&db, &remote, ttl), bucket)
}

/// `a`'s run of `now`, stopped (SIGSTOP) while it holds the lease.
fn holding(a: &Scratch, now: &str, json: bool) -> Child {
    a.set_env("PGTIER_FAILPOINT", "run:before-sync=stop");
    let args = if json { vec!["run", "--json", "--now", now] } else { vec!["run", "--now", now] };
    let child = spawn(a, &args);
    support::wait_until(Duration::from_secs(60), "the agent to stop holding its lease", || stopped(child.id()));
    child
}

fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('T'))
}

#[test]
fn a_holder_stalled_past_its_lease_deletes_nothing_after_it_wakes_and_says_so() {
    let ls = localstack();
    let (a, b, bucket) = pair(ls, "stall", "3s");
    // Three nights by A: the fourth lets the first go, locally and off-site.
    for d in 1..=3 {
        a.ok(&["run", "--now", &night(d, 0)]);
    }
    let before: BTreeSet<String> = ls.objects(&bucket, "fleet/").into_iter().map(|(k, _, _)| k).collect();
    let local_before = a.files("shop", "production");
    let stalled = holding(&a, &night(4, 0), true);
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
    let (a, b, _) = pair(moto(), "moto", "20s");
    let doctor = a.run(&["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("conditional writes honoured"), "{said}");
    let mut holder = holding(&a, &night(1, 0), false);
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

/// pgtier with no pgtier.yml at all, in an empty folder, with the test's AWS environment.
fn bare(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pgtier"));
    c.current_dir(dir.path()).env_remove("PGTIER_CONFIG").args(args);
    support::localstack::aws_env(&mut c);
    c.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn the_fleet_view_reads_two_hosts_backups_from_the_bucket_alone() {
    let c = cluster();
    let (db1, db2) = (db_name("fleet_shop"), db_name("fleet_blog"));
    c.create_sample_db(&db1, 5);
    c.create_sample_db(&db2, 5);
    let ls = localstack();
    let bucket = ls.bucket();
    let remote = ls.remote_yaml(&bucket, "fleet");
    // Two hosts, each with its own project, one bucket.
    let one = Scratch::new(&format!("shop:\n{}    policy: small\n", c.database_block(&[("production", &db1), ("staging", &db1)])), &remote);
    one.write("policies/small.yml", "verify: never\ntiers:\n  daily: {keep: 3, locations: [local, remote]}\n  weekly: {keep: 2, locations: [remote], storage_class: STANDARD_IA}\n");
    let two = Scratch::new(&format!("blog:\n{}", c.database_block(&[("production", &db2)])), &remote);
    for d in 1..=3 {
        one.ok(&["run", "shop", "production", "--now", &night(d, 0)]);
        two.ok(&["run", "--now", &night(d, 10)]);
    }
    // shop/staging was backed up once, on the first night only: stale by the third.
    one.ok(&["run", "shop", "staging", "--now", &night(1, 20)]);
    two.ok(&["verify", "--now", &night(3, 30)]);
    // An agent that died holding blog/production's lease an hour before.
    let stuck = format!(
        r#"{{"host":"db-2","pid":4242,"run":"x","command":"run","since":"{}","expires":"{}"}}"#,
        night(3, 0).replace("02:00", "01:00"),
        night(3, 0).replace("02:00", "01:10")
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), stuck).unwrap();
    ls.aws(&["s3", "cp", f.path().to_str().unwrap(), &format!("s3://{bucket}/fleet/blog/production/.pgtier-lease")]);

    let at = night(3, 50);
    let url = format!("s3://{bucket}/fleet");
    // Through a proxy that refuses every write, as read-only credentials would, and counts the
    // listings.
    let proxy = Proxy::start(&ls.endpoint);
    proxy.set_rule(|r| if matches!(r.method.as_str(), "GET" | "HEAD") { Verdict::Forward } else { Verdict::Fail(403, "AccessDenied") });
    let args =
        |cmd: &'static str| vec!["fleet", cmd, "--remote", &url, "--endpoint-url", &proxy.endpoint, "--region", "us-east-1", "--now", &at];
    let out = bare(&[&args("status")[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out.stdout);
    let envs: BTreeMap<String, &serde_json::Value> = v["envs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (format!("{}/{}", e["project"].as_str().unwrap(), e["env"].as_str().unwrap()), e))
        .collect();
    assert_eq!(envs.keys().collect::<Vec<_>>(), ["blog/production", "shop/production", "shop/staging"], "{v}");
    let lists = proxy.count(|r| r.target.contains("list-type=2"));
    assert_eq!(lists, 1, "one listing of the whole prefix");
    assert_eq!(proxy.count(|r| !matches!(r.method.as_str(), "GET" | "HEAD")), 0, "the fleet view only reads");
    let shop = envs["shop/production"];
    assert_eq!(shop["backups"], 3, "{shop}");
    assert_eq!(shop["newest"].as_str().unwrap(), format!("db_{}_020000", night(3, 0)[..10].replace('-', "")));
    assert_eq!(shop["tiers"]["daily"]["copies"], 3, "{shop}");
    assert!(shop["tiers"]["weekly"]["classes"]["STANDARD_IA"].as_u64().unwrap() >= 1, "{shop}");
    assert!(shop["findings"].as_array().unwrap().is_empty(), "{shop}");
    let staging = envs["shop/staging"];
    assert!(staging["findings"].to_string().contains("stale"), "{staging}");
    let blog = envs["blog/production"];
    assert_eq!(blog["last_drill"]["ok"], true, "{blog}");
    assert!(blog["findings"].to_string().contains("lease stuck") && blog["findings"].to_string().contains("host db-2, pid 4242"), "{blog}");
    // People first: a line per env, its findings under it.
    let text = String::from_utf8_lossy(&bare(&args("status")).stdout).to_string();
    assert!(text.contains("ok       shop/production") && text.contains("PROBLEM  shop/staging") && text.contains("drill ok"), "{text}");
    // audit exits 1 on findings; report writes one page with every env.
    assert_eq!(bare(&args("audit")).status.code(), Some(1));
    let page = tempfile::tempdir().unwrap().keep().join("fleet.html");
    let out = bare(&[&args("report")[..], &["--html", page.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    for e in ["blog/production", "shop/production", "shop/staging", "lease stuck"] {
        assert!(html.contains(e), "{e} missing from the page");
    }
    // A bad URL is a usage error naming the option.
    let out = bare(&["fleet", "status", "--remote", "s3://"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--remote"), "{}", String::from_utf8_lossy(&out.stderr));
}
