//! Table-driven cases of the sync planner over the in-memory store: what goes up, what is
//! copied, kept, deferred or deleted, and why, without S3.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::config::{Connection, Policy, Project, RemoteConfig, RemoteUrl, StorageClass, TierName, raw};
use crate::names::{Kind, Stem};
use crate::records::listing::{Listing, LocalBackup};
use crate::records::manifest::{Manifest, Stored};
use crate::remote::{Remote, RemoteCatalog};
use crate::store::PutOptions;
use crate::store::memory::MemoryStore;

const POLICY: &str =
    "tiers:\n  daily: {keep_days: 7, locations: [local, remote]}\n  weekly: {keep: 1, locations: [remote], storage_class: STANDARD_IA}\n";

fn project() -> Project {
    let raw: raw::Policy = serde_norway::from_str(POLICY).unwrap();
    Project {
        name: "shop".into(),
        connection: Connection { container: None, host: None, port: None, user: "u".into(), password_file: None },
        databases: BTreeMap::from([("production".to_string(), "shop".to_string())]),
        every_database: None,
        enabled: true,
        verify_on_restore: true,
        backup_jobs: 1,
        policy: Arc::new(Policy::from_raw("test", None, raw).unwrap()),
        encryption: None,
        app_containers: BTreeMap::new(),
    }
}

fn remote() -> Remote {
    Remote {
        store: Arc::new(crate::remote::PrefixStore::new(Arc::new(MemoryStore::new(0)), "p")),
        config: RemoteConfig {
            url: RemoteUrl::S3 { bucket: "b".into(), prefix: "p".into() },
            endpoint_url: None,
            region: None,
            force_path_style: false,
            restore_tier: "Standard".into(),
            restore_days: 1,
            concurrency: 1,
            timeout: std::time::Duration::from_secs(60),
            connect_timeout: std::time::Duration::from_secs(10),
            attempts: 6,
            checksums: crate::config::Checksums::WhenSupported,
            tiers: None,
            storage_classes: BTreeMap::new(),
            prune: true,
            name: "default".into(),
            key: "remote".into(),
        },
    }
}

/// A local backup taken at `t` with the tiers a nightly run would have recorded.
fn backup(t: DateTime<Utc>, tiers: &[TierName]) -> LocalBackup {
    let stem = Stem::new(Kind::Database, t, 1);
    let body = stem.to_string().into_bytes();
    let stored = Stored {
        format: "custom",
        compression: "gzip",
        size: body.len() as u64,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
    };
    let manifest =
        Manifest { tiers: tiers.to_vec(), ..Manifest::new("shop", "production", "shop", &stem, format!("{stem}.dump.gz"), stored) };
    LocalBackup {
        data_path: PathBuf::from(format!("/nowhere/{}", manifest.file)),
        manifest_path: PathBuf::from(format!("/nowhere/{stem}.json")),
        stem,
        manifest,
    }
}

/// Puts `b`'s copy and manifest into `tier` of the store, in `class`.
fn upload(r: &Remote, b: &LocalBackup, tier: TierName, class: StorageClass) {
    let body = b.stem.to_string().into_bytes();
    r.store
        .put_bytes(
            &r.layout("shop", "production").data_key(tier, &b.manifest.file),
            &body,
            &PutOptions { class, sha256: Some(b.manifest.sha256.clone()), lock: None },
        )
        .unwrap();
    r.store
        .put_bytes(&r.layout("shop", "production").manifest_key(tier, &b.stem), &b.manifest.to_bytes(), &PutOptions::standard())
        .unwrap();
}

