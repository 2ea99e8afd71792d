//! Several schedules per database and every database of a server: three days replayed with an
//! hourly run every hour and the nightly run after it, checking what each tier holds here and
//! off-site after every night against a model written from the policy; `databases: all` on a
//! server whose databases come and go between nights; the new keys rejected when wrong.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use support::localstack::localstack;
use support::{Cluster, Scratch, cluster, db_name, json};

/// Hourly copies for six hours, dailies for two days (both here and off-site), weeklies off-site.
const HOURLY: &str = "verify: never\ntiers:\n  hourly: {keep: 6, locations: [local, remote]}\n  daily: {keep: 2, locations: [local, remote]}\n  weekly: {keep: 2, locations: [remote]}\n";

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn stem(t: DateTime<Utc>) -> String {
    t.format("db_%Y%m%d_%H%M%S").to_string()
}

/// The policy's answer, written independently of pgtier: which of the hourly backups taken at
/// `times` (one per hour, oldest first) each tier keeps.
fn model(times: &[DateTime<Utc>]) -> BTreeMap<&'static str, BTreeSet<String>> {
    let newest =
        |keep: usize, members: Vec<DateTime<Utc>>| -> BTreeSet<String> { members.iter().rev().take(keep).map(|t| stem(*t)).collect() };
    let first_of = |key: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| -> Vec<DateTime<Utc>> {
        let mut seen = BTreeSet::new();
        times.iter().copied().filter(|t| seen.insert(key(t))).collect()
    };
    let hourly = times.to_vec();
    let daily = first_of(&|t| (t.year(), t.ordinal()));
    let weekly = first_of(&|t| (t.iso_week().year(), t.iso_week().week()));
    BTreeMap::from([("hourly", newest(6, hourly)), ("daily", newest(2, daily)), ("weekly", newest(2, weekly))])
}

fn local_backups(s: &Scratch) -> BTreeSet<String> {
    local_backups_of(s, "production").into_iter().collect()
}

fn remote_tiers(bucket: &str, prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, _, _) in localstack().objects(bucket, &format!("{prefix}/app/production/")) {
        let mut parts = key.rsplit('/');
        let name = parts.next().unwrap();
        let tier = parts.next().unwrap();
        if let Some(s) = name.strip_prefix("db_").and_then(|n| n.strip_suffix(".dump.gz")) {
            out.entry(tier.to_string()).or_default().insert(format!("db_{s}"));
        }
    }
    out
}

/// The hourly run as shipped: the systemd unit's command, which the cron file's hourly line
/// (commented out until a policy has an hourly tier) repeats.
fn shipped_hourly() -> Vec<String> {
    let unit = std::fs::read_to_string(support::repo().join("contrib/systemd/pgtier-hourly.service")).unwrap();
    let args = support::command_after_binary(unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("the unit has ExecStart="));
    let timer = std::fs::read_to_string(support::repo().join("contrib/systemd/pgtier-hourly.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* *:00:00 UTC"), "{timer}");
    let cron = std::fs::read_to_string(support::repo().join("contrib/cron.d/pgtier")).unwrap();
    let line = cron.lines().find(|l| l.contains("--tier hourly")).expect("the cron file has the hourly line");
    assert!(line.trim_start_matches(['#', ' ']).starts_with("0 * * * * "), "{line}");
    assert_eq!(support::command_after_binary(line), args, "the cron line and the unit run the same command");
    assert_eq!(args[..4], ["-q", "run", "--tier", "hourly"], "{args:?}");
    args
}

