//! Table-driven cases and property tests of the planner.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::config::raw;

fn policy(yaml: &str) -> Policy {
    let raw: raw::Policy = serde_norway::from_str(yaml).unwrap();
    Policy::from_raw("test", None, raw).unwrap()
}

fn default_policy() -> Policy {
    policy(crate::config::BUILTIN_DEFAULT)
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// Backups as nightly runs would have made them: tiers recorded at creation.
fn nightly(times: &[DateTime<Utc>], policy: &Policy) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let tiers = tiers_for_new(&out, *t, policy);
        out.push(Candidate { id: format!("b{i:05}"), created_at: *t, tags: vec![], recorded_tiers: Some(tiers) });
    }
    out
}

fn days(from: DateTime<Utc>, n: i64) -> Vec<DateTime<Utc>> {
    (0..n).map(|i| from + Duration::days(i)).collect()
}

fn kept(ds: &[Decision]) -> Vec<DateTime<Utc>> {
    ds.iter().filter(|d| d.keep).map(|d| d.created_at).collect()
}

fn decision_at(ds: &[Decision], t: DateTime<Utc>) -> &Decision {
    ds.iter().find(|d| d.created_at == t).unwrap()
}

#[test]
fn default_policy_after_a_year_of_nights() {
    let p = default_policy();
    let times = days(at(2024, 1, 1, 2), 366);
    let last = *times.last().unwrap();
    let ds = plan(&nightly(&times, &p), &p, last);
    // 30 dailies, plus 12 weeklies and 12 monthlies older than them (some overlap).
    let dailies = ds.iter().filter(|d| d.kept_by.contains(&TierName::Daily)).count();
    assert_eq!(dailies, 30);
    let weeklies: Vec<_> = ds.iter().filter(|d| d.kept_by.contains(&TierName::Weekly)).collect();
    assert_eq!(weeklies.len(), 12);
    assert!(weeklies.iter().all(|d| d.created_at.weekday() == chrono::Weekday::Mon || d.created_at == times[0]));
    let monthlies: Vec<_> = ds.iter().filter(|d| d.kept_by.contains(&TierName::Monthly)).collect();
    assert_eq!(monthlies.len(), 12);
    assert!(monthlies.iter().all(|d| d.created_at.day() == 1));
    assert!(ds.last().unwrap().newest && ds.last().unwrap().keep);
    // Local copies: only the dailies (the others live off-site when a remote exists).
    let local = ds.iter().filter(|d| d.keep_at(Location::Local, &p, true)).count();
    assert_eq!(local, 30);
    // With no remote, every kept backup stays on the host.
    let local_no_remote = ds.iter().filter(|d| d.keep_at(Location::Local, &p, false)).count();
    assert_eq!(local_no_remote, ds.iter().filter(|d| d.keep).count());
}

#[test]
fn year_boundary_and_iso_week_53() {
    let p = policy("tiers: {daily: {keep: 1}, weekly: {keep: 10}, monthly: {keep: 10}, yearly: {keep: 10}}");
    // 2020-12-28 (Mon) .. 2021-01-03 (Sun) is ISO week 2020-W53.
    let times = days(at(2020, 12, 27, 2), 9); // Sun 27 Dec .. Mon 4 Jan
    let ds = plan(&nightly(&times, &p), &p, *times.last().unwrap());
    let weekly: Vec<_> = ds.iter().filter(|d| d.tiers.contains(&TierName::Weekly)).map(|d| d.created_at).collect();
    assert_eq!(weekly, vec![at(2020, 12, 27, 2), at(2020, 12, 28, 2), at(2021, 1, 4, 2)]);
    let monthly: Vec<_> = ds.iter().filter(|d| d.tiers.contains(&TierName::Monthly)).map(|d| d.created_at).collect();
    assert_eq!(monthly, vec![at(2020, 12, 27, 2), at(2021, 1, 1, 2)]);
    let yearly: Vec<_> = ds.iter().filter(|d| d.tiers.contains(&TierName::Yearly)).map(|d| d.created_at).collect();
    assert_eq!(yearly, vec![at(2020, 12, 27, 2), at(2021, 1, 1, 2)]);
    // 1 Jan 2021 is in ISO week 2020-W53, whose first backup was 28 Dec: not weekly.
    assert!(!decision_at(&ds, at(2021, 1, 1, 2)).tiers.contains(&TierName::Weekly));
    assert!(decision_at(&ds, at(2020, 12, 28, 2)).reasons.iter().any(|r| r.contains("2020-W53")));
}

