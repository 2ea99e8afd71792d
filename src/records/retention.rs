//! The retention planner: a pure function from (backups, policy, now) to a keep/delete decision
//! for every backup, with the rules that decided it. Nothing here touches files.
//!
//! Semantics: without an `hourly` tier every untagged backup is `daily`; with one, the first
//! backup of each UTC hour is `hourly` and the first of each UTC day is `daily` (a later backup
//! of an hour already taken belongs to no tier). A backup is also the `weekly` (`monthly`,
//! `yearly`) backup if it is the first of its ISO week (month, year), UTC. Tiers recorded in a
//! manifest when the backup was taken are never re-decided, so a promoted backup is never
//! superseded. `keep: N` keeps the representatives of the newest N periods that have one;
//! `keep_days: N` keeps members younger than N×24h measured from the newest backup, not the
//! clock; `keep_last: N` keeps the tier's newest N members whatever their dates, and on the
//! policy the newest N untagged backups.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::Serialize;

use crate::config::{Location, Policy, Retain, TierName};

/// One backup as the planner sees it.
#[derive(Debug, Clone)]
pub struct Candidate<I = String> {
    /// The backup's name (a `Stem` in pgtier; any ordered, printable id in tests).
    pub id: I,
    pub created_at: DateTime<Utc>,
    pub tags: Vec<String>,
    /// Tiers recorded when the backup was taken: authoritative. None only for backups whose
    /// tiers were never recorded; those are placed by first-of-period.
    pub recorded_tiers: Option<BTreeSet<TierName>>,
}

/// What the planner decided for one backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision<I = String> {
    pub id: I,
    pub created_at: DateTime<Utc>,
    /// Tiers the backup belongs to.
    pub tiers: BTreeSet<TierName>,
    /// Tiers whose retention keeps it.
    pub kept_by: BTreeSet<TierName>,
    /// Kept by its tag's count.
    pub tag_kept: bool,
    /// One of the newest backups the policy's `keep_last` keeps.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub last_kept: bool,
    /// The newest backup, kept whatever the policy says.
    pub newest: bool,
    pub keep: bool,
    /// Kept because the clock cannot be trusted (see `clock_problem`): nothing is deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub frozen: bool,
    pub reasons: Vec<String>,
}

impl<I> Decision<I> {
    /// Whether a copy belongs at `loc`. Without a remote, remote tiers are kept locally.
    pub fn keep_at(&self, loc: Location, policy: &Policy, remote_configured: bool) -> bool {
        match loc {
            Location::Local => {
                self.frozen
                    || self.newest
                    || self.tag_kept
                    || (self.last_kept && self.tiers.is_empty())
                    || self.kept_by.iter().any(|t| policy.tier(*t).is_some_and(|t| t.lives(Location::Local) || !remote_configured))
            }
            Location::Remote => remote_configured && !self.remote_tiers(policy).is_empty(),
        }
    }

    /// The tiers keeping this backup that live off-site.
    pub fn remote_tiers(&self, policy: &Policy) -> BTreeSet<TierName> {
        self.kept_by.iter().copied().filter(|t| policy.tier(*t).is_some_and(|t| t.lives(Location::Remote))).collect()
    }
}

/// When a locked tier's copy of a backup taken at `created` may first be deleted under the
/// tier's rule, and so when its Object Lock ends: `object_lock_days` after `created` when set;
/// `keep_days: N` → `created` + N days; `keep: N` periods → the end of the N-th period after the
/// backup's own (so a lock never ends before the policy could delete the copy, and outlives it
/// by less than a period).
pub fn lock_until(tier: &crate::config::Tier, created: DateTime<Utc>) -> DateTime<Utc> {
    match (tier.object_lock_days, tier.retain) {
        (Some(n), _) | (None, Retain::Days(n)) => created + Duration::days(i64::from(n)),
        (None, Retain::Count(n) | Retain::Last(n)) => period_start_after(tier.name, created, n + 1),
    }
}

/// The start of the `n`-th period of `tier` after the one `t` falls in (UTC).
fn period_start_after(tier: TierName, t: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    let day = t.date_naive();
    let start = match tier {
        TierName::Hourly => {
            let hour = day.and_hms_opt(t.hour(), 0, 0).expect("an hour of the day").and_utc();
            return hour + Duration::hours(i64::from(n));
        }
        TierName::Daily => day + Duration::days(i64::from(n)),
        TierName::Weekly => day - Duration::days(i64::from(day.weekday().num_days_from_monday())) + Duration::weeks(i64::from(n)),
        TierName::Monthly => {
            let months = day.year() * 12 + day.month0() as i32 + n as i32;
            chrono::NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1).expect("first of a month")
        }
        TierName::Yearly => chrono::NaiveDate::from_ymd_opt(day.year() + n as i32, 1, 1).expect("first of a year"),
    };
    start.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// The period of `tier` that `t` falls in, as a sortable key.
