//! The nightly job: for each enabled project/env, back up (database and globals), sync off-site,
//! prune, clean up what crashed runs left; one env's failure never stops the others, and the
//! run fails if any did.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use std::collections::BTreeSet;

use crate::config::{Config, Project, TierName};
use crate::context::{Context, EnvContext};
use crate::error::Result;
use crate::ops::backup::{BackupOptions, backup, backup_globals};
use crate::ops::sync::{SyncOptions, SyncReport, sync_env};
use crate::records::listing::{Listing, LocalBackup};
use crate::run_lock::RunLock;
use crate::tell::outcome::{EnvOutcome, Outcomes};
use crate::ui::Ui;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub dry_run: bool,
    pub wait_lock: Option<Duration>,
    pub now: DateTime<Utc>,
    pub allow_early_delete: bool,
    /// `--tier`: back up only when a backup taken now would join one of these tiers, and leave
    /// the restore drill to the nightly run (unless daily is among them). None: every tier.
    pub tiers: Option<BTreeSet<TierName>>,
}

impl RunOptions {
    /// Whether this run does the night's whole job (the drill with it), not only an hourly slot.
    fn nightly(&self) -> bool {
        self.tiers.as_ref().is_none_or(|t| t.contains(&TierName::Daily))
    }
}

/// What happened to one project/env.
#[derive(Debug, Clone, Serialize)]
pub struct EnvRun {
    pub project: String,
    pub env: String,
    pub ok: bool,
    pub skipped: Option<String>,
    pub backup: Option<String>,
    /// Why no backup was taken although the env ran (its hour or day already has one).
    pub backup_skipped: Option<String>,
    /// `databases: all`: the database is gone from the server; its backups are kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
    pub backup_size: Option<u64>,
    pub globals: Option<String>,
    /// The first destination's sync (the only one with `remote:`).
    pub sync: Option<SyncReport>,
    /// Every destination's sync, in the configured order.
    pub syncs: Vec<SyncReport>,
    pub pruned: usize,
    /// Whether prune ran (a run that failed before it says nothing of pruning).
    #[serde(skip)]
    pub prune_ran: bool,
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
    /// Failures that belong to no env: a `databases: all` server that could not be asked, or
    /// a database whose name cannot name an env.
    pub errors: Vec<String>,
}

