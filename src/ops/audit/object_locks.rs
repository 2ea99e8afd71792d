//! Proving immutability without risking a backup: for every locked tier a destination holds, a
//! tiny canary object kept under the tier's lock mode shows that the credentials pgtier runs
//! with can neither delete a locked version nor shorten its lock (nor, under GOVERNANCE, bypass
//! it); and each tier's lock horizon is reported from the copies' own locks.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::{LockMode, Project};
use crate::remote::{EnvOffsite, Remote};
use crate::store::{ObjectLock, PutOptions};
use crate::vocab::{Finding, Location, TierName};

/// One locked tier on one destination, as `audit` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TierLock {
    pub destination: String,
    pub tier: TierName,
    pub mode: LockMode,
    /// Copies in the tier whose lock still holds.
    pub locked_copies: usize,
    /// Copies in the tier without a lock that holds.
    pub unlocked_copies: usize,
    /// The latest retain-until among the copies: nothing in this tier can be deleted before.
    pub horizon: Option<DateTime<Utc>>,
    /// What the canary proved: `delete refused`, `shorten refused`, `bypass refused`.
    pub proven: Vec<String>,
}

/// How long a canary's lock lasts; a new version is written when less than a minute is left.
const CANARY_DAYS: i64 = 1;

/// Proves the locks of every locked tier `remote` holds for `project`/`env`. `now` is the real
/// clock: the store judges locks by its own.
pub fn prove(remote: &Remote, project: &Project, env: &str, offsite: &EnvOffsite) -> (Vec<Finding>, Vec<TierLock>) {
    let now = Utc::now();
    let mut findings = Vec::new();
    let mut out = Vec::new();
    let tiers: Vec<_> = project
        .policy
        .tiers
        .iter()
        .filter(|t| t.lives(Location::Remote) && remote.config.holds(t.name))
        .filter_map(|t| Some((t.name, t.object_lock?)))
        .collect();
    if tiers.is_empty() {
        return (findings, out);
    }
    let Some(locks) = remote.store.locks() else {
        findings.push(Finding::new("lock-unsupported", remote.url(""), "this destination cannot lock; it must not hold a locked tier"));
        return (findings, out);
    };
    match locks.bucket() {
        Ok(b) if b.object_lock => {}
        Ok(_) => {
            findings.push(Finding::new(
                "lock-not-enabled",
                remote.url(""),
                format!("the bucket has no Object Lock, so no copy can be locked; run `pgtier remote init {}`", remote.name()),
            ));
            return (findings, out);
        }
        Err(e) => {
            findings.push(Finding::new("lock-unknown", remote.url(""), format!("cannot read the bucket's Object Lock state: {e}")));
            return (findings, out);
        }
    }
    let layout = remote.layout(&project.name, env);
    for (tier, mode) in tiers {
        let mut t = TierLock {
            destination: remote.name().to_string(),
            tier,
            mode,
            locked_copies: 0,
            unlocked_copies: 0,
            horizon: None,
            proven: Vec::new(),
        };
        for b in offsite.cat.backups.values() {
            if let Some(o) = b.copies.get(&tier) {
                match offsite.heads.get(&o.key).and_then(|h| h.lock).filter(|l| l.holds(now)) {
                    Some(l) => {
                        t.locked_copies += 1;
                        t.horizon = t.horizon.max(Some(l.until));
                    }
                    None => t.unlocked_copies += 1,
                }
            }
        }
        let key = layout.canary_key(tier);
        let url = remote.url(&key);
        // A canary whose lock still holds for a while is reused; otherwise a new version.
        let current = remote.store.head(&key).ok().and_then(|h| h.lock).filter(|l| l.mode == mode && l.holds(now + Duration::minutes(1)));
        let lock = match current {
            Some(l) => l,
            None => {
                let lock = ObjectLock { mode, until: (now + Duration::days(CANARY_DAYS)).with_nanosecond_zero() };
                let body = format!("pgtier lock canary for {}/{env} {tier} ({mode}); written {now}\n", project.name);
                if let Err(e) = remote.store.put_bytes(&key, body.as_bytes(), &PutOptions { lock: Some(lock), ..PutOptions::standard() }) {
                    findings.push(Finding::new("lock-unproven", url.clone(), format!("cannot write the lock canary: {e}")));
                    out.push(t);
                    continue;
                }
                lock
            }
        };
        let version = match locks.current_version(&key) {
            Ok(v) => v,
            Err(e) => {
                findings.push(Finding::new("lock-unproven", url.clone(), format!("cannot read the canary's version: {e}")));
                out.push(t);
                continue;
            }
        };
        match locks.delete_version(&key, &version, false) {
            Ok(()) => findings.push(Finding::new(
                "lock-not-enforced",
                url.clone(),
                format!("a {mode}-locked version was deleted with these credentials: the store does not enforce Object Lock"),
            )),
            Err(_) => t.proven.push("delete refused".into()),
        }
        let shorter =
            ObjectLock { until: (now + Duration::seconds(30)).max(lock.until - Duration::hours(1)).with_nanosecond_zero(), ..lock };
        if shorter.until < lock.until {
            match locks.put_retention(&key, &shorter, false) {
                Ok(()) => findings.push(Finding::new(
                    "lock-can-be-shortened",
                    url.clone(),
                    format!("these credentials shortened a {mode} lock: a thief of this host could unlock every copy"),
                )),
                Err(_) => t.proven.push("shorten refused".into()),
            }
        }
        if mode == LockMode::Governance {
            match locks.delete_version(&key, &version, true) {
                Ok(()) => findings.push(Finding::new(
                    "governance-bypass",
                    url.clone(),
                    "these credentials may bypass GOVERNANCE retention (s3:BypassGovernanceRetention): a thief of this host could delete the locked copies; remove that permission from the nightly identity, or use COMPLIANCE",
                )),
                Err(_) => t.proven.push("bypass refused".into()),
            }
        }
        out.push(t);
    }
    (findings, out)
}

trait NoNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl NoNanos for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap_or(self)
    }
}
