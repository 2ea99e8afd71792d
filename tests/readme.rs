//! The README's "Five minutes to the first night", as written: its pgtier.yml, its projects.yml
//! and its commands, with only the placeholders filled (host, port, paths, bucket, key, the
//! alert URLs), run against a throwaway cluster and LocalStack. A doc that does not run fails
//! here.

mod support;

use support::localstack::localstack;
use support::{Recorder, cluster, repo, require_tool};

/// The fenced blocks of the README between two headings, without their indentation.
fn blocks(from: &str, to: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = text.split(from).nth(1).and_then(|s| s.split(to).next()).expect("the README has the section");
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            match current.take() {
                Some(b) => out.push(b.join("\n") + "\n"),
                None => current = Some(Vec::new()),
            }
            continue;
        }
        if let Some(b) = current.as_mut() {
            b.push(line.strip_prefix("   ").unwrap_or(line).to_string());
        }
    }
    out
}

#[test]
fn the_readme_first_night_runs_as_written() {
    require_tool("age-keygen", "install the Debian package age (scripts/setup does)");
    let c = cluster();
    // The README's role and databases.
    c.psql("postgres", "CREATE ROLE backup LOGIN CREATEDB PASSWORD 'backup-secret'; GRANT pg_read_all_data TO backup");
    for db in ["shop", "shop_staging"] {
        c.create_sample_db(db, 50);
    }
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let out = std::process::Command::new("age-keygen").arg("-o").arg(tmp.path().join("key.txt")).output().unwrap();
    let public = String::from_utf8_lossy(&out.stderr).trim().trim_start_matches("Public key: ").to_string();
    let bucket = localstack().bucket_name();
    let rec = Recorder::start(false);
    std::fs::write(etc.join("shop.pass"), "backup-secret\n").unwrap();

    let b = blocks("## Five minutes to the first night", "## Read on");
    assert_eq!(b.len(), 3, "pgtier.yml, projects.yml and the commands: {b:?}");
    // Only the placeholders change (and LocalStack's address is added where the store is named).
    let agent = b[0]
        .replace("/opt/backups", &tmp.path().join("backups").display().to_string())
        .replace("s3://my-backup-bucket/pgtier", &format!("s3://{bucket}/pgtier"))
        .replace(
            "region: eu-central-1}",
            &format!("region: eu-central-1, endpoint_url: {}, force_path_style: true}}", localstack().endpoint),
        )
        .replace("age1...", &public)
        .replace("https://hc-ping.com/UUID", &format!("{}/hc/check", rec.base));
    let projects = b[1]
        .replace("host: 127.0.0.1", &format!("host: 127.0.0.1\n    port: {}", c.port))
        .replace("/etc/pgtier", &etc.display().to_string());
    assert!(agent != b[0] && projects != b[1], "the placeholders are where the test expects them");
    std::fs::write(etc.join("pgtier.yml"), &agent).unwrap();
    std::fs::write(etc.join("projects.yml"), &projects).unwrap();

    let mut config = None;
    let mut ran = Vec::new();
    for line in b[2].lines() {
        let line = line.split(" #").next().unwrap().trim();
        if line.is_empty() || line.starts_with("systemctl") {
            continue;
        }
        if let Some(v) = line.strip_prefix("export PGTIER_CONFIG=") {
            config = Some(v.replace("/etc/pgtier", &etc.display().to_string()));
            continue;
        }
        for command in line.split("&&") {
            let args: Vec<&str> = command.split_whitespace().collect();
            assert_eq!(args[0], "pgtier", "{line}");
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgtier"))
                .args(&args[1..])
                .current_dir(tmp.path())
                .env("PGTIER_CONFIG", config.as_deref().expect("the README sets PGTIER_CONFIG first"))
                .env("PGTIER_SLACK_URL", format!("{}/slack", rec.base))
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README command `{}` failed ({:?}):\n{}{}",
                command.trim(),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran.push(command.trim().to_string());
        }
    }
    assert!(ran.iter().any(|c| c == "pgtier run"), "{ran:?}");
    assert!(tmp.path().join("report.html").is_file(), "the report was written");
    assert!(rec.to("/slack").iter().any(|r| r.body.contains("test alert")), "doctor --send-test-alert reached Slack");
    assert!(!rec.to("/hc/check/start").is_empty(), "the run pinged healthchecks");
}

#[test]
fn config_check_reports_every_problem_in_one_run() {
    let c = cluster();
    let tmp = tempfile::tempdir().unwrap();
    // A policies folder that does not exist is no problem (the built-in default applies); a
    // password file that does not exist, an unknown key and a bad size are, all at once.
    std::fs::write(
        tmp.path().join("pgtier.yml"),
        "projects: projects.yml\npolicies: policies\nbackup_root: backups\nmin_free_space: lots\nretention: 7\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("projects.yml"),
        format!("shop:\n  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: backup\n    password_file: /nonexistent/shop.pass\n    databases: {{production: shop}}\n    policy: nightly\n", c.port),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgtier")).args(["config", "check"]).current_dir(tmp.path()).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    for key in ["min_free_space", "retention", "shop.database.password_file", "shop.database.policy"] {
        assert!(said.contains(key), "{key} is reported in the same run:\n{said}");
    }
    assert!(!said.contains("cannot read folder"), "a missing policies folder is not a problem:\n{said}");
}
