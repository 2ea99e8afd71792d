//! The off-site plan: a pure function of the local listing, a destination's catalog (with HEAD
//! results), the policy and the clock. Every backup a remote tier keeps gets one copy in that
//! tier's folder with the tier's storage class (uploaded once, then server-side copied to the
//! other tiers), and leaves a folder when that tier no longer keeps it, but not before its
//! class's minimum billable duration. `sync` carries it out; `audit` reports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

mod action;

pub use action::{Action, DeferReason};

use crate::config::{Location, Project, TierName};
use crate::names::Stem;
use crate::records::listing::Listing;
use crate::records::manifest::Manifest;
use crate::remote::{Remote, RemoteCatalog, is_confirmed};
use crate::store::{ObjectLock, ObjectMeta};

/// The sync plan of one project/env.
#[derive(Debug, Clone, Serialize)]
pub struct SyncPlan {
    pub project: String,
    pub env: String,
    /// The destination it is for (`default` for `remote:`).
    pub destination: String,
    pub actions: Vec<Action>,
    /// Local backups this destination is not given, with why: a night whose backup another
    /// agent already put there (this host's copy of it was taken by a run killed before its
    /// upload, while the other agent did the night).
    #[serde(skip)]
    pub withheld: Vec<(String, String)>,
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
    // One backup a night (an hour, with an hourly tier) in the bucket: a local backup not there
    // yet, of a night whose backup another agent put there, stays on this host only.
    let slot = |t| crate::records::retention::slot(policy, t);
    let others_nights: std::collections::BTreeSet<_> = remote
        .backups
        .iter()
        .filter(|(s, _)| s.kind == crate::names::Kind::Database && !local.contains(s))
        .filter(|(_, b)| b.manifest.as_ref().is_none_or(|m| m.tags.is_empty()))
        .map(|(s, _)| slot(s.time))
        .collect();
    let another_agents_night = |b: &crate::records::listing::LocalBackup| {
        b.stem.kind == crate::names::Kind::Database
            && b.manifest.tags.is_empty()
            && others_nights.contains(&slot(b.stem.time))
            && !remote.backups.contains_key(&b.stem)
    };
    let withheld: Vec<(String, String)> = local
        .backups
        .iter()
        .filter(|b| another_agents_night(b))
        .map(|b| (b.stem.to_string(), format!("{} already holds another agent's backup of that night", r.name())))
        .collect();
    let filtered;
    let local = if withheld.is_empty() {
        local
    } else {
        filtered = Listing::of(local.backups.iter().filter(|b| !another_agents_night(b)).cloned().collect());
        &filtered
    };
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
    // Decided as local retention decides (plan::local::decide), over both sides.
    let remote_only: Vec<_> = remote.backups.values().filter_map(|b| Some(b.manifest.as_ref()?.candidate(&b.stem))).collect();
    let decisions = crate::plan::local::decide(local, &remote_only, policy, now);
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
            let lock = t
                .object_lock
                .map(|mode| ObjectLock { mode, until: crate::records::retention::lock_until(t, stem.time) })
                .filter(|l| l.holds(now));
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
    SyncPlan { project: project.name.clone(), env: env.to_string(), destination: r.name().to_string(), actions, withheld }
}

/// How far this host's clock runs ahead of `r`'s, when it does by more than an answer's `Date`
/// can be off (its one-second resolution and the trip back).
pub fn store_ahead(r: &Remote) -> Option<Duration> {
    r.store.clock_skew().filter(|s| *s > Duration::seconds(2))
}

#[cfg(test)]
mod tests;
