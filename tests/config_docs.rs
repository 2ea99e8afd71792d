//! docs/configuration.md documents every key the loader accepts. The keys are not listed here:
//! they come from `config check` itself, which answers an unknown key at each level of each
//! file with the keys it expects there.

mod support;

use std::collections::BTreeSet;

use support::{Scratch, repo};

/// The keys an error line says are expected: "expected one of `a`, `b`", "expected `a` or `b`",
/// "expected `a`", or pgtier.yml's own "expected one of a, b, c".
fn expected_keys(line: &str) -> Vec<String> {
    let Some((_, list)) = line.split_once("expected ") else { return Vec::new() };
    let list = list.trim_start_matches("one of ");
    let list = list.split(" at line").next().unwrap_or(list);
    list.split([',', ' ']).map(|w| w.trim().trim_matches('`')).filter(|w| !w.is_empty() && *w != "or").map(str::to_string).collect()
}

#[test]
fn every_key_config_check_accepts_is_in_the_configuration_reference() {
    let age = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    // Two rounds: some levels are read only once the level above them is valid.
    let rounds = [
        (
            format!(
                "zz_unknown: 1\nremote: {{url: \"s3://b/p\", zz_unknown: 1}}\nencryption: {{type: age, recipients: [{age}], zz_unknown: 1}}\nalerts: {{zz_unknown: 1}}\nmetrics: {{zz_unknown: 1}}\nglobals: {{zz_unknown: 1}}\n"
            ),
            "shop:\n  database:\n    type: postgresql\n    zz_unknown: 1\n    databases: {production: shop}\n",
            "zz_unknown: 1\ntiers:\n  daily: {keep: 3, locations: [local]}\n",
        ),
        (
            String::new(),
            "shop:\n  database:\n    type: postgresql\n    backup: {zz_unknown: 1}\n    databases: {production: shop}\n",
            "tiers:\n  daily: {keep: 3, locations: [local], zz_unknown: 1}\n",
        ),
    ];
    let mut keys = BTreeSet::new();
    let mut levels = 0;
    for (agent, projects, policy) in rounds {
        let s = Scratch::new(projects, &agent);
        s.write("policies/default.yml", policy);
        let err = s.fails(2, &["config", "check"]);
        for line in err.lines().filter(|l| l.contains("zz_unknown")) {
            let found = expected_keys(line);
            assert!(!found.is_empty(), "no expected keys in: {line}");
            levels += 1;
            keys.extend(found);
        }
    }
    // pgtier.yml, remote, encryption, alerts, metrics, globals, database, policy; backup, tier.
    assert_eq!(levels, 10, "config check no longer answers an unknown key at every level");
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let missing: Vec<&String> = keys.iter().filter(|k| !docs.contains(&format!("`{k}`")) && !docs.contains(&format!("{k}:"))).collect();
    assert!(missing.is_empty(), "keys config check accepts but docs/configuration.md does not mention: {missing:?}");
    // The environment variables pgtier reads are there too.
    for var in ["PGTIER_CONFIG", "PGTIER_LOG", "PGTIER_S3_MAX_ATTEMPTS", "PGTIER_PG_VERSIONED_ROOT"] {
        assert!(docs.contains(var), "{var} is not in docs/configuration.md");
    }
}
