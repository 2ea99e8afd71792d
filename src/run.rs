//! The nightly job: for each enabled project/env, back up (database and globals), sync off-site,
//! prune, clean up what crashed runs left; one env's failure never stops the others, and the
//! run fails if any did.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backup::{BackupOptions, backup, backup_globals};
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
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub seconds: f64,
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
    let _lock = if opts.dry_run { None } else { Some(RunLock::acquire(&cfg.lock_file, opts.wait_lock)?) };
    let mut report = RunReport { started_at: Utc::now(), dry_run: opts.dry_run, ok: true, envs: Vec::new(), warnings: Vec::new() };
    let remote = match Remote::open(cfg) {
        Ok(r) => r,
        Err(e) => {
            report.warnings.push(format!("cannot open the remote: {e}"));
            None
        }
    };
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
            errors: Vec::new(),
            warnings: Vec::new(),
            seconds: 0.0,
        };
        if crate::signals::interrupted() {
            e.errors.push("interrupted by a signal".into());
        } else if !project.enabled {
            e.skipped = Some("backups are disabled in projects.yml".into());
        } else {
            run_env(cfg, project, env, remote.as_ref(), opts, ui, &mut e);
        }
        e.ok = e.errors.is_empty();
        e.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        report.ok &= e.ok;
        report.envs.push(e);
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
                Err(err) => e.errors.push(format!("sync plan: {err}")),
            }
        }
        match crate::prune::prune_env(cfg, project, env, opts.now, None, true) {
            Ok(plan) => e.warnings.extend(plan.deletions().map(|d| format!("would delete {} ({})", d.backup, d.reasons.join("; ")))),
            Err(err) => e.errors.push(format!("prune plan: {err}")),
        }
        return;
    }
    match backup(cfg, project, env, &BackupOptions { tags: Vec::new(), now: opts.now }, ui) {
        Ok(b) => {
            e.backup = Some(b.stem.to_string());
            e.backup_size = Some(b.manifest.size);
        }
        Err(err) => e.errors.push(format!("backup: {err}")),
    }
    if cfg.globals.enabled {
        match backup_globals(cfg, project, env, opts.now, ui) {
            Ok(b) => e.globals = Some(b.stem.to_string()),
            Err(err) => e.errors.push(format!("globals: {err}")),
        }
    }
    if let Some(r) = remote {
        match sync_env(cfg, r, project, env, SyncOptions { now: opts.now, allow_early_delete: opts.allow_early_delete, dry_run: false }, ui)
        {
            Ok((_, rep)) => {
                e.errors.extend(rep.errors.iter().map(|x| format!("sync: {x}")));
                e.sync = Some(rep);
            }
            Err(err) => e.errors.push(format!("sync: {err}")),
        }
    }
    let confirmed = match crate::offsite::remote_state(cfg, project, env) {
        Ok(c) => c,
        Err(err) => {
            e.errors.push(format!("checking off-site copies: {err}"));
            return;
        }
    };
    match crate::prune::prune_env(cfg, project, env, opts.now, confirmed.as_ref(), false) {
        Ok(plan) => e.pruned = plan.deletions().count(),
        Err(err) => e.errors.push(format!("prune: {err}")),
    }
    // Temporary databases of restores and drills that crashed.
    let database = project.databases.get(env).map(String::as_str).unwrap_or("postgres");
    if let Ok(pg) = crate::postgres::Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database) {
        match crate::restore::drop_stale_temp_dbs(&pg) {
            Ok(dropped) => e.warnings.extend(dropped.into_iter().map(|d| format!("dropped {d}, left by an interrupted restore or verify"))),
            Err(err) => e.warnings.push(format!("could not clean up temporary databases: {err}")),
        }
    }
}
