//! Which backups a `verify` command drills besides the newest: every one (`--all`), each
//! tier's newest off-site (`--each-tier`), and a second tier's copy of a backup just drilled,
//! which is read back and hashed instead of restored again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use std::time::Instant;

use super::VerifyResult;
use crate::config::{Project, TierName};
use crate::context::{Context, EnvContext};
use crate::error::{Error, Result};
use crate::names::Kind;
use crate::ops::restore::{Input, Origin, Source};
use crate::ui::Ui;

/// What `verify --each-tier` drills: for each tier off-site, the newest backup with a copy in
/// it that reads without a thaw, or, when there is none (or `thaw` is set), the tier's newest.
/// In tier order (daily, weekly, monthly, yearly); a backup may appear for several tiers.
pub fn each_tier(e: &mut EnvContext, source: &Source) -> Result<Vec<(TierName, String)>> {
    let world = e.world();
    let remotes: Vec<&crate::remote::Remote> = match &source.destination {
        Some(name) => vec![world.destination(name)?],
        None => {
            let remote = world.require_remote("verifying each tier off-site")?;
            let mut all = vec![remote];
            all.extend(world.destinations().into_iter().filter_map(|(_, r)| r.ok()).filter(|r| r.name() != remote.name()));
            all
        }
    };
    // tier -> (newest readable, newest)
    let mut newest: BTreeMap<TierName, (Option<crate::names::Stem>, crate::names::Stem)> = BTreeMap::new();
    // Manifests this host has are not read again: only which tiers hold which copies matters.
    for remote in remotes {
        let cat = e.catalog(remote)?;
        for b in cat.databases() {
            if b.manifest_keys.is_empty() {
                continue;
            }
            for (tier, o) in &b.copies {
                let n = newest.entry(*tier).or_insert_with(|| (None, b.stem.clone()));
                if b.stem > n.1 {
                    n.1 = b.stem.clone();
                }
                if o.thaw.readable() && n.0.as_ref().is_none_or(|s| b.stem > *s) {
                    n.0 = Some(b.stem.clone());
                }
            }
        }
    }
    Ok(newest.into_iter().map(|(tier, (hot, any))| (tier, if source.thaw { any } else { hot.unwrap_or(any) }.to_string())).collect())
}

/// A second tier's copy of a backup that was just drilled from another tier's: read back and
/// hashed instead of restored again (the bytes are the drilled backup's when they match).
pub fn check_copy(
    world: &Context,
    project: &Project,
    env: &str,
    source: &Source,
    drilled: &VerifyResult,
    now: DateTime<Utc>,
    ui: &Ui,
) -> VerifyResult {
    let started = Instant::now();
    let name = match &source.input {
        Input::Named(n) => n.clone(),
        _ => drilled.backup.clone(),
    };
    let mut r = VerifyResult::new(project, env, name, Origin::Remote, now);
    r.tier = source.tier;
    let checked = crate::ops::restore::choose_remote(world, project, env, source, Kind::Database).and_then(|chosen| {
        r.warnings.extend(chosen.warnings);
        let tier = source.tier.ok_or_else(|| crate::failed!("no tier named"))?;
        let m = chosen.backup.manifest.as_ref().ok_or_else(|| crate::failed!("{}: no manifest off-site", chosen.backup.stem))?;
        // The same way a drill opens it: cold stays cold unless a thaw was asked for.
        let how = crate::remote::Reading { tier: Some(tier), thaw: source.thaw, wait: source.wait, thaw_tier: source.thaw_tier.clone() };
        let (reader, key, fallbacks) = crate::remote::open_copy(chosen.remote, &chosen.backup, &how, ui)?;
        r.warnings.extend(fallbacks);
        let d = crate::pipeline::digest_reader(reader).map_err(|e| Error::Unreachable(format!("{}: {e}", chosen.remote.url(&key))))?;
        if d.size != m.size || d.sha256 != m.sha256 {
            return Err(Error::Integrity(format!(
                "{}: its bytes (size {}, sha256 {}) are not the manifest's ({} and {})",
                chosen.remote.url(&key),
                d.size,
                d.sha256,
                m.size,
                m.sha256
            )));
        }
        Ok(tier)
    });
    r.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    match checked {
        Ok(tier) => {
            r.ok = drilled.ok;
            r.outcome = drilled.outcome;
            r.tables = drilled.tables.clone();
            r.indexes_checked = drilled.indexes_checked;
            r.objects_checked = drilled.objects_checked;
            r.fingerprint = drilled.fingerprint.clone();
            r.same_as = drilled.tier;
            let from = drilled.tier.map(|t| format!("its {t} copy")).unwrap_or_else(|| "another copy".into());
            r.notes.push(format!("restored once, from {from}; the {tier} copy was read back and its size and SHA-256 are the manifest's"));
            if !drilled.ok {
                r.error = drilled.error.clone();
            }
        }
        Err(e) => r.set_error(e, true, true),
    }
    r
}

/// The backups `verify --all` drills: every database backup here, or off-site with `--from remote`.
pub fn all_backups(e: &mut EnvContext, from: Origin) -> Result<Vec<String>> {
    if from == Origin::Remote {
        let remote = e.world().require_remote("verifying from the remote")?;
        let cat = e.catalog(remote)?;
        return Ok(cat
            .backups
            .values()
            // A backup whose manifest does not read is drilled too: the drill then says so.
            .filter(|b| b.stem.kind == Kind::Database && !b.manifest_keys.is_empty() && !b.copies.is_empty())
            .map(|b| b.stem.to_string())
            .collect());
    }
    Ok(e.listing()?.databases().map(|b| b.stem.to_string()).collect())
}
