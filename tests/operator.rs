//! What an operator reads: `-q` commands print nothing when all is well (cron mails only on
//! trouble) and everything when not; a failed drill shows as FAILED, not as "not checked";
//! after a host loss, `list` and `restore` say what is off-site and what to type.

mod support;

use support::{Scratch, cluster, db_name, json};

fn scratch_with_nas(db: &str, nas: &std::path::Path) -> Scratch {
    let c = cluster();
    Scratch::new(&format!("shop:\n{}", c.database_block(&[("production", db)])), &format!("remote:\n  url: file://{}\n", nas.display()))
}

#[test]
fn quiet_commands_print_nothing_on_success_and_everything_on_failure() {
    let c = cluster();
    let db = db_name("quiet");
    c.create_sample_db(&db, 20);
    let nas = tempfile::tempdir().unwrap();
    let s = scratch_with_nas(&db, nas.path());
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\nverify: daily\n");
    for args in [
        vec!["-q", "run", "--now", "2025-01-06T02:00:00Z"],
        vec!["-q", "sync", "--now", "2025-01-06T02:00:00Z"],
        vec!["-q", "prune", "--now", "2025-01-06T03:00:00Z"],
        vec!["-q", "verify", "--now", "2025-01-06T03:00:00Z"],
        vec!["-q", "audit", "--now", "2025-01-06T03:00:00Z"],
    ] {
        let out = s.run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?} printed on success: {}", String::from_utf8_lossy(&out.stdout));
        assert!(out.stderr.is_empty(), "{args:?} logged on success: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Two days without a backup: the audit fails, and -q prints its verdict and findings.
    let out = s.run(&["-q", "audit", "--now", "2025-01-08T06:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FINDING") && stdout.contains("audit:"), "{stdout}");
    // --json is a result, not chatter: it is printed with -q too.
    let out = s.run(&["-q", "prune", "--json", "--now", "2025-01-06T03:00:00Z"]);
    assert!(json(&out.stdout).is_array(), "prune's result is its plans");
}

#[test]
fn a_failed_drill_shows_as_failed_in_list_and_status() {
    let c = cluster();
    let db = db_name("faileddrill");
    c.create_sample_db(&db, 50);
    let nas = tempfile::tempdir().unwrap();
    let s = scratch_with_nas(&db, nas.path());
    let path = s.ok(&["backup", "shop", "production", "--now", "2025-03-03T02:00:00Z"]);
    let path = path.trim().to_string();
    s.ok(&["verify", "shop", "production"]);
    let listed = s.ok(&["list", "shop", "production"]);
    assert!(!listed.contains("FAILED"), "{listed}");
    // The overview: all well, with relative ages and the copies here and off-site.
    let overview = s.ok(&["status", "--now", "2025-03-03T05:00:00Z"]);
    assert!(overview.contains("ok") && overview.contains("shop/production: newest db_20250303_020000 (3 h ago)"), "{overview}");
    assert!(overview.contains("here: daily 1") && overview.contains("default: daily 0") || overview.contains("default: -"), "{overview}");
    assert!(overview.contains("all well"), "{overview}");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let out = s.run(&["verify", "shop", "production"]);
    assert_eq!(out.status.code(), Some(1));
    let listed = s.ok(&["list", "shop", "production"]);
    assert!(listed.contains("FAILED "), "a failed drill is not shown as unchecked:\n{listed}");
    let v: serde_json::Value = json(&s.ok(&["list", "shop", "production", "--json"]));
    assert_eq!(v[0]["last_verification"]["ok"], false, "{v}");
    assert_eq!(v[0]["last_successful_verification"]["ok"], true, "the earlier pass is still there: {v}");
    let status: serde_json::Value = serde_json::from_str(&s.ok(&["status", "shop", "production"])).unwrap();
    assert_eq!(status["last_verification"]["ok"], false, "{status}");
    let out = s.run(&["status", "--now", "2025-03-03T05:00:00Z"]);
    assert_eq!(out.status.code(), Some(1), "a failed drill is a problem");
    let overview = String::from_utf8_lossy(&out.stdout);
    assert!(
        overview.contains("PROBLEM") && overview.contains("last drill FAILED") && overview.contains("pgtier verify shop production"),
        "{overview}"
    );
    let v: serde_json::Value = json(&s.run(&["status", "--json", "--now", "2025-03-03T05:00:00Z"]).stdout);
    assert_eq!(v[0]["last_verification"]["ok"], false, "{v}");
}

#[test]
fn after_a_host_loss_list_and_restore_say_what_is_off_site() {
    let c = cluster();
    let db = db_name("hostlosshint");
    c.create_sample_db(&db, 20);
    let nas = tempfile::tempdir().unwrap();
    let s = scratch_with_nas(&db, nas.path());
    s.ok(&["run", "--now", "2025-01-06T02:00:00Z"]);
    std::fs::remove_dir_all(s.backup_root()).unwrap();
    let out = s.run(&["list", "shop", "production"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 backup of shop/production is off-site") && stderr.contains("--from remote"), "{stderr}");
    let err = s.fails(1, &["restore", "shop", "production", "--target-db", &db_name("nowhere")]);
    assert!(err.contains("no local backups") && err.contains("add --from remote"), "{err}");
}

#[test]
fn missing_aws_credentials_are_named_as_such() {
    let c = cluster();
    let db = db_name("nocreds");
    c.create_sample_db(&db, 5);
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &support::localstack::localstack().remote_yaml("no-such-bucket", "p"),
    );
    s.ok(&["backup", "shop", "production"]);
    let home = tempfile::tempdir().unwrap();
    let out = s
        .cmd(&["sync"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PGTIER_S3_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials found"), "{stderr}");
    assert!(!stderr.contains("IMDS") && !stderr.contains("DispatchFailure"), "no SDK dump: {stderr}");
}

#[test]
fn list_fits_100_columns_with_ages_and_audit_says_one_line() {
    let c = cluster();
    let db = db_name("narrow");
    c.create_sample_db(&db, 10);
    let nas = tempfile::tempdir().unwrap();
    let s = scratch_with_nas(&db, nas.path());
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 7, locations: [local, remote]}\n  weekly: {keep: 4, locations: [local, remote]}\n  monthly: {keep: 12, locations: [remote]}\nverify: daily\n");
    for night in ["2025-01-05T02:00:00Z", "2025-01-06T02:00:00Z"] {
        s.ok(&["-q", "run", "--now", night]);
    }
    s.ok(&["backup", "shop", "production", "--tag", "pre-deploy", "--now", "2025-01-06T09:00:00Z"]);

    let now = "2025-01-06T12:00:00Z";
    let listed = s.ok(&["list", "shop", "production", "--all", "--now", now]);
    for line in listed.lines() {
        assert!(line.chars().count() <= 100, "list is wider than 100 columns ({}):\n{listed}", line.chars().count());
    }
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["BACKUP", "AGE", "SIZE", "TIERS", "WHERE", "VERIFIED"], "{listed}");
    let newest_night = listed.lines().find(|l| l.starts_with("db_20250106_020000")).expect("the night's backup is listed");
    assert!(newest_night.contains("10 h ago") && newest_night.contains("local+remote") && newest_night.contains("ok 10 h ago"), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("db_20250105_020000") && l.contains("34 h ago")), "{listed}");
    // The columns line up: every row's AGE ends where the header's does.
    let age_end = listed.lines().next().unwrap().find("AGE").unwrap() + 3;
    for line in listed.lines().skip(1) {
        assert_eq!(line.chars().nth(age_end - 1), Some('o'), "AGE column misaligned:\n{listed}");
    }
    // --wide has every detail: dates, tags, each copy's storage class.
    let wide = s.ok(&["list", "shop", "production", "--all", "--wide", "--now", now]);
    assert!(
        wide.contains("CREATED (UTC)")
            && wide.contains("2025-01-06 09:00:00")
            && wide.contains("pre-deploy")
            && wide.contains("daily:STANDARD"),
        "{wide}"
    );

    // audit: one line when all is well; -v shows every decision.
    let audit = s.ok(&["audit", "--now", now]);
    assert_eq!(audit.lines().count(), 1, "{audit}");
    assert!(audit.starts_with("audit: ok (1 project/env(s), "), "{audit}");
    let verbose = s.ok(&["-v", "audit", "--now", now]);
    assert!(verbose.lines().any(|l| l.starts_with("keep ")) && verbose.lines().count() > 3, "{verbose}");
    // A finding: the one line says how many, and the finding is there.
    let out = s.run(&["audit", "--now", "2025-01-09T12:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("FINDING shop/production"))
            && text.lines().last().unwrap().starts_with("audit: 2 finding(s) in 1 of 1 project/env(s)"),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("keep ")), "without -v, audit prints the findings only: {text}");
}