pub fn period(tier: TierName, t: DateTime<Utc>) -> (i32, u32, u32) {
    match tier {
        TierName::Hourly => (t.year(), t.ordinal(), t.hour()),
        TierName::Daily => (t.year(), t.month(), t.day()),
        TierName::Weekly => {
            let w = t.iso_week();
            (w.year(), w.week(), 0)
        }
        TierName::Monthly => (t.year(), t.month(), 0),
        TierName::Yearly => (t.year(), 0, 0),
    }
}

fn period_label(tier: TierName, p: (i32, u32, u32)) -> String {
    match tier {
        TierName::Hourly => match chrono::NaiveDate::from_yo_opt(p.0, p.1) {
            Some(d) => format!("{}T{:02}", d.format("%Y-%m-%d"), p.2),
            None => format!("{:04}-{:03}T{:02}", p.0, p.1, p.2),
        },
        TierName::Daily => format!("{:04}-{:02}-{:02}", p.0, p.1, p.2),
        TierName::Weekly => format!("{:04}-W{:02}", p.0, p.1),
        TierName::Monthly => format!("{:04}-{:02}", p.0, p.1),
        TierName::Yearly => format!("{:04}", p.0),
    }
}

fn period_noun(tier: TierName, n: u32) -> String {
    let noun = match tier {
        TierName::Hourly => "hour",
        TierName::Daily => "day",
        TierName::Weekly => "week",
        TierName::Monthly => "month",
        TierName::Yearly => "year",
    };
    if n == 1 { format!("{n} {noun}") } else { format!("{n} {noun}s") }
}

/// The slot a scheduled backup fills: its UTC hour when the policy keeps an hourly tier, else
/// its UTC day. One agent's run fills a slot once; another agent's run finds it filled.
pub fn slot(policy: &Policy, t: DateTime<Utc>) -> (TierName, (i32, u32, u32)) {
    let tier = if policy.hourly() { TierName::Hourly } else { TierName::Daily };
    (tier, period(tier, t))
}

/// Whether every untagged backup belongs to `tier` (daily, when the policy has no hourly tier)
/// rather than only the first of each period.
fn holds_every_backup(tier: TierName, policy: &Policy) -> bool {
    tier == TierName::Daily && !policy.hourly()
}

/// The members of a tier that holds the first backup of each period, as (period, index into `untagged`, sorted by time): the
/// backups recorded in the tier; in a period where none is, the first backup of the period if
/// its tiers were never recorded. A recorded backup is never superseded, and a backup is never
/// promoted because the one recorded before it is gone from this host.
fn representatives<I>(untagged: &[&Candidate<I>], tier: TierName) -> Vec<((i32, u32, u32), usize)> {
    let mut by_period: BTreeMap<(i32, u32, u32), Vec<usize>> = BTreeMap::new();
    for (i, c) in untagged.iter().enumerate() {
        by_period.entry(period(tier, c.created_at)).or_default().push(i);
    }
    let mut out = Vec::new();
    for (p, idx) in by_period {
        let recorded: Vec<usize> =
            idx.iter().copied().filter(|&i| untagged[i].recorded_tiers.as_ref().is_some_and(|r| r.contains(&tier))).collect();
        if !recorded.is_empty() {
            out.extend(recorded.into_iter().map(|i| (p, i)));
        } else if untagged[idx[0]].recorded_tiers.is_none() {
            out.push((p, idx[0]));
        }
    }
    out
}

/// The tiers a backup taken at `created_at` joins, given the backups that already exist.
pub fn tiers_for_new<I>(existing: &[Candidate<I>], created_at: DateTime<Utc>, policy: &Policy) -> BTreeSet<TierName> {
    let mut tiers = BTreeSet::new();
    for tier in policy.tiers.iter().map(|t| t.name) {
        if holds_every_backup(tier, policy) {
            tiers.insert(tier);
            continue;
        }
        let p = period(tier, created_at);
        let taken = existing
            .iter()
            .filter(|c| c.tags.is_empty() && period(tier, c.created_at) == p)
            .any(|c| c.recorded_tiers.as_ref().is_some_and(|r| r.contains(&tier)) || c.created_at <= created_at);
        if !taken {
            tiers.insert(tier);
        }
    }
    tiers
}

/// How far a backup may be dated after `now` before the clock is taken to be behind (clocks of
/// two hosts writing one remote differ a little).
const CLOCK_SLACK_MINUTES: i64 = 10;

/// Two backups this far apart can only be a clock that jumped forward.
const CLOCK_JUMP_DAYS: i64 = 366;

