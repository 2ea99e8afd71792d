//! Syncing tiers off-site. `plan` is a pure function of the local catalog, the remote catalog
//! (with HEAD results), the policy and the clock: every backup a remote tier keeps gets one copy
//! in that tier's folder with the tier's storage class (uploaded once, then server-side copied
//! to the other tiers), and leaves a folder when that tier no longer keeps it, but not before
//! its class's minimum billable duration. `execute` then uploads, copies, writes manifests and,
//! last, deletes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

mod action;

pub use action::{Action, DeferReason};

use crate::catalog::Listing;
use crate::config::{Location, Project, StorageClass, TierName};
use crate::context::EnvContext;
use crate::manifest::Manifest;
use crate::names::Stem;
use crate::remote::{EnvOffsite, Remote, RemoteCatalog, is_confirmed};
use crate::store::{Lock, ObjectMeta, PutOptions};
use crate::ui::Ui;

/// The sync plan of one project/env.
#[derive(Debug, Clone, Serialize)]
pub struct SyncPlan {
    pub project: String,
    pub env: String,
    /// The destination it is for (`default` for `remote:`).
    pub destination: String,
    pub actions: Vec<Action>,
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub project: String,
    pub env: String,
    pub destination: String,
    pub uploaded: u64,
    pub copied: u64,
    pub deleted: u64,
    pub skipped: u64,
    pub deferred: u64,
    pub manifests: u64,
    pub blocked: u64,
    pub bytes_uploaded: u64,
    /// Copies already there that were locked (or had their lock lengthened).
    pub locked: u64,
    pub errors: Vec<String>,
    /// Whether each action of the plan happened (aligned with `SyncPlan::actions`): a report
    /// lists as done only what was done.
    #[serde(skip)]
    pub done: Vec<bool>,
}