/// Runs the nightly job over `selected`.
pub fn run(cfg: &Config, selected: &[(&Project, String)], opts: &RunOptions, ui: &Ui) -> Result<RunReport> {
    let outcomes = Outcomes::at(cfg, opts.now);
    let _lock = if opts.dry_run {
        None
    } else {
        match RunLock::acquire(&cfg.lock_file, opts.wait_lock) {
            Ok(l) => Some(l),
            Err(e) => {
                outcomes.failed(None, None, "run", e.to_string());
                outcomes.flush(&[]);
                return Err(e);
            }
        }
    };
    if !opts.dry_run {
        outcomes.started();
    }
    let mut report =
        RunReport { started_at: Utc::now(), dry_run: opts.dry_run, ok: true, envs: Vec::new(), warnings: Vec::new(), errors: Vec::new() };
    // A `databases: all` project whose databases could not all be listed or named has some not
    // backed up: the run fails, saying which and what to do.
    report.errors.extend(cfg.database_findings().into_iter().map(|f| format!("project {}: {}", f.file, f.message)));
    for err in &report.errors {
        tracing::error!("{err}");
        outcomes.failed(None, None, "run", err.clone());
    }
    report.ok = report.errors.is_empty();
    let world = Context::new(cfg);
    for (_, r) in world.destinations() {
        if let Err(e) = r {
            report.warnings.push(e.to_string());
        }
    }
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
        outcomes.warning(None, None, "disk-space", w.clone());
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
            backup_skipped: None,
            gone: project.gone(env),
            backup_size: None,
            globals: None,
            sync: None,
            syncs: Vec::new(),
            pruned: 0,
            prune_ran: false,
            verified: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            seconds: 0.0,
        };
        if crate::signals::interrupted() {
            e.errors.push(EnvError::new("run", crate::signals::CANCELLED));
        } else if !project.enabled {
            e.skipped = Some("backups are disabled in projects.yml".into());
        } else if let Some(only) = opts.tiers.as_ref().filter(|t| !t.iter().any(|t| project.policy.tier(*t).is_some())) {
            let names: Vec<&str> = only.iter().map(|t| t.as_str()).collect();
            e.skipped = Some(format!("policy {} has no {} tier", project.policy.name, names.join(" or ")));
        } else {
            let mut ctx = world.env(project, env);
            // A bug in one env's night is that env's failure, alerted like any other; the
            // other envs still run.
            let night = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if opts.dry_run {
                    plan_env(&mut ctx, opts, ui, &mut e);
                    return;
                }
                // One agent at a time per project/env, across hosts.
                let lease = match ctx.lease("run", opts.wait_lock) {
                    Ok(l) => l,
                    Err(err @ crate::error::Error::Locked(_)) => {
                        return e.errors.push(EnvError::new("lease", format!("{err}; run again later, or with --wait-lock")));
                    }
                    Err(err) => return e.errors.push(EnvError::new("run", err)),
                };
                e.warnings.extend(lease.warning.clone());
                run_env(&mut ctx, opts, ui, &outcomes, &mut e);
                if let Some(why) = lease.lost() {
                    e.errors.push(EnvError::new("lease lost", format!("lost during the run ({why}); nothing was deleted after that")));
                }
            }));
            if let Err(p) = night {
                e.errors.push(EnvError::new("run", crate::error::panic_message(&*p)));
            }
            if !opts.dry_run {
                outcomes.env_done(&mut ctx, !e.errors.is_empty() || !e.warnings.is_empty());
            }
        }
        e.ok = e.errors.is_empty();
        e.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        report.ok &= e.ok;
        if !opts.dry_run && e.skipped.is_none() {
            for err in &e.errors {
                outcomes.failed(Some(&e.project), Some(&e.env), err.operation, err.to_string());
            }
            let o = EnvOutcome { ok: e.ok, seconds: e.seconds, backup_size: e.backup_size, verified: e.verified };
            outcomes.env_ran(&e.project, &e.env, o);
        }
        report.envs.push(e);
    }
    // Once per destination, not per env: this host's clock against the store's.
    for (_, r) in world.destinations() {
        if let Some(w) = r.ok().and_then(|r| r.clock_problem()) {
            tracing::warn!("{w}");
            outcomes.warning(None, None, "clock", w.clone());
            report.warnings.push(w);
        }
    }
    if !opts.dry_run {
        let success = report.ok.then(|| serde_json::json!({ "ok": true, "envs": report.envs.len(), "time": Utc::now() }));
        let remotes: Vec<_> = world.destinations().into_iter().filter_map(|(_, r)| r.ok()).collect();
        outcomes.finish(&remotes, success);
    }
    Ok(report)
}

/// Locked tiers whose newest lock ends within a day: new locked copies are not arriving, and
/// soon nothing in the tier will be protected. Read from the HEADs the sync already made.
fn short_lock_horizons(ctx: &mut EnvContext, now: DateTime<Utc>) -> Vec<String> {
    let project = ctx.project;
    let world = ctx.world();
    let mut out = Vec::new();
    for (name, r) in world.destinations() {
        let Ok(r) = r else { continue };
        let Ok((_, Ok(o))) = ctx.both(r) else { continue };
        for t in project
            .policy
            .tiers
            .iter()
            .filter(|t| t.object_lock.is_some() && t.lives(crate::config::Location::Remote) && r.config.holds(t.name))
        {
            let horizon = o
                .cat
                .backups
                .values()
                .filter_map(|b| b.copies.get(&t.name))
                .filter_map(|c| o.heads.get(&c.key)?.lock.as_ref())
                .map(|l| l.until)
                .max();
            if let Some(h) = horizon
                && h - now < chrono::Duration::days(1)
            {
                out.push(format!(
                    "the {} copies on {name} are locked only until {}: new locked copies are not arriving",
                    t.name,
                    h.format("%Y-%m-%d %H:%M UTC")
                ));
            }
        }
    }
    out
}