/// The plan as short lines, sorted: `upload daily`, `copy weekly`, `defer weekly`, …
fn planned(r: &Remote, local: &[LocalBackup], now: DateTime<Utc>, allow_early_delete: bool) -> Vec<String> {
    let listing = Listing::of(local.to_vec());
    let cat = RemoteCatalog::load(r, "shop", "production", Some(&listing)).unwrap();
    let heads = cat.heads(r).unwrap();
    let plan = plan(&listing, &cat, &heads, r, &project(), "production", now, allow_early_delete);
    let mut out: Vec<String> = plan
        .actions
        .iter()
        .map(|a| {
            let verb = match a {
                Action::Upload { .. } => "upload",
                Action::Copy { .. } => "copy",
                Action::PutManifest { .. } => "manifest",
                Action::Delete { .. } => "delete",
                Action::Keep { .. } => "keep",
                Action::Defer { .. } => "defer",
                Action::Blocked { .. } => "blocked",
                Action::Lock { .. } => "lock",
            };
            format!("{verb} {}", a.tier().as_str())
        })
        .collect();
    out.sort();
    out
}

/// An old backup whose weekly copy the tier no longer keeps, and this week's, both off-site.
fn stale_weekly(r: &Remote, now: DateTime<Utc>) -> Vec<LocalBackup> {
    let (d, w) = (TierName::Daily, TierName::Weekly);
    let old = backup(now - Duration::days(20), &[d, w]);
    upload(r, &old, w, StorageClass::StandardIa);
    let new = backup(now, &[d, w]);
    upload(r, &new, d, StorageClass::Standard);
    upload(r, &new, w, StorageClass::StandardIa);
    vec![old, new]
}

/// What a case says, how it fills the store and lists local backups, when it plans, whether
/// early deletion is allowed, and the actions it expects.
type SyncCase = (&'static str, Box<dyn Fn(&Remote) -> Vec<LocalBackup>>, DateTime<Utc>, bool, Vec<&'static str>);

