//! Restore drills: a backup's bytes are checked against its manifest, it is restored into a
//! temporary database (`pgtier_tmp_…`, dropped afterwards, also after a failure or Ctrl-C), every
//! table's row count is compared with the manifest, btree indexes are checked with amcheck where
//! the server has it, and the outcome is recorded in the manifest, here and off-site.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

mod choose;

pub use choose::{all_backups, check_copy, each_tier};

use crate::config::{Config, Project, StorageClass, TierName};
use crate::context::EnvContext;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::fsutil::{DirLock, write_atomic};
use crate::names::Kind;
use crate::pipeline;
use crate::records::listing::Listing;
use crate::records::manifest::{Manifest, Verification};

use crate::ops::restore::{
    Input, Load, Opened, Origin, Payload, Source, TempDb, connect_admin, fidelity, open_source, payload, restore_into, temp_db_name,
};
use crate::store::PutOptions;
use crate::ui::Ui;

/// Expected and restored rows of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected: Option<u64>,
    pub restored: Option<u64>,
}

/// The outcome of one drill.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyResult {
    pub project: String,
    pub env: String,
    pub backup: String,
    pub from: Origin,
    pub ok: bool,
    pub error: Option<String>,
    /// What the operator can do about `error` (worded by the command line).
    #[serde(skip)]
    pub remedy: Option<crate::error::Remedy>,
    pub at: DateTime<Utc>,
    pub seconds: f64,
    pub tables: Vec<TableCheck>,
    pub indexes_checked: Option<u64>,
    /// Schema objects and database properties compared with the backup's.
    pub objects_checked: Option<usize>,
    /// What the drill could not do or compare, and why.
    pub notes: Vec<String>,
    /// Optional checks it could not run here (amcheck without the right to install it), each
    /// with why; the counts and the comparison are never optional.
    pub skipped: Vec<String>,
    /// The restored database's schema fingerprint, when it matched the manifest's.
    pub fingerprint: Option<String>,
    /// `ok`, `failed` (the backup is proven bad: checksum, decoding, restore or comparison) or
    /// `not_verified` (interrupted, or the backup or the server could not be reached).
    pub outcome: Outcome,
    /// Fallbacks taken to reach the backup (another destination, another copy).
    pub warnings: Vec<String>,
    /// The tier whose off-site copy was read (`verify --each-tier`); null otherwise.
    pub tier: Option<TierName>,
    /// Set when this copy was read back and hashed, not restored: the backup was restored in
    /// this run from that tier's copy (`verify --each-tier`, a backup newest in several tiers).
    pub same_as: Option<TierName>,
}

impl VerifyResult {
    /// A drill of `backup` that has not run yet.
    fn new(project: &Project, env: &str, backup: String, from: Origin, now: DateTime<Utc>) -> VerifyResult {
        VerifyResult {
            project: project.name.clone(),
            env: env.to_string(),
            backup,
            from,
            ok: false,
            error: None,
            remedy: None,
            at: now,
            seconds: 0.0,
            tables: Vec::new(),
            indexes_checked: None,
            objects_checked: None,
            notes: Vec::new(),
            skipped: Vec::new(),
            fingerprint: None,
            outcome: Outcome::NotVerified,
            warnings: Vec::new(),
            tier: None,
            same_as: None,
        }
    }
}

impl VerifyResult {
    /// How a drill that did not pass ended: cold (not an error: the reason is a note and
    /// `error` stays empty), thawing, not verified (`opened`: the backup was reached) or failed.
    fn set_error(&mut self, e: Error, opened: bool, from_remote: bool) {
        match e {
            Error::Cold(why) => {
                self.outcome = Outcome::Cold;
                self.notes.push(why);
            }
            Error::ThawPending(_) => {
                self.outcome = Outcome::Thawing;
                self.error = Some(e.to_string());
            }
            e => {
                self.outcome = if proves_nothing(&e, opened, from_remote) { Outcome::NotVerified } else { Outcome::Failed };
                self.remedy = e.remedy_of();
                self.error = Some(e.to_string());
            }
        }
    }
}

