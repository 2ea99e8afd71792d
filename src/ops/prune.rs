//! Local retention carried out: deleting the backups the local plan lets go, through a
//! tombstone so a crash mid-way is finished by the next run and never leaves a half-deleted
//! backup behind; and cleaning up what crashed writers left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::context::EnvContext;
use crate::error::{IoContext, Result};
use crate::fsutil::{DirLock, sync_dir};
use crate::names::Kind;
use crate::plan::local::{Entry, EnvPlan, plan_env};
use crate::records::listing::{Listing, LocalBackup, TOMBSTONE_SUFFIX};
use crate::remote::RemoteState;

/// Deletes the planned backups (file, then manifest) and finishes deletions a crash interrupted.
/// Returns how many backups were deleted.
pub fn apply(dir: &Path, listing: &Listing, plan: &EnvPlan) -> Result<usize> {
    finish_interrupted(listing)?;
    let by_stem: std::collections::HashMap<String, &LocalBackup> = listing.backups.iter().map(|b| (b.stem.to_string(), b)).collect();
    let doomed: Vec<(&Entry, &LocalBackup)> =
        plan.deletions().map(|e| (e, *by_stem.get(&e.backup).expect("planned from this listing"))).collect();
    // In batches: every manifest of a batch becomes a tombstone (one fsync), then the files go
    // (one fsync), so a backlog of 50,000 costs 100 fsyncs, not 100,000.
    for batch in doomed.chunks(1000) {
        // No deletion starts after SIGINT or SIGTERM (a batch under way is finished: its
        // tombstones already commit it).
        crate::signals::check()?;
        crate::remote::lease::may_delete()?;
        for (_, b) in batch {
            std::fs::rename(&b.manifest_path, tombstone_path(&b.manifest_path)).at(&b.manifest_path)?;
        }
        sync_dir(dir)?;
        crate::fault::point("prune:mid-delete");
        for (e, b) in batch {
            remove_if_exists(&b.data_path)?;
            remove_if_exists(&tombstone_path(&b.manifest_path))?;
            tracing::info!("deleted {}/{} {} ({})", plan.project, plan.env, e.backup, e.reasons.join("; "));
        }
        sync_dir(dir)?;
    }
    Ok(doomed.len())
}

fn tombstone_path(manifest: &Path) -> PathBuf {
    let name = manifest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    manifest.with_file_name(format!(".{name}{TOMBSTONE_SUFFIX}"))
}

/// Completes deletions whose tombstone a crash left behind (found in `listing`, read under the
/// env lock).
pub fn finish_interrupted(listing: &Listing) -> Result<()> {
    for path in &listing.tombstones {
        let dir = path.parent().unwrap_or(Path::new("."));
        // The tombstone is a manifest: it names the data file to remove (checked like any other).
        if let Ok(m) = crate::records::manifest::Manifest::read(path) {
            remove_if_exists(&dir.join(&m.file))?;
        }
        remove_if_exists(path)?;
        tracing::info!("finished an interrupted deletion: {}", path.display());
    }
    Ok(())
}

/// Removes backup files of pgtier's own naming that have no manifest: a backup that crashed
/// between its file and its manifest, never reported as taken. Must run under the env lock.
/// The old scripts' `db_*.sql.gz` never match (pgtier names database dumps `.dump…` or `.tar…`).
pub fn clean_orphans(listing: &Listing) -> Result<usize> {
    let mut n = 0;
    let mut removed = std::collections::HashSet::new();
    for p in &listing.foreign {
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else { continue };
        let Some((stem, rest)) = crate::names::Stem::split_file_name(name) else { continue };
        let ours = match stem.kind {
            Kind::Database => rest.starts_with(".dump") || rest.starts_with(".tar"),
            Kind::Globals => rest.starts_with(".sql"),
        };
        // A manifest that exists but cannot be read (corrupt, lying) protects its file: that is
        // for a human to look at, never for pgtier to delete.
        let has_manifest = p.with_file_name(format!("{stem}.json")).exists();
        // Only a file pgtier can prove it wrote: its crash marker says so. A file of the same
        // name copied in by hand (for a recovery drill, say) is foreign and stays.
        let dir = p.parent().unwrap_or(Path::new("."));
        let marker = crate::fsutil::pending_marker(dir, &stem.to_string());
        let is_link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
        if ours && !rest.ends_with(".json") && !has_manifest && marker.exists() && !is_link {
            remove_if_exists(p)?;
            remove_if_exists(&marker)?;
            removed.insert(p.clone());
            tracing::info!(
                "removed {}: a backup that crashed before its manifest was written (it was never reported as taken)",
                p.display()
            );
            n += 1;
        }
    }
    // Markers whose backup got its manifest, or never got its file, have nothing left to prove.
    for m in &listing.markers {
        let Some(stem) = m.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix('.')?.strip_suffix(".pending")) else {
            continue;
        };
        let dir = m.parent().unwrap_or(Path::new("."));
        let prefix = format!("{stem}.");
        let has_file = listing
            .backups
            .iter()
            .map(|b| &b.data_path)
            .chain(&listing.foreign)
            .filter(|p| !removed.contains(*p))
            .any(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|name| name.starts_with(&prefix) && !name.ends_with(".json")));
        if !has_file || dir.join(format!("{stem}.json")).exists() {
            remove_if_exists(m)?;
        }
    }
    Ok(n)
}

/// Removes stale temporary files of crashed writers in `dir`; returns how many.
pub fn clean_partials(listing: &Listing) -> Result<usize> {
    let mut n = 0;
    for p in &listing.partials {
        if crate::fsutil::remove_if_stale(p)? {
            tracing::info!("removed {}, left by an interrupted backup", p.display());
            n += 1;
        }
    }
    Ok(n)
}

use crate::fsutil::remove_if_exists;

/// Prunes one project/env: lock, plan (reading the folder again under the lock), apply unless
/// `dry_run`; then tells `e` the folder changed.
pub fn prune_env(e: &mut EnvContext, now: DateTime<Utc>, remote: Option<&RemoteState>, dry_run: bool) -> Result<EnvPlan> {
    let (project, env) = (e.project, e.env.clone());
    if !e.dir.is_dir() {
        return Ok(EnvPlan { project: project.name.clone(), env, entries: Vec::new(), decisions: BTreeMap::new() });
    }
    let lock = DirLock::acquire(&e.dir)?;
    // Deletions are decided from the folder as read now, under the lock, never from a listing
    // proven current by its stamp alone: a hand's change within the clock's tick could hide
    // from the stamp, and a backup counted that is gone would let an older one go. The
    // context's copy is dropped first (holding both would double a large catalog's memory).
    drop(e.take_listing());
    let mut listing = Listing::under_lock(None, &e.dir, &project.name, &env, &lock)?;
    let plan = plan_env(&listing, project, &env, now, remote);
    if !dry_run {
        crate::remote::lease::may_delete()?;
        apply(&e.dir, &listing, &plan)?;
        clean_partials(&listing)?;
        clean_orphans(&listing)?;
        // What was read under the lock, less what was deleted, is the folder now.
        let gone: std::collections::HashSet<&str> = plan.deletions().map(|d| d.backup.as_str()).collect();
        listing.remove(&gone);
        listing.partials.clear();
        listing.tombstones.clear();
        listing.foreign.retain(|p| p.exists());
        listing.markers.retain(|p| p.exists());
        listing.changed_under(&e.dir, &lock);
    }
    e.adopt(listing);
    Ok(plan)
}