#[test]
fn the_sync_planner_decides_each_copy() {
    let now = Utc::now();
    let day = move |n: i64| now - Duration::days(n);
    let (d, w) = (TierName::Daily, TierName::Weekly);
    let cases: Vec<SyncCase> = vec![
        (
            "a new backup: one upload, the other tier by server-side copy, a manifest beside each",
            Box::new(move |_| vec![backup(day(0), &[d, w])]),
            now,
            false,
            vec!["copy weekly", "manifest daily", "manifest weekly", "upload daily"],
        ),
        (
            "confirmed copies in the right class are kept",
            Box::new(move |r| {
                let b = backup(day(0), &[d, w]);
                upload(r, &b, d, StorageClass::Standard);
                upload(r, &b, w, StorageClass::StandardIa);
                vec![b]
            }),
            now,
            false,
            vec!["keep daily", "keep weekly"],
        ),
        (
            "a weekly copy the tier no longer keeps waits out STANDARD_IA's 30 days",
            Box::new(move |r| stale_weekly(r, now)),
            now,
            false,
            vec!["defer weekly", "keep daily", "keep weekly"],
        ),
        (
            "… unless told to pay the early-deletion fee",
            Box::new(move |r| stale_weekly(r, now)),
            now,
            true,
            vec!["delete weekly", "keep daily", "keep weekly"],
        ),
        (
            "a clock behind the backups deletes nothing off-site",
            Box::new(move |r| {
                let old = backup(day(20), &[d, w]);
                upload(r, &old, w, StorageClass::StandardIa);
                upload(r, &old, d, StorageClass::Standard);
                vec![old, backup(day(0), &[d])]
            }),
            now - Duration::days(30),
            true,
            vec!["keep daily", "keep weekly", "upload daily", "manifest daily"],
        ),
    ];
    for (what, setup, at, early, want) in cases {
        let r = remote();
        let local = setup(&r);
        let mut want: Vec<String> = want.into_iter().map(str::to_string).collect();
        want.sort();
        let got = planned(&r, &local, at, early);
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn locks_are_planned_from_the_tier_and_locked_copies_wait() {
    let now = Utc::now();
    let (d, w) = (TierName::Daily, TierName::Weekly);
    let policy = "tiers:\n  daily: {keep_days: 7, locations: [local, remote]}\n  weekly: {keep: 1, locations: [remote], storage_class: STANDARD_IA, object_lock: COMPLIANCE}\n";
    let raw: raw::Policy = serde_norway::from_str(policy).unwrap();
    let p = Project { policy: Arc::new(Policy::from_raw("test", None, raw).unwrap()), ..project() };
    let plan_of = |r: &Remote, local: &[LocalBackup]| {
        let listing = Listing::of(local.to_vec());
        let cat = RemoteCatalog::load(r, "shop", "production", Some(&listing)).unwrap();
        let heads = cat.heads(r).unwrap();
        plan(&listing, &cat, &heads, r, &p, "production", now, true)
    };
    // A new backup: the weekly copy and its manifest carry the tier's lock; the daily ones none.
    let r = remote();
    let b = backup(now, &[d, w]);
    let actions = plan_of(&r, std::slice::from_ref(&b)).actions;
    let weekly_lock = crate::records::retention::lock_until(p.policy.tier(w).unwrap(), b.stem.time);
    for a in &actions {
        let lock = match a {
            Action::Upload { lock, .. } | Action::Copy { lock, .. } | Action::PutManifest { lock, .. } => *lock,
            _ => continue,
        };
        match a.tier() {
            TierName::Weekly => {
                assert_eq!(lock.map(|l| (l.mode, l.until)), Some((crate::config::LockMode::Compliance, weekly_lock)), "{a:?}")
            }
            _ => assert_eq!(lock, None, "{a:?}"),
        }
    }
    // A copy already there without its lock gets one; a locked copy the tier no longer keeps
    // waits for its date, even with early deletion allowed.
    let r = remote();
    let old = backup(now - Duration::days(20), &[d, w]);
    upload(&r, &old, w, StorageClass::StandardIa);
    let new = backup(now, &[d, w]);
    upload(&r, &new, w, StorageClass::StandardIa);
    upload(&r, &new, d, StorageClass::Standard);
    let verbs = |actions: &[Action]| -> Vec<String> {
        actions.iter().map(|a| format!("{} {}", a.describe().split(' ').next().unwrap(), a.tier())).collect()
    };
    let first = plan_of(&r, &[old.clone(), new.clone()]).actions;
    assert!(verbs(&first).contains(&"lock weekly".to_string()), "{first:?}");
    let layout = r.layout("shop", "production");
    let until = now + Duration::days(3);
    r.store
        .locks()
        .unwrap()
        .put_retention(&layout.data_key(w, &old.manifest.file), &ObjectLock { mode: crate::config::LockMode::Compliance, until }, false)
        .unwrap();
    let second = plan_of(&r, &[old.clone(), new.clone()]).actions;
    let deferred = second.iter().find(|a| a.backup() == old.stem.to_string() && a.tier() == w).unwrap();
    assert!(
        matches!(deferred, Action::Defer { reason: crate::plan::offsite::DeferReason::Locked { lock, .. }, .. } if lock.mode == crate::vocab::LockMode::Compliance),
        "{deferred:?}"
    );
    // prune: false on the destination: nothing is deleted here, whatever the tiers say.
    let mut r = remote();
    r.config.prune = false;
    let old = backup(now - Duration::days(20), &[d, w]);
    upload(&r, &old, w, StorageClass::StandardIa);
    let actions = plan_of(&r, &[old, new]).actions;
    assert!(!actions.iter().any(|a| matches!(a, Action::Delete { .. } | Action::Defer { .. })), "{actions:?}");
}

#[test]
fn the_local_planner_releases_a_backup_only_once_it_is_off_site() {
    use crate::plan::local::{LocalAction, plan_env};
    use crate::remote::RemoteState;
    let now = Utc::now();
    let (d, w) = (TierName::Daily, TierName::Weekly);
    let old = backup(now - Duration::days(20), &[d, w]);
    let new = backup(now, &[d, w]);
    let listing = Listing::of(vec![old.clone(), new.clone()]);
    let p = project();
    let action = |remote: Option<&RemoteState>, at: DateTime<Utc>| -> Vec<LocalAction> {
        plan_env(&listing, &p, "production", at, remote).entries.iter().map(|e| e.action).collect()
    };
    let nothing = RemoteState::default();
    let confirmed_weekly = RemoteState::single(BTreeMap::from([(old.stem.clone(), [w].into_iter().collect())]));
    type Case<'a> = (&'a str, Option<&'a RemoteState>, DateTime<Utc>, Vec<LocalAction>);
    let cases: Vec<Case> = vec![
        // No remote: the off-site tiers live here, and weekly keep 1 keeps only the newest week.
        ("no remote configured", None, now, vec![LocalAction::Delete, LocalAction::Keep]),
        // The old backup is no one's any more, remote or not: it goes.
        ("a remote with nothing confirmed", Some(&nothing), now, vec![LocalAction::Delete, LocalAction::Keep]),
        ("a remote with the old weekly copy confirmed", Some(&confirmed_weekly), now, vec![LocalAction::Delete, LocalAction::Keep]),
        // The clock is behind both backups: nothing goes.
        ("a clock behind", Some(&nothing), now - Duration::days(30), vec![LocalAction::Keep, LocalAction::Keep]),
    ];
    for (what, remote, at, want) in cases {
        assert_eq!(action(remote, at), want, "{what}");
    }
    // A backup the weekly tier still keeps, wanted only off-site, waits for its confirmed copy.
    let only_weekly = backup(now - Duration::days(10), &[w]);
    let listing = Listing::of(vec![only_weekly.clone()]);
    let plan = plan_env(&listing, &p, "production", now, Some(&RemoteState::default()));
    assert_eq!(plan.entries[0].action, LocalAction::Keep, "the newest backup always stays");
    let listing = Listing::of(vec![only_weekly.clone(), backup(now, &[d])]);
    let plan = plan_env(&listing, &p, "production", now, Some(&RemoteState::default()));
    assert_eq!(plan.entries[0].action, LocalAction::KeepUntilOffsite, "{:?}", plan.entries[0].reasons);
    let confirmed = RemoteState::single(BTreeMap::from([(only_weekly.stem.clone(), [w].into_iter().collect())]));
    let plan = plan_env(&listing, &p, "production", now, Some(&confirmed));
    assert_eq!(plan.entries[0].action, LocalAction::Delete, "{:?}", plan.entries[0].reasons);
}

#[test]
fn a_night_another_agent_put_off_site_gets_no_second_backup_from_this_host() {
    let r = remote();
    // Midday, so last night's two backups 30 s apart are on one date whenever this runs.
    let now = Utc::now().date_naive().and_hms_opt(12, 0, 0).unwrap().and_utc();
    let d = TierName::Daily;
    // Another agent's backup of last night is off-site; this host holds its own of the same
    // night (a run killed before its upload) and tonight's.
    let theirs = backup(now - Duration::days(1) + Duration::seconds(30), &[d]);
    upload(&r, &theirs, d, StorageClass::Standard);
    let mine_stale = backup(now - Duration::days(1), &[d]);
    let tonight = backup(now, &[d]);
    let listing = Listing::of(vec![mine_stale.clone(), tonight.clone()]);
    let cat = RemoteCatalog::load(&r, "shop", "production", Some(&listing)).unwrap();
    let heads = cat.heads(&r).unwrap();
    let plan = plan(&listing, &cat, &heads, &r, &project(), "production", now, false);
    assert_eq!(plan.withheld.iter().map(|(b, _)| b.as_str()).collect::<Vec<_>>(), [mine_stale.stem.to_string().as_str()]);
    let touched: Vec<&str> = plan.actions.iter().map(|a| a.backup()).collect();
    assert!(!touched.contains(&mine_stale.stem.to_string().as_str()), "{:?}", plan.actions);
    assert!(plan.actions.iter().any(|a| matches!(a, Action::Upload { backup, .. } if *backup == tonight.stem.to_string())));
    assert!(
        plan.actions.iter().any(|a| matches!(a, Action::Keep { backup, .. } if *backup == theirs.stem.to_string())),
        "the other agent's copy stays: {:?}",
        plan.actions
    );
}