/// `run --dry-run` of one env: what would be backed up, synced and pruned.
fn plan_env(ctx: &mut EnvContext, opts: &RunOptions, ui: &Ui, e: &mut EnvRun) {
    let db = ctx.project.databases.get(&ctx.env).cloned().unwrap_or_default();
    e.warnings.push(match backup_due(ctx, opts) {
        _ if e.gone => format!("would not back up database {db:?}: it is gone from the server"),
        None => format!("would back up database {db:?}"),
        Some(NotDue::Another(b)) => format!("would not back up database {db:?}: another agent took {b}"),
        Some(NotDue::Taken(why)) => format!("would not back up database {db:?}: {why}"),
    });
    let world = ctx.world();
    let several = world.names().len() > 1;
    for (name, r) in world.destinations() {
        let on = if several { format!(" on {name}") } else { String::new() };
        match r
            .and_then(|r| sync_env(ctx, r, SyncOptions { now: opts.now, allow_early_delete: opts.allow_early_delete, dry_run: true }, ui))
        {
            Ok((plan, rep)) => {
                e.warnings.extend(
                    plan.actions
                        .iter()
                        .filter(|a| !matches!(a, crate::plan::offsite::Action::Keep { .. }))
                        .map(|a| format!("would {}{on}", a.describe())),
                );
                e.sync.get_or_insert_with(|| rep.clone());
                e.syncs.push(rep);
            }
            Err(err) => e.errors.push(EnvError::new("sync plan", format!("destination {name}: {err}"))),
        }
    }
    match crate::ops::prune::prune_env(ctx, opts.now, None, true) {
        Ok(plan) => e.warnings.extend(plan.deletions().map(|d| format!("would delete {} ({})", d.backup, d.reasons.join("; ")))),
        Err(err) => e.errors.push(EnvError::new("prune plan", err)),
    }
}

/// One env's night: backup, globals, sync, prune, the scheduled drill, cleanup. The listing and
/// the off-site catalog are read once each and again only after a step changed them.
fn run_env(ctx: &mut EnvContext, opts: &RunOptions, ui: &Ui, outcomes: &Outcomes, e: &mut EnvRun) {
    if e.gone {
        e.backup_skipped = Some(format!(
            "database {:?} is gone from the server: nothing to back up; its backups are kept under the policy, the newest always",
            ctx.env
        ));
        return sync_prune_drill(ctx, opts, ui, outcomes, e);
    }
    match backup_due(ctx, opts) {
        // Another agent (the other node of a pair) backed this env up tonight: one backup a
        // night (an hour), whoever took it. Sync and prune still run.
        Some(NotDue::Another(other)) => e.warnings.push(format!(
            "not backed up again: the bucket already holds {}'s backup {other}, taken by another agent",
            if ctx.project.policy.hourly() { "this hour" } else { "tonight" }
        )),
        Some(NotDue::Taken(why)) => e.backup_skipped = Some(why),
        None => back_up_env(ctx, opts, ui, outcomes, e),
    }
    // After SIGINT or SIGTERM nothing more starts: no sync, no prune, no drill.
    if crate::signals::interrupted() {
        e.errors.push(EnvError::new("run", crate::signals::CANCELLED));
        return;
    }
    sync_prune_drill(ctx, opts, ui, outcomes, e);
}

/// Why a run takes no backup of an env now.
enum NotDue {
    /// Another agent's backup of this slot (night, or hour) is in the first destination.
    Another(String),
    /// This host's backups already fill every tier the run is for.
    Taken(String),
}

/// Whether the run backs the env up now: not when the first destination holds a backup of
/// this slot (UTC day, or hour with an hourly tier) that this host does not hold, nor when a
/// backup taken now would join none of the run's tiers (its hour is already taken).
fn backup_due(ctx: &mut EnvContext, opts: &RunOptions) -> Option<NotDue> {
    let policy = &ctx.project.policy;
    let slot = crate::records::retention::slot(policy, opts.now);
    // Read under the env lock, so the backup that follows takes this listing as current
    // instead of reading the folder again.
    if ctx.listing_if_read().is_none() && ctx.dir.is_dir() {
        let lock = crate::fsutil::DirLock::acquire(&ctx.dir).ok()?;
        let read = crate::records::listing::Listing::under_lock(None, &ctx.dir, &ctx.project.name, &ctx.env, &lock).ok()?;
        ctx.adopt(read);
    }
    let mine: Vec<_> = ctx.listing().ok()?.databases().map(|b| b.manifest.candidate(&b.stem)).collect();
    let world = ctx.world();
    if let Some((_, Ok(first))) = world.destinations().into_iter().next()
        && let Ok(cat) = ctx.catalog(first)
        && let Some(other) = cat
            .backups
            .values()
            .filter(|b| b.stem.kind == crate::names::Kind::Database && crate::records::retention::slot(policy, b.stem.time) == slot)
            .filter(|b| b.manifest.as_ref().is_none_or(|m| m.tags.is_empty()))
            .map(|b| b.stem.clone())
            .rfind(|s| !mine.iter().any(|c| c.id == *s))
    {
        return Some(NotDue::Another(other.to_string()));
    }
    let joins = crate::records::retention::tiers_for_new(&mine, opts.now, policy);
    if joins.iter().any(|t| opts.tiers.as_ref().is_none_or(|only| only.contains(t))) {
        return None;
    }
    let taken = mine
        .iter()
        .filter(|c| c.tags.is_empty() && crate::records::retention::slot(policy, c.created_at) == slot)
        .map(|c| &c.id)
        .next_back();
    Some(NotDue::Taken(match (taken, &opts.tiers) {
        (Some(b), _) if joins.is_empty() => format!("this {} already has backup {b}", if policy.hourly() { "hour" } else { "day" }),
        (_, Some(only)) => {
            let names: Vec<&str> = only.iter().map(|t| t.as_str()).collect();
            format!("no {} backup is due yet", names.join(" or "))
        }
        _ => "no tier is due".into(),
    }))
}