/// A drill that failed on a local file whose bytes no longer match its manifest failed because
/// the file is damaged, whatever the decoder or pg_restore tripped over: say so.
fn name_corruption(e: crate::error::Error, path: &std::path::Path, m: &Manifest) -> crate::error::Error {
    match pipeline::sha256_file(path) {
        Ok(d) if d.size != m.size || d.sha256 != m.sha256 => crate::failed!(
            "{}: does not match its manifest (size {} vs {}, sha256 {} vs {}): the file is corrupt or was changed ({e})",
            path.display(),
            d.size,
            m.size,
            d.sha256,
            m.sha256
        ),
        _ => e,
    }
}

/// How a drill ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    NotVerified,
    /// Held off-site only in an archive class, and no thaw was asked for: nothing was read or
    /// requested, and nothing is wrong.
    Cold,
    /// A thaw was asked for and is under way: the drill runs when the same command runs again
    /// after it (or waits for it with `--wait`). Nothing is recorded.
    Thawing,
}

impl Outcome {
    /// Whether the drill leaves nothing to fix: proven, or cold and not asked to thaw.
    pub fn is_fine(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Cold)
    }
}

/// Whether an error proves something about the backup, or only that the drill could not run:
/// a signal, an unreachable store or server. Only proofs are recorded in the manifest.
fn proves_nothing(err: &Error, opened: bool, from_remote: bool) -> bool {
    use crate::error::Error as E;
    match err {
        E::Integrity(_) => false,
        E::Cancelled | E::Unreachable(_) => true,
        E::Incomplete(_) => from_remote,
        _ if from_remote && !opened => true,
        // A broken download arrives as `Unreachable` (see `restore::unreadable`).
        _ => crate::signals::interrupted(),
    }
}

/// Verifies the backup `source` names (default: the newest) of one project/env.
/// `ctx` is the command's view of this project/env: the drill's record goes to the local
/// manifest and to every destination's copies through it, without listing them again.
pub fn verify(ctx: &mut EnvContext, source: &Source, keys: &Keys, now: DateTime<Utc>, ui: &Ui) -> VerifyResult {
    let (cfg, project) = (ctx.cfg, ctx.project);
    let env = ctx.env.clone();
    let env = env.as_str();
    let from = source.from;
    let started = Instant::now();
    // Name the backup before opening it, so a drill that fails at the checksum is recorded too.
    let name = match &source.input {
        Input::Named(s) => std::path::Path::new(s)
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.split('.').next().unwrap_or(n).to_string())
            .unwrap_or_else(|| s.clone()),
        _ => match newest(ctx, source) {
            Ok(n) => n,
            // The newest cannot be named (its manifest does not read, nothing is there): the
            // drill says so instead of proving an older backup in its place.
            Err(e) => {
                let mut r = VerifyResult::new(project, env, "newest".into(), from, now);
                r.set_error(e, false, from == Origin::Remote);
                r.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
                return r;
            }
        },
    };
    // The drill restores into a throwaway database: the checksum is checked while streaming
    // (a second read of the file was a drill's largest cost), and a failure re-hashes the file
    // so a damaged one is named as such.
    let source = &Source { check_first: false, ..source.with_input(Input::Named(name.clone())) };
    let mut opened_ok = false;
    // A copy read from a store is read again when a drill of it fails: a fault on the way (a
    // corrupted or cut download) is not a failed backup. Two attempts that fail alike are the
    // backup's (or the server's) answer; three attempts are the most.
    let mut failures: Vec<String> = Vec::new();
    let (outcome, mut result) = loop {
        let mut attempt = VerifyResult::new(project, env, name.clone(), from, now);
        attempt.tier = source.tier;
        let outcome = open_source(ctx, source, Kind::Database, ui).and_then(|opened| {
            opened_ok = true;
            attempt.warnings.extend(opened.warnings.iter().cloned());
            if let Some(m) = &opened.manifest
                && let Some(stem) = m.stem()
            {
                attempt.backup = stem.to_string();
            }
            attempt.from = opened.from;
            let local = (opened.from != Origin::Remote).then(|| (std::path::PathBuf::from(&opened.source), opened.manifest.clone()));
            drill(cfg, project, env, opened, keys, ui, &mut attempt).map_err(|e| match local {
                Some((path, Some(m))) => name_corruption(e, &path, &m),
                _ => e,
            })
        });
        attempt.warnings.splice(0..0, failures.iter().map(|f| format!("a read of the off-site copy failed ({f}); it was read again")));
        match outcome {
            Err(e)
                if attempt.from == Origin::Remote
                    && failures.len() < 2
                    && !failures.contains(&e.to_string())
                    && !matches!(e, Error::Cancelled | Error::Cold(_) | Error::ThawPending(_))
                    && !crate::signals::interrupted() =>
            {
                tracing::warn!("the drill of {} from the off-site copy failed ({e}); reading it again", attempt.backup);
                failures.push(e.to_string());
            }
            other => break (other, attempt),
        }
    };
    result.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    match outcome {
        Ok(()) => {
            result.ok = true;
            result.outcome = Outcome::Ok;
        }
        Err(e) => {
            let remote = result.from == Origin::Remote;
            result.set_error(e, opened_ok, remote);
        }
    }
    if matches!(result.outcome, Outcome::Cold | Outcome::Thawing) {
        tracing::info!(
            "{} is cold and was not drilled{}",
            result.backup,
            if result.outcome == Outcome::Thawing { " yet: thawing" } else { "" }
        );
        return result;
    }
    if result.outcome == Outcome::NotVerified {
        tracing::warn!("{} was not verified, and nothing is recorded: {}", result.backup, result.error.as_deref().unwrap_or(""));
        return result;
    }
    if let Err(e) = record(ctx, &result) {
        tracing::warn!("could not record the verification of {}: {e}", result.backup);
    }
    result
}

