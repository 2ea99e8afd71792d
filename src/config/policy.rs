//! Retention policies: tiers, where each lives, its storage class, compression, encryption.

use crate::vocab::Compression;
pub use crate::vocab::{Location, LockMode, StorageClass, TierName};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::raw;
use crate::error::{Error, Result};

/// How a tier decides how long to keep its backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// The representatives of the newest N periods that have a backup.
    Count(u32),
    /// Every backup of the tier younger than N days, measured from the newest backup.
    Days(u32),
    /// Only the tier's newest N backups (`keep_last` alone).
    Last(u32),
}

impl Retain {
    /// How many days a backup stays in the tier, roughly, for billing checks (an hourly tier's
    /// 24 hours count as one day).
    pub fn approx_days(self, tier: TierName) -> u64 {
        match self {
            Retain::Count(n) | Retain::Last(n) => (u64::from(n) * tier.period_hours()).div_ceil(24),
            Retain::Days(n) => u64::from(n),
        }
    }
}

impl std::fmt::Display for Retain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retain::Count(n) => write!(f, "keep {n}"),
            Retain::Days(n) => write!(f, "keep_days {n}"),
            Retain::Last(n) => write!(f, "keep_last {n}"),
        }
    }
}

/// One tier of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub name: TierName,
    pub retain: Retain,
    /// The tier's newest N backups are kept whatever their dates, besides `retain`.
    pub keep_last: Option<u32>,
    pub locations: BTreeSet<Location>,
    pub storage_class: StorageClass,
    /// S3 Object Lock on this tier's off-site copies.
    pub object_lock: Option<LockMode>,
    /// A fixed lock length in days, instead of one that follows the tier's rule.
    pub object_lock_days: Option<u32>,
}

impl Tier {
    /// Whether this tier keeps copies in `loc`.
    pub fn lives(&self, loc: Location) -> bool {
        self.locations.contains(&loc)
    }
}

/// How often `run` proves a backup restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifySchedule {
    Never,
    Daily,
    Weekly,
    Monthly,
}

impl std::fmt::Display for VerifySchedule {
    /// As written in a policy: `never`, `daily`, `weekly`, `monthly`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifySchedule::Never => "never",
            VerifySchedule::Daily => "daily",
            VerifySchedule::Weekly => "weekly",
            VerifySchedule::Monthly => "monthly",
        })
    }
}

impl VerifySchedule {
    /// The window within which the newest backup must have been verified (a day of slack).
    pub fn window_days(self) -> Option<i64> {
        match self {
            VerifySchedule::Never => None,
            VerifySchedule::Daily => Some(2),
            VerifySchedule::Weekly => Some(8),
            VerifySchedule::Monthly => Some(32),
        }
    }
}

/// A validated retention policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// The file it came from (None for the built-in default).
    pub file: Option<PathBuf>,
    /// Tiers, shortest period first; `daily` is always present.
    pub tiers: Vec<Tier>,
    /// The newest N backups are kept whatever their dates and tiers (`keep_last:`).
    pub keep_last: Option<u32>,
    pub compression: Compression,
    pub encryption_required: bool,
    pub verify: VerifySchedule,
    /// How many backups of each tag are kept.
    pub tagged_keep: u32,
    /// How old the newest backup may get before `audit` reports it.
    pub max_backup_age_hours: Option<u64>,
    /// A fall in size or rows larger than this percentage raises a warning.
    pub anomaly_threshold_percent: Option<u32>,
    /// pg_dump connections for projects that do not set `backup.jobs` (1: one custom archive).
    pub backup_jobs: u32,
}

/// The policy shipped as `policies/default.yml`, used when the policies folder has none.
pub const BUILTIN_DEFAULT: &str = include_str!("../../policies/default.yml");

