//! Raw serde shapes of pgtier.yml, projects.yml's `database:` block and policies/NAME.yml,
//! exactly as written by the operator. Validation into typed config happens once, in `mod.rs`.

use std::collections::BTreeMap;

use std::path::Path;

use serde::Deserialize;

use super::yaml;
use crate::error::Error;

/// A number or a string with a unit ("300s", "10GB").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NumOrText {
    Num(u64),
    Text(String),
}

/// pgtier.yml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub projects: Option<String>,
    pub policies: Option<String>,
    pub backup_root: Option<String>,
    pub remote: Option<Remote>,
    pub remotes: Option<Vec<Remote>>,
    pub encryption: Option<Encryption>,
    /// Per-project encryption: a block, or `none` to store that project's backups unencrypted.
    /// Kept as YAML so each entry is parsed with its own key path.
    pub project_encryption: Option<BTreeMap<String, serde_norway::Value>>,
    pub alerts: Option<super::alerts::RawAlerts>,
    pub metrics: Option<Metrics>,
    pub min_free_space: Option<NumOrText>,
    pub pg_bindir: Option<String>,
    pub lock_wait_timeout: Option<NumOrText>,
    pub lease_ttl: Option<NumOrText>,
    pub max_backup_age_hours: Option<u64>,
    pub lock_file: Option<String>,
    pub scratch_dir: Option<String>,
    pub globals: Option<Globals>,
}

/// `globals:` in pgtier.yml: the cluster's roles and tablespaces saved beside each backup run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Globals {
    pub enabled: Option<bool>,
    pub role_passwords: Option<bool>,
}

impl Agent {
    /// Parses pgtier.yml one top-level key at a time, so every bad key is reported, not only
    /// the first. Returns None when the file is not a YAML mapping at all.
    pub fn parse_each_key(file: &Path, text: &str, problems: &mut Vec<Error>) -> Option<Agent> {
        let mut agent = Agent::default();
        if text.trim().is_empty() {
            return Some(agent);
        }
        let doc: serde_norway::Value = match yaml::parse(file, text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                return None;
            }
        };
        let map = match doc {
            serde_norway::Value::Mapping(m) => m,
            serde_norway::Value::Null => return Some(agent),
            _ => {
                problems.push(Error::config(file, "(top level)", "expected a mapping of settings"));
                return None;
            }
        };
        for (k, v) in map {
            let Some(key) = k.as_str().map(str::to_string) else {
                problems.push(Error::config(file, format!("{k:?}"), "setting names must be strings"));
                continue;
            };
            fn set<T: serde::de::DeserializeOwned>(
                slot: &mut Option<T>,
                file: &Path,
                key: &str,
                v: serde_norway::Value,
                problems: &mut Vec<Error>,
            ) {
                match yaml::from_value(file, key, v) {
                    Ok(x) => *slot = Some(x),
                    Err(e) => problems.push(e),
                }
            }
            match key.as_str() {
                "projects" => set(&mut agent.projects, file, &key, v, problems),
                "policies" => set(&mut agent.policies, file, &key, v, problems),
                "backup_root" => set(&mut agent.backup_root, file, &key, v, problems),
                "remote" => set(&mut agent.remote, file, &key, v, problems),
                "remotes" => set(&mut agent.remotes, file, &key, v, problems),
                "encryption" => set(&mut agent.encryption, file, &key, v, problems),
                "project_encryption" => set(&mut agent.project_encryption, file, &key, v, problems),
                "alerts" => set(&mut agent.alerts, file, &key, v, problems),
                "metrics" => set(&mut agent.metrics, file, &key, v, problems),
                "min_free_space" => set(&mut agent.min_free_space, file, &key, v, problems),
                "pg_bindir" => set(&mut agent.pg_bindir, file, &key, v, problems),
                "lock_wait_timeout" => set(&mut agent.lock_wait_timeout, file, &key, v, problems),
                "lease_ttl" => set(&mut agent.lease_ttl, file, &key, v, problems),
                "max_backup_age_hours" => set(&mut agent.max_backup_age_hours, file, &key, v, problems),
                "lock_file" => set(&mut agent.lock_file, file, &key, v, problems),
                "scratch_dir" => set(&mut agent.scratch_dir, file, &key, v, problems),
                "globals" => set(&mut agent.globals, file, &key, v, problems),
                other => problems.push(Error::config(file, other, format!("unknown setting; expected one of {}", AGENT_KEYS.join(", ")))),
            }
        }
        Some(agent)
    }
}

