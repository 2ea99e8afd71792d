//! The words a person reads where they used to mislead: each case is what an operator met in the
//! second month, with the sentence they should have read.

mod support;

use support::{Scratch, cluster, db_name, json};

fn scratch(db: &str, extra: &str) -> Scratch {
    let c = cluster();
    Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", db)])), extra)
}

fn both(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn empty_and_missing_things_are_said_plainly() {
    let db = db_name("words_empty");
    cluster().create_sample_db(&db, 5);
    let s = scratch(&db, "");
    // Nothing yet: list says so instead of printing a bare header.
    let out = s.ok(&["list", "shop", "production"]);
    assert!(out.starts_with("no backups of shop/production in "), "{out}");
    // --all without a destination lists what is here and says why nothing else.
    let out = s.run(&["list", "shop", "production", "--all"]);
    assert!(out.status.success() && both(&out).contains("no destination is configured"), "{}", both(&out));
    assert!(!both(&out).contains("--remote needs"), "{}", both(&out));
    // A drill with nothing to drill: no "newest" backup name, no "0 tables, 0 rows".
    let out = s.run(&["verify", "shop", "production"]);
    let said = both(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("no backups of shop/production") && !said.contains("0 tables, 0 rows") && !said.contains("\"newest\""), "{said}");
}

#[test]
fn a_good_night_is_quiet_and_its_details_read_right() {
    let db = db_name("words_good");
    cluster().create_sample_db(&db, 5);
    let s = scratch(&db, "");
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local]}\n  weekly: {keep: 4, locations: [local]}\n  monthly: {keep: 3, locations: [local]}\nverify: weekly\n");
    // No INFO lines on stderr by default (the scratch's PGTIER_LOG is taken away).
    let out = s.cmd(&["backup", "shop", "production", "--now", "2025-03-03T02:00:00Z"]).env_remove("PGTIER_LOG").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "a backup that worked says only its path");
    // The drill counts the user's indexes, not the server's pg_toast ones: the sample has two.
    let v: serde_json::Value = json(&s.ok(&["verify", "shop", "production", "--json"]));
    assert_eq!(v[0]["indexes_checked"], 2, "{v}");
    // Tiers in their order, not the alphabet's.
    let out = s.ok(&["status", "--now", "2025-03-03T03:00:00Z"]);
    assert!(out.contains("here: daily 1, weekly 1, monthly 1"), "{out}");
    // The run lock says nothing once the run is over, and is the only lock file of its name.
    s.ok(&["run", "--now", "2025-03-04T02:00:00Z"]);
    assert_eq!(std::fs::read_to_string(s.backup_root().join(".pgtier.lock")).unwrap(), "", "the run lock is empty after the run");
    assert!(!s.backup_root().join(".pgtier-lock").exists(), "no second lock file of almost the same name in the backup root");
    // --help says what status is.
    let help = s.ok(&["--help"]);
    assert!(help.lines().any(|l| l.contains("status") && l.contains("at a glance")), "{help}");
}

#[test]
fn failures_read_once_and_in_words() {
    let c = cluster();
    let db = db_name("words_fail");
    c.create_sample_db(&db, 5);
    let nas = tempfile::tempdir().unwrap();
    let s = scratch(&db, &format!("remote:\n  url: file://{}\n", nas.path().display()));
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\nverify: weekly\n");
    s.ok(&["run", "--now", "2025-03-01T02:00:00Z"]);
    // The audit names the policy's word, not a Rust value.
    let out = s.run(&["audit", "--now", "2025-03-20T02:00:00Z"]);
    assert!(both(&out).contains("verify: weekly") && !both(&out).contains("Weekly"), "{}", both(&out));
    // A night whose server is gone: the connection error once, no "pruned 0".
    c.psql("postgres", &format!("ALTER DATABASE {db} RENAME TO {db}_gone"));
    let out = s.run(&["run", "--now", "2025-03-02T02:00:00Z"]);
    c.psql("postgres", &format!("ALTER DATABASE {db}_gone RENAME TO {db}"));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(said.matches("does not exist").count(), 1, "the connection error once:\n{said}");
    assert!(!said.contains("pruned 0"), "{said}");
    // After a host loss, status says what is off-site instead of "no backup yet".
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let out = s.run(&["status"]);
    let said = both(&out);
    assert!(said.contains("no backup on this host") && said.contains("off-site") && !said.contains("no backup yet"), "{said}");
}
