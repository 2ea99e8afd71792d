//! Syncing tiers off-site: the off-site plan (`plan::offsite`) carried out. `execute` uploads,
//! copies, writes manifests and, last, deletes; `sync_env` plans and executes one env against
//! one destination through the command's context and records what changed in it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::plan::offsite::{Action, SyncPlan, plan, store_ahead};

use crate::config::StorageClass;
use crate::context::EnvContext;
use crate::names::Stem;
use crate::records::listing::Listing;
use crate::records::manifest::Manifest;
use crate::remote::{EnvOffsite, Remote, RemoteCatalog};
use crate::store::{ObjectMeta, PutOptions};
use crate::ui::Ui;

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

/// Carries out a plan: uploads, then copies, then manifests, then deletes. A failed upload or
/// copy stops the deletes of this run, so a backup never loses its last off-site copy.
pub fn execute(plan: &SyncPlan, r: &Remote, local: &Listing, remote: &RemoteCatalog, ui: &Ui) -> SyncReport {
    let mut rep =
        SyncReport { project: plan.project.clone(), env: plan.env.clone(), destination: plan.destination.clone(), ..Default::default() };
    let local_by_id: std::collections::HashMap<String, &crate::records::listing::LocalBackup> =
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
    for (backup, why) in &plan.withheld {
        tracing::warn!("{}/{env}: {backup} stays on this host only: {why}", project.name);
    }
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
        let new = |m: &Manifest, key: &str, class: StorageClass, lock: Option<crate::store::ObjectLock>| ObjectMeta {
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