fn drill(cfg: &Config, project: &Project, env: &str, opened: Opened, keys: &Keys, ui: &Ui, result: &mut VerifyResult) -> Result<()> {
    let database = project.database(env)?;
    let manifest = opened.manifest.clone().ok_or_else(|| crate::failed!("{}: no manifest to verify against", opened.source))?;
    // A drill needs neither the live database nor its roles: it connects to a maintenance database.
    let pg = connect_admin(cfg, project, database)?;
    let (reader, check) = opened.split();
    let progress = ui.progress("verify", check.size);
    let (reader, decoded) = pipeline::decoder(crate::ops::restore::with_progress(reader, progress.clone()), keys, &check.source)?;
    if decoded.payload() == crate::pipeline::Layer::Tar && project.connection.container.is_some() {
        return Err(crate::failed!(
            "{} is a directory-format dump, which pg_restore reads from a folder that a container cannot see: drill it over a direct connection (host/port)",
            check.source
        ));
    }
    let Payload { toc, input } = payload(reader, decoded.payload(), &check.source, check.size.or(Some(manifest.size)))?;
    let jobs = input.is_folder().then(crate::ops::restore::default_jobs);
    let temp = temp_db_name(&format!("verify_{database}"));
    // Armed before the database exists: a Ctrl-C between CREATE DATABASE's commit and its
    // answer still drops it (the drop is IF EXISTS).
    let mut guard = TempDb::new(&pg, &temp);
    let mut admin = pg.admin_session()?;
    let (load, creation_differs) = match &toc {
        Some(toc) => {
            let missing = fidelity::missing_roles(&mut admin, toc)?;
            let skip = fidelity::policies_naming(toc, &missing);
            let mut load = Load { no_owner: !missing.is_empty(), no_privileges: !missing.is_empty(), jobs, skip, tool: None };
            crate::ops::restore::tool_for(&pg, toc, &mut load, &mut result.notes)?;
            if !missing.is_empty() {
                result.notes.push(format!(
                    "role(s) {} do not exist on this server: owners, grants and {} policies naming them were neither restored nor compared",
                    missing.join(", "),
                    load.skip.len()
                ));
            }
            let created = fidelity::create_like_archive(&mut admin, &temp, toc, !load.no_owner)?;
            result.notes.extend(created.warnings);
            (load, created.creation_differs)
        }
        None => {
            admin.create_database(&temp, None)?;
            (Load { no_owner: true, no_privileges: true, ..Load::default() }, true)
        }
    };
    crate::fault::point("verify:restoring");
    let restored = restore_into(&pg, &temp, toc.as_deref(), input, &load, &check.source, &|| check.check_digest()).and_then(|notes| {
        result.notes.extend(notes);
        check.check_digest()
    });
    progress.finish();
    restored?;
    if let Some(toc) = &toc {
        fidelity::apply_properties(&mut admin, &temp, toc, load.compare())?;
        let compared = fidelity::compare(&pg, &temp, toc, &load, creation_differs)?;
        result.objects_checked = Some(toc.objects(load.compare()).len());
        let mut diffs = compared.diffs;
        // The fingerprint recorded when the backup was taken, against the restored database's
        // (both in the canonical form that no pg_dump or server version changes).
        if let (Some(restored), Some(recorded)) = (&compared.fingerprint, &manifest.schema_fingerprint) {
            if *recorded == toc.fingerprint() {
                if restored != recorded {
                    diffs.push(format!("schema fingerprint differs: {recorded} in the manifest, {restored} restored"));
                }
                result.fingerprint = Some(restored.clone());
            } else {
                result
                    .notes
                    .push("the manifest's schema fingerprint was taken by an older pgtier: the archive's own was compared instead".into());
            }
        }
        if !diffs.is_empty() {
            return Err(crate::failed!("{}: the restored database differs from the backup: {}", manifest.file, diffs.join("; ")));
        }
    }
    admin.close()?;
    let actual = pg.count_rows_parallel(&temp, crate::ops::restore::default_jobs() as usize)?;
    let mut s = pg.session(&temp)?;
    result.indexes_checked = match amcheck(&mut s)? {
        Amcheck::Checked(n) => Some(n),
        Amcheck::NotOffered => None,
        Amcheck::Skipped(why) => {
            result.skipped.push(format!("amcheck: {why}"));
            None
        }
    };
    s.close()?;
    guard.drop_now().map_err(|e| crate::failed!("the drill's temporary database {temp:?} could not be dropped: {e}"))?;
    let expected = manifest.tables.clone().unwrap_or_default();
    let mut names: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    names.sort();
    names.dedup();
    result.tables = names
        .into_iter()
        .map(|t| TableCheck { table: t.clone(), expected: expected.get(t).copied(), restored: actual.get(t).copied() })
        .collect();
    if manifest.tables.is_none() {
        result.notes.push("restored; no row counts to compare (the backup has none, e.g. an adopted file)".into());
        return Ok(());
    }
    let exp: BTreeMap<&String, &u64> = expected.iter().collect();
    let problems = crate::ops::restore::compare_counts(&exp, &actual, false);
    if !problems.is_empty() {
        return Err(crate::failed!("{}: {}", manifest.file, problems.join("; ")));
    }
    Ok(())
}