#[test]
fn counts_reach_back_over_gaps() {
    let p = policy("tiers: {daily: {keep: 2}, weekly: {keep: 3}}");
    // Backups on the Mondays of weeks 1, 2, then a five-week gap, then weeks 8 and 9.
    let times = vec![at(2024, 1, 1, 2), at(2024, 1, 8, 2), at(2024, 2, 19, 2), at(2024, 2, 26, 2)];
    let ds = plan(&nightly(&times, &p), &p, at(2024, 2, 26, 3));
    assert_eq!(kept(&ds), vec![at(2024, 1, 8, 2), at(2024, 2, 19, 2), at(2024, 2, 26, 2)]);
}

#[test]
fn several_backups_a_day_count_as_one_day() {
    let p = policy("tiers: {daily: {keep: 2}}");
    let times = vec![at(2024, 3, 1, 2), at(2024, 3, 2, 2), at(2024, 3, 2, 14), at(2024, 3, 3, 2), at(2024, 3, 3, 9)];
    let ds = plan(&nightly(&times, &p), &p, at(2024, 3, 4, 0));
    assert_eq!(kept(&ds), vec![at(2024, 3, 2, 2), at(2024, 3, 2, 14), at(2024, 3, 3, 2), at(2024, 3, 3, 9)]);
}

#[test]
fn a_stalled_schedule_never_ages_out_its_last_backups() {
    let p = policy("tiers: {daily: {keep_days: 7}}");
    let times = days(at(2024, 1, 1, 2), 20);
    // Planned 200 days after the last backup: the last 7 days of backups are still kept.
    let ds = plan(&nightly(&times, &p), &p, at(2024, 8, 1, 0));
    assert_eq!(kept(&ds), days(at(2024, 1, 14, 2), 7));
}

#[test]
fn tags_have_their_own_count_and_never_join_tiers() {
    let p = policy("tagged_keep: 2\ntiers: {daily: {keep: 1}, weekly: {keep: 5}}");
    let mut cands = Vec::new();
    // A pre-deploy backup on Monday would be first of the week, but tags never join tiers.
    for (i, d) in [1u32, 2, 3].iter().enumerate() {
        cands.push(Candidate {
            id: format!("t{i}"),
            created_at: at(2024, 1, *d, 1),
            tags: vec!["pre-deploy".into()],
            recorded_tiers: Some(BTreeSet::new()),
        });
    }
    let untagged = [at(2024, 1, 2, 2), at(2024, 1, 3, 2)];
    for (i, t) in untagged.iter().enumerate() {
        let tiers = tiers_for_new(&cands, *t, &p);
        cands.push(Candidate { id: format!("u{i}"), created_at: *t, tags: vec![], recorded_tiers: Some(tiers) });
    }
    let ds = plan(&cands, &p, at(2024, 1, 4, 0));
    let weekly: Vec<_> = ds.iter().filter(|d| d.tiers.contains(&TierName::Weekly)).map(|d| d.id.as_str()).collect();
    assert_eq!(weekly, vec!["u0"]);
    let kept_ids: Vec<_> = ds.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect();
    assert_eq!(kept_ids, vec!["t1", "u0", "t2", "u1"]);
    assert!(ds.iter().find(|d| d.id == "t0").unwrap().reasons.iter().any(|r| r.contains("tag pre-deploy: older")));
}

