//! What monitoring scrapes: a small state file of the last outcomes per project/env
//! (`{backup_root}/.pgtier-state.json`), and the Prometheus textfile written from it and from
//! the catalogs, atomically, for node_exporter's textfile collector.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Config, Project, TierName};
use crate::context::EnvContext;
use crate::error::Result;
use crate::fsutil::{DirLock, ensure_private_dir, write_atomic};
use crate::records::listing::Listing;
use crate::records::manifest::Verification;
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

/// One env's backups as the textfile counts them.
#[derive(Debug, Default)]
pub struct Figures {
    /// Database backups per tier here.
    local: BTreeMap<TierName, u64>,
    newest: Option<DateTime<Utc>>,
    /// The newest drill of any backup.
    last_verify: Option<Verification>,
    /// Each destination whose catalog could be read.
    offsite: Vec<Offsite>,
}

#[derive(Debug)]
struct Offsite {
    name: String,
    /// Copies per off-site tier this destination holds, in the policy's order (a missing copy
    /// is a zero).
    copies: Vec<(TierName, u64)>,
    /// The latest Object Lock retain-until date of each locked tier's copies.
    horizons: BTreeMap<TierName, DateTime<Utc>>,
}

impl Figures {
    fn from_listing(listing: &Listing) -> Figures {
        let mut local: BTreeMap<TierName, u64> = BTreeMap::new();
        for b in listing.databases() {
            for t in &b.manifest.tiers {
                *local.entry(*t).or_default() += 1;
            }
        }
        Figures {
            local,
            newest: listing.databases().next_back().map(|b| b.stem.time),
            last_verify: listing.databases().flat_map(|b| b.manifest.verifications.iter()).max_by_key(|v| v.at).cloned(),
            offsite: Vec::new(),
        }
    }

    /// What `cat` of `remote` holds of `project`; `lock` gives a copy's lock (from a HEAD).
    fn add_offsite(&mut self, project: &Project, remote: &Remote, cat: &RemoteCatalog, lock: impl Fn(&str) -> Option<DateTime<Utc>>) {
        let counts = cat.database_copies();
        let mut o = Offsite { name: remote.name().to_string(), copies: Vec::new(), horizons: BTreeMap::new() };
        for t in project.policy.tiers.iter().filter(|t| t.lives(crate::config::Location::Remote) && remote.config.holds(t.name)) {
            o.copies.push((t.name, counts.get(&t.name).copied().unwrap_or(0)));
            if t.object_lock.is_some()
                && let Some(h) = cat.backups.values().filter_map(|b| b.copies.get(&t.name)).filter_map(|c| lock(&c.key)).max()
            {
                o.horizons.insert(t.name, h);
            }
        }
        self.offsite.push(o);
    }

    /// From what a command has read of the env: its listing and each destination's catalog
    /// with the HEADs of its copies (a nightly run's sync read them); else the catalog without
    /// them, and a HEAD of each copy of a locked tier only.
    pub fn of(e: &mut EnvContext) -> Result<Figures> {
        let mut f = Figures::from_listing(e.listing()?);
        let (project, world) = (e.project, e.world());
        for (name, r) in world.destinations() {
            let Ok(r) = r else { continue };
            match e.offsite_if_read(name) {
                Some(o) => f.add_offsite(project, r, &o.cat, |key| Some(o.heads.get(key)?.lock.as_ref()?.until)),
                None => {
                    let Ok(cat) = e.catalog(r) else { continue };
                    f.add_offsite(project, r, cat, |key| Some(r.store.head(key).ok()?.lock?.until));
                }
            }
        }
        Ok(f)
    }

    /// Read now for an env the command did not open: the folder, each destination's listing,
    /// and a HEAD of each copy of a locked tier (a listing does not carry locks).
    fn read(cfg: &Config, project: &Project, env: &str, remotes: &[&Remote]) -> Result<Figures> {
        let listing = Listing::scan(&cfg.env_dir(&project.name, env), &project.name, env)?;
        let mut f = Figures::from_listing(&listing);
        for r in remotes {
            let Ok(cat) = RemoteCatalog::load(r, &project.name, env, Some(&listing)) else { continue };
            f.add_offsite(project, r, &cat, |key| Some(r.store.head(key).ok()?.lock?.until));
        }
        Ok(f)
    }
}