/// What the index check did.
enum Amcheck {
    /// Every btree index checked: how many.
    Checked(u64),
    /// The server has no amcheck.
    NotOffered,
    /// The role may not install it here: why.
    Skipped(String),
}

/// Checks every btree index with amcheck when the server offers it, the partitions' indexes
/// included (a partitioned index has no storage of its own). A check that fails is an error,
/// never ignored; a role that may not install amcheck (the application's own role, say) skips
/// it, and the drill says so.
fn amcheck(s: &mut crate::postgres::Session) -> Result<Amcheck> {
    let available = s.query_value("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'")?;
    if available.trim() != "1" {
        return Ok(Amcheck::NotOffered);
    }
    if let Err(e) = s.exec("CREATE EXTENSION IF NOT EXISTS amcheck") {
        if matches!(e, Error::Cancelled | Error::Unreachable(_)) {
            return Err(e);
        }
        let why = e.to_string();
        let why = why.split_once(": ").map_or(why.as_str(), |(_, w)| w).trim().to_string();
        return Ok(Amcheck::Skipped(format!("the role cannot install it in the drill's database ({why})")));
    }
    // pg_toast indexes are the server's own; the user's btree indexes are the ones to prove.
    let sql = "SELECT count(bt_index_check(c.oid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace WHERE am.amname = 'btree' AND c.relkind = 'i' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' AND c.relpersistence <> 't'";
    let n = s.query_value(sql).map_err(|e| e.context("amcheck found a damaged index"))?;
    Ok(n.trim().parse().map_or(Amcheck::NotOffered, Amcheck::Checked))
}