#[test]
fn recorded_tiers_are_never_superseded() {
    let p = policy("tiers: {daily: {keep: 1}, weekly: {keep: 4}}");
    // A backup adopted later that is earlier in the week does not take the weekly slot.
    let late = Candidate {
        id: "rep".to_string(),
        created_at: at(2024, 1, 3, 2),
        tags: vec![],
        recorded_tiers: Some(BTreeSet::from([TierName::Daily, TierName::Weekly])),
    };
    let early = Candidate {
        id: "adopted".into(),
        created_at: at(2024, 1, 1, 2),
        tags: vec![],
        recorded_tiers: Some(BTreeSet::from([TierName::Daily])),
    };
    let newest = Candidate {
        id: "new".into(),
        created_at: at(2024, 1, 10, 2),
        tags: vec![],
        recorded_tiers: Some(BTreeSet::from([TierName::Daily, TierName::Weekly])),
    };
    let ds = plan(&[late, early, newest], &p, at(2024, 1, 11, 0));
    let ids: Vec<_> = ds.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect();
    assert_eq!(ids, vec!["rep", "new"]);
    assert!(tiers_for_new::<String>(&[], at(2024, 1, 1, 0), &p).contains(&TierName::Weekly));
}

#[test]
fn a_clock_behind_the_newest_backup_deletes_nothing() {
    let p = default_policy();
    let times = days(at(2024, 5, 14, 2), 3);
    let cands = nightly(&times, &p);
    for now in [at(2024, 5, 1, 2), at(2024, 5, 15, 12), at(2023, 1, 1, 0)] {
        let ds = plan(&cands, &p, now);
        assert_eq!(kept(&ds), times, "{now}");
        assert!(ds.iter().all(|d| d.frozen && d.keep_at(Location::Local, &p, true) && d.keep_at(Location::Local, &p, false)), "{now}");
        assert!(ds.iter().all(|d| d.kept_by == d.tiers), "every recorded tier keeps its copy off-site too");
        assert!(clock_problem(&cands, now).unwrap().contains("after the clock"));
    }
    // A few minutes of difference between two hosts' clocks is not a jump.
    assert!(clock_problem(&cands, at(2024, 5, 16, 2) - Duration::minutes(5)).is_none());
}

#[test]
fn backups_from_a_clock_that_jumped_forward_delete_nothing() {
    let p = policy("tiers: {daily: {keep_days: 7}}");
    let mut times = days(at(2024, 1, 1, 2), 40);
    times.push(at(2099, 1, 1, 2));
    let cands = nightly(&times, &p);
    // The clock is back, or still ahead: either way nothing goes.
    for now in [at(2024, 2, 10, 12), at(2099, 1, 2, 2)] {
        let ds = plan(&cands, &p, now);
        assert_eq!(kept(&ds).len(), 41, "{now}");
        assert!(ds.iter().all(|d| d.frozen));
    }
    assert!(clock_problem(&cands, at(2099, 1, 2, 2)).unwrap().contains("jumped forward"));
    // Still ahead a month later, with newer backups: still nothing goes.
    let mut later = times.clone();
    later.push(at(2099, 2, 1, 2));
    assert!(plan(&nightly(&later, &p), &p, at(2099, 2, 1, 3)).iter().all(|d| d.keep && d.frozen));
    // A stalled schedule (a month off) is not a jump: retention applies.
    let mut times = days(at(2024, 1, 1, 2), 40);
    times.push(at(2024, 3, 20, 2));
    let ds = plan(&nightly(&times, &p), &p, at(2024, 3, 20, 3));
    assert!(ds.iter().all(|d| !d.frozen));
    assert_eq!(kept(&ds), vec![at(2024, 3, 20, 2)]);
}

#[test]
fn planning_a_hundred_thousand_backups_is_fast() {
    let p = default_policy();
    let start = at(2000, 1, 1, 0);
    let times: Vec<_> = (0..100_000).map(|i| start + Duration::hours(i * 3)).collect();
    let cands: Vec<Candidate> = times
        .iter()
        .enumerate()
        .map(|(i, t)| Candidate { id: format!("b{i}"), created_at: *t, tags: vec![], recorded_tiers: None })
        .collect();
    let t = std::time::Instant::now();
    let ds = plan(&cands, &p, *times.last().unwrap());
    // Generous in debug builds; `bench/retention` measures the release figure.
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(ds.len(), 100_000);
}

