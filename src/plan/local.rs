//! The local plan: which local backups of one project/env stay and which go, and why. A pure
//! function of the listing, the policy, the clock and what the destinations confirm (see
//! `retention` for the tiers); `prune` carries it out and `audit` reports it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Location, Policy, Project, TierName};
use crate::names::Kind;
use crate::names::Stem;
use crate::records::listing::Listing;
use crate::records::retention::{self, Candidate, Decision};
use crate::remote::RemoteState;

/// What happens to one local backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalAction {
    Keep,
    Delete,
    /// The policy wants it only off-site, but the remote copy is not confirmed yet.
    KeepUntilOffsite,
}

/// One local backup and its fate.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub backup: String,
    pub kind: Kind,
    pub created_at: DateTime<Utc>,
    pub file: String,
    pub size: u64,
    pub tiers: BTreeSet<TierName>,
    pub kept_by: BTreeSet<TierName>,
    pub tags: Vec<String>,
    pub action: LocalAction,
    pub reasons: Vec<String>,
}

/// The local plan of one project/env.
#[derive(Debug, Clone, Serialize)]
pub struct EnvPlan {
    pub project: String,
    pub env: String,
    pub entries: Vec<Entry>,
    /// Planner decisions (for sync and audit), by backup.
    #[serde(skip)]
    pub decisions: BTreeMap<Stem, Decision<Stem>>,
}

impl EnvPlan {
    /// Why nothing may be deleted, when the clock cannot be trusted.
    pub fn clock_problem(&self) -> Option<&str> {
        self.decisions.values().find(|d| d.frozen).and_then(|d| d.reasons.first()).map(String::as_str)
    }

    /// Entries to delete.
    pub fn deletions(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.action == LocalAction::Delete)
    }
}

/// Plans every kind of backup separately (databases, globals) against `policy`: the local ones
/// and `others` (backups only off-site).
pub fn decide(listing: &Listing, others: &[Candidate<Stem>], policy: &Policy, now: DateTime<Utc>) -> BTreeMap<Stem, Decision<Stem>> {
    let mut out = BTreeMap::new();
    for kind in [Kind::Database, Kind::Globals] {
        let mut cands: Vec<Candidate<Stem>> =
            listing.backups.iter().filter(|b| b.stem.kind == kind).map(|b| b.manifest.candidate(&b.stem)).collect();
        let local: BTreeSet<Stem> = cands.iter().map(|c| c.id.clone()).collect();
        cands.extend(others.iter().filter(|c| c.id.kind == kind && !local.contains(&c.id)).cloned());
        for d in retention::plan(&cands, policy, now) {
            out.insert(d.id.clone(), d);
        }
    }
    out
}

/// Plans the local side of one project/env. `remote` lists confirmed off-site copies, or is
/// None when no remote is configured (then remote tiers are kept on this host).
pub fn plan_env(listing: &Listing, project: &Project, env: &str, now: DateTime<Utc>, remote: Option<&RemoteState>) -> EnvPlan {
    let policy = &project.policy;
    let decisions = decide(listing, remote.map(|r| r.remote_only.as_slice()).unwrap_or(&[]), policy, now);
    let mut entries = Vec::new();
    for b in &listing.backups {
        let d = &decisions[&b.stem];
        let mut reasons = d.reasons.clone();
        let action = if d.keep_at(Location::Local, policy, remote.is_some()) {
            LocalAction::Keep
        } else {
            let wanted: BTreeSet<TierName> = d.remote_tiers(policy);
            let missing = match remote {
                Some(r) => r.missing(&b.stem, &wanted),
                None => wanted.iter().map(|t| t.to_string()).collect(),
            };
            if missing.is_empty() {
                if !wanted.is_empty() {
                    reasons.push("off-site copy confirmed (size and checksum): the local copy can go".into());
                }
                LocalAction::Delete
            } else {
                reasons.push(format!("kept on this host until its off-site copy in {} is confirmed", missing.join(", ")));
                LocalAction::KeepUntilOffsite
            }
        };
        entries.push(Entry {
            backup: b.stem.to_string(),
            kind: b.stem.kind,
            created_at: b.stem.time,
            file: b.manifest.file.clone(),
            size: b.manifest.size,
            tiers: d.tiers.clone(),
            kept_by: d.kept_by.clone(),
            tags: b.manifest.tags.clone(),
            action,
            reasons,
        });
    }
    EnvPlan { project: project.name.clone(), env: env.to_string(), entries, decisions }
}