/// Writes the textfile, if `metrics.textfile` is configured. `seen` holds the figures of the
/// envs the command opened (by `project/env`); the others are read.
pub fn write(cfg: &Config, remotes: &[&Remote], seen: &BTreeMap<String, Figures>) -> Result<()> {
    let Some(path) = &cfg.metrics_textfile else { return Ok(()) };
    let state = load(cfg);
    let mut gauges: BTreeMap<&str, (&str, Vec<String>)> = BTreeMap::new();
    let mut put = |name: &'static str, help: &'static str, labels: String, value: String| {
        gauges.entry(name).or_insert((help, Vec::new())).1.push(format!("{name}{{{labels}}} {value}"));
    };
    for (project, env) in cfg.select(None, None)? {
        let key = format!("{}/{env}", project.name);
        let l = format!("project=\"{}\",env=\"{}\"", esc(&project.name), esc(&env));
        let s = state.envs.get(&key).cloned().unwrap_or_default();
        if let Some(v) = ts(s.last_success) {
            put("pgtier_last_success_timestamp_seconds", "Unix time of the last successful run of this project/env.", l.clone(), v);
        }
        if let Some(v) = ts(s.last_failure) {
            put("pgtier_last_failure_timestamp_seconds", "Unix time of the last failed run of this project/env.", l.clone(), v);
        }
        put(
            "pgtier_database_gone",
            "1 when the env's database is gone from the server (databases: all): its backups are kept, no new ones are expected; else 0.",
            l.clone(),
            u8::from(project.gone(&env)).to_string(),
        );
        if let Some(v) = s.last_backup_size_bytes {
            put("pgtier_last_backup_size_bytes", "Size of the newest backup as stored (compressed, encrypted).", l.clone(), v.to_string());
        }
        if let Some(v) = s.last_duration_seconds {
            put("pgtier_last_duration_seconds", "How long the last run of this project/env took.", l.clone(), format!("{v}"));
        }
        if let Some(v) = ts(s.last_verify_success) {
            put("pgtier_last_verify_success_timestamp_seconds", "Unix time of the last successful restore drill.", l.clone(), v);
        }
        let read_now;
        let f = match seen.get(&key) {
            Some(f) => f,
            None => {
                read_now = Figures::read(cfg, project, &env, remotes)?;
                &read_now
            }
        };
        if let Some(newest) = f.newest {
            put(
                "pgtier_newest_backup_timestamp_seconds",
                "Unix time the newest database backup on this host was taken.",
                l.clone(),
                newest.timestamp().to_string(),
            );
        }
        // The newest drill of any backup: when, how it went, and how long the restore took
        // (the measured time to restore).
        if let Some(v) = &f.last_verify {
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
        for o in &f.offsite {
            for (t, n) in &o.copies {
                *remote_counts.entry(*t).or_default() += n;
                put(
                    "pgtier_destination_backups",
                    "Database backup copies per tier on each off-site destination.",
                    format!("{l},tier=\"{t}\",destination=\"{}\"", esc(&o.name)),
                    n.to_string(),
                );
                // The lock horizon of a locked tier: nothing in it can be deleted before.
                if let Some(h) = o.horizons.get(t) {
                    put(
                        "pgtier_lock_horizon_timestamp_seconds",
                        "The latest Object Lock retain-until date among a locked tier's copies.",
                        format!("{l},tier=\"{t}\",destination=\"{}\"", esc(&o.name)),
                        h.timestamp().to_string(),
                    );
                }
            }
        }
        for t in project.policy.tiers.iter().map(|t| t.name) {
            for (loc, counts) in [("local", &f.local), ("remote", &remote_counts)] {
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
