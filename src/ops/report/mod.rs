//! `pgtier report`: what exists and how it has gone, for a person to see at a glance. For each
//! project/env: the audit's findings, a table of tiers by place (copies, newest, oldest, storage
//! class, lock, last drill), the backups day by day (tiers, where each copy lives, its storage
//! class and lock) over the span the data covers (up to a year), size and rows over time, and
//! the drills. Aggregated by day, so 100,000 backups make the same page as 365. `html` renders
//! it as one self-contained page; the same data is the `--json` result.

pub mod html;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::config::{Config, Location, Project, TierName};
use crate::context::Context;
use crate::error::Result;
use crate::names::Stem;
use crate::ops::audit::{Finding, audit_keys, audit_listing, audit_policy};
use crate::records::manifest::{Manifest, Verification};
use crate::remote::RemoteCatalog;

/// The longest span the timeline shows: a year.
pub const DAYS: i64 = 365;
/// The shortest: two weeks, so a first night is not one bar across the page.
pub const MIN_DAYS: i64 = 14;
/// Failed drills listed by name per project/env (the newest first).
const FAILED_DRILLS: usize = 5;

#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub host: String,
    /// The first day of the timeline: the oldest day with a backup, at most a year back and at
    /// least two weeks back.
    pub since: NaiveDate,
    /// How many days the timeline spans (`since` to the day of `generated_at`).
    pub span_days: i64,
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
    /// This host, then each destination, with what each tier holds there (all time).
    pub places: Vec<Place>,
    /// The newest failed drills (at most five), newest first.
    pub failed_drills: Vec<DrillRef>,
    /// The days of the timeline that have backups (here or off-site), oldest first.
    pub days: Vec<Day>,
}

/// This host or one destination.
#[derive(Debug, Serialize)]
pub struct Place {
    /// `local`, or the destination's name.
    pub name: String,
    /// The folder (here) or the destination's URL as configured.
    pub url: String,
    /// What a person reads: `this host: /var/backups/pgtier/shop/production`,
    /// `aws: s3://bucket/prefix` (the URL alone for `remote:`).
    pub label: String,
    /// One entry per tier that lives there, in tier order (`copies` 0 when it holds none).
    pub tiers: Vec<Holding>,
}

/// What one tier holds in one place.
#[derive(Debug, Serialize)]
pub struct Holding {
    pub tier: TierName,
    pub copies: usize,
    pub newest: Option<String>,
    pub newest_at: Option<DateTime<Utc>>,
    pub oldest: Option<String>,
    pub oldest_at: Option<DateTime<Utc>>,
    /// The storage classes of its copies (`local disk` here).
    pub storage_classes: Vec<String>,
    /// The tier's lock rule off-site (`COMPLIANCE`, `GOVERNANCE`), and the latest lock end
    /// among its copies.
    pub lock: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    /// The newest drill of a backup this tier holds here.
    pub last_drill: Option<DrillRef>,
}

/// One drill of one backup.
#[derive(Debug, Clone, Serialize)]
pub struct DrillRef {
    pub backup: String,
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// `local` or `remote`: where the drill read the backup from.
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DrillRef {
    fn of(backup: &Stem, v: &Verification) -> DrillRef {
        DrillRef { backup: backup.to_string(), at: v.at, ok: v.ok, from: v.from.clone(), error: v.error.clone() }
    }
}

impl Holding {
    fn new(tier: TierName) -> Holding {
        Holding {
            tier,
            copies: 0,
            newest: None,
            newest_at: None,
            oldest: None,
            oldest_at: None,
            storage_classes: Vec::new(),
            lock: None,
            locked_until: None,
            last_drill: None,
        }
    }

