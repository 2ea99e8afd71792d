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
