//! Drills for years: the weekly drill the package ships (its command read from the systemd unit
//! and the cron file) runs every week of fourteen months of nights with the default policy,
//! against LocalStack. Once monthly copies sit in GLACIER it still exits 0, says they are cold,
//! and never asks for a thaw (a paid retrieval): LocalStack keeps the restore status a thaw
//! request leaves on an object, and no object has one.

mod support;

use std::process::Command;

use chrono::{Datelike, NaiveDate};
use support::localstack::{aws_env, localstack};
use support::{Scratch, cluster, command_after_binary, db_name, json, repo};

/// The GLACIER copies under `prefix` that a thaw was requested for (they carry a restore status).
fn thawed(bucket: &str, prefix: &str) -> Vec<String> {
    let ls = localstack();
    let glacier: Vec<String> =
        ls.objects(bucket, prefix).into_iter().filter(|(_, class, _)| class == "GLACIER").map(|(k, _, _)| k).collect();
    assert!(!glacier.is_empty(), "no GLACIER copies under {prefix}");
    glacier.into_iter().filter(|k| ls.aws_json(&["s3api", "head-object", "--bucket", bucket, "--key", k])["Restore"].is_string()).collect()
}

fn shipped_drill() -> Vec<String> {
    let unit = std::fs::read_to_string(repo().join("contrib/systemd/pgtier-verify.service")).unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("the unit has ExecStart=");
    let args = command_after_binary(exec);
    // The cron file, for hosts without systemd, runs the same drill.
    let cron = std::fs::read_to_string(repo().join("contrib/cron.d/pgtier")).unwrap();
    let line = cron.lines().find(|l| !l.starts_with('#') && l.contains(" verify")).expect("the cron file runs verify");
    assert_eq!(command_after_binary(line), args, "the cron line and the unit run the same drill");
    // Weekly, on Sunday at 03:00 UTC, an hour after the night's run.
    let timer = std::fs::read_to_string(repo().join("contrib/systemd/pgtier-verify.timer")).unwrap();
    assert!(timer.contains("OnCalendar=Sun *-*-* 03:00:00 UTC"), "{timer}");
    assert!(line.starts_with("0 3 * * 0 "), "{line}");
    args
}