/// Plans the remote side of one project/env. `heads` are HEAD results of the data objects.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    local: &Listing,
    remote: &RemoteCatalog,
    heads: &BTreeMap<String, ObjectMeta>,
    r: &Remote,
    project: &Project,
    env: &str,
    now: DateTime<Utc>,
    allow_early_delete: bool,
) -> SyncPlan {
    let policy = &project.policy;
    // The union of local and remote backups, each with its manifest.
    let mut manifests: BTreeMap<Stem, (&Manifest, Option<PathBuf>)> = BTreeMap::new();
    for b in &local.backups {
        manifests.insert(b.stem.clone(), (&b.manifest, Some(b.data_path.clone())));
    }
    for (stem, b) in &remote.backups {
        if let Some(m) = &b.manifest {
            manifests.entry(stem.clone()).or_insert((m, None));
        }
    }
    // Decided as local retention decides (prune::decide), over both sides.
    let remote_only: Vec<_> = remote.backups.values().filter_map(|b| Some(b.manifest.as_ref()?.candidate(&b.stem))).collect();
    let decisions = crate::prune::decide(local, &remote_only, policy, now);
    let layout = r.layout(&project.name, env);
    // Locks and minimum durations end by the store's clock: a host whose clock runs ahead of
    // the store's waits for it, instead of asking for deletions the store refuses.
    let ahead = store_ahead(r);
    let store_now = now - ahead.unwrap_or_else(Duration::zero);
    let skew_note = ahead
        .map(|a| format!("; this host's clock is {} ahead of the store's, so it waits for the store's", crate::ui::span(a)))
        .unwrap_or_default();

    // The off-site tiers this destination holds, in its own storage classes.
    let remote_tiers: Vec<crate::config::Tier> = policy
        .tiers
        .iter()
        .filter(|t| t.lives(Location::Remote) && r.config.holds(t.name))
        .map(|t| crate::config::Tier { storage_class: r.config.class_of(t.name, t.storage_class), ..t.clone() })
        .collect();
    let mut actions = Vec::new();
    for (stem, (m, local_path)) in &manifests {
        let id = stem.to_string();
        let d = &decisions[stem];
        let rb = remote.backups.get(stem);
        let confirmed = |tier: TierName| -> Option<&ObjectMeta> {
            let o = rb?.copies.get(&tier)?;
            heads.get(&o.key).filter(|h| is_confirmed(h, m))
        };
        // A readable, confirmed copy already off-site (to copy from instead of uploading).
        let mut source: Option<String> =
            remote_tiers.iter().filter_map(|t| confirmed(t.name)).find(|h| h.thaw.readable()).map(|h| h.key.clone());
        let mut wanted: Vec<_> = remote_tiers.iter().filter(|t| d.kept_by.contains(&t.name)).collect();
        // Readable classes first, so the one upload lands where copies can be made from it.
        wanted.sort_by_key(|t| (t.storage_class.needs_thaw(), t.name));
        for t in &wanted {
            let key = layout.data_key(t.name, &m.file);
            let mkey = layout.manifest_key(t.name, stem);
            // A locked tier's copies carry a lock that ends when the policy could first delete them.
            let lock = t.object_lock.map(|mode| Lock { mode, until: crate::retention::lock_until(t, stem.time) }).filter(|l| l.holds(now));
            match confirmed(t.name) {
                Some(h) if h.class() == t.storage_class => {
                    // Lock, or lengthen the lock of, a copy that has less than the tier wants.
                    match lock {
                        Some(l) if h.lock.is_none_or(|have| have.until < l.until) => actions.push(Action::Lock {
                            backup: id.clone(),
                            tier: t.name,
                            key,
                            manifest_key: rb.and_then(|b| b.manifest_keys.get(&t.name)).cloned(),
                            lock: l,
                        }),
                        _ => actions.push(Action::Keep { backup: id.clone(), tier: t.name, key }),
                    }
                }
                Some(h) if h.thaw.readable() => actions.push(Action::Copy {
                    backup: id.clone(),
                    tier: t.name,
                    from: key.clone(),
                    to: key,
                    class: t.storage_class,
                    lock,
                }),
                Some(h) => actions.push(Action::Blocked {
                    backup: id.clone(),
                    tier: t.name,
                    reason: format!("{key} is in {}; changing it to {} needs a thaw first", h.class(), t.storage_class),
                }),
                None if policy.encryption_required && m.encryption.is_none() => actions.push(Action::Blocked {
                    backup: id.clone(),
                    tier: t.name,
                    reason: format!("policy {} requires encryption and {} is not encrypted: refusing to upload it", policy.name, m.file),
                }),
                None => match (&source, local_path) {
                    (Some(from), _) => actions.push(Action::Copy {
                        backup: id.clone(),
                        tier: t.name,
                        from: from.clone(),
                        to: key.clone(),
                        class: t.storage_class,
                        lock,
                    }),
                    (None, Some(path)) => {
                        actions.push(Action::Upload {
                            backup: id.clone(),
                            tier: t.name,
                            key: key.clone(),
                            path: path.clone(),
                            class: t.storage_class,
                            size: m.size,
                            sha256: m.sha256.clone(),
                            lock,
                        });
                        if !t.storage_class.needs_thaw() {
                            source = Some(key.clone());
                        }
                    }
                    (None, None) => {
                        let why = if rb.is_some_and(|b| !b.copies.is_empty()) {
                            "its only off-site copies are archived (thaw one, or restore it locally)"
                        } else {
                            "no copy is left to upload from"
                        };
                        actions.push(Action::Blocked { backup: id.clone(), tier: t.name, reason: why.into() });
                        continue;
                    }
                },
            }
            if !rb.is_some_and(|b| b.manifest_keys.contains_key(&t.name)) {
                actions.push(Action::PutManifest { backup: id.clone(), tier: t.name, key: mkey, lock });
            }
        }
        // Tiers that no longer keep it (or a policy without that tier any more).
        let Some(rb) = rb else { continue };
        let kept: BTreeSet<TierName> = wanted.iter().map(|t| t.name).collect();
        let present: BTreeSet<TierName> = rb.copies.keys().chain(rb.manifest_keys.keys()).copied().collect();
        for tier in present.difference(&kept) {
            let reason =
                d.reasons.iter().find(|r| r.starts_with(tier.as_str())).cloned().unwrap_or_else(|| format!("{tier} does not keep it"));
            let manifest_key = rb.manifest_keys.get(tier).cloned();
            match rb.copies.get(tier) {
                Some(o) => {
                    let min = Duration::days(o.class().min_days() as i64);
                    let until = o.last_modified.map(|t| t + min);
                    // Deleting here is another identity's job.
                    if !r.config.prune {
                        actions.push(Action::Keep { backup: id.clone(), tier: *tier, key: o.key.clone() });
                        continue;
                    }
                    // A copy still locked stays, with the reason, until its lock ends.
                    if let Some(l) = heads.get(&o.key).and_then(|h| h.lock).filter(|l| l.holds(store_now)) {
                        actions.push(Action::Defer {
                            backup: id.clone(),
                            tier: *tier,
                            key: o.key.clone(),
                            until: l.until,
                            reason: DeferReason::Locked {
                                lock: l,
                                skew_note: if l.holds(now) { String::new() } else { skew_note.clone() },
                            },
                        });
                        continue;
                    }
                    match until {
                        Some(until) if min > Duration::zero() && until > store_now && !allow_early_delete => actions.push(Action::Defer {
                            backup: id.clone(),
                            tier: *tier,
                            key: o.key.clone(),
                            until,
                            reason: DeferReason::MinimumDuration { class: o.class(), days: o.class().min_days() },
                        }),
                        _ => actions.push(Action::Delete { backup: id.clone(), tier: *tier, key: o.key.clone(), manifest_key, reason }),
                    }
                }
                // A manifest whose data is already gone (a delete that was interrupted).
                None => {
                    if let Some(mk) = manifest_key {
                        actions.push(Action::Delete {
                            backup: id.clone(),
                            tier: *tier,
                            key: mk,
                            manifest_key: None,
                            reason: "its data object is gone".into(),
                        });
                    }
                }
            }
        }
    }
    SyncPlan { project: project.name.clone(), env: env.to_string(), destination: r.name().to_string(), actions }
}

