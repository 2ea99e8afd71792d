//! `pgtier report`: what exists and how it has gone, for a person to see at a glance. For each
//! project/env: the audit's findings, a year of backups day by day (tiers, where each copy
//! lives, its storage class and lock), size and rows over time, and the drills. Aggregated by
//! day, so 100,000 backups make the same page as 365. `html` renders it as one self-contained
//! page; the same data is the `--json` result.

pub mod html;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::audit::{Finding, audit_keys, audit_listing, audit_policy};
use crate::config::{Config, Location, Project, TierName};
use crate::context::Context;
use crate::error::Result;
use crate::remote::RemoteCatalog;

/// How many days the timeline shows.
pub const DAYS: i64 = 365;

#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub host: String,
    /// The first day of the timeline.
    pub since: NaiveDate,
    /// Findings about the policy files.
    pub policy_findings: Vec<Finding>,
    pub envs: Vec<EnvReport>,
}

#[derive(Debug, Serialize)]
pub struct EnvReport {
    pub project: String,
    pub env: String,
    pub findings: Vec<Finding>,
    /// Database backups on this host, all time.
    pub backups: usize,
    pub newest: Option<String>,
    pub newest_at: Option<DateTime<Utc>>,
    /// The configured destinations, in order (the timeline's rows after `local`).
    pub destinations: Vec<String>,
    /// Why a destination could not be read, by name.
    pub unreadable: BTreeMap<String, String>,
    /// The days of the last year that have backups (here or off-site), oldest first.
    pub days: Vec<Day>,
}

/// One day of one project/env.
#[derive(Debug, Default, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    /// Database backups taken that day (here or off-site).
    pub backups: u32,
    /// The tiers they belong to.
    pub tiers: Vec<TierName>,
    /// The newest backup of the day: its name, size and total rows.
    pub newest: String,
    pub size: u64,
    pub rows: Option<u64>,
    /// Whether a copy of that day is on this host.
    pub local: bool,
    /// Copies of that day per destination.
    pub offsite: BTreeMap<String, OffsiteDay>,
    pub drills_passed: u32,
    pub drills_failed: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct OffsiteDay {
    pub tiers: Vec<TierName>,
    pub storage_classes: Vec<String>,
    /// The latest lock end among the day's locked copies (from the tier's lock rule).
    pub locked_until: Option<DateTime<Utc>>,
}

/// Collects the report of the selected project/envs at `now`. Reads manifests and listings,
/// never writes: the audit part is the local one without re-hashing the files (retention,
/// manifests, freshness, drills, keys); `pgtier audit` also hashes every file and proves the
/// off-site locks.
pub fn collect(cfg: &Config, selected: &[(&Project, String)], now: DateTime<Utc>) -> Result<Report> {
    let since = (now - Duration::days(DAYS - 1)).date_naive();
    let mut policy_findings = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (p, _) in selected {
        if seen.insert(p.policy.name.clone()) {
            policy_findings.extend(audit_policy(&p.policy));
        }
    }
    let world = Context::new(cfg);
    let mut envs = Vec::new();
    for (project, env) in selected {
        let mut e = world.env(project, env);
        let state = e.remote_state().unwrap_or(None);
        let listing = e.listing()?;
        let mut findings = audit_listing(cfg, project, env, now, state.as_ref(), listing, false).findings;
        findings.extend(audit_keys(cfg, project, env));
        let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
        let mut newest_of_day: BTreeMap<NaiveDate, &crate::catalog::LocalBackup> = BTreeMap::new();
        for b in listing.databases() {
            let d = b.stem.time.date_naive();
            if d < since {
                continue;
            }
            let x = days.entry(d).or_insert_with(|| Day { date: d, ..Default::default() });
            x.backups += 1;
            x.local = true;
            merge_tiers(&mut x.tiers, &b.manifest.tiers);
            if b.stem.to_string() >= x.newest {
                x.newest = b.stem.to_string();
                x.size = b.manifest.size;
                newest_of_day.insert(d, b);
            }
            for v in &b.manifest.verifications {
                if v.ok {
                    x.drills_passed += 1;
                } else {
                    x.drills_failed += 1;
                }
            }
        }
        // Row counts are read for the day's newest backup only: at most one manifest a day.
        for (d, b) in newest_of_day {
            if let (Some(x), Ok(m)) = (days.get_mut(&d), b.full_manifest()) {
                x.rows = m.tables.as_ref().map(|t| t.values().sum());
            }
        }
        let mut unreadable = BTreeMap::new();
        for (name, r) in world.destinations() {
            let cat = match r.and_then(|r| RemoteCatalog::load(r, &project.name, env, Some(listing))) {
                Ok(c) => c,
                Err(err) => {
                    unreadable.insert(name.to_string(), err.to_string());
                    continue;
                }
            };
            for b in cat.backups.values().filter(|b| b.stem.kind == crate::names::Kind::Database && !b.copies.is_empty()) {
                let d = b.stem.time.date_naive();
                if d < since {
                    continue;
                }
                let x = days.entry(d).or_insert_with(|| Day { date: d, ..Default::default() });
                if !x.local && b.stem.to_string() > x.newest {
                    x.newest = b.stem.to_string();
                    x.backups += 1;
                    if let Some(m) = &b.manifest {
                        x.size = m.size;
                        x.rows = m.tables.as_ref().map(|t| t.values().sum());
                    }
                }
                let o = x.offsite.entry(name.to_string()).or_default();
                let tiers: Vec<TierName> = b.copies.keys().copied().collect();
                merge_tiers(&mut o.tiers, &tiers);
                merge_tiers(&mut x.tiers, &tiers);
                for (tier, meta) in &b.copies {
                    let class = meta.class().to_string();
                    if !o.storage_classes.contains(&class) {
                        o.storage_classes.push(class);
                    }
                    if let Some(t) =
                        project.policy.tiers.iter().find(|t| t.name == *tier && t.object_lock.is_some() && t.lives(Location::Remote))
                    {
                        let until = crate::retention::lock_until(t, b.stem.time);
                        o.locked_until = o.locked_until.max(Some(until));
                    }
                }
            }
        }
        let newest = listing.databases().next_back();
        envs.push(EnvReport {
            project: project.name.clone(),
            env: env.clone(),
            findings,
            backups: listing.databases().count(),
            newest: newest.map(|b| b.stem.to_string()),
            newest_at: newest.map(|b| b.stem.time),
            destinations: world.names().iter().map(|s| s.to_string()).collect(),
            unreadable,
            days: days.into_values().collect(),
        });
    }
    Ok(Report { generated_at: now, host: crate::alerts::hostname(), since, policy_findings, envs })
}

fn merge_tiers(into: &mut Vec<TierName>, from: &[TierName]) {
    for t in from {
        if !into.contains(t) {
            into.push(*t);
        }
    }
    into.sort();
}
