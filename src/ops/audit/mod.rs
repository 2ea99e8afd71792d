//! Auditing retention against policy: every problem is a finding naming the file and the rule;
//! things worth knowing that are not problems are notes.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::{Config, Location, Policy, Project};
use crate::context::EnvContext;
use crate::error::Result;
use crate::names::Kind;
use crate::plan::local::{EnvPlan, LocalAction, plan_env};
use crate::records::listing::Listing;
use crate::remote::RemoteState;

pub mod object_locks;
pub mod read_data;

pub use crate::vocab::Finding;

/// The audit of one project/env.
#[derive(Debug, Clone, Serialize)]
pub struct EnvAudit {
    pub project: String,
    pub env: String,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// Each locked tier on each destination: its horizon and what its canary proved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<object_locks::TierLock>,
    /// With `--read-data`: what reading the copies back found, per destination.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_back: Vec<read_data::ReadBack>,
    pub plan: EnvPlan,
    /// `databases: all`: the database is gone from the server; its backups are kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gone: bool,
}

/// Why the newest backup, taken at `newest`, is too old at `now` (`max_backup_age_hours` of the
/// policy, else of the agent); None when it is fresh enough or the project is disabled.
pub fn staleness(cfg: &Config, project: &Project, newest: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
    let max_age = project.policy.max_backup_age_hours.unwrap_or(cfg.max_backup_age_hours);
    let age = now - newest;
    (project.enabled && age > Duration::hours(max_age as i64))
        .then(|| format!("the newest backup is {} hours old (limit {max_age} h)", age.num_hours()))
}

/// Audits the local side of one project/env as of `now`, from the command's listing.
pub fn audit_local(e: &mut EnvContext, now: DateTime<Utc>, remote: Option<&RemoteState>) -> Result<EnvAudit> {
    let (cfg, project, env) = (e.cfg, e.project, e.env.clone());
    Ok(audit_listing(cfg, project, &env, now, remote, e.listing()?, true))
}