/// How far this host's clock runs ahead of `r`'s, when it does by more than an answer's `Date`
/// can be off (its one-second resolution and the trip back).
pub fn store_ahead(r: &Remote) -> Option<Duration> {
    r.store.clock_skew().filter(|s| *s > Duration::seconds(2))
}

/// Carries out a plan: uploads, then copies, then manifests, then deletes. A failed upload or
/// copy stops the deletes of this run, so a backup never loses its last off-site copy.
pub fn execute(plan: &SyncPlan, r: &Remote, local: &Listing, remote: &RemoteCatalog, ui: &Ui) -> SyncReport {
    let mut rep =
        SyncReport { project: plan.project.clone(), env: plan.env.clone(), destination: plan.destination.clone(), ..Default::default() };
    let local_by_id: std::collections::HashMap<String, &crate::catalog::LocalBackup> =
        local.backups.iter().map(|b| (b.stem.to_string(), b)).collect();
    let remote_by_id: std::collections::HashMap<String, &crate::remote::RemoteBackup> =
        remote.backups.values().map(|b| (b.stem.to_string(), b)).collect();
    // A local manifest goes up as the bytes on disk (row counts included, whatever was read).
    let manifest_bytes = |id: &str| -> Option<Vec<u8>> {
        match local_by_id.get(id) {
            Some(b) => std::fs::read(&b.manifest_path).ok(),
            None => remote_by_id.get(id).and_then(|b| b.manifest.as_ref()).map(Manifest::to_bytes),
        }
    };
    let mut failed_backups: BTreeSet<String> = BTreeSet::new();
    rep.done = vec![false; plan.actions.len()];
    for (i, a) in plan.actions.iter().enumerate() {
        if crate::signals::interrupted() {
            rep.errors.push(crate::signals::CANCELLED.into());
            return rep;
        }
        match a {
            Action::Upload { backup, key, path, class, size, sha256, lock, .. } => {
                // A file whose size is not its manifest's never starts an upload.
                match std::fs::symlink_metadata(path) {
                    Ok(m) if m.len() == *size => {}
                    Ok(m) => {
                        fail(
                            &mut rep,
                            &mut failed_backups,
                            backup,
                            format!(
                                "{}: {} bytes, but its manifest says {size}: the file is corrupt or changed; not uploading it",
                                path.display(),
                                m.len()
                            ),
                        );
                        continue;
                    }
                    Err(e) => {
                        fail(&mut rep, &mut failed_backups, backup, format!("{}: {e}", path.display()));
                        continue;
                    }
                }
                let progress = ui.progress("upload", Some(*size));
                let put = r.store.put_file(key, path, &PutOptions { class: *class, sha256: Some(sha256.clone()), lock: *lock }, &progress);
                progress.finish();
                match put.and_then(|_| r.store.head(key)) {
                    // What the store reports of the bytes (its own SHA-256, where it keeps one)
                    // and what pgtier hashed as it sent them: both must be the manifest's.
                    Ok(h)
                        if h.size == *size
                            && h.sha256.as_deref() == Some(sha256)
                            && h.content_sha256.as_deref().is_none_or(|c| c == sha256) =>
                    {
                        crate::fault::point("sync:after-upload");
                        tracing::info!("uploaded {} as {class}", r.url(key));
                        rep.uploaded += 1;
                        rep.bytes_uploaded += size;
                        rep.done[i] = true;
                    }
                    Ok(h) => fail(
                        &mut rep,
                        &mut failed_backups,
                        backup,
                        format!(
                            "{}: after upload the store reports size {} and sha256 {}, expected {size} and {sha256}",
                            r.url(key),
                            h.size,
                            h.content_sha256.or(h.sha256).unwrap_or_else(|| "(none)".into())
                        ),
                    ),
                    Err(e) => fail(&mut rep, &mut failed_backups, backup, format!("{backup}: {e}")),
                }
            }
            Action::Copy { backup, from, to, class, lock, .. } => {
                if failed_backups.contains(backup) {
                    continue;
                }
                match r.store.copy(from, to, *class, lock.as_ref()) {
                    Ok(()) => {
                        crate::fault::point("sync:after-copy");
                        tracing::info!("{}", a.describe());
                        rep.copied += 1;
                        rep.done[i] = true;
                    }
                    Err(e) => fail(&mut rep, &mut failed_backups, backup, format!("{}: {e}", a.describe())),
                }
            }
            _ => {}
        }
    }
    for (i, a) in plan.actions.iter().enumerate() {
        if crate::signals::interrupted() {
            rep.errors.push(crate::signals::CANCELLED.into());
            return rep;
        }
        match a {
            Action::PutManifest { backup, key, lock, .. } if !failed_backups.contains(backup) => match manifest_bytes(backup) {
                Some(bytes) => {
                    match r.store.put_bytes(key, &bytes, &PutOptions { class: StorageClass::Standard, sha256: None, lock: *lock }) {
                        Ok(()) => {
                            rep.manifests += 1;
                            rep.done[i] = true;
                        }
                        Err(e) => fail(&mut rep, &mut failed_backups, backup, format!("{backup}: {e}")),
                    }
                }
                None => fail(&mut rep, &mut failed_backups, backup, format!("{backup}: no manifest to write")),
            },
            Action::Keep { .. } => {
                rep.skipped += 1;
                rep.done[i] = true;
            }
            Action::Lock { backup, key, manifest_key, lock, .. } if !failed_backups.contains(backup) => {
                let done = match r.store.locks() {
                    Some(locks) => locks
                        .put_retention(key, lock, false)
                        .and_then(|_| manifest_key.as_ref().map_or(Ok(()), |mk| locks.put_retention(mk, lock, false))),
                    None => Err(crate::store::StoreError::Other(format!("{} has no Object Lock", r.store.describe()))),
                };
                match done {
                    Ok(()) => {
                        rep.locked += 1;
                        rep.done[i] = true;
                    }
                    Err(e) => fail(&mut rep, &mut failed_backups, backup, format!("{backup}: {e}")),
                }
            }
            Action::Defer { key, until, .. } => {
                rep.done[i] = true;
                tracing::info!("keeping {} until {} (minimum billable duration)", r.url(key), until.format("%Y-%m-%d"));
                rep.deferred += 1;
            }
            Action::Blocked { backup, tier, reason } => {
                rep.blocked += 1;
                fail(&mut rep, &mut failed_backups, backup, format!("{}/{} {backup} {tier}: {reason}", plan.project, plan.env));
            }
            _ => {}
        }
    }
    if !rep.errors.is_empty() {
        let skipped = plan.actions.iter().filter(|a| matches!(a, Action::Delete { .. })).count();
        if skipped > 0 {
            tracing::warn!("{}/{}: skipping {skipped} remote deletion(s) because of the errors above", plan.project, plan.env);
        }
        return rep;
    }
    for (i, a) in plan.actions.iter().enumerate() {
        if let Action::Delete { backup, key, manifest_key, reason, .. } = a {
            // No deletion starts after SIGINT or SIGTERM.
            if crate::signals::interrupted() {
                rep.errors.push(crate::signals::CANCELLED.into());
                return rep;
            }
            // Data first: a manifest left alone is ours and is cleaned up next time; a data
            // object left without its manifest would be foreign and never touched again.
            let done = r.store.delete(key).and_then(|_| {
                crate::fault::point("sync:mid-delete");
                manifest_key.as_ref().map_or(Ok(()), |mk| r.store.delete(mk))
            });
            match done {
                Ok(()) => {
                    rep.done[i] = true;
                    tracing::info!("deleted {} ({reason})", r.url(key));
                    if !key.ends_with(".json") {
                        rep.deleted += 1;
                    }
                }
                Err(e) => fail(&mut rep, &mut failed_backups, backup, format!("{backup}: {e}")),
            }
        }
    }
    rep
}