/// The night's backup and the roles.
fn back_up_env(ctx: &mut EnvContext, opts: &RunOptions, ui: &Ui, outcomes: &Outcomes, e: &mut EnvRun) {
    let (cfg, project, env) = (ctx.cfg, ctx.project, ctx.env.clone());
    let env = env.as_str();
    let mut server_down = false;
    match backup(ctx, &BackupOptions { tags: Vec::new(), now: opts.now }, ui) {
        Ok(b) => {
            e.backup = Some(b.stem.to_string());
            e.backup_size = Some(b.manifest.size);
            let found = ctx.listing().map(|l| anomalies(cfg, project, l, &b)).unwrap_or_default();
            for w in found {
                tracing::warn!("{}/{env}: {w}", project.name);
                outcomes.warning(Some(&project.name), Some(env), "anomaly", w.clone());
                e.warnings.push(w);
            }
        }
        Err(err) => {
            server_down = matches!(err, crate::error::Error::Unreachable(_));
            e.errors.push(EnvError::new("backup", err));
        }
    }
    // A server that cannot be reached fails the globals the same way: said once, not twice.
    if cfg.globals.enabled && server_down {
        e.warnings.push("the roles were not saved either: the same server could not be reached".into());
    } else if cfg.globals.enabled && globals_due(ctx, opts.now) {
        match backup_globals(ctx, opts.now, ui) {
            Ok(b) => e.globals = Some(b.stem.to_string()),
            Err(err) => e.errors.push(EnvError::new("globals", err)),
        }
    }
}

/// Whether the roles are saved with this backup: always without an hourly tier; with one, once
/// a UTC day (the roles change rarely, and each copy is a file to keep).
fn globals_due(ctx: &mut EnvContext, now: DateTime<Utc>) -> bool {
    // `databases: all`: one server, so its roles once, with its first database in name order.
    let project = ctx.project;
    if project.every_database.is_some() && project.databases.keys().find(|e| !project.gone(e)) != Some(&ctx.env) {
        return false;
    }
    !ctx.project.policy.hourly()
        || ctx.listing().is_ok_and(|l| {
            !l.backups.iter().any(|b| b.stem.kind == crate::names::Kind::Globals && b.stem.time.date_naive() == now.date_naive())
        })
}

