//! Hostile input: adversarial YAML, manifests that lie, names that try to escape. Each is a clear
//! error (exit 2 for configuration), never a panic, and nothing outside pgtier's files is touched.

mod support;

use std::os::unix::process::ExitStatusExt;

use support::{Scratch, cluster, db_name, json};

fn assert_config_error(s: &Scratch, what: &str, expect: &[&str]) {
    let out = s.run(&["config", "check"]);
    assert_eq!(out.status.signal(), None, "{what}: killed by a signal");
    assert_eq!(out.status.code(), Some(2), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    for e in expect {
        assert!(err.contains(e), "{what}: expected {e:?} in {err}");
    }
}

#[test]
fn adversarial_yaml_is_refused_cleanly() {
    let deep = format!("projects: {}x{}\n", "[".repeat(20_000), "]".repeat(20_000));
    let bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let huge = format!("backup_root: \"{}\"\n", "x".repeat(2 << 20));
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("deep nesting", deep, vec!["pgtier.yml"]),
        ("an anchor bomb", bomb.to_string(), vec!["pgtier.yml"]),
        ("a huge file", huge, vec!["pgtier.yml", "1 MiB"]),
        ("wrong types", "backup_root: [1, 2]\nmin_free_space: {a: b}\n".into(), vec!["backup_root", "min_free_space"]),
        ("duplicate keys", "backup_root: /a\nbackup_root: /b\n".into(), vec!["duplicate"]),
        ("not a mapping", "- just\n- a list\n".into(), vec!["expected a mapping"]),
        ("binary junk", "\u{0}\u{1}\u{2}garbage: [\n".into(), vec!["pgtier.yml"]),
        ("a tab-indented mess", "remote:\n\turl: x\n".into(), vec!["pgtier.yml"]),
    ];
    for (what, yaml, expect) in cases {
        let s = Scratch::new("", "");
        s.write("pgtier.yml", &yaml);
        let started = std::time::Instant::now();
        assert_config_error(&s, what, &expect);
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{what} took {:?}", started.elapsed());
    }
    // The same in projects.yml and a policy.
    let s = Scratch::new(
        "app:\n  database: &d {type: postgresql, user: u, databases: {p: d}}\nother:\n  database: *d\nx: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        "",
    );
    assert_config_error(&s, "nesting in projects.yml", &["projects.yml"]);
    let s = Scratch::new("", "");
    s.write("policies/bomb.yml", bomb);
    assert_config_error(&s, "a bomb in a policy", &["bomb.yml"]);
}

#[test]
fn names_that_try_to_escape_are_refused() {
    for name in ["\"a\\0b\"", "\"..\"", "\"x/../../etc\"", "\"$(reboot)\"", "\"a;b\"", "\"\\n\"", "\" \""] {
        let s = Scratch::new(&format!("{name}:\n  database: {{type: postgresql, user: u, databases: {{prod: d}}}}\n"), "");
        assert_config_error(&s, name, &["projects.yml", "project name"]);
        let s = Scratch::new(&format!("app:\n  database: {{type: postgresql, user: u, databases: {{{name}: d}}}}\n"), "");
        assert_config_error(&s, name, &["projects.yml", "env name"]);
    }
    let s = Scratch::new("app:\n  database: {type: postgresql, user: u, databases: {prod: \"d\\nDROP\"}}\n", "");
    assert_config_error(&s, "a database name with a newline", &["app.database.databases.prod"]);
}

#[test]
fn manifests_that_lie_are_caught_and_never_followed_out_of_the_folder() {
    let c = cluster();
    let db = db_name("liar");
    c.create_sample_db(&db, 20);
    let s = Scratch::new(&format!("app:\n{}", c.database_block(&[("production", &db)])), "");
    s.write("policies/default.yml", "tiers:\n  daily: {keep: 1}\n");
    s.ok(&["backup", "app", "production", "--now", "2025-01-01T02:00:00Z"]);
    s.ok(&["backup", "app", "production", "--now", "2025-01-02T02:00:00Z"]);
    let dir = s.env_dir("app", "production");
    let good: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("db_20250101_020000.json")).unwrap()).unwrap();

    // A victim outside the folder, and manifests that point at it.
    let victim = s.path().join("victim.dump.gz");
    std::fs::write(&victim, "precious").unwrap();
    for (stem, file) in [
        ("db_20241201_020000", "../../../../victim.dump.gz"),
        ("db_20241202_020000", "db_20241202_020000.dump.gz/../../../../victim.dump.gz"),
        ("db_20241203_020000", "db_20250102_020000.dump.gz"),
    ] {
        let mut m = good.clone();
        m["file"] = serde_json::json!(file);
        m["created_at"] = serde_json::json!("2024-12-01T02:00:00Z");
        std::fs::write(dir.join(format!("{stem}.json")), serde_json::to_vec(&m).unwrap()).unwrap();
    }
    // One that lies about its checksum and one about its project.
    let mut m = good.clone();
    m["sha256"] = serde_json::json!("0".repeat(64));
    std::fs::write(dir.join("db_20250101_020000.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let mut other = good.clone();
    other["project"] = serde_json::json!("someone-else");
    other["file"] = serde_json::json!("db_20241204_020000.dump.gz");
    std::fs::write(dir.join("db_20241204_020000.json"), serde_json::to_vec(&other).unwrap()).unwrap();
    std::fs::write(dir.join("db_20241204_020000.dump.gz"), "not theirs to delete").unwrap();

    let out = s.run(&["audit", "app", "production", "--now", "2025-01-02T03:00:00Z", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = json(&out.stdout);
    let rules: Vec<String> = v["envs"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {}", f["rule"].as_str().unwrap(), f["file"].as_str().unwrap()))
        .collect();
    assert!(rules.iter().filter(|r| r.starts_with("broken-manifest")).count() >= 4, "{rules:?}");
    assert!(rules.iter().any(|r| r.starts_with("checksum") && r.contains("db_20250101_020000")), "{rules:?}");
    let err = s.fails(1, &["restore", "app", "production", "db_20250101_020000", "--target-db", &db_name("liar_t")]);
    assert!(err.contains("does not match its manifest"), "{err}");
    // Prune follows none of them out of the folder, and deletes nothing a lying manifest names.
    s.ok(&["prune", "--now", "2025-01-02T03:00:00Z"]);
    s.ok(&["run", "--now", "2025-01-03T02:00:00Z"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(dir.join("db_20241204_020000.dump.gz").exists());
    assert!(dir.join("db_20250102_020000.dump.gz").exists() || !dir.join("db_20250102_020000.json").exists());
}

#[test]
fn a_manifest_too_large_or_too_new_is_refused() {
    let s = Scratch::new("app:\n  database: {type: postgresql, user: u, databases: {production: d}}\n", "");
    let dir = s.env_dir("app", "production");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("db_20250101_020000.json"), vec![b' '; 17 << 20]).unwrap();
    std::fs::write(dir.join("db_20250102_020000.json"), r#"{"format_version": 99}"#).unwrap();
    let out = s.run(&["list", "app", "production", "--json"]);
    assert!(out.status.success());
    assert_eq!(json(&out.stdout), serde_json::json!([]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too large") && err.contains("not supported"), "{err}");
}