fn fail(rep: &mut SyncReport, failed: &mut BTreeSet<String>, backup: &str, msg: String) {
    tracing::error!("{msg}");
    rep.errors.push(msg);
    failed.insert(backup.to_string());
}

/// How to sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    pub now: DateTime<Utc>,
    pub allow_early_delete: bool,
    pub dry_run: bool,
}

/// Syncs one project/env to the destination `r`: catalog both sides (as `e` has them, read
/// once), plan, and (unless `dry_run`) execute; then tells `e` that destination changed.
pub fn sync_env(e: &mut EnvContext, r: &Remote, opts: SyncOptions, ui: &Ui) -> crate::error::Result<(SyncPlan, SyncReport)> {
    let SyncOptions { now, allow_early_delete, dry_run } = opts;
    let (project, env) = (e.project, e.env.clone());
    let (local, offsite) = e.both(r)?;
    let offsite = match offsite {
        Ok(o) => o,
        Err(err) => return Err(crate::failed!("{err}")),
    };
    let remote = &offsite.cat;
    for (key, why) in &remote.broken {
        tracing::warn!("{}: {why}", r.url(key));
    }
    let plan = plan(local, remote, &offsite.heads, r, project, &env, now, allow_early_delete);
    if dry_run {
        let mut rep =
            SyncReport { project: project.name.clone(), env: env.to_string(), destination: r.name().to_string(), ..Default::default() };
        for a in &plan.actions {
            match a {
                Action::Upload { size, .. } => {
                    rep.uploaded += 1;
                    rep.bytes_uploaded += size;
                }
                Action::Copy { .. } => rep.copied += 1,
                Action::Delete { key, .. } if !key.ends_with(".json") => rep.deleted += 1,
                Action::Keep { .. } => rep.skipped += 1,
                Action::Defer { .. } => rep.deferred += 1,
                Action::PutManifest { .. } => rep.manifests += 1,
                Action::Blocked { .. } => rep.blocked += 1,
                Action::Lock { .. } => rep.locked += 1,
                _ => {}
            }
        }
        return Ok((plan, rep));
    }
    // Uploads a killed run left unfinished: resume those still wanted, abort the others.
    let uploading: Vec<String> =
        plan.actions.iter().filter_map(|a| if let Action::Upload { key, .. } = a { Some(key.clone()) } else { None }).collect();
    if let Err(err) = r.store.abort_incomplete(r.layout(&project.name, &env).prefix(), &uploading) {
        tracing::warn!("could not clean up unfinished uploads: {err}");
    }
    let rep = execute(&plan, r, local, remote, ui);
    // What was done is recorded in the context's catalog, so nothing later in the command
    // lists the prefix or HEADs the copies again.
    match e.both_mut(r.name()) {
        (Some(local), Some(offsite)) => record(offsite, &plan, &rep, local),
        _ => e.remote_changed(r.name()),
    }
    Ok((plan, rep))
}

