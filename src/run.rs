//! The nightly job: for each enabled project/env, back up (database and globals), sync off-site,
//! prune, clean up what crashed runs left; one env's failure never stops the others, and the
//! run fails if any did.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alerts::{Alert, Alerter};
use crate::backup::{BackupOptions, backup, backup_globals};
use crate::catalog::{Listing, LocalBackup};
use crate::config::{Config, Project};
use crate::error::Result;
use crate::lock::RunLock;
use crate::offsite::Remote;
use crate::sync::{SyncOptions, SyncReport, sync_env};
use crate::ui::Ui;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: bool,
    pub wait_lock: Option<Duration>,
    pub now: DateTime<Utc>,
    pub allow_early_delete: bool,
}

/// What happened to one project/env.
#[derive(Debug, Clone, Serialize)]
pub struct EnvRun {
    pub project: String,
    pub env: String,
    pub ok: bool,
    pub skipped: Option<String>,
    pub backup: Option<String>,
    pub backup_size: Option<u64>,
    pub globals: Option<String>,
    pub sync: Option<SyncReport>,
    pub pruned: usize,
    /// Whether a restore drill ran (the policy's `verify:` schedule) and how it went.
    pub verified: Option<bool>,
    pub errors: Vec<EnvError>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

/// A failed step of one env's run: which operation (it names the alert) and why. Printed and
/// serialised as `operation: message`, as before.
#[derive(Debug, Clone)]
pub struct EnvError {
    pub operation: &'static str,
    pub message: String,
}

impl EnvError {
    fn new(operation: &'static str, message: impl std::fmt::Display) -> EnvError {
        EnvError { operation, message: message.to_string() }
    }
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl Serialize for EnvError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the whole run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub started_at: DateTime<Utc>,
    pub dry_run: bool,
    pub ok: bool,
    pub envs: Vec<EnvRun>,
    pub warnings: Vec<String>,
}

/// Runs the nightly job over `selected`.
pub fn run(cfg: &Config, selected: &[(&Project, String)], opts: &RunOptions, ui: &Ui) -> Result<RunReport> {
    let alerter = Alerter::new(&cfg.alerts);
    let _lock = if opts.dry_run {
        None
    } else {
        match RunLock::acquire(&cfg.lock_file, opts.wait_lock) {
            Ok(l) => Some(l),
            Err(e) => {
                alerter.send(&Alert::error(None, None, "run", e.to_string()));
                return Err(e);
            }
        }
    };
    let mut report = RunReport { started_at: Utc::now(), dry_run: opts.dry_run, ok: true, envs: Vec::new(), warnings: Vec::new() };
    let remote = match Remote::open(cfg) {
        Ok(r) => r,
        Err(e) => {
            report.warnings.push(format!("cannot open the remote: {e}"));
            None
        }
    };
    // Low disk space is worth a warning and an alert, not a skipped night: a real ENOSPC fails
    // the backup cleanly anyway.
    if !opts.dry_run
        && let Ok(free) = crate::fsutil::free_space(&cfg.backup_root)
        && free < cfg.min_free_space
    {
        let w = format!(
            "only {} free under {} (min_free_space is {})",
            crate::ui::human_size(free),
            cfg.backup_root.display(),
            crate::ui::human_size(cfg.min_free_space)
        );
        tracing::warn!("{w}");
        alerter.send(&Alert::warning(None, None, "disk-space", w.clone()));
        report.warnings.push(w);
    }
    for (project, env) in selected {
        let started = std::time::Instant::now();
        let mut e = EnvRun {
            project: project.name.clone(),
            env: env.clone(),
            ok: true,
            skipped: None,
            backup: None,
            backup_size: None,
            globals: None,
            sync: None,
            pruned: 0,
            verified: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            seconds: 0.0,
        };
        if crate::signals::interrupted() {
            e.errors.push(EnvError::new("run", crate::signals::CANCELLED));
        } else if !project.enabled {
            e.skipped = Some("backups are disabled in projects.yml".into());
        } else {
            run_env(cfg, project, env, remote.as_ref(), opts, ui, &mut e);
        }
        e.ok = e.errors.is_empty();
        e.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        report.ok &= e.ok;
        if !opts.dry_run && e.skipped.is_none() {
            for err in &e.errors {
                alerter.send(&Alert::error(Some(&e.project), Some(&e.env), err.operation, err.to_string()));
            }
            let (ok, seconds, size, verified) = (e.ok, e.seconds, e.backup_size, e.verified);
            let at = Utc::now();
            if let Err(err) = crate::metrics::update(cfg, &e.project, &e.env, |s| {
                if ok {
                    s.last_success = Some(at);
                } else {
                    s.last_failure = Some(at);
                }
                s.last_duration_seconds = Some(seconds);
                if size.is_some() {
                    s.last_backup_size_bytes = size;
                }
                if verified == Some(true) {
                    s.last_verify_success = Some(at);
                }
            }) {
                tracing::warn!("could not record the run's state: {err}");
            }
        }
        report.envs.push(e);
    }
    if !opts.dry_run {
        if let Err(err) = crate::metrics::write(cfg, remote.as_ref()) {
            tracing::warn!("could not write the metrics textfile: {err}");
        }
        if report.ok {
            alerter.success(&serde_json::json!({ "ok": true, "envs": report.envs.len(), "time": Utc::now() }));
        }
    }
    Ok(report)
}

fn run_env(cfg: &Config, project: &Project, env: &str, remote: Option<&Remote>, opts: &RunOptions, ui: &Ui, e: &mut EnvRun) {
    if opts.dry_run {
        e.warnings.push(format!("would back up database {:?}", project.databases.get(env).map(String::as_str).unwrap_or("")));
        if let Some(r) = remote {
            match sync_env(
                cfg,
                r,
                project,
                env,
                SyncOptions { now: opts.now, allow_early_delete: opts.allow_early_delete, dry_run: true },
                ui,
            ) {
                Ok((plan, rep)) => {
                    e.warnings.extend(
                        plan.actions
                            .iter()
                            .filter(|a| !matches!(a, crate::sync::Action::Keep { .. }))
                            .map(|a| format!("would {}", a.describe())),
                    );
                    e.sync = Some(rep);
                }
                Err(err) => e.errors.push(EnvError::new("sync plan", err)),
            }
        }
        match crate::prune::prune_env(cfg, project, env, opts.now, None, true) {
            Ok(plan) => e.warnings.extend(plan.deletions().map(|d| format!("would delete {} ({})", d.backup, d.reasons.join("; ")))),
            Err(err) => e.errors.push(EnvError::new("prune plan", err)),
        }
        return;
    }
    let alerter = Alerter::new(&cfg.alerts);
    match backup(cfg, project, env, &BackupOptions { tags: Vec::new(), now: opts.now }, ui) {
        Ok(b) => {
            e.backup = Some(b.stem.to_string());
            e.backup_size = Some(b.manifest.size);
            for w in anomalies(cfg, project, env, &b) {
                tracing::warn!("{}/{env}: {w}", project.name);
                alerter.send(&Alert::warning(Some(&project.name), Some(env), "anomaly", w.clone()));
                e.warnings.push(w);
            }
        }
        Err(err) => e.errors.push(EnvError::new("backup", err)),
    }
    if cfg.globals.enabled {
        match backup_globals(cfg, project, env, opts.now, ui) {
            Ok(b) => e.globals = Some(b.stem.to_string()),
            Err(err) => e.errors.push(EnvError::new("globals", err)),
        }
    }
    if let Some(r) = remote {
        match sync_env(cfg, r, project, env, SyncOptions { now: opts.now, allow_early_delete: opts.allow_early_delete, dry_run: false }, ui)
        {
            Ok((_, rep)) => {
                e.errors.extend(rep.errors.iter().map(|x| EnvError::new("sync", x)));
                e.sync = Some(rep);
            }
            Err(err) => e.errors.push(EnvError::new("sync", err)),
        }
    }
    let confirmed = match crate::offsite::remote_state(cfg, project, env) {
        Ok(c) => c,
        Err(err) => {
            e.errors.push(EnvError::new("checking off-site copies", err));
            return;
        }
    };
    match crate::prune::prune_env(cfg, project, env, opts.now, confirmed.as_ref(), false) {
        Ok(plan) => {
            e.pruned = plan.deletions().count();
            if let Some(why) = plan.clock_problem() {
                tracing::warn!("{}/{env}: {why}", project.name);
                alerter.send(&Alert::warning(Some(&project.name), Some(env), "clock", why.to_string()));
                e.warnings.push(why.to_string());
            }
        }
        Err(err) => e.errors.push(EnvError::new("prune", err)),
    }
    // The restore drill the policy schedules (`verify: weekly`), on the newest backup.
    if let Ok(listing) = Listing::scan(&cfg.env_dir(&project.name, env), &project.name, env)
        && e.backup.is_some()
        && crate::verify::due(project, &listing, opts.now)
    {
        let keys = project.keys().unwrap_or_default();
        if keys.is_empty() && project.encryption.is_some() {
            e.warnings.push("a restore drill is due, but this host holds no decryption key: run `pgtier verify` where the key is".into());
        } else {
            let source = crate::restore::Source {
                input: crate::restore::Input::Named(e.backup.clone().unwrap_or_default()),
                from: crate::restore::From::Local,
                wait: None,
                check_first: false,
                thaw_tier: None,
            };
            let r = crate::verify::verify(cfg, project, env, &source, &keys, opts.now, ui);
            e.verified = Some(r.ok);
            if let Some(err) = r.error {
                e.errors.push(EnvError::new("verify", err));
            }
        }
    }
    // Temporary files and databases of restores and drills that were killed.
    crate::scratch::sweep_stale();
    let database = project.databases.get(env).map(String::as_str).unwrap_or("postgres");
    if let Ok(pg) = crate::postgres::Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database) {
        match crate::restore::drop_stale_temp_dbs(&pg) {
            Ok(dropped) => e.warnings.extend(dropped.into_iter().map(|d| format!("dropped {d}, left by an interrupted restore or verify"))),
            Err(err) => e.warnings.push(format!("could not clean up temporary databases: {err}")),
        }
    }
}

