//! The `--json` contract: every command's `--json` output is one object
//! `{"schema_version": 1, "command": NAME, "result": ...}`, and every field name that appears in
//! a result is documented in docs/json.md.

mod support;

use std::collections::BTreeSet;

use support::{Scratch, cluster, db_name, repo};

/// Object keys whose own keys are data (tier, destination, table or setting names), not fields.
const DATA_KEYED: [&str; 6] = ["latest_per_tier", "local", "offsite", "per_tier", "envs", "unreadable"];

fn collect_keys(v: &serde_json::Value, parent: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                if DATA_KEYED.contains(&parent) {
                    collect_keys(child, "", out);
                } else {
                    out.insert(k.clone());
                    collect_keys(child, k, out);
                }
            }
        }
        // The elements of a list are records: their keys are fields.
        serde_json::Value::Array(a) => a.iter().for_each(|c| collect_keys(c, "", out)),
        _ => {}
    }
}

#[test]
fn every_json_output_is_one_enveloped_object_and_every_field_is_documented() {
    let c = cluster();
    let db = db_name("json");
    c.create_sample_db(&db, 10);
    let nas = tempfile::tempdir().unwrap();
    let s = Scratch::new(
        &format!("shop:\n{}", c.database_block(&[("production", &db)])),
        &format!("globals: {{enabled: true}}\nremote:\n  url: file://{}\n", nas.path().display()),
    );
    s.write(
        "policies/default.yml",
        "tiers:\n  daily: {keep: 3, locations: [local, remote]}\n  weekly: {keep: 2, locations: [remote]}\nverify: daily\n",
    );
    let side = db_name("json_side");
    let nas_url = format!("file://{}", nas.path().display());
    let now = "2025-01-06T02:00:00Z";
    let commands: Vec<(&str, Vec<&str>)> = vec![
        ("config check", vec!["config", "check"]),
        ("doctor", vec!["doctor", "shop", "production"]),
        ("remote init", vec!["remote", "init"]),
        ("run", vec!["run", "--now", now]),
        ("backup", vec!["backup", "shop", "production", "--now", "2025-01-06T01:00:00Z"]),
        ("sync", vec!["sync", "--now", now]),
        ("sync", vec!["sync", "--dry-run", "--now", now]),
        ("list", vec!["list", "shop", "production", "--all"]),
        ("status", vec!["status", "--now", now]),
        ("status", vec!["status", "shop", "production"]),
        ("verify", vec!["verify", "shop", "production", "--now", now]),
        ("verify", vec!["verify", "--dry-run", "--all"]),
        ("prune", vec!["prune", "--dry-run", "--now", now]),
        ("prune", vec!["prune", "--now", now]),
        ("audit", vec!["audit", "--now", now]),
        ("policy simulate", vec!["policy", "simulate", "default", "--days", "30", "--now", now]),
        ("adopt", vec!["adopt", "shop", "production", "--dry-run"]),
        ("report", vec!["report", "--now", now]),
        ("restore", vec!["restore", "shop", "production", "--target-db", &side]),
        ("restore-globals", vec!["restore-globals", "shop", "production"]),
        ("fleet status", vec!["fleet", "status", "--remote", &nas_url, "--now", now]),
        ("fleet audit", vec!["fleet", "audit", "--remote", &nas_url, "--now", now]),
        ("fleet report", vec!["fleet", "report", "--remote", "default", "--now", now]),
    ];
    let mut keys = BTreeSet::new();
    for (name, args) in &commands {
        let mut full = args.clone();
        full.push("--json");
        let out = s.run(&full);
        assert!(out.status.success(), "{full:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{full:?}: not one JSON value ({e}):\n{text}"));
        assert_eq!(v["schema_version"], 1, "{full:?}: {text}");
        assert_eq!(v["command"], *name, "{full:?}: {text}");
        assert!(v.get("result").is_some(), "{full:?}: {text}");
        collect_keys(&v["result"], "", &mut keys);
        if let Ok(dir) = std::env::var("PGTIER_JSON_SAMPLES") {
            std::fs::write(format!("{dir}/{}.json", full.join("_").replace(['/', ':'], "-")), &text).unwrap();
        }
    }
    // status PROJECT ENV without --json is still the guide's manifest, not the envelope.
    let manifest: serde_json::Value = serde_json::from_str(&s.ok(&["status", "shop", "production"])).unwrap();
    assert_eq!(manifest["project"], "shop");

    let docs = std::fs::read_to_string(repo().join("docs/json.md")).unwrap();
    let missing: Vec<&String> = keys.iter().filter(|k| !docs.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "fields printed by --json but not documented in docs/json.md: {missing:?}");
}