/// Records in `offsite` the actions of `plan` that `rep` says were done: new copies and
/// manifests (their metadata is what the upload checked: size, the manifest's SHA-256, the
/// class and the lock), locks set, copies deleted.
fn record(offsite: &mut EnvOffsite, plan: &SyncPlan, rep: &SyncReport, local: &Listing) {
    let manifests: std::collections::HashMap<String, &Manifest> = local.backups.iter().map(|b| (b.stem.to_string(), &b.manifest)).collect();
    let now = Utc::now();
    for (a, _) in plan.actions.iter().zip(&rep.done).filter(|(_, done)| **done) {
        let Some(stem) = Stem::parse(a.backup()) else { continue };
        // The manifest the new objects carry (only uploads, copies and manifests need it).
        let manifest = |offsite: &EnvOffsite| -> Option<Manifest> {
            match manifests.get(a.backup()) {
                Some(m) => Some((*m).clone()),
                None => offsite.cat.backups.get(&stem).and_then(|b| b.manifest.clone()),
            }
        };
        let new = |m: &Manifest, key: &str, class: StorageClass, lock: Option<crate::store::Lock>| ObjectMeta {
            key: key.to_string(),
            size: m.size,
            storage_class: Some(class),
            last_modified: Some(now),
            sha256: Some(m.sha256.clone()),
            content_sha256: None,
            thaw: if class.needs_thaw() { crate::store::Thaw::Needed } else { crate::store::Thaw::NotNeeded },
            lock,
        };
        match a {
            Action::Upload { tier, key, class, lock, .. } | Action::Copy { tier, to: key, class, lock, .. } => {
                let Some(m) = manifest(offsite) else { continue };
                let meta = new(&m, key, *class, *lock);
                offsite.heads.insert(key.clone(), meta.clone());
                let b = offsite.cat.entry(&stem);
                b.manifest.get_or_insert_with(|| m.clone());
                b.copies.insert(*tier, meta);
            }
            Action::PutManifest { tier, key, .. } => {
                let Some(m) = manifest(offsite) else { continue };
                let b = offsite.cat.entry(&stem);
                b.manifest.get_or_insert_with(|| m.clone());
                b.manifest_keys.insert(*tier, key.clone());
            }
            Action::Lock { key, lock, .. } => {
                if let Some(h) = offsite.heads.get_mut(key) {
                    h.lock = Some(*lock);
                }
            }
            Action::Delete { tier, key, .. } => {
                offsite.heads.remove(key);
                if let Some(b) = offsite.cat.backups.get_mut(&stem) {
                    b.copies.remove(tier);
                    b.manifest_keys.remove(tier);
                    if b.copies.is_empty() && b.manifest_keys.is_empty() {
                        offsite.cat.backups.remove(&stem);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