/// A backup that shrank by more than the threshold against the previous one (size or total
/// rows) is worth a warning: an emptied table is a failure nobody sees.
pub fn anomalies(cfg: &Config, project: &Project, env: &str, new: &LocalBackup) -> Vec<String> {
    let threshold = project.policy.anomaly_threshold_percent.unwrap_or(cfg.alerts.anomaly_threshold_percent) as f64;
    let Ok(listing) = Listing::scan(&cfg.env_dir(&project.name, env), &project.name, env) else { return Vec::new() };
    let Some(prev) = listing.databases().rfind(|b| b.stem < new.stem && b.manifest.tags.is_empty()) else { return Vec::new() };
    let mut out = Vec::new();
    let fall = |old: u64, now: u64| if old == 0 { 0.0 } else { (old.saturating_sub(now)) as f64 * 100.0 / old as f64 };
    let f = fall(prev.manifest.size, new.manifest.size);
    if f > threshold {
        out.push(format!("backup size fell {f:.0}% ({} to {} bytes) since {}", prev.manifest.size, new.manifest.size, prev.stem));
    }
    let rows = |m: &crate::manifest::Manifest| m.tables.as_ref().map(|t| t.values().sum::<u64>());
    if let (Some(old), Some(now)) = (prev.full_manifest().ok().as_ref().and_then(rows), rows(&new.manifest)) {
        let f = fall(old, now);
        if f > threshold {
            out.push(format!("total rows fell {f:.0}% ({old} to {now}) since {}", prev.stem));
        }
    }
    out
}
