//! One step of a sync, as planned and as printed.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::ObjectLock;
use crate::vocab::{StorageClass, TierName};

/// One step of a sync.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Upload the local file (the first copy off-site), locked when the tier is.
    Upload {
        backup: String,
        tier: TierName,
        key: String,
        path: PathBuf,
        class: StorageClass,
        size: u64,
        sha256: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        lock: Option<ObjectLock>,
    },
    /// Server-side copy (another tier's copy, or a class change in place), locked when the tier is.
    Copy {
        backup: String,
        tier: TierName,
        from: String,
        to: String,
        class: StorageClass,
        #[serde(skip_serializing_if = "Option::is_none")]
        lock: Option<ObjectLock>,
    },
    /// Write the manifest object beside the copy (always STANDARD, so it stays readable;
    /// locked like the copy).
    PutManifest {
        backup: String,
        tier: TierName,
        key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        lock: Option<ObjectLock>,
    },
    /// Lock (or lengthen the lock of) a copy already there, and its manifest, in a locked tier.
    Lock { backup: String, tier: TierName, key: String, manifest_key: Option<String>, lock: ObjectLock },
    /// Remove the copy (and its manifest) from a tier that no longer keeps it.
    Delete { backup: String, tier: TierName, key: String, manifest_key: Option<String>, reason: String },
    /// Already there, confirmed, in the right class.
    Keep { backup: String, tier: TierName, key: String },
    /// Not kept any more, but a lock holds it, or deleting now would pay the class's
    /// early-deletion fee.
    Defer { backup: String, tier: TierName, key: String, until: DateTime<Utc>, reason: DeferReason },
    /// Wanted off-site but cannot be put there; says why.
    Blocked { backup: String, tier: TierName, reason: String },
}

/// Why a copy the policy no longer keeps stays for now. In JSON and text, its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeferReason {
    /// Object Lock holds it until its end (`skew_note` when only the store's clock says so).
    Locked { lock: ObjectLock, skew_note: String },
    /// Its storage class bills at least `days` days (`--allow-early-delete` deletes it now).
    MinimumDuration { class: StorageClass, days: u64 },
}

impl DeferReason {
    /// Whether `--allow-early-delete` would delete it now (a lock cannot be cut short).
    pub fn billing_only(&self) -> bool {
        matches!(self, DeferReason::MinimumDuration { .. })
    }
}

impl std::fmt::Display for DeferReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeferReason::Locked { lock, skew_note } => {
                write!(f, "locked ({}) until {}{skew_note}", lock.mode, lock.until.format("%Y-%m-%d %H:%M UTC"))
            }
            DeferReason::MinimumDuration { class, days } => write!(f, "{class} bills at least {days} days"),
        }
    }
}

impl Serialize for DeferReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Action {
    pub fn backup(&self) -> &str {
        match self {
            Action::Upload { backup, .. }
            | Action::Copy { backup, .. }
            | Action::PutManifest { backup, .. }
            | Action::Lock { backup, .. }
            | Action::Delete { backup, .. }
            | Action::Keep { backup, .. }
            | Action::Defer { backup, .. }
            | Action::Blocked { backup, .. } => backup,
        }
    }

    pub fn tier(&self) -> TierName {
        match self {
            Action::Upload { tier, .. }
            | Action::Copy { tier, .. }
            | Action::PutManifest { tier, .. }
            | Action::Lock { tier, .. }
            | Action::Delete { tier, .. }
            | Action::Keep { tier, .. }
            | Action::Defer { tier, .. }
            | Action::Blocked { tier, .. } => *tier,
        }
    }

    /// A line for humans.
    pub fn describe(&self) -> String {
        match self {
            Action::Upload { key, class, size, lock, .. } => {
                format!("upload {key} as {class} ({}){}", crate::ui::human_size(*size), locked(lock.as_ref()))
            }
            Action::Copy { from, to, class, lock, .. } if from == to => format!("change {to} to {class}{}", locked(lock.as_ref())),
            Action::Copy { from, to, class, lock, .. } => format!("copy {from} to {to} as {class}{}", locked(lock.as_ref())),
            Action::Lock { key, lock, .. } => format!("lock {key}{}", locked(Some(lock))),
            Action::PutManifest { key, .. } => format!("write manifest {key}"),
            Action::Delete { key, reason, .. } => format!("delete {key} ({reason})"),
            Action::Keep { key, .. } => format!("keep {key}"),
            Action::Defer { key, until, reason, .. } => format!("keep {key} until {} ({reason})", until.format("%Y-%m-%d")),
            Action::Blocked { reason, .. } => format!("cannot sync: {reason}"),
        }
    }
}

/// ` locked COMPLIANCE until 2026-03-01`, or nothing.
fn locked(lock: Option<&ObjectLock>) -> String {
    lock.map(|l| format!(", locked {} until {}", l.mode, l.until.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default()
}
