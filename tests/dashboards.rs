//! The dashboard and alert rules that ship (contrib/grafana, contrib/prometheus) read metrics
//! pgtier really writes: a real night (LocalStack, a locked tier, a drill) writes the textfile,
//! and every metric the dashboard and the rules reference is in it. The rules pass
//! `promtool check rules`, and `promtool test rules` proves each alert fires on the series that
//! should fire it (with the labels pgtier writes) and stays quiet on a healthy night's.

mod support;

use std::collections::BTreeSet;

use support::localstack::localstack;
use support::{Scratch, cluster, db_name, repo, require_tool};

/// Every `pgtier_...` metric name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("pgtier_") {
        let start = i + pos;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'_' || b[end].is_ascii_digit()) {
            end += 1;
        }
        out.insert(text[start..end].to_string());
        i = end;
    }
    out
}

#[test]
fn the_dashboard_and_rules_read_metrics_a_real_night_writes_and_the_rules_fire_when_they_should() {
    let promtool = require_tool("promtool", "scripts/setup --tests installs it (Debian package prometheus)");
    let c = cluster();
    let db = db_name("dash");
    c.create_sample_db(&db, 5);
    let bucket = localstack().locked_bucket();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("metrics: {{textfile: metrics/pgtier.prom}}\n{}", localstack().remote_yaml(&bucket, "p")),
    );
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 3, locations: [local, remote], object_lock: GOVERNANCE, object_lock_days: 2}\n  weekly: {keep: 2, locations: [remote]}\nverify: daily\n");
    s.ok(&["-q", "run"]);
    // And a failed one (the database is gone), so the failure metrics are written too.
    s.write("projects.yml", &format!("shop:\n{}", c.database_block(&[("production", "no_such_db_for_dash")])));
    assert_eq!(s.run(&["-q", "run"]).status.code(), Some(1));
    let textfile = std::fs::read_to_string(s.path().join("metrics/pgtier.prom")).expect("run writes the metrics textfile");
    let written = metric_names(&textfile);

    let rules_path = repo().join("contrib/prometheus/pgtier-rules.yml");
    let rules = std::fs::read_to_string(&rules_path).unwrap();
    let dashboard = std::fs::read_to_string(repo().join("contrib/grafana/pgtier.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 8), "the dashboard has its panels");
    let mut referenced = metric_names(&rules);
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            referenced.extend(metric_names(t["expr"].as_str().unwrap()));
        }
    }
    let missing: Vec<&String> = referenced.iter().filter(|m| !written.contains(*m)).collect();
    assert!(missing.is_empty(), "metrics the dashboard or rules use that a real night does not write: {missing:?}\n{textfile}");
    for needle in
        ["tier=\"daily\",destination=\"default\"", "pgtier_last_verify_duration_seconds{", "pgtier_lock_horizon_timestamp_seconds{"]
    {
        assert!(textfile.contains(needle), "{needle}:\n{textfile}");
    }

    let out = std::process::Command::new(&promtool).args(["check", "rules"]).arg(&rules_path).output().unwrap();
    assert!(out.status.success(), "promtool check rules: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // Unit tests of the rules, on series labelled as pgtier writes them, one sample a minute (a
    // rule only sees samples of the last 5 minutes). promtool's clock starts at 0, so
    // timestamps are small numbers here.
    let parsed: serde_norway::Value = serde_norway::from_str(&rules).unwrap();
    let annotations = |alert: &str, labels: &[(&str, &str)]| -> String {
        let rule = parsed["groups"][0]["rules"].as_sequence().unwrap().iter().find(|r| r["alert"].as_str() == Some(alert)).unwrap();
        let mut out = String::new();
        for key in ["summary", "description"] {
            let mut text = rule["annotations"][key].as_str().unwrap().to_string();
            for (k, v) in labels {
                text = text.replace(&format!("{{{{ $labels.{k} }}}}"), v);
            }
            out += &format!("              {key}: {}\n", serde_json::to_string(&text).unwrap());
        }
        out
    };
    let env = r#"instance="db1",job="node",project="shop",env="production""#;
    let gone = r#"instance="db1",job="node",project="shop",env="olddb""#;
    let base: Vec<(&str, &str)> = vec![("instance", "db1"), ("job", "node"), ("project", "shop"), ("env", "production")];
    let with =
        |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> { base.iter().copied().chain(extra.iter().copied()).collect() };
    let exp = |alert: &str, severity: &str, labels: Vec<(&str, &str)>| {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!(
            "          - exp_labels: {{severity: {severity}, {}}}\n            exp_annotations:\n{}",
            l.join(", "),
            annotations(alert, &labels)
        )
    };
    let tests = format!(
        r#"rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'pgtier_last_success_timestamp_seconds{{{env}}}'
        values: '0x2400'
      - series: 'pgtier_last_failure_timestamp_seconds{{{env}}}'
        values: '3600x2400'
      - series: 'pgtier_last_verify_success_timestamp_seconds{{{env}}}'
        values: '0x13000'
      - series: 'pgtier_last_verify_ok{{{env}}}'
        values: '0x2400'
      - series: 'pgtier_last_backup_size_bytes{{{env}}}'
        values: '1000x1440 100x960'
      - series: 'pgtier_destination_backups{{{env},tier="weekly",destination="default"}}'
        values: '0x2400'
      - series: 'pgtier_lock_horizon_timestamp_seconds{{{env},tier="daily",destination="default"}}'
        values: '7200x2400'
      # A database gone from the server (databases: all): never drilled again, its locks run
      # out, and neither alerts.
      - series: 'pgtier_last_verify_success_timestamp_seconds{{{gone}}}'
        values: '0x13000'
      - series: 'pgtier_lock_horizon_timestamp_seconds{{{gone},tier="daily",destination="default"}}'
        values: '7200x2400'
      - series: 'pgtier_database_gone{{{gone}}}'
        values: '1x13000'
    alert_rule_test:
      - eval_time: 30m
        alertname: PgtierNoSuccessfulBackup
        exp_alerts: []
      - eval_time: 27h
        alertname: PgtierNoSuccessfulBackup
        exp_alerts:
{nobackup}
      - eval_time: 2h
        alertname: PgtierLastRunFailed
        exp_alerts:
{lastfailed}
      - eval_time: 9d
        alertname: PgtierNoSuccessfulDrill
        exp_alerts:
{nodrill}
      - eval_time: 1h
        alertname: PgtierLastDrillFailed
        exp_alerts:
{drillfailed}
      - eval_time: 23h
        alertname: PgtierBackupSizeDropped
        exp_alerts: []
      - eval_time: 26h
        alertname: PgtierBackupSizeDropped
        exp_alerts:
{dropped}
      - eval_time: 3h
        alertname: PgtierOffsiteCopyMissing
        exp_alerts:
{missing}
      - eval_time: 3h
        alertname: PgtierLockHorizonShort
        exp_alerts:
{horizon}
"#,
        rules = rules_path.display(),
        nobackup = exp("PgtierNoSuccessfulBackup", "critical", with(&[])),
        lastfailed = exp("PgtierLastRunFailed", "warning", with(&[])),
        nodrill = exp("PgtierNoSuccessfulDrill", "warning", with(&[])),
        drillfailed = exp("PgtierLastDrillFailed", "critical", with(&[])),
        dropped = exp("PgtierBackupSizeDropped", "warning", with(&[])),
        missing = exp("PgtierOffsiteCopyMissing", "critical", with(&[("tier", "weekly"), ("destination", "default")])),
        horizon = exp("PgtierLockHorizonShort", "warning", with(&[("tier", "daily"), ("destination", "default")])),
    );
    let file = s.write("rules-test.yml", &tests);
    let out = std::process::Command::new(&promtool).args(["test", "rules"]).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}\n{tests}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