impl Policy {
    /// The tier named `name`, if the policy has it.
    pub fn tier(&self, name: TierName) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }

    /// Whether the policy keeps an hourly tier: then every tier, daily included, holds the
    /// first backup of its period, and a later backup of the same hour belongs to none.
    pub fn hourly(&self) -> bool {
        self.tier(TierName::Hourly).is_some()
    }

    /// Whether any tier wants copies off-site.
    pub fn wants_remote(&self) -> bool {
        self.tiers.iter().any(|t| t.lives(Location::Remote))
    }

    /// Replaces the daily tier's age (`retention_days` from projects.yml).
    pub fn with_daily_days(mut self, days: u32) -> Policy {
        if let Some(t) = self.tiers.iter_mut().find(|t| t.name == TierName::Daily) {
            t.retain = Retain::Days(days);
        }
        self
    }

    /// Validates a raw policy read from `file` (or the built-in default when `file` is None).
    pub fn from_raw(name: &str, file: Option<&Path>, raw: raw::Policy) -> Result<Policy> {
        let shown = file.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("(built-in default policy)"));
        let err = |key: &str, msg: String| Error::config(&shown, key, msg);
        if raw.tiers.is_empty() {
            return Err(err("tiers", "a policy needs at least the daily tier".into()));
        }
        let mut tiers = Vec::new();
        for (tname, t) in raw.tiers {
            let key = format!("tiers.{tname}");
            let name = TierName::parse(&tname)
                .ok_or_else(|| err(&key, format!("unknown tier {tname:?}; expected hourly, daily, weekly, monthly or yearly")))?;
            let keep_last = match t.keep_last {
                None => None,
                Some(n) => Some(bounded(n, MAX_KEEP).map_err(|m| err(&format!("{key}.keep_last"), m))?),
            };
            let retain = match (t.keep, t.keep_days, keep_last) {
                (Some(n), None, _) => Retain::Count(bounded(n, MAX_KEEP).map_err(|m| err(&format!("{key}.keep"), m))?),
                (None, Some(n), _) => Retain::Days(bounded(n, MAX_KEEP_DAYS).map_err(|m| err(&format!("{key}.keep_days"), m))?),
                (Some(_), Some(_), _) => return Err(err(&key, "give either keep or keep_days, not both".into())),
                (None, None, Some(n)) => Retain::Last(n),
                (None, None, None) => {
                    return Err(err(
                        &key,
                        "needs keep (a count of periods), keep_days (an age in days) or keep_last (a count of backups)".into(),
                    ));
                }
            };
            let mut locations = BTreeSet::new();
            for l in t.locations.unwrap_or_else(|| vec!["local".into()]) {
                locations.insert(match l.as_str() {
                    "local" => Location::Local,
                    "remote" => Location::Remote,
                    other => return Err(err(&format!("{key}.locations"), format!("unknown location {other:?}; expected local or remote"))),
                });
            }
            if locations.is_empty() {
                return Err(err(&format!("{key}.locations"), "must name local, remote or both".into()));
            }
            let storage_class = match t.storage_class {
                None => StorageClass::Standard,
                Some(c) => StorageClass::parse(&c).ok_or_else(|| {
                    let all: Vec<_> = StorageClass::ALL.iter().map(|c| c.as_str()).collect();
                    err(&format!("{key}.storage_class"), format!("unknown storage class {c:?}; expected one of {}", all.join(", ")))
                })?,
            };
            let object_lock = match t.object_lock.as_deref() {
                None => None,
                Some(m) => Some(
                    LockMode::parse(&m.to_ascii_uppercase())
                        .ok_or_else(|| err(&format!("{key}.object_lock"), format!("expected COMPLIANCE or GOVERNANCE, got {m:?}")))?,
                ),
            };
            let object_lock_days = match t.object_lock_days {
                None => None,
                Some(_) if object_lock.is_none() => {
                    return Err(err(&format!("{key}.object_lock_days"), "needs object_lock: COMPLIANCE or GOVERNANCE".into()));
                }
                Some(n) => Some(bounded(n, MAX_KEEP_DAYS).map_err(|m| err(&format!("{key}.object_lock_days"), m))?),
            };
            if object_lock.is_some() && !locations.contains(&Location::Remote) {
                return Err(err(&format!("{key}.object_lock"), "locks off-site copies; add remote to locations".into()));
            }
            // Hourly copies live hours or days: a class billed for a month or more per object
            // would charge each of them that month.
            if name == TierName::Hourly && locations.contains(&Location::Remote) && storage_class.min_days() > 0 {
                return Err(err(
                    &format!("{key}.storage_class"),
                    format!(
                        "{storage_class} bills every object for at least {} days, and hourly copies are replaced within hours: use STANDARD (or INTELLIGENT_TIERING) for the hourly tier",
                        storage_class.min_days()
                    ),
                ));
            }
            tiers.push(Tier { name, retain, keep_last, locations, storage_class, object_lock, object_lock_days });
        }
        tiers.sort_by_key(|t| t.name);
        if !tiers.iter().any(|t| t.name == TierName::Daily) {
            return Err(err("tiers.daily", "is required: each day's first backup belongs to the daily tier".into()));
        }
        let keep_last = match raw.keep_last {
            None => None,
            Some(n) => Some(bounded(n, MAX_KEEP).map_err(|m| err("keep_last", m))?),
        };
        let level = raw.compression_level;
        let compression = match raw.compression.as_deref().unwrap_or("gzip") {
            "gzip" => {
                let l = level.unwrap_or(6);
                if !(1..=9).contains(&l) {
                    return Err(err("compression_level", format!("gzip levels are 1 to 9, got {l}")));
                }
                Compression::Gzip(l as u32)
            }
            "zstd" => {
                let l = level.unwrap_or(3);
                if !(1..=19).contains(&l) {
                    return Err(err("compression_level", format!("zstd levels are 1 to 19, got {l}")));
                }
                Compression::Zstd(l)
            }
            "none" => Compression::None,
            other => return Err(err("compression", format!("unknown compression {other:?}; expected gzip, zstd or none"))),
        };
        let encryption_required = match raw.encryption.as_deref().unwrap_or("optional") {
            "required" => true,
            "optional" => false,
            other => return Err(err("encryption", format!("expected required or optional, got {other:?}"))),
        };
        let verify = match raw.verify.as_deref().unwrap_or("weekly") {
            "never" => VerifySchedule::Never,
            "daily" => VerifySchedule::Daily,
            "weekly" => VerifySchedule::Weekly,
            "monthly" => VerifySchedule::Monthly,
            other => return Err(err("verify", format!("expected never, daily, weekly or monthly, got {other:?}"))),
        };
        let tagged_keep = match raw.tagged_keep {
            None => 5,
            Some(n) => bounded(n, MAX_KEEP).map_err(|m| err("tagged_keep", m))?,
        };
        if let Some(h) = raw.max_backup_age_hours {
            bounded(h.min(i64::MAX as u64) as i64, MAX_AGE_HOURS).map_err(|m| err("max_backup_age_hours", m))?;
        }
        let backup_jobs = match raw.backup_jobs {
            None => 1,
            Some(n) => bounded(n, MAX_JOBS).map_err(|m| err("backup_jobs", m))?,
        };
        Ok(Policy {
            name: name.to_string(),
            file: file.map(Path::to_path_buf),
            tiers,
            keep_last,
            compression,
            encryption_required,
            verify,
            tagged_keep,
            max_backup_age_hours: raw.max_backup_age_hours,
            anomaly_threshold_percent: raw.anomaly_threshold_percent,
            backup_jobs,
        })
    }
}

/// The most periods a tier (or a tag) keeps: far beyond any real policy, well inside the planner's arithmetic.
const MAX_KEEP: u32 = 1_000_000;

/// The longest `keep_days`: a thousand years.
const MAX_KEEP_DAYS: u32 = 365_000;

/// The largest `max_backup_age_hours`: a hundred years.
pub const MAX_AGE_HOURS: u32 = 876_000;

/// A whole number from 1 to `max`, or what is wrong with it.
/// The most pg_dump connections a backup may open.
pub const MAX_JOBS: u32 = 64;

pub fn bounded(n: i64, max: u32) -> std::result::Result<u32, String> {
    if n <= 0 {
        return Err(format!("must be a positive whole number, got {n}"));
    }
    u32::try_from(n).ok().filter(|v| *v <= max).ok_or_else(|| format!("must be at most {max}, got {n}"))
}
