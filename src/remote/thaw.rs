//! Opening a remote copy for reading: a readable copy if there is one, else an archived one
//! after its thaw (GLACIER, DEEP_ARCHIVE), requested here and waited for when asked.

use std::io::Read;
use std::time::{Duration, Instant};

use super::{Remote, RemoteBackup};
use crate::error::Result;
use crate::store::{ObjectMeta, StoreError, Thaw};
use crate::vocab::{StorageClass, TierName};

/// How long `restore --wait` waits for a thaw, and how often it asks.
#[derive(Debug, Clone, Copy)]
pub struct ThawWait {
    pub timeout: Duration,
    pub poll: Duration,
}

/// How to read a remote backup: which tier's copy, and what to do when only an archived copy
/// holds it.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Only this tier's copy (None: any, a readable one first).
    pub tier: Option<TierName>,
    /// Request a thaw of an archived copy (a paid retrieval). Without it an archived copy is
    /// left as it is and `Error::Cold` says what a thaw would cost.
    pub thaw: bool,
    /// Wait for the thaw, up to its timeout (None: request it and return `ThawPending`).
    pub wait: Option<ThawWait>,
    /// The Glacier retrieval tier (None: the remote's own).
    pub thaw_tier: Option<String>,
}

/// Typical thaw times, for messages.
pub fn thaw_eta(class: StorageClass, tier: &str) -> &'static str {
    match (class, tier) {
        (StorageClass::DeepArchive, "Bulk") => "up to 48 hours",
        (StorageClass::DeepArchive, _) => "up to 12 hours",
        (_, "Expedited") => "1 to 5 minutes",
        (_, "Bulk") => "5 to 12 hours",
        _ => "3 to 5 hours",
    }
}

/// Opens the best copy of a remote backup (of `how.tier` only, when given): a readable one if
/// there is one (daily first), else an archived one after its thaw, when `how.thaw` allows
/// one, waiting for it when `how.wait` is given; otherwise fails saying the thaw was requested
/// and when to run again (`ThawPending`), or, with no thaw allowed, what one would take
/// (`Cold`). A copy that cannot be read (its HEAD or GET fails, its size is wrong) gives way to
/// the next, and says so. Returns the reader, the key read and those fallbacks.
pub fn open_copy(
    remote: &Remote,
    b: &RemoteBackup,
    how: &Reading,
    ui: &crate::ui::Ui,
) -> Result<(Box<dyn Read + Send>, String, Vec<String>)> {
    let m = b.manifest.as_ref().ok_or_else(|| crate::failed!("{}: no manifest off-site; cannot check it", b.stem))?;
    let mut archived: Option<ObjectMeta> = None;
    let mut skipped: Vec<String> = Vec::new();
    let mut last_err: Option<crate::error::Error> = None;
    let copies = b.copies.iter().filter(|(t, _)| how.tier.is_none_or(|w| w == **t)).map(|(_, o)| o);
    for o in copies {
        let h = match remote.store.head(&o.key) {
            Ok(h) => h,
            Err(StoreError::NotFound(_)) => continue,
            Err(StoreError::Cancelled) => return Err(crate::error::Error::Cancelled),
            Err(e) => {
                skipped.push(format!("{} could not be read ({e}): tried another copy", remote.url(&o.key)));
                last_err = Some(e.into());
                continue;
            }
        };
        if h.size != m.size {
            skipped.push(format!("{}: size {} is not the manifest's {}: tried another copy", remote.url(&o.key), h.size, m.size));
            continue;
        }
        if h.thaw.readable() {
            match remote.store.get(&o.key) {
                Ok(r) => return Ok((r, o.key.clone(), skipped)),
                Err(StoreError::Cancelled) => return Err(crate::error::Error::Cancelled),
                Err(e) => {
                    skipped.push(format!("{} could not be read ({e}): tried another copy", remote.url(&o.key)));
                    last_err = Some(e.into());
                    continue;
                }
            }
        }
        if archived.is_none() {
            archived = Some(h);
        }
    }
    let unusable = |last_err: Option<crate::error::Error>| match last_err {
        Some(e) => e.context(format!("{}: no copy off-site could be read ({})", b.stem, skipped.join("; "))),
        None => crate::failed!(
            "{}: no usable copy off-site{}",
            b.stem,
            if skipped.is_empty() { String::new() } else { format!(" ({})", skipped.join("; ")) }
        ),
    };
    let Some(h) = archived else { return Err(unusable(last_err)) };
    let tier = how.thaw_tier.clone().unwrap_or_else(|| remote.config.restore_tier.clone());
    if !how.thaw {
        // A readable copy that failed is that failure, not a cold backup.
        if !skipped.is_empty() {
            return Err(unusable(last_err));
        }
        return Err(crate::error::Error::Cold(format!(
            "{} is off-site only in {}{} ({}{}); a thaw is a paid retrieval of {} ({tier} retrieval, typically {})",
            b.stem,
            h.class(),
            how.tier.map(|t| format!(" in the {t} tier")).unwrap_or_default(),
            remote.url(&h.key),
            if h.thaw == Thaw::InProgress { ", a thaw is under way" } else { "" },
            crate::ui::human_size(h.size),
            thaw_eta(h.class(), &tier)
        )));
    }
    if h.thaw == Thaw::Needed {
        remote.store.request_thaw(&h.key, remote.config.restore_days, &tier)?;
        tracing::info!("requested a thaw of {} ({} retrieval, typically {})", remote.url(&h.key), tier, thaw_eta(h.class(), &tier));
    }
    let Some(w) = how.wait else {
        let eta = thaw_eta(h.class(), &tier);
        return Err(crate::error::Error::ThawPending(format!(
            "{} is in {}: a thaw is under way ({tier} retrieval, typically {eta}; readable for {} days once done)",
            remote.url(&h.key),
            h.class(),
            remote.config.restore_days
        )));
    };
    let progress = ui.progress("thawing", None);
    let started = Instant::now();
    loop {
        let now = remote.store.head(&h.key)?;
        if now.thaw == Thaw::Needed {
            // Never requested, or an earlier thaw expired: ask (again).
            remote.store.request_thaw(&h.key, remote.config.restore_days, &tier)?;
        }
        if now.thaw.readable() {
            progress.finish();
            tracing::info!("{} is thawed after {:.0?}", remote.url(&h.key), started.elapsed());
            return Ok((remote.store.get(&h.key)?, h.key.clone(), skipped));
        }
        if started.elapsed() >= w.timeout {
            progress.finish();
            return Err(crate::error::Error::ThawPending(format!(
                "{}: still thawing after waiting {:?}; the thaw goes on",
                remote.url(&h.key),
                w.timeout
            )));
        }
        progress.label(&format!("thawing {:.0?}", started.elapsed()));
        crate::signals::sleep(w.poll.min(w.timeout.saturating_sub(started.elapsed())).max(Duration::from_millis(10)))?;
    }
}