fn arb_history() -> impl Strategy<Value = Vec<DateTime<Utc>>> {
    // Up to 80 backups with gaps of 1 hour to 20 days.
    prop::collection::vec(1i64..480, 1..80).prop_map(|gaps| {
        let mut t = at(2019, 12, 20, 0);
        gaps.into_iter()
            .map(|g| {
                t += Duration::hours(g);
                t
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (1i64..40, prop::bool::ANY, 1i64..8, 1i64..6).prop_map(|(d, by_days, w, m)| {
        let daily = if by_days { format!("{{keep_days: {d}}}") } else { format!("{{keep: {d}}}") };
        policy(&format!("tiers: {{daily: {daily}, weekly: {{keep: {w}}}, monthly: {{keep: {m}}}}}"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_newest_is_always_kept(times in arb_history(), p in arb_policy()) {
        let ds = plan(&nightly(&times, &p), &p, *times.last().unwrap());
        prop_assert!(ds.last().unwrap().keep);
    }

    #[test]
    fn planning_the_kept_set_again_deletes_nothing(times in arb_history(), p in arb_policy()) {
        let cands = nightly(&times, &p);
        let now = *times.last().unwrap();
        let ds = plan(&cands, &p, now);
        let kept_ids: BTreeSet<_> = ds.iter().filter(|d| d.keep).map(|d| d.id.clone()).collect();
        let remaining: Vec<_> = cands.into_iter().filter(|c| kept_ids.contains(&c.id)).collect();
        let again = plan(&remaining, &p, now);
        prop_assert!(again.iter().all(|d| d.keep), "replanning deleted {:?}", again.iter().filter(|d| !d.keep).map(|d| &d.id).collect::<Vec<_>>());
    }

    #[test]
    fn a_kept_weekly_stays_kept_until_its_count_runs_out(times in arb_history(), p in arb_policy()) {
        let cands = nightly(&times, &p);
        let n = match p.tier(TierName::Weekly).unwrap().retain { Retain::Count(n) => n as usize, _ => unreachable!() };
        for k in 1..cands.len() {
            let before = plan(&cands[..k], &p, cands[k - 1].created_at);
            let after = plan(&cands[..=k], &p, cands[k].created_at);
            for d in before.iter().filter(|d| d.kept_by.contains(&TierName::Weekly)) {
                let a = after.iter().find(|a| a.id == d.id).unwrap();
                let newer_weeks: BTreeSet<_> = cands[..=k].iter().filter(|c| period(TierName::Weekly, c.created_at) > period(TierName::Weekly, d.created_at)).map(|c| period(TierName::Weekly, c.created_at)).collect();
                if newer_weeks.len() < n {
                    prop_assert!(a.kept_by.contains(&TierName::Weekly), "{} lost its weekly slot early", d.id);
                }
            }
        }
    }
}

#[test]
fn simulate_matches_nightly_runs() {
    let p = default_policy();
    let end = at(2025, 3, 15, 10);
    let sim = simulate(&p, 400, Duration::days(1), end);
    assert_eq!(sim.len(), 400);
    assert_eq!(sim.last().unwrap().created_at, at(2025, 3, 15, 2));
    let times: Vec<_> = sim.iter().map(|d| d.created_at).collect();
    let replay = plan(&nightly(&times, &p), &p, at(2025, 3, 15, 2));
    let view = |ds: &[Decision]| ds.iter().map(|d| (d.created_at, d.keep, d.tiers.clone(), d.kept_by.clone())).collect::<Vec<_>>();
    assert_eq!(view(&sim), view(&replay));
    for (tier, n) in [(TierName::Daily, 30), (TierName::Weekly, 12), (TierName::Monthly, 12)] {
        assert_eq!(sim.iter().filter(|d| d.kept_by.contains(&tier)).count(), n, "{tier}");
    }
}

#[test]
fn a_lock_ends_when_the_tier_could_first_delete_the_copy() {
    let p = policy(
        "tiers: {daily: {keep: 7, locations: [local, remote]}, weekly: {keep: 4, locations: [remote], object_lock: GOVERNANCE}, monthly: {keep: 12, locations: [remote], object_lock: COMPLIANCE}, yearly: {keep_days: 400, locations: [remote], object_lock: COMPLIANCE}}",
    );
    let t = at(2025, 1, 15, 2); // a Wednesday
    let tier = |n| p.tier(n).unwrap();
    // keep: 4 weeks: the end of the 4th week after the backup's own (Monday 2025-02-17, 00:00).
    assert_eq!(lock_until(tier(TierName::Weekly), t), at(2025, 2, 17, 0));
    // keep: 12 months: the end of the 12th month after January 2025: 2026-02-01.
    assert_eq!(lock_until(tier(TierName::Monthly), t), at(2026, 2, 1, 0));
    // keep_days: 400: exactly 400 days after the backup.
    assert_eq!(lock_until(tier(TierName::Yearly), t), t + Duration::days(400));
    // object_lock_days overrides the rule.
    let p2 = policy("tiers: {daily: {keep: 7}, monthly: {keep: 12, locations: [remote], object_lock: COMPLIANCE, object_lock_days: 30}}");
    assert_eq!(lock_until(p2.tier(TierName::Monthly).unwrap(), t), t + Duration::days(30));
}

fn hourly_policy() -> Policy {
    policy("tiers: {hourly: {keep: 24}, daily: {keep: 7}, weekly: {keep: 4}}")
}

/// Backups every hour (plus a second one in some hours), each promoted as the runs would.
fn hourly_runs(from: DateTime<Utc>, hours: i64, p: &Policy) -> Vec<Candidate> {
    let times: Vec<_> = (0..hours).map(|h| from + Duration::hours(h)).collect();
    nightly(&times, p)
}

#[test]
fn hourly_tier_holds_the_first_backup_of_each_hour_and_the_days_first_is_the_daily() {
    let p = hourly_policy();
    // Mon 2024-01-01 00:00 .. three days of hourly backups.
    let mut cands = hourly_runs(at(2024, 1, 1, 0), 72, &p);
    // A second backup in an hour already taken joins no tier.
    let extra = at(2024, 1, 3, 10) + Duration::minutes(20);
    let tiers = tiers_for_new(&cands, extra, &p);
    assert!(tiers.is_empty(), "{tiers:?}");
    cands.push(Candidate { id: "extra".into(), created_at: extra, tags: vec![], recorded_tiers: Some(tiers) });
    let first_of_day = tiers_for_new(&cands[..0], at(2024, 1, 1, 0), &p);
    assert_eq!(first_of_day, BTreeSet::from([TierName::Hourly, TierName::Daily, TierName::Weekly]));
    let now = at(2024, 1, 3, 23);
    let ds = plan(&cands, &p, now);
    let hourly: Vec<_> = ds.iter().filter(|d| d.kept_by.contains(&TierName::Hourly)).collect();
    assert_eq!(hourly.len(), 24, "the newest 24 hours");
    assert!(hourly.iter().all(|d| d.created_at > now - Duration::hours(24)));
    let daily: Vec<_> = ds.iter().filter(|d| d.tiers.contains(&TierName::Daily)).map(|d| d.created_at).collect();
    assert_eq!(daily, vec![at(2024, 1, 1, 0), at(2024, 1, 2, 0), at(2024, 1, 3, 0)]);
    let x = ds.iter().find(|d| d.id == "extra").unwrap();
    assert!(x.tiers.is_empty() && !x.keep, "{x:?}");
    // The 24 hourlies (day 3's 00:00 among them) and the two older dailies.
    let kept = ds.iter().filter(|d| d.keep).count();
    assert_eq!(kept, 24 + 2);
}

#[test]
fn hourly_promotion_is_stable_when_the_hour_is_replayed() {
    let p = hourly_policy();
    let cands = hourly_runs(at(2024, 1, 1, 5), 3, &p);
    // A backup taken at 05:30 of an hour that already has one joins nothing, even the day.
    assert!(tiers_for_new(&cands, at(2024, 1, 1, 5) + Duration::minutes(30), &p).is_empty());
    // 08:00 is a new hour, not a new day.
    assert_eq!(tiers_for_new(&cands, at(2024, 1, 1, 8), &p), BTreeSet::from([TierName::Hourly]));
    // Without an hourly tier every backup is daily, as before.
    let d = default_policy();
    assert!(tiers_for_new(&nightly(&[at(2024, 1, 1, 5)], &d), at(2024, 1, 1, 5) + Duration::minutes(30), &d).contains(&TierName::Daily));
}

#[test]
fn keep_last_on_a_tier_and_on_the_policy() {
    // Ten days of nightly backups, the last five days missed: keep_days alone would keep one.
    let p = policy("tiers: {daily: {keep_days: 3, keep_last: 4}}");
    let times = days(at(2024, 1, 1, 2), 10);
    let now = at(2024, 1, 16, 2);
    let ds = plan(&nightly(&times, &p), &p, now);
    assert_eq!(kept(&ds), times[6..].to_vec());
    let r = decision_at(&ds, times[6]);
    assert!(r.reasons.iter().any(|x| x.contains("keep_last")), "{:?}", r.reasons);
    // keep_last alone.
    let p = policy("tiers: {daily: {keep_last: 2}}");
    let ds = plan(&nightly(&times, &p), &p, now);
    assert_eq!(kept(&ds), times[8..].to_vec());
    // On the policy: the newest N whatever their tiers.
    let p = policy("keep_last: 5\ntiers: {daily: {keep: 1}}");
    let ds = plan(&nightly(&times, &p), &p, now);
    assert_eq!(kept(&ds), times[5..].to_vec());
    assert!(decision_at(&ds, times[5]).reasons.iter().any(|x| x == "keep_last: one of the newest 5 backups"));
    assert!(decision_at(&ds, times[5]).keep_at(Location::Local, &p, true));
}

#[test]
fn simulate_every_hour_shows_a_day_of_hourlies() {
    let p = hourly_policy();
    let ds = simulate(&p, 1, Duration::hours(1), at(2024, 1, 10, 12));
    assert_eq!(ds.len(), 24);
    assert!(ds.iter().all(|d| d.keep && d.kept_by.contains(&TierName::Hourly)));
    let daily: Vec<_> = ds.iter().filter(|d| d.tiers.contains(&TierName::Daily)).map(|d| d.created_at).collect();
    // 03:00 on the 9th is the first of that day in the window; 00:00 on the 10th the next.
    assert_eq!(daily, vec![at(2024, 1, 9, 3), at(2024, 1, 10, 0)]);
}

#[test]
fn hourly_copies_in_a_cold_class_are_refused() {
    let raw: raw::Policy =
        serde_norway::from_str("tiers: {hourly: {keep: 24, locations: [remote], storage_class: STANDARD_IA}, daily: {keep: 7}}").unwrap();
    let e = Policy::from_raw("p", None, raw).unwrap_err().to_string();
    assert!(e.contains("tiers.hourly.storage_class") && e.contains("STANDARD_IA"), "{e}");
    let raw: raw::Policy = serde_norway::from_str("tiers: {hourly: {keep: 24}}").unwrap();
    let e = Policy::from_raw("p", None, raw).unwrap_err().to_string();
    assert!(e.contains("tiers.daily"), "{e}");
    let raw: raw::Policy = serde_norway::from_str("keep_last: 0\ntiers: {daily: {keep: 1}}").unwrap();
    assert!(Policy::from_raw("p", None, raw).unwrap_err().to_string().contains("keep_last"));
    assert_eq!(lock_until(hourly_policy().tier(TierName::Hourly).unwrap(), at(2024, 1, 1, 5) + Duration::minutes(7)), at(2024, 1, 2, 6));
}

#[test]
fn dropping_the_hourly_tier_does_not_turn_hourlies_into_dailies() {
    let hourly = hourly_policy();
    let cands = hourly_runs(at(2024, 1, 1, 0), 48, &hourly);
    let daily_only = policy("tiers: {daily: {keep: 7}}");
    let ds = plan(&cands, &daily_only, at(2024, 1, 2, 23));
    let kept: Vec<_> = ds.iter().filter(|d| d.keep).map(|d| d.created_at).collect();
    // The two dailies (each day's 00:00) and the newest; the other hourlies go.
    assert_eq!(kept, vec![at(2024, 1, 1, 0), at(2024, 1, 2, 0), at(2024, 1, 2, 23)]);
    let gone = decision_at(&ds, at(2024, 1, 1, 5));
    assert!(gone.reasons.iter().any(|r| r == "hourly: not a tier of policy test"), "{:?}", gone.reasons);
}