/// Every destination gets the night's backup, then prune, the scheduled drill and cleanup.
fn sync_prune_drill(ctx: &mut EnvContext, opts: &RunOptions, ui: &Ui, outcomes: &Outcomes, e: &mut EnvRun) {
    let (cfg, project, env) = (ctx.cfg, ctx.project, ctx.env.clone());
    let env = env.as_str();
    crate::fault::point("run:before-sync");
    // Every destination gets the night's backup; one failing never stops the others, and
    // its failure names it.
    let world = ctx.world();
    let several = world.names().len() > 1;
    for (name, r) in world.destinations() {
        let to = |x: &dyn std::fmt::Display| if several { format!("destination {name}: {x}") } else { x.to_string() };
        match r
            .and_then(|r| sync_env(ctx, r, SyncOptions { now: opts.now, allow_early_delete: opts.allow_early_delete, dry_run: false }, ui))
        {
            Ok((_, rep)) => {
                e.errors.extend(rep.errors.iter().map(|x| EnvError::new("sync", to(x))));
                e.sync.get_or_insert_with(|| rep.clone());
                e.syncs.push(rep);
            }
            Err(err) => e.errors.push(EnvError::new("sync", format!("destination {name}: {err}"))),
        }
    }
    if crate::signals::interrupted() {
        e.errors.push(EnvError::new("run", crate::signals::CANCELLED));
        return;
    }
    let confirmed = match ctx.remote_state() {
        Ok(c) => c,
        Err(err) => {
            e.errors.push(EnvError::new("checking off-site copies", err));
            return;
        }
    };
    match crate::ops::prune::prune_env(ctx, opts.now, confirmed.as_ref(), false) {
        Ok(plan) => {
            e.pruned = plan.deletions().count();
            e.prune_ran = true;
            if let Some(why) = plan.clock_problem() {
                tracing::warn!("{}/{env}: {why}", project.name);
                outcomes.warning(Some(&project.name), Some(env), "clock", why.to_string());
                e.warnings.push(why.to_string());
            }
        }
        Err(err) => e.errors.push(EnvError::new("prune", err)),
    }
    // The restore drill the policy schedules (`verify: weekly`), on the newest backup, in the
    // nightly run (an hourly one leaves it to that).
    // A run whose own earlier run (an hourly one) took the slot's backup drills that one.
    let newest = ctx
        .listing()
        .ok()
        .filter(|_| e.backup_skipped.is_some() && !e.gone)
        .and_then(|l| l.databases().rfind(|b| b.manifest.tags.is_empty()))
        .map(|b| b.stem.to_string());
    if opts.nightly()
        && let Some(newest) = e.backup.clone().or(newest)
        && !crate::signals::interrupted()
        && let Ok(listing) = ctx.listing()
        && crate::ops::verify::due(project, listing, opts.now)
    {
        let keys = project.keys().unwrap_or_default();
        if keys.is_empty() && project.encryption.is_some() {
            let w = "a restore drill is due, but this host holds no decryption key: run `pgtier verify` where the key is";
            outcomes.warning(Some(&project.name), Some(env), "verify", w);
            e.warnings.push(w.into());
        } else {
            let source = crate::ops::restore::Source {
                input: crate::ops::restore::Input::Named(newest),
                from: crate::ops::restore::Origin::Local,
                destination: None,
                wait: None,
                check_first: false,
                thaw_tier: None,
                thaw: false,
                tier: None,
            };
            let r = crate::ops::verify::verify(ctx, &source, &keys, opts.now, ui);
            e.verified = Some(r.ok);
            if let Some(err) = r.error {
                e.errors.push(EnvError::new("verify", err));
            }
        }
    }
    for w in short_lock_horizons(ctx, opts.now).into_iter().filter(|_| !e.gone) {
        tracing::warn!("{}/{env}: {w}", project.name);
        outcomes.warning(Some(&project.name), Some(env), "lock", w.clone());
        e.warnings.push(w);
    }
    // Temporary files and databases of restores and drills that were killed.
    crate::scratch::sweep_stale();
    if !crate::signals::interrupted()
        && let Ok(pg) = crate::postgres::Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), ctx.database())
    {
        match crate::ops::restore::drop_stale_temp_dbs(&pg) {
            Ok(dropped) => e.warnings.extend(dropped.into_iter().map(|d| format!("dropped {d}, left by an interrupted restore or verify"))),
            Err(err) => e.warnings.push(format!("could not clean up temporary databases: {err}")),
        }
    }
}

/// A backup that shrank by more than the threshold against the previous one (size or total
/// rows) is worth a warning: an emptied table is a failure nobody sees.
pub fn anomalies(cfg: &Config, project: &Project, listing: &Listing, new: &LocalBackup) -> Vec<String> {
    let threshold = project.policy.anomaly_threshold_percent.unwrap_or(cfg.alerts.anomaly_threshold_percent) as f64;
    let Some(prev) = listing.databases().rfind(|b| b.stem < new.stem && b.manifest.tags.is_empty()) else { return Vec::new() };
    let mut out = Vec::new();
    let fall = |old: u64, now: u64| if old == 0 { 0.0 } else { (old.saturating_sub(now)) as f64 * 100.0 / old as f64 };
    let f = fall(prev.manifest.size, new.manifest.size);
    if f > threshold {
        out.push(format!("backup size fell {f:.0}% ({} to {} bytes) since {}", prev.manifest.size, new.manifest.size, prev.stem));
    }
    let rows = |m: &crate::records::manifest::Manifest| m.tables.as_ref().map(|t| t.values().sum::<u64>());
    if let (Some(old), Some(now)) = (prev.full_manifest().ok().as_ref().and_then(rows), rows(&new.manifest)) {
        let f = fall(old, now);
        if f > threshold {
            out.push(format!("total rows fell {f:.0}% ({old} to {now}) since {}", prev.stem));
        }
    }
    out
}
