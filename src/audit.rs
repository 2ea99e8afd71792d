//! Auditing retention against policy: every problem is a finding naming the file and the rule;
//! things worth knowing that are not problems are notes.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::catalog::Listing;
use crate::config::{Config, Location, Policy, Project};
use crate::error::Result;
use crate::names::Kind;
use crate::prune::{EnvPlan, LocalAction, RemoteState, plan_env};

/// One problem.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A short rule name (`checksum`, `stale`, `due-for-deletion`, ...).
    pub rule: String,
    /// The file, object key or config file concerned.
    pub file: String,
    pub message: String,
}

impl Finding {
    pub fn new(rule: &str, file: impl std::fmt::Display, message: impl Into<String>) -> Finding {
        Finding { rule: rule.into(), file: file.to_string(), message: message.into() }
    }
}

/// The audit of one project/env.
#[derive(Debug, Clone, Serialize)]
pub struct EnvAudit {
    pub project: String,
    pub env: String,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    pub plan: EnvPlan,
}

/// Audits the local side of one project/env as of `now`.
pub fn audit_local(cfg: &Config, project: &Project, env: &str, now: DateTime<Utc>, remote: Option<&RemoteState>) -> Result<EnvAudit> {
    let dir = cfg.env_dir(&project.name, env);
    let listing = Listing::scan(&dir, &project.name, env)?;
    let plan = plan_env(&listing, project, env, now, remote);
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for (path, why) in &listing.broken {
        findings.push(Finding::new("broken-manifest", path.display(), why.clone()));
    }
    if let Some(why) = plan.clock_problem() {
        findings.push(Finding::new("clock", dir.display(), why));
    }
    for b in &listing.backups {
        match crate::pipeline::sha256_file(&b.data_path) {
            Ok(d) if d.size == b.manifest.size && d.sha256 == b.manifest.sha256 => {}
            Ok(d) => findings.push(Finding::new(
                "checksum",
                b.data_path.display(),
                format!(
                    "size {} and sha256 {} do not match the manifest's {} and {}",
                    d.size, d.sha256, b.manifest.size, b.manifest.sha256
                ),
            )),
            Err(e) => findings.push(Finding::new("checksum", b.data_path.display(), format!("cannot read: {e}"))),
        }
    }
    for e in plan.entries.iter().filter(|e| e.action == LocalAction::Delete) {
        findings.push(Finding::new(
            "due-for-deletion",
            dir.join(&e.file).display(),
            format!("the policy deletes it ({}); run `pgtier prune`", e.reasons.join("; ")),
        ));
    }
    let max_age = project.policy.max_backup_age_hours.unwrap_or(cfg.max_backup_age_hours);
    match listing.backups.iter().filter(|b| b.stem.kind == Kind::Database).map(|b| b.stem.time).max() {
        None if project.enabled => findings.push(Finding::new("no-backups", dir.display(), "no backups at all")),
        None => notes.push("backups are disabled for this project and there are none".into()),
        Some(t) => {
            let age = now - t;
            if age > Duration::hours(max_age as i64) && project.enabled {
                findings.push(Finding::new(
                    "stale",
                    dir.display(),
                    format!("the newest backup is {} hours old (limit {max_age} h)", age.num_hours()),
                ));
            }
        }
    }
    // The newest backup must have been proven by a restore within the policy's window.
    if let (Some(days), Some(b)) = (project.policy.verify.window_days(), listing.latest()) {
        let last = b.manifest.last_verified_ok().map(|v| v.at);
        let old_enough = now - b.manifest.created_at > Duration::days(1);
        if old_enough && last.is_none_or(|t| now - t > Duration::days(days)) {
            findings.push(Finding::new(
                "not-verified",
                b.data_path.display(),
                format!(
                    "the newest backup has not been proven by a restore within {days} days (verify: {:?}); run `pgtier verify`",
                    project.policy.verify
                ),
            ));
        }
    }
    for f in &listing.foreign {
        notes.push(format!(
            "{}: not described by any pgtier manifest; left alone (`pgtier adopt` takes in the old scripts' dumps)",
            f.display()
        ));
    }
    if cfg.remote.is_none() && project.policy.wants_remote() {
        notes.push("no remote: configured: tiers that would live off-site are kept on this host".into());
    }
    Ok(EnvAudit { project: project.name.clone(), env: env.to_string(), findings, notes, plan })
}

/// Policy sanity: a remote tier must keep its copies at least as long as its storage class bills.
pub fn audit_policy(policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    let file = policy.file.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_else(|| "(built-in default policy)".into());
    for t in &policy.tiers {
        if !t.lives(Location::Remote) {
            continue;
        }
        let kept = t.retain.approx_days(t.name);
        let min = t.storage_class.min_days();
        if kept < min {
            out.push(Finding::new(
                "storage-class-duration",
                format!("{file} (tiers.{}.storage_class)", t.name),
                format!("{} bills at least {min} days but the tier keeps copies about {kept} days ({}): every deletion pays an early-deletion fee", t.storage_class, t.retain),
            ));
        }
    }
    out
}