/// Why the clock cannot be trusted to delete anything: a backup dated after `now` (the clock is
/// behind, or `--now` is in the past), or two backups so far apart that only a forward jump
/// explains them.
pub fn clock_problem<I: std::fmt::Display>(candidates: &[Candidate<I>], now: DateTime<Utc>) -> Option<String> {
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    if let Some(c) =
        candidates.iter().filter(|c| c.created_at > now + chrono::Duration::minutes(CLOCK_SLACK_MINUTES)).max_by_key(|c| c.created_at)
    {
        return Some(format!(
            "backup {} is dated {}, after the clock ({}): the clock is behind or jumped back; nothing is deleted until it is right (check the clock and NTP, or the time given to the command)",
            c.id,
            fmt(c.created_at),
            fmt(now)
        ));
    }
    let mut times: Vec<&Candidate<I>> = candidates.iter().collect();
    times.sort_by_key(|c| c.created_at);
    if let Some([before, after]) = times.windows(2).find(|w| w[1].created_at - w[0].created_at > chrono::Duration::days(CLOCK_JUMP_DAYS)) {
        return Some(format!(
            "backups {} ({}) and {} ({}) are {} days apart: the clock jumped forward; nothing is deleted until the backups taken under the wrong clock are deleted by hand (after a real pause of more than a year, delete the ones before it)",
            before.id,
            fmt(before.created_at),
            after.id,
            fmt(after.created_at),
            (after.created_at - before.created_at).num_days()
        ));
    }
    None
}

/// Plans every candidate against `policy` as of `now`. When the clock cannot be trusted
/// (`clock_problem`), every backup is kept in every tier it was recorded in, so nothing is
/// deleted here or off-site while uploads go on.
pub fn plan<I: Clone + Ord + std::fmt::Display>(candidates: &[Candidate<I>], policy: &Policy, now: DateTime<Utc>) -> Vec<Decision<I>> {
    if let Some(why) = clock_problem(candidates, now) {
        let mut decisions: Vec<Decision<I>> = candidates
            .iter()
            .map(|c| Decision {
                id: c.id.clone(),
                created_at: c.created_at,
                tiers: c.recorded_tiers.clone().unwrap_or_default(),
                kept_by: c.recorded_tiers.clone().unwrap_or_default(),
                tag_kept: !c.tags.is_empty(),
                last_kept: false,
                newest: false,
                keep: true,
                frozen: true,
                reasons: vec![why.clone()],
            })
            .collect();
        decisions.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        return decisions;
    }
    let mut decisions = plan_past(candidates, policy);
    decisions.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    decisions
}