    /// Counts one backup in: its name and time, its class and its newest drill.
    fn add(&mut self, stem: &Stem, class: &str, manifest: Option<&Manifest>) {
        self.copies += 1;
        if self.newest_at.is_none_or(|t| stem.time > t) {
            (self.newest, self.newest_at) = (Some(stem.to_string()), Some(stem.time));
        }
        if self.oldest_at.is_none_or(|t| stem.time < t) {
            (self.oldest, self.oldest_at) = (Some(stem.to_string()), Some(stem.time));
        }
        if !self.storage_classes.iter().any(|c| c == class) {
            self.storage_classes.push(class.to_string());
        }
        if let Some(v) = manifest.and_then(|m| m.verifications.iter().max_by_key(|v| v.at))
            && self.last_drill.as_ref().is_none_or(|d| v.at > d.at)
        {
            self.last_drill = Some(DrillRef::of(stem, v));
        }
    }
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
    let year_ago = (now - Duration::days(DAYS - 1)).date_naive();
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
        findings.extend(audit_keys(project, listing));
        let tiers_at = |place: Location| -> Vec<Holding> {
            project.policy.tiers.iter().filter(|t| t.lives(place)).map(|t| Holding::new(t.name)).collect()
        };
        let mut drills: Vec<DrillRef> = Vec::new();
        let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
        let mut newest_of_day: BTreeMap<NaiveDate, &crate::records::listing::LocalBackup> = BTreeMap::new();
        let dir = cfg.env_dir(&project.name, env);
        let mut here = Place {
            name: "local".into(),
            label: format!("this host: {}", dir.display()),
            url: dir.display().to_string(),
            tiers: tiers_at(Location::Local),
        };
        for b in listing.databases() {
            for t in &b.manifest.tiers {
                if let Some(h) = here.tiers.iter_mut().find(|h| h.tier == *t) {
                    h.add(&b.stem, "local disk", Some(&b.manifest));
                }
            }
            drills.extend(b.manifest.verifications.iter().filter(|v| !v.ok).map(|v| DrillRef::of(&b.stem, v)));
            let d = b.stem.time.date_naive();
            if d < year_ago {
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
        // Drills of backups this host has were counted above; off-site only ones below.
        let here_stems: std::collections::BTreeSet<&Stem> = listing.databases().map(|b| &b.stem).collect();
        let mut places = vec![here];
        let mut unreadable = BTreeMap::new();
        for (rc, (name, r)) in cfg.remotes.iter().zip(world.destinations()) {
            let url = rc.url.to_string();
            let label = if cfg.remotes.len() == 1 && name == "default" { url.clone() } else { format!("{name}: {url}") };
            let mut place = Place { name: name.to_string(), label, url, tiers: tiers_at(Location::Remote) };
            place.tiers.retain(|h| rc.tiers.as_ref().is_none_or(|held| held.contains(&h.tier)));
            let cat = match r.and_then(|r| RemoteCatalog::load(r, &project.name, env, Some(listing))) {
                Ok(c) => c,
                Err(err) => {
                    unreadable.insert(name.to_string(), err.to_string());
                    places.push(place);
                    continue;
                }
            };
            for b in cat.backups.values().filter(|b| b.stem.kind == crate::names::Kind::Database && !b.copies.is_empty()) {
                let locked_until = |tier: &TierName| {
                    project
                        .policy
                        .tiers
                        .iter()
                        .find(|t| t.name == *tier && t.object_lock.is_some() && t.lives(Location::Remote))
                        .map(|t| (t.object_lock, crate::records::retention::lock_until(t, b.stem.time)))
                };
                for (tier, meta) in &b.copies {
                    let Some(h) = place.tiers.iter_mut().find(|h| h.tier == *tier) else { continue };
                    h.add(&b.stem, &meta.class().to_string(), b.manifest.as_ref());
                    if let Some((mode, until)) = locked_until(tier) {
                        h.lock = mode.map(|m| m.as_str().to_string());
                        h.locked_until = h.locked_until.max(Some(until));
                    }
                }
                if !here_stems.contains(&b.stem)
                    && let Some(m) = &b.manifest
                {
                    drills.extend(m.verifications.iter().filter(|v| !v.ok).map(|v| DrillRef::of(&b.stem, v)));
                }
                let d = b.stem.time.date_naive();
                if d < year_ago {
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
                    if let Some((_, until)) = locked_until(tier) {
                        o.locked_until = o.locked_until.max(Some(until));
                    }
                }
            }
            places.push(place);
        }
        drills.sort_by_key(|d| std::cmp::Reverse(d.at));
        drills.truncate(FAILED_DRILLS);
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
            places,
            failed_drills: drills,
            days: days.into_values().collect(),
        });
    }
    // The timeline fits the data: from the oldest day with a backup, a year at most.
    let today = now.date_naive();
    let oldest = envs.iter().filter_map(|e| e.days.first()).map(|d| d.date).min().unwrap_or(today);
    let since = oldest.max(year_ago).min(today - Duration::days(MIN_DAYS - 1));
    let span_days = (today - since).num_days() + 1;
    Ok(Report { generated_at: now, host: crate::tell::alerts::hostname(), since, span_days, policy_findings, envs })
}

fn merge_tiers(into: &mut Vec<TierName>, from: &[TierName]) {
    for t in from {
        if !into.contains(t) {
            into.push(*t);
        }
    }
    into.sort();
}