/// The local audit of a listing already read; re-hashing every backup file only with `hash`
/// (the report reads manifests only: hashing is `audit`'s job, and reads every byte).
pub fn audit_listing(
    cfg: &Config,
    project: &Project,
    env: &str,
    now: DateTime<Utc>,
    remote: Option<&RemoteState>,
    listing: &Listing,
    hash: bool,
) -> EnvAudit {
    let dir = cfg.env_dir(&project.name, env);
    let plan = plan_env(listing, project, env, now, remote);
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for (path, why) in &listing.broken {
        findings.push(Finding::new("broken-manifest", path.display(), why.clone()));
    }
    if let Some(why) = plan.clock_problem() {
        findings.push(Finding::new("clock", dir.display(), why));
    }
    for b in listing.backups.iter().filter(|_| hash) {
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
    match listing.backups.iter().filter(|b| b.stem.kind == Kind::Database).map(|b| b.stem.time).max() {
        None if project.enabled => findings.push(Finding::new("no-backups", dir.display(), "no backups at all")),
        None => notes.push("backups are disabled for this project and there are none".into()),
        Some(t) if project.gone(env) => notes.push(format!(
            "database {env:?} is gone from the server (its last backup is {}): its backups are kept under the policy, the newest always",
            crate::ui::ago(t, now)
        )),
        Some(t) => {
            if let Some(why) = staleness(cfg, project, t, now) {
                findings.push(Finding::new("stale", dir.display(), why));
            }
        }
    }
    // The newest backup must have been proven by a restore within the policy's window.
    if let (Some(days), Some(b), false) = (project.policy.verify.window_days(), listing.latest(), project.gone(env)) {
        let last = b.manifest.last_verified_ok().map(|v| v.at);
        let old_enough = now - b.manifest.created_at > Duration::days(1);
        if old_enough && last.is_none_or(|t| now - t > Duration::days(days)) {
            findings.push(Finding::new(
                "not-verified",
                b.data_path.display(),
                format!(
                    "the newest backup has not been proven by a restore within {days} days (the policy says verify: {}); run `pgtier verify`",
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
    if cfg.remotes.is_empty() && project.policy.wants_remote() {
        notes.push("no remote: configured: tiers that would live off-site are kept on this host".into());
    }
    EnvAudit {
        project: project.name.clone(),
        env: env.to_string(),
        findings,
        notes,
        locks: Vec::new(),
        read_back: Vec::new(),
        plan,
        gone: project.gone(env),
    }
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

/// The key part of the audit: the configured identity opens the newest encrypted backup's
/// header, so a lost or wrong key is found on an ordinary night.
pub fn audit_keys(project: &Project, listing: &Listing) -> Vec<Finding> {
    let Some(enc) = &project.encryption else { return Vec::new() };
    let keys = match project.keys() {
        Ok(k) => k,
        Err(e) => return vec![Finding::new("decryption-key", "encryption", e.to_string())],
    };
    if keys.is_empty() {
        // A host holding only public keys is the recommended set-up: nothing to prove here.
        return Vec::new();
    }
    let Some(newest) = listing.databases().rev().find(|b| b.manifest.encryption.is_some()) else { return Vec::new() };
    let shown = newest.data_path.display().to_string();
    let open = crate::fsutil::open_own(&newest.data_path).map_err(|e| crate::failed!("{shown}: {e}")).and_then(|f| {
        let peek = crate::pipeline::Peeked::new(f, 64).map_err(|e| crate::failed!("{shown}: {e}"))?;
        let layer = crate::pipeline::sniff(peek.head());
        keys.decryptor(layer, Box::new(peek), &shown).map(|_| ())
    });
    match open {
        Ok(()) => Vec::new(),
        Err(e) => vec![Finding::new(
            "decryption-key",
            newest.data_path.display(),
            format!("the configured {} key cannot open the newest backup: {e}", crate::crypto::extension(enc)),
        )],
    }
}

/// What the audit found on one destination.
#[derive(Debug, Default)]
pub struct RemoteAudit {
    pub findings: Vec<Finding>,
    /// Worth saying, not problems (copies kept until their lock ends).
    pub notes: Vec<String>,
    /// Each locked tier's horizon and what its canary proved.
    pub locks: Vec<object_locks::TierLock>,
}

/// The remote part of the audit: every backup the policy wants off-site is there, confirmed,
/// in the right class, locked where the tier is; nothing due for deletion lingers; nothing
/// unencrypted where required; and the locks are proven to hold.
pub fn audit_remote(
    remote: &crate::remote::Remote,
    project: &Project,
    env: &str,
    now: DateTime<Utc>,
    local: &Listing,
    offsite: &crate::remote::EnvOffsite,
) -> RemoteAudit {
    let crate::remote::EnvOffsite { cat, heads } = offsite;
    let plan = crate::plan::offsite::plan(local, cat, heads, remote, project, env, now, false);
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for (key, why) in &cat.broken {
        out.push(Finding::new("broken-manifest", remote.url(key), why.clone()));
    }
    // A copy whose size or SHA-256 (the store's own, or the one recorded when it was sent)
    // differs from its manifest's is damaged, not missing: say so, once.
    let mut damaged = std::collections::BTreeSet::new();
    for b in cat.backups.values() {
        let Some(m) = &b.manifest else { continue };
        for o in b.copies.values() {
            let Some(h) = heads.get(&o.key) else { continue };
            let why = if h.size != m.size {
                format!("the store holds {} bytes, the manifest says {}", h.size, m.size)
            } else if let Some(c) = h.content_sha256.as_deref().filter(|c| *c != m.sha256) {
                format!("the store's SHA-256 of its bytes is {c}, the manifest's {}", m.sha256)
            } else if h.sha256.as_deref().is_some_and(|s| s != m.sha256) {
                format!("it was stored as sha256 {}, the manifest says {}", h.sha256.as_deref().unwrap_or(""), m.sha256)
            } else {
                continue;
            };
            damaged.insert(o.key.clone());
            out.push(Finding::new(
                "remote-checksum",
                remote.url(&o.key),
                format!("{why}: this copy of {} is damaged; run `pgtier sync` to replace it from the local copy", b.stem),
            ));
        }
    }
    for a in &plan.actions {
        use crate::plan::offsite::Action;
        match a {
            Action::Upload { key, .. } | Action::Copy { to: key, .. } if damaged.contains(key) => {}
            Action::Upload { key, .. } | Action::Copy { to: key, .. } => out.push(Finding::new(
                "missing-offsite",
                remote.url(key),
                format!("{} is not off-site in {} ({}); run `pgtier sync`", a.backup(), a.tier(), a.describe()),
            )),
            Action::Delete { key, .. } => out.push(Finding::new(
                "due-for-deletion",
                remote.url(key),
                format!("the policy no longer keeps it in {}; run `pgtier sync`", a.tier()),
            )),
            Action::Blocked { reason, .. } => {
                out.push(Finding::new("offsite-blocked", format!("{} {}", a.backup(), a.tier()), reason.clone()))
            }
            Action::Lock { key, lock, .. } => out.push(Finding::new(
                "unlocked-copy",
                remote.url(key),
                format!(
                    "{} is in locked tier {} without the lock the tier wants ({} until {}); run `pgtier sync`",
                    a.backup(),
                    a.tier(),
                    lock.mode,
                    lock.until.format("%Y-%m-%d")
                ),
            )),
            Action::Defer { key, until, reason, .. } if !reason.billing_only() => {
                notes.push(format!("{}: kept until {} ({reason})", remote.url(key), until.format("%Y-%m-%d")))
            }
            _ => {}
        }
    }
    if project.policy.encryption_required {
        for b in cat.backups.values() {
            if b.manifest.as_ref().is_some_and(|m| m.encryption.is_none()) {
                for o in b.copies.values() {
                    out.push(Finding::new(
                        "unencrypted-offsite",
                        remote.url(&o.key),
                        "the policy requires encryption but this copy is not encrypted",
                    ));
                }
            }
        }
    }
    let (lock_findings, locks) = object_locks::prove(remote, project, env, offsite);
    out.extend(lock_findings);
    if let Some(why) = remote.clock_problem() {
        out.push(Finding::new("clock-skew", remote.store.describe(), why));
    }
    RemoteAudit { findings: out, notes, locks }
}