fn plan_past<I: Clone + Ord + std::fmt::Display>(candidates: &[Candidate<I>], policy: &Policy) -> Vec<Decision<I>> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| candidates[a].created_at.cmp(&candidates[b].created_at).then_with(|| candidates[a].id.cmp(&candidates[b].id)));
    let mut decisions: Vec<Decision<I>> = order
        .iter()
        .map(|&i| {
            let c = &candidates[i];
            Decision {
                id: c.id.clone(),
                created_at: c.created_at,
                tiers: BTreeSet::new(),
                kept_by: BTreeSet::new(),
                tag_kept: false,
                last_kept: false,
                newest: false,
                keep: false,
                frozen: false,
                reasons: Vec::new(),
            }
        })
        .collect();
    let sorted: Vec<&Candidate<I>> = order.iter().map(|&i| &candidates[i]).collect();
    let untagged_idx: Vec<usize> = (0..sorted.len()).filter(|&i| sorted[i].tags.is_empty()).collect();
    let untagged: Vec<&Candidate<I>> = untagged_idx.iter().map(|&i| sorted[i]).collect();

    if let Some(&newest_untagged) = untagged.last() {
        let reference = newest_untagged.created_at;
        for tier in &policy.tiers {
            // (period, index into `sorted`) of every member of the tier.
            let members: Vec<((i32, u32, u32), usize)> = if holds_every_backup(tier.name, policy) {
                // Every backup but those recorded without the daily tier (taken while the policy
                // had an hourly tier): dropping that tier must not make its hourlies dailies.
                untagged_idx
                    .iter()
                    .filter(|&&i| sorted[i].recorded_tiers.as_ref().is_none_or(|r| r.contains(&TierName::Daily)))
                    .map(|&i| (period(TierName::Daily, sorted[i].created_at), i))
                    .collect()
            } else {
                representatives(&untagged, tier.name).into_iter().map(|(p, u)| (p, untagged_idx[u])).collect()
            };
            for (_, i) in &members {
                decisions[*i].tiers.insert(tier.name);
            }
            match tier.retain {
                Retain::Count(n) => {
                    let periods: BTreeSet<_> = members.iter().map(|(p, _)| *p).collect();
                    let kept: BTreeSet<_> = periods.iter().rev().take(n as usize).copied().collect();
                    for (p, i) in &members {
                        let label = period_label(tier.name, *p);
                        if kept.contains(p) {
                            decisions[*i].kept_by.insert(tier.name);
                            decisions[*i].reasons.push(format!(
                                "{}: {label} is one of the newest {}",
                                tier.name,
                                period_noun(tier.name, n)
                            ));
                        } else {
                            decisions[*i].reasons.push(format!(
                                "{}: {label} is older than the newest {}",
                                tier.name,
                                period_noun(tier.name, n)
                            ));
                        }
                    }
                }
                Retain::Last(_) => {}
                Retain::Days(n) => {
                    let horizon = Duration::days(i64::from(n));
                    for (_, i) in &members {
                        let age = reference - decisions[*i].created_at;
                        if age < horizon {
                            decisions[*i].kept_by.insert(tier.name);
                            decisions[*i].reasons.push(format!("{}: younger than {n} days before the newest backup", tier.name));
                        } else {
                            decisions[*i].reasons.push(format!(
                                "{}: {} days older than the newest backup (keeps {n})",
                                tier.name,
                                age.num_days()
                            ));
                        }
                    }
                }
            }
            // `keep_last`: the tier's newest N members, whatever their dates.
            if let Some(n) = tier.keep_last {
                let mut newest: Vec<usize> = members.iter().map(|(_, i)| *i).collect();
                newest.sort_unstable();
                for i in newest.into_iter().rev().take(n as usize) {
                    if decisions[i].kept_by.insert(tier.name) || matches!(tier.retain, Retain::Last(_)) {
                        decisions[i].reasons.push(format!("{}: one of its newest {n} backups (keep_last)", tier.name));
                    }
                }
            }
        }
        // The policy's `keep_last`: the newest N untagged backups, in every tier they belong to.
        if let Some(n) = policy.keep_last {
            for &i in untagged_idx.iter().rev().take(n as usize) {
                let d = &mut decisions[i];
                d.last_kept = true;
                let tiers = d.tiers.clone();
                d.kept_by.extend(tiers);
                d.reasons.push(format!("keep_last: one of the newest {n} backups"));
            }
        }
        // Tiers the backup was recorded in but the policy no longer has.
        for (u, c) in untagged.iter().enumerate() {
            let d = &mut decisions[untagged_idx[u]];
            for t in c.recorded_tiers.iter().flatten() {
                if policy.tier(*t).is_none() {
                    d.reasons.push(format!("{t}: not a tier of policy {}", policy.name));
                }
            }
        }
    }

    let mut by_tag: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in sorted.iter().enumerate() {
        for t in &c.tags {
            by_tag.entry(t.as_str()).or_default().push(i);
        }
    }
    for (tag, idx) in by_tag {
        let keep_from = idx.len().saturating_sub(policy.tagged_keep as usize);
        for (k, &i) in idx.iter().enumerate() {
            if k >= keep_from {
                decisions[i].tag_kept = true;
                decisions[i].reasons.push(format!("tag {tag}: one of the newest {}", policy.tagged_keep));
            } else {
                decisions[i].reasons.push(format!("tag {tag}: older than the newest {}", policy.tagged_keep));
            }
        }
    }

    if let Some(last) = decisions.last_mut() {
        last.newest = true;
        last.reasons.push("newest backup: always kept".into());
    }
    for d in &mut decisions {
        d.keep = d.newest || d.tag_kept || d.last_kept || !d.kept_by.is_empty();
    }
    decisions
}

/// `policy simulate`: a backup every `every` (one a day by default) over the `days` days ending
/// at 02:00 UTC of `end`'s date, each promoted as the runs would have done it, planned as of the
/// last one.
pub fn simulate(policy: &Policy, days: u32, every: Duration, end: DateTime<Utc>) -> Vec<Decision> {
    let last = end.date_naive().and_hms_opt(2, 0, 0).expect("02:00 exists").and_utc();
    let span = Duration::days(i64::from(days.max(1)));
    let every = every.max(Duration::minutes(1));
    let count = (span.num_seconds() / every.num_seconds()).max(1);
    let tiers: Vec<TierName> = policy.tiers.iter().map(|t| t.name).collect();
    let mut previous: Option<DateTime<Utc>> = None;
    let mut cands = Vec::with_capacity(count as usize);
    for k in (0..count).rev() {
        let t = last - every * (k as i32);
        // Chronological: the first of a period is the one whose period differs from the
        // previous backup's.
        let recorded = tiers
            .iter()
            .copied()
            .filter(|tier| holds_every_backup(*tier, policy) || previous.is_none_or(|p| period(*tier, p) != period(*tier, t)))
            .collect();
        cands.push(Candidate {
            id: t.format("db_%Y%m%d_%H%M%S").to_string(),
            created_at: t,
            tags: Vec::new(),
            recorded_tiers: Some(recorded),
        });
        previous = Some(t);
    }
    plan(&cands, policy, last)
}

#[cfg(test)]
mod tests;
