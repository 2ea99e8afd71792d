//! What monitoring scrapes: a small state file of the last outcomes per project/env
//! (`{backup_root}/.pgtier-state.json`), and the Prometheus textfile written from it and from
//! the catalogs, atomically, for node_exporter's textfile collector.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::Listing;
use crate::config::{Config, TierName};
use crate::error::Result;
use crate::fsutil::{DirLock, ensure_private_dir, write_atomic};
use crate::remote::{Remote, RemoteCatalog};

/// The last outcomes of one project/env.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EnvState {
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub last_duration_seconds: Option<f64>,
    pub last_backup_size_bytes: Option<u64>,
    pub last_verify_success: Option<DateTime<Utc>>,
}

/// Every env's state, keyed `project/env`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub envs: BTreeMap<String, EnvState>,
}

fn state_path(cfg: &Config) -> PathBuf {
    cfg.backup_root.join(".pgtier-state.json")
}

/// Reads the state (an unreadable one is replaced: it only feeds monitoring).
pub fn load(cfg: &Config) -> State {
    std::fs::read(state_path(cfg)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Changes one env's state under a lock, so `run` and `verify` never lose each other's updates.
pub fn update(cfg: &Config, project: &str, env: &str, f: impl FnOnce(&mut EnvState)) -> Result<()> {
    ensure_private_dir(&cfg.backup_root)?;
    // Its own lock file, named for what it guards (the run lock is .pgtier.lock beside it).
    let _lock = DirLock::acquire_file(&cfg.backup_root.join(".pgtier-metrics.lock"))?;
    let mut state = load(cfg);
    f(state.envs.entry(format!("{project}/{env}")).or_default());
    write_atomic(&state_path(cfg), &serde_json::to_vec_pretty(&state).expect("state serialises"))
}

fn ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| format!("{}", t.timestamp()))
}

/// Writes the textfile, if `metrics.textfile` is configured.
pub fn write(cfg: &Config, remotes: &[&Remote]) -> Result<()> {
    let Some(path) = &cfg.metrics_textfile else { return Ok(()) };
    let state = load(cfg);
    let mut gauges: BTreeMap<&str, (&str, Vec<String>)> = BTreeMap::new();
    let mut put = |name: &'static str, help: &'static str, labels: String, value: String| {
        gauges.entry(name).or_insert((help, Vec::new())).1.push(format!("{name}{{{labels}}} {value}"));
    };
    for (project, env) in cfg.select(None, None)? {
        let l = format!("project=\"{}\",env=\"{}\"", esc(&project.name), esc(&env));
        let s = state.envs.get(&format!("{}/{env}", project.name)).cloned().unwrap_or_default();
        if let Some(v) = ts(s.last_success) {
            put("pgtier_last_success_timestamp_seconds", "Unix time of the last successful run of this project/env.", l.clone(), v);
        }
        if let Some(v) = ts(s.last_failure) {
            put("pgtier_last_failure_timestamp_seconds", "Unix time of the last failed run of this project/env.", l.clone(), v);
        }
        if let Some(v) = s.last_backup_size_bytes {
            put("pgtier_last_backup_size_bytes", "Size of the newest backup as stored (compressed, encrypted).", l.clone(), v.to_string());
        }
        if let Some(v) = s.last_duration_seconds {
            put("pgtier_last_duration_seconds", "How long the last run of this project/env took.", l.clone(), format!("{v}"));
        }
        if let Some(v) = ts(s.last_verify_success) {
            put("pgtier_last_verify_success_timestamp_seconds", "Unix time of the last successful restore drill.", l.clone(), v);
        }
        let listing = Listing::scan(&cfg.env_dir(&project.name, &env), &project.name, &env)?;
        let mut local: BTreeMap<TierName, u64> = BTreeMap::new();
        for b in listing.databases() {
            for t in &b.manifest.tiers {
                *local.entry(*t).or_default() += 1;
            }
        }
        if let Some(newest) = listing.databases().next_back() {
            put(
                "pgtier_newest_backup_timestamp_seconds",
                "Unix time the newest database backup on this host was taken.",
                l.clone(),
                newest.stem.time.timestamp().to_string(),
            );
        }
        // The newest drill of any backup: when, how it went, and how long the restore took
        // (the measured time to restore).
        if let Some(v) = listing.databases().flat_map(|b| b.manifest.verifications.iter()).max_by_key(|v| v.at) {
            put(
                "pgtier_last_verify_timestamp_seconds",
                "Unix time of the last restore drill, passed or failed.",
                l.clone(),
                v.at.timestamp().to_string(),
            );
            put("pgtier_last_verify_ok", "1 if the last restore drill passed, 0 if it failed.", l.clone(), u8::from(v.ok).to_string());
            if let Some(secs) = v.seconds {
                put(
                    "pgtier_last_verify_duration_seconds",
                    "How long the last restore drill took: the measured time to restore.",
                    l.clone(),
                    format!("{secs}"),
                );
            }
        }
        let mut remote_counts: BTreeMap<TierName, u64> = BTreeMap::new();
        let offsite: Vec<TierName> =
            project.policy.tiers.iter().filter(|t| t.lives(crate::config::Location::Remote)).map(|t| t.name).collect();
        for r in remotes {
            let Ok(cat) = RemoteCatalog::load(r, &project.name, &env, Some(&listing)) else { continue };
            let counts = cat.database_copies();
            for t in offsite.iter().filter(|t| r.config.holds(**t)) {
                let n = counts.get(t).copied().unwrap_or(0);
                *remote_counts.entry(*t).or_default() += n;
                // Every tier this destination should hold, 0 included: a missing copy is a zero.
                put(
                    "pgtier_destination_backups",
                    "Database backup copies per tier on each off-site destination.",
                    format!("{l},tier=\"{t}\",destination=\"{}\"", esc(r.name())),
                    n.to_string(),
                );
                // The lock horizon of a locked tier: nothing in it can be deleted before. A
                // listing does not carry locks: one HEAD per copy of a locked tier.
                let locked = project.policy.tiers.iter().any(|x| x.name == *t && x.object_lock.is_some());
                let horizon = if locked {
                    cat.backups
                        .values()
                        .filter_map(|b| b.copies.get(t))
                        .filter_map(|o| r.store.head(&o.key).ok()?.lock)
                        .map(|k| k.until)
                        .max()
                } else {
                    None
                };
                if let Some(h) = horizon {
                    put(
                        "pgtier_lock_horizon_timestamp_seconds",
                        "The latest Object Lock retain-until date among a locked tier's copies.",
                        format!("{l},tier=\"{t}\",destination=\"{}\"", esc(r.name())),
                        h.timestamp().to_string(),
                    );
                }
            }
        }
        for t in project.policy.tiers.iter().map(|t| t.name) {
            for (loc, counts) in [("local", &local), ("remote", &remote_counts)] {
                if loc == "remote" && remotes.is_empty() {
                    continue;
                }
                put(
                    "pgtier_backups",
                    "Database backups per tier and location.",
                    format!("{l},tier=\"{t}\",location=\"{loc}\""),
                    counts.get(&t).copied().unwrap_or(0).to_string(),
                );
            }
        }
    }
    let mut text = String::new();
    for (name, (help, lines)) in gauges {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for l in lines {
            let _ = writeln!(text, "{l}");
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::failed!("{}: {e}", dir.display()))?;
    }
    // Readable by node_exporter: metrics hold no secrets.
    write_atomic(path, text.as_bytes())?;
    let _ = std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