const AGENT_KEYS: [&str; 17] = [
    "projects",
    "policies",
    "backup_root",
    "remote",
    "remotes",
    "encryption",
    "project_encryption",
    "alerts",
    "metrics",
    "min_free_space",
    "pg_bindir",
    "lock_wait_timeout",
    "lease_ttl",
    "max_backup_age_hours",
    "lock_file",
    "scratch_dir",
    "globals",
];

/// `remote:` in pgtier.yml, or one entry of `remotes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    pub name: Option<String>,
    pub url: String,
    pub request_checksum_calculation: Option<String>,
    pub tiers: Option<Vec<String>>,
    pub storage_classes: Option<BTreeMap<String, String>>,
    pub prune: Option<bool>,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub force_path_style: Option<bool>,
    pub restore_tier: Option<String>,
    pub restore_days: Option<u32>,
    pub concurrency: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub connect_timeout_seconds: Option<u32>,
    pub attempts: Option<u32>,
}

/// `encryption:` in pgtier.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    #[serde(rename = "type")]
    pub kind: String,
    pub recipients: Option<Vec<String>>,
    pub recipients_file: Option<String>,
    pub identity_file: Option<String>,
    pub passphrase_file: Option<String>,
    pub recipient_keys: Option<Vec<String>>,
    pub secret_key_file: Option<String>,
    pub secret_key_passphrase_file: Option<String>,
}

/// `metrics:` in pgtier.yml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub textfile: String,
}

/// A project entry in projects.yml: only `database:` is pgtier's; the platform's keys are ignored.
#[derive(Debug, Deserialize)]
pub struct ProjectEntry {
    pub database: Option<serde_norway::Value>,
}

/// A project's `database:` block: the old scripts' schema plus pgtier's optional keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    #[serde(rename = "type")]
    pub kind: String,
    pub container: Option<String>,
    /// A map env -> database name, or `all`; kept as YAML and parsed by shape.
    pub databases: serde_norway::Value,
    /// With `databases: all`: databases left out.
    pub exclude: Option<Vec<String>>,
    pub user: String,
    pub backup: Option<Backup>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub password_file: Option<String>,
    pub policy: Option<String>,
    /// One list for every env, or a map env -> list; kept as YAML and parsed by shape.
    pub app_containers: Option<serde_norway::Value>,
}

/// `database.backup:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub enabled: Option<bool>,
    pub retention_days: Option<u32>,
    pub verify_on_restore: Option<bool>,
    /// pg_dump connections; above 1 the backup is a directory-format dump in one tar stream.
    pub jobs: Option<i64>,
}

/// policies/NAME.yml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub tiers: BTreeMap<String, Tier>,
    pub keep_last: Option<i64>,
    pub compression: Option<String>,
    pub compression_level: Option<i32>,
    pub encryption: Option<String>,
    pub verify: Option<String>,
    pub tagged_keep: Option<i64>,
    pub max_backup_age_hours: Option<u64>,
    pub anomaly_threshold_percent: Option<u32>,
    /// The default of `database.backup.jobs` for projects on this policy.
    pub backup_jobs: Option<i64>,
}

/// One tier of a policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub keep: Option<i64>,
    pub keep_days: Option<i64>,
    pub keep_last: Option<i64>,
    pub locations: Option<Vec<String>>,
    pub storage_class: Option<String>,
    pub object_lock: Option<String>,
    pub object_lock_days: Option<i64>,
}