#[test]
fn the_shipped_weekly_drill_passes_for_fourteen_months_and_never_thaws() {
    let args = shipped_drill();
    let c = cluster();
    let db = db_name("years");
    c.create_sample_db(&db, 5);
    let bucket = localstack().bucket();
    // The default policy as shipped: daily here and off-site, weekly in STANDARD_IA, monthly in
    // GLACIER, a drill every week.
    let s = Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", &db)])), &localstack().remote_yaml(&bucket, "years"));
    let drill = |at: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgtier"));
        cmd.args(&args).args(["--now", at]).env("PGTIER_CONFIG", s.path().join("pgtier.yml")).env("PGTIER_LOG", "pgtier=info");
        aws_env(&mut cmd);
        cmd.output().unwrap()
    };
    // Nights, January 2025 to March 2026: every Sunday and the first of each month run the whole
    // night (`pgtier run`: backup, sync, prune; the drill an hour later proves its backup), and
    // every Monday takes a backup, so the weekly tier holds Monday's as it does with a run every
    // night, and most first-of-month backups end up only in GLACIER, never drilled.
    let (mut day, last) = (NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
    let mut drills = 0;
    let (mut nights, mut drilling) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    while day <= last {
        let sunday = day.weekday() == chrono::Weekday::Sun;
        let t = std::time::Instant::now();
        if sunday || day.day() == 1 {
            s.ok(&["-q", "run", "--now", &format!("{day}T02:00:00Z")]);
        } else if day.weekday() == chrono::Weekday::Mon {
            s.ok(&["-q", "backup", "shop", "production", "--now", &format!("{day}T02:00:00Z")]);
        }
        nights += t.elapsed();
        if sunday {
            let t = std::time::Instant::now();
            let out = drill(&format!("{day}T03:00:00Z"));
            drilling += t.elapsed();
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(0), "the drill of {day} failed:\n{stdout}\n{stderr}");
            assert!(stdout.is_empty(), "-q prints nothing when all is well ({day}): {stdout}");
            assert!(!stderr.contains("ERROR") && !stderr.contains("WARN"), "{day}: {stderr}");
            drills += 1;
        }
        day = day.succ_opt().unwrap();
    }
    assert!(drills >= 60, "{drills} weekly drills");
    eprintln!("the nights took {nights:?}, the {drills} drills {drilling:?}");
    let prefix = "years/shop/production/monthly/";
    assert_eq!(thawed(&bucket, prefix), Vec::<String>::new(), "no drill asked for a thaw");

    // Month 14: what the drill proves and what it leaves cold, in words and in JSON.
    let at = "2026-03-01T03:00:00Z";
    let v = json(&s.ok(&["verify", "--from", "remote", "--each-tier", "--json", "--now", at]));
    let by_tier = |t: &str| v.as_array().unwrap().iter().find(|r| r["tier"] == t).unwrap_or_else(|| panic!("no {t} drill: {v}")).clone();
    let (daily, weekly, monthly) = (by_tier("daily"), by_tier("weekly"), by_tier("monthly"));
    assert_eq!((daily["outcome"].as_str(), daily["backup"].as_str()), (Some("ok"), Some("db_20260301_020000")), "{daily}");
    assert_eq!((weekly["outcome"].as_str(), weekly["backup"].as_str()), (Some("ok"), Some("db_20260223_020000")), "{weekly}");
    assert_eq!((monthly["outcome"].as_str(), monthly["backup"].as_str()), (Some("cold"), Some("db_20260301_020000")), "{monthly}");
    assert!(monthly["error"].is_null(), "a cold backup is not an error: {monthly}");
    let why = monthly["notes"][0].as_str().unwrap();
    assert!(why.contains("GLACIER") && why.contains("paid retrieval") && why.contains("3 to 5 hours"), "the cost is stated: {why}");
    let text = s.ok(&["verify", "--from", "remote", "--each-tier", "--now", at]);
    assert!(text.contains("ok      shop/production db_20260301_020000 (remote, daily copy): "), "{text}");
    assert!(
        text.contains("cold    shop/production db_20260301_020000 (remote, monthly copy): not drilled")
            && text.contains("add --thaw to drill it"),
        "{text}"
    );

    // list and status say which backups are cold, not drilled: the monthlies only in GLACIER.
    let rows = json(&s.ok(&["list", "shop", "production", "--remote", "--json", "--now", at]));
    let cold: Vec<&str> = rows.as_array().unwrap().iter().filter(|r| r["cold"] == true).map(|r| r["backup"].as_str().unwrap()).collect();
    assert!(cold.len() >= 5, "{cold:?}");
    assert!(cold.contains(&"db_20250401_020000"), "{cold:?}");
    let table = s.ok(&["list", "shop", "production", "--remote", "--now", at]);
    assert!(table.lines().any(|l| l.starts_with("db_20250401_020000") && l.ends_with("cold, not drilled")), "{table}");
    let overview = s.ok(&["status", "--now", at]);
    assert!(overview.contains(&format!("{} cold, not drilled", cold.len())), "{overview}");
    let manifest = json(&s.ok(&["status", "shop", "production", "--json", "--now", at]));
    assert_eq!(manifest["destinations"][0]["cold_not_drilled"].as_u64(), Some(cold.len() as u64), "{manifest}");
    // The daily audit agrees that all is well.
    s.ok(&["-q", "audit", "--now", "2026-03-01T04:00:00Z"]);
    assert_eq!(thawed(&bucket, prefix), Vec::<String>::new(), "nothing asked for a thaw");

    // Asked to, a drill thaws the newest monthly copy: the retrieval is requested, and the drill
    // says to run again once it is done (exit 75, as a restore does)...
    let out = s.run(&["verify", "--from", "remote", "--each-tier", "--thaw", "--now", at]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(thawed(&bucket, prefix), [format!("{prefix}db_20260301_020000.dump.gz")], "one thaw, of the newest monthly copy: {text}");
    assert!(
        text.contains("thawing shop/production") && text.contains("a thaw is under way") && text.contains("Run the same command again"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(75), "{text}");
    // ...or waits for it, and proves the monthly copy too: the newest backup, restored from its
    // daily copy, has its monthly copy read back and hashed rather than restored again.
    let v = json(&s.ok(&[
        "verify",
        "--from",
        "remote",
        "--each-tier",
        "--thaw",
        "--wait",
        "1m",
        "--wait-poll",
        "100ms",
        "--json",
        "--now",
        at,
    ]));
    assert!(v.as_array().unwrap().iter().all(|r| r["outcome"] == "ok"), "{v}");
    let monthly = v.as_array().unwrap().iter().find(|r| r["tier"] == "monthly").unwrap();
    assert_eq!(monthly["same_as"], "daily", "{monthly}");
    assert_eq!(monthly["tables"], v.as_array().unwrap()[0]["tables"], "{v}");
    // --wait without --thaw is a mistake, said before anything is read.
    let err = s.fails(2, &["verify", "--from", "remote", "--wait", "1m"]);
    assert!(err.contains("--thaw"), "{err}");
}