/// Appends the outcome to the backup's manifest, locally (atomically) and in every tier folder.
fn record(ctx: &mut EnvContext, result: &VerifyResult) -> Result<()> {
    let (cfg, project, env) = (ctx.cfg, ctx.project, ctx.env.clone());
    let v = Verification {
        at: result.at,
        ok: result.ok,
        from: result.from.to_string(),
        error: result.error.clone(),
        seconds: Some(result.seconds),
        note: result.ok.then(|| result.notes.join("; ")).filter(|n| !n.is_empty()),
        skipped: result.skipped.clone(),
    };
    let dir = cfg.env_dir(&project.name, &env);
    let mut updated: Option<Manifest> = None;
    if dir.is_dir() {
        let lock = DirLock::acquire(&dir)?;
        let mut listing = Listing::under_lock(ctx.take_listing(), &dir, &project.name, &env, &lock)?;
        let drilled = crate::names::Stem::parse(&result.backup);
        if let Some(b) = listing.backups.iter_mut().find(|b| Some(&b.stem) == drilled.as_ref()) {
            let mut m = b.full_manifest()?;
            m.verifications.push(v.clone());
            write_atomic(&b.manifest_path, &m.to_bytes())?;
            b.manifest.verifications = m.verifications.clone();
            listing.changed_under(&dir, &lock);
            updated = Some(m);
        }
        // Read under the lock and updated: the command goes on from it.
        ctx.adopt(listing);
    }
    // Every destination holding the backup gets the record too, found in the catalog the
    // command has (sync read it, or it is read now); only remote-only manifests are fetched.
    let Some(stem) = crate::names::Stem::parse(&result.backup) else { return Ok(()) };
    let world = ctx.world();
    for (_, remote) in world.destinations() {
        let remote = remote?;
        // The catalog the command has (sync read it, with a HEAD of every copy), else a listing
        // of the folder and a HEAD of only this backup's manifests.
        let read_now;
        let (rb, heads) = match ctx.offsite_if_read(remote.name()) {
            Some(o) => (o.cat.backups.get(&stem), Some(&o.heads)),
            None => {
                read_now = crate::remote::RemoteCatalog::load(remote, &project.name, &env, ctx.listing().ok())?;
                (read_now.backups.get(&stem), None)
            }
        };
        let Some(rb) = rb else { continue };
        let m = match &updated {
            Some(m) => m.clone(),
            None => {
                let Some(mut m) = rb.manifest.clone() else { continue };
                m.verifications.push(v.clone());
                m
            }
        };
        // A manifest in a locked tier stays locked: its new version takes the old one's lock,
        // which is its copy's (sync locks both alike); else the store is asked.
        let writes: Vec<(String, Option<crate::store::ObjectLock>)> = rb
            .manifest_keys
            .iter()
            .map(|(tier, key)| {
                let lock = match rb.copies.get(tier).and_then(|o| heads?.get(&o.key)) {
                    Some(h) => h.lock,
                    None => remote.store.head(key).ok().and_then(|h| h.lock),
                };
                (key.clone(), lock.filter(|l| l.holds(chrono::Utc::now())))
            })
            .collect();
        for (key, lock) in writes {
            remote.store.put_bytes(&key, &m.to_bytes(), &PutOptions { class: StorageClass::Standard, sha256: None, lock })?;
        }
        if let (_, Some(o)) = ctx.both_mut(remote.name())
            && let Some(rb) = o.cat.backups.get_mut(&stem)
        {
            rb.manifest = Some(m);
        }
    }
    Ok(())
}

/// The newest database backup's name where `source.from` looks: here (`local`), here else
/// off-site (`auto`), or off-site (`remote`, from every destination and tier it may use).
fn newest(ctx: &mut EnvContext, source: &Source) -> Result<String> {
    let (cfg, project, env) = (ctx.cfg, ctx.project, ctx.env.clone());
    if source.from != Origin::Remote {
        if let Some(b) = ctx.listing()?.latest() {
            return Ok(b.stem.to_string());
        }
        if source.from == Origin::Local || cfg.remotes.is_empty() {
            return Err(Error::NotFound(format!("no backups of {}/{env} in {}", project.name, ctx.dir.display())));
        }
    }
    let chosen = crate::ops::restore::choose_remote(ctx.world(), project, &env, &source.with_input(Input::Latest), Kind::Database)?;
    Ok(chosen.backup.stem.to_string())
}

/// Whether the newest backup of the env needs a drill under the policy's schedule.
pub fn due(project: &Project, listing: &Listing, now: DateTime<Utc>) -> bool {
    let Some(days) = project.policy.verify.window_days() else { return false };
    // The window has a day of slack for the audit; the schedule itself is one period.
    let period = chrono::Duration::days((days - 1).max(1));
    let last = listing.databases().filter_map(|b| b.manifest.last_verified_ok().map(|v| v.at)).max();
    last.is_none_or(|t| now - t >= period)
}