#[test]
fn three_days_of_hourly_runs_and_nightly_runs_keep_each_tier_here_and_off_site() {
    let c = cluster();
    let db = db_name("hourly");
    c.create_sample_db(&db, 5);
    let ls = localstack();
    let bucket = ls.bucket();
    let s = Scratch::new(&format!("app:\n{}    policy: hourly\n", c.database_block(&[("production", &db)])), &ls.remote_yaml(&bucket, "h"));
    s.write("policies/hourly.yml", HOURLY);
    // Sunday 2025-01-05 00:00 UTC to Tuesday 23:00: the ISO week turns on Monday.
    let start = Utc.with_ymd_and_hms(2025, 1, 5, 0, 0, 0).unwrap();
    let shipped = shipped_hourly();
    let hourly = |t: DateTime<Utc>| -> serde_json::Value {
        let now = stamp(t);
        let mut args: Vec<&str> = shipped.iter().map(String::as_str).collect();
        args.extend(["app", "production", "--now", &now, "--json"]);
        json(&s.ok(&args))
    };
    let mut taken: Vec<DateTime<Utc>> = Vec::new();
    for h in 0..72 {
        let t = start + Duration::hours(h);
        let out = hourly(t);
        let env = &out["envs"][0];
        assert_eq!(env["backup"], stem(t), "hour {t}: {env}");
        taken.push(t);
        if t.hour() == 5 {
            // The same hour again: no second backup for it.
            let again = t + Duration::minutes(30);
            let out = hourly(again);
            let env = &out["envs"][0];
            assert!(env["backup"].is_null(), "{env}");
            assert!(env["backup_skipped"].as_str().unwrap().contains("this hour already has backup"), "{env}");
        }
        if t.hour() != 2 {
            continue;
        }
        // The nightly run after the 02:00 hourly: the hour is taken, so no backup; it syncs,
        // prunes (and would drill).
        let nightly = t + Duration::minutes(10);
        let out = json(&s.ok(&["run", "app", "production", "--now", &stamp(nightly), "--json"]));
        let env = &out["envs"][0];
        assert!(env["backup"].is_null() && env["ok"] == true, "{env}");
        let want = model(&taken);
        // Here: the hourly and daily tiers (the weekly lives off-site only).
        let here: BTreeSet<String> = want["hourly"].union(&want["daily"]).cloned().collect();
        assert_eq!(local_backups(&s), here, "after the night of {t}");
        // Off-site: each tier's folder holds exactly what the tier keeps.
        let there = remote_tiers(&bucket, "h");
        for tier in ["hourly", "daily", "weekly"] {
            assert_eq!(there.get(tier).cloned().unwrap_or_default(), want[tier], "{tier} off-site after the night of {t}");
        }
        // Every local backup records the tiers it joined when taken: the day's first is the daily.
        let listed = json(&s.ok(&["list", "app", "production", "--json"]));
        for b in listed.as_array().unwrap().iter().filter(|b| b["kind"] == "database") {
            let name = b["backup"].as_str().unwrap();
            let tiers: Vec<&str> = b["tiers"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
            assert_eq!(tiers.contains(&"daily"), name.ends_with("_000000"), "{name}: {tiers:?}");
        }
    }
    // Roles once a day, not every hour.
    let globals: Vec<String> =
        s.files("app", "production").into_iter().filter(|f| f.starts_with("globals_") && f.ends_with(".sql.gz")).collect();
    let days: BTreeSet<&str> = globals.iter().map(|g| &g[8..16]).collect();
    assert_eq!(days.len(), globals.len(), "one roles backup a day at most: {globals:?}");
}

#[test]
fn a_policy_without_the_runs_tier_is_skipped_and_a_bad_tier_is_refused() {
    let c = cluster();
    let db = db_name("notier");
    c.create_sample_db(&db, 2);
    let s = Scratch::new(&format!("app:\n{}", c.database_block(&[("production", &db)])), "");
    let out = json(&s.ok(&["run", "--tier", "hourly", "--json"]));
    let env = &out["envs"][0];
    assert_eq!(env["skipped"], "policy default has no hourly tier", "{env}");
    assert!(s.files("app", "production").iter().all(|f| !f.starts_with("db_")));
    let err = s.fails(2, &["run", "--tier", "minutely"]);
    assert!(err.contains("unknown tier \"minutely\""), "{err}");
    // policy simulate --every shows a day of hourlies.
    s.write("policies/hourly.yml", HOURLY);
    let sim = json(&s.ok(&["policy", "simulate", "hourly", "--every", "1h", "--now", "2025-01-06T12:00:00Z", "--json"]));
    let rows = sim.as_array().unwrap();
    assert_eq!(rows.len(), 24);
    assert_eq!(rows.iter().filter(|r| r["keep"] == true).count(), 6 + 1, "six hourlies and the day's first as the daily");
    let err = s.fails(2, &["policy", "simulate", "hourly", "--every", "10s"]);
    assert!(err.contains("--every must be at least 1m"), "{err}");
    let err = s.fails(2, &["policy", "simulate", "hourly", "--every", "often"]);
    assert!(err.contains("--every") && err.contains("expected a duration"), "{err}");
    let err = s.fails(2, &["policy", "simulate", "hourly"]);
    assert!(err.contains("--days"), "{err}");
}

fn every_db_project(c: &Cluster, extra: &str) -> String {
    format!(
        "app:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: postgres\n    databases: all\n    exclude: [postgres]\n{extra}",
        c.port
    )
}

fn status_of(s: &Scratch, now: &str) -> BTreeMap<String, serde_json::Value> {
    let out = s.run(&["status", "--json", "--now", now]);
    json(&out.stdout).as_array().unwrap().iter().map(|e| (e["env"].as_str().unwrap().to_string(), e.clone())).collect()
}

#[test]
fn databases_all_follows_the_server_as_databases_come_and_go() {
    let c = Cluster::start_new();
    c.create_sample_db("alpha", 3);
    c.create_sample_db("beta", 4);
    let s = Scratch::new(&every_db_project(&c, ""), "");
    s.write("policies/default.yml", "verify: never\ntiers:\n  daily: {keep: 3}\n");
    // Night 1: both databases, each its own env, the roles once (with the first, alpha).
    s.ok(&["run", "--now", "2025-02-01T02:00:00Z"]);
    for env in ["alpha", "beta"] {
        assert!(s.files("app", env).iter().any(|f| f == "db_20250201_020000.dump.gz"), "{env}: {:?}", s.files("app", env));
    }
    assert!(s.files("app", "alpha").iter().any(|f| f.starts_with("globals_")));
    assert!(!s.files("app", "beta").iter().any(|f| f.starts_with("globals_")), "the roles are saved once");
    assert!(!s.backup_root().join("app/postgres").exists(), "excluded");
    // Between nights: gamma appears, beta is dropped.
    c.create_sample_db("gamma", 2);
    c.psql("postgres", "DROP DATABASE beta");
    let out = json(&s.ok(&["run", "--now", "2025-02-02T02:00:00Z", "--json"]));
    let envs: BTreeMap<&str, &serde_json::Value> =
        out["envs"].as_array().unwrap().iter().map(|e| (e["env"].as_str().unwrap(), e)).collect();
    assert_eq!(envs.keys().copied().collect::<Vec<_>>(), ["alpha", "beta", "gamma"]);
    assert!(envs["gamma"]["backup"].as_str().unwrap().starts_with("db_20250202"), "a new database is picked up");
    assert!(envs["beta"]["backup"].is_null() && envs["beta"]["gone"] == true && envs["beta"]["ok"] == true, "{}", envs["beta"]);
    assert!(s.files("app", "beta").iter().any(|f| f == "db_20250201_020000.dump.gz"), "a dropped database keeps its backups");
    // Days later: beta is gone from the server, not stale; alpha, not backed up since, is stale.
    let st = status_of(&s, "2025-02-09T02:00:00Z");
    assert_eq!(st["beta"]["gone"], true);
    assert!(st["beta"]["problems"].as_array().unwrap().is_empty(), "{}", st["beta"]);
    assert!(!st["alpha"]["problems"].as_array().unwrap().is_empty(), "{}", st["alpha"]);
    let text = String::from_utf8(s.run(&["status", "--now", "2025-02-09T02:00:00Z"]).stdout).unwrap();
    assert!(text.contains("app/beta: database gone from the server, backups kept"), "{text}");
    let audit = json(&s.run(&["audit", "app", "--json", "--now", "2025-02-09T02:00:00Z"]).stdout);
    let beta = audit["envs"].as_array().unwrap().iter().find(|e| e["env"] == "beta").unwrap().clone();
    assert_eq!(beta["gone"], true);
    assert!(beta["findings"].as_array().unwrap().iter().all(|f| f["rule"] != "stale"), "{beta}");
    let text = String::from_utf8(s.run(&["audit", "app", "--now", "2025-02-09T02:00:00Z"]).stdout).unwrap();
    assert!(text.contains("gone    app/beta: database \"beta\" is gone from the server"), "{text}");
    // Pruned as ever, the newest never: a week of nights later beta still has its last backup.
    for d in 3..=9 {
        s.ok(&["run", "--now", &format!("2025-02-{d:02}T02:00:00Z")]);
    }
    assert!(s.files("app", "beta").iter().any(|f| f == "db_20250201_020000.dump.gz"), "{:?}", s.files("app", "beta"));
    // A database whose name cannot name an env folder fails the run, naming it, until excluded.
    c.psql("postgres", "CREATE DATABASE \"Sales Data\"");
    let out = s.run(&["run", "--now", "2025-02-10T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("database \"Sales Data\" is not backed up") && text.contains("exclude:"), "{text}");
    assert!(s.files("app", "alpha").iter().any(|f| f == "db_20250210_020000.dump.gz"), "the others are still backed up");
    s.write("projects.yml", &every_db_project(&c, "").replace("exclude: [postgres]", "exclude: [postgres, Sales Data]"));
    s.ok(&["run", "--now", "2025-02-11T02:00:00Z"]);
    // A server that cannot be asked fails the run, saying so.
    s.write("projects.yml", &every_db_project(&c, "").replace(&format!("port: {}", c.port), &format!("port: {}", support::free_port())));
    let out = s.run(&["run", "--now", "2025-02-12T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("could not list the databases of project app's server"));
    // The same on a host with no backups yet: no env at all to try, and still no exit 0.
    let fresh =
        Scratch::new(&every_db_project(&c, "").replace(&format!("port: {}", c.port), &format!("port: {}", support::free_port())), "");
    let out = fresh.run(&["run", "--now", "2025-02-12T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("could not list the databases of project app's server"));
    let out = fresh.run(&["audit", "--now", "2025-02-12T02:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[databases]"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn new_keys_are_rejected_with_the_file_and_key() {
    let c = cluster();
    let cases: &[(&str, &str, &str)] = &[
        (
            "policies/p.yml",
            "tiers: {hourly: {keep: 24, locations: [remote], storage_class: GLACIER}, daily: {keep: 7}}",
            "tiers.hourly.storage_class",
        ),
        ("policies/p.yml", "tiers: {hourly: {keep: 24}}", "tiers.daily"),
        ("policies/p.yml", "keep_last: -1\ntiers: {daily: {keep: 7}}", "keep_last"),
        ("policies/p.yml", "tiers: {daily: {keep_last: 0}}", "tiers.daily.keep_last"),
        ("policies/p.yml", "tiers: {daily: {keep: 7}, minutely: {keep: 5}}", "tiers.minutely"),
        (
            "projects.yml",
            "app:\n  database: {type: postgresql, host: 127.0.0.1, user: postgres, databases: every}\n",
            "app.database.databases",
        ),
        (
            "projects.yml",
            "app:\n  database: {type: postgresql, host: 127.0.0.1, user: postgres, databases: {production: x}, exclude: [y]}\n",
            "app.database.exclude",
        ),
        (
            "projects.yml",
            "app:\n  database: {type: postgresql, host: 127.0.0.1, user: postgres, databases: all, exclude: [\"\"]}\n",
            "app.database.exclude[0]",
        ),
    ];
    for (file, text, key) in cases {
        let s = Scratch::new(&format!("app:\n{}", c.database_block(&[("production", "x")])), "");
        s.write(file, text);
        let err = s.fails(2, &["config", "check"]);
        assert!(err.contains(key), "{file} {text:?}: expected {key} in\n{err}");
    }
}

#[test]
fn keep_last_keeps_the_newest_whatever_their_dates_and_says_so() {
    let c = cluster();
    let db = db_name("keeplast");
    c.create_sample_db(&db, 2);
    let s = Scratch::new(&format!("app:\n{}    policy: last\n", c.database_block(&[("production", &db)])), "");
    // Dailies for two days only, but the newest four backups whatever their dates: a schedule
    // that stalled for weeks still has its last four.
    s.write("policies/last.yml", "verify: never\nkeep_last: 4\ntiers:\n  daily: {keep_days: 2}\n");
    let nights = ["2025-03-01", "2025-03-08", "2025-03-15", "2025-03-22", "2025-03-29", "2025-04-05"];
    for n in nights {
        s.ok(&["backup", "app", "production", "--now", &format!("{n}T02:00:00Z")]);
    }
    let dry = s.ok(&["prune", "app", "production", "--dry-run", "--now", "2025-04-05T03:00:00Z"]);
    assert!(dry.contains("keep_last: one of the newest 4 backups"), "{dry}");
    s.ok(&["prune", "app", "production", "--now", "2025-04-05T03:00:00Z"]);
    assert_eq!(
        local_backups_of(&s, "production"),
        ["db_20250315_020000", "db_20250322_020000", "db_20250329_020000", "db_20250405_020000"]
    );
    let audit = json(&s.ok(&["audit", "app", "production", "--json", "--now", "2025-04-05T03:00:00Z"]));
    let entries = audit["envs"][0]["plan"]["entries"].as_array().unwrap().clone();
    let kept = entries.iter().find(|e| e["file"].as_str().unwrap().starts_with("db_20250315")).unwrap();
    assert!(kept["reasons"].to_string().contains("keep_last"), "{kept}");
}

fn local_backups_of(s: &Scratch, env: &str) -> Vec<String> {
    s.files("app", env).into_iter().filter_map(|f| f.strip_suffix(".dump.gz").map(str::to_string)).collect()
}
