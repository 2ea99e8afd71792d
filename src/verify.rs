//! Restore drills: a backup's bytes are checked against its manifest, it is restored into a
//! temporary database (`pgtier_tmp_…`, dropped afterwards, also after a failure or Ctrl-C), every
//! table's row count is compared with the manifest, btree indexes are checked with amcheck where
//! the server has it, and the outcome is recorded in the manifest, here and off-site.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::Listing;
use crate::config::{Config, Project, StorageClass};
use crate::crypto::Keys;
use crate::error::Result;
use crate::fsutil::{DirLock, write_atomic};
use crate::manifest::{Manifest, Verification};
use crate::names::Kind;
use crate::offsite::Remote;
use crate::pipeline;
use crate::postgres::Pg;
use crate::restore::{From, Input, Opened, RestoreOptions, Source, admin_session, open_source, restore_into, temp_db_name};
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
    pub from: String,
    pub ok: bool,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
    pub seconds: f64,
    pub tables: Vec<TableCheck>,
    pub indexes_checked: Option<u64>,
}

/// Verifies the backup `source` names (default: the newest) of one project/env.
pub fn verify(cfg: &Config, project: &Project, env: &str, source: &Source, keys: &Keys, now: DateTime<Utc>, ui: &Ui) -> VerifyResult {
    let from = source.from;
    let started = Instant::now();
    // Name the backup before opening it, so a drill that fails at the checksum is recorded too.
    let name = match &source.input {
        Input::Named(s) => std::path::Path::new(s)
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.split('.').next().unwrap_or(n).to_string())
            .unwrap_or_else(|| s.clone()),
        _ => newest(cfg, project, env, from).unwrap_or_else(|| "newest".into()),
    };
    // The drill restores into a throwaway database: the checksum is checked while streaming.
    let source = &Source { check_first: false, ..source.with_input(Input::Named(name.clone())) };
    let mut result = VerifyResult {
        project: project.name.clone(),
        env: env.to_string(),
        backup: name,
        from: format!("{from:?}").to_lowercase(),
        ok: false,
        error: None,
        at: now,
        seconds: 0.0,
        tables: Vec::new(),
        indexes_checked: None,
    };
    let outcome = open_source(cfg, project, env, source, Kind::Database, ui).and_then(|opened| {
        if let Some(m) = &opened.manifest
            && let Some(stem) = m.stem()
        {
            result.backup = stem.to_string();
        }
        result.from = opened.from.clone();
        drill(cfg, project, env, opened, keys, ui, &mut result)
    });
    result.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    match outcome {
        Ok(()) => result.ok = true,
        Err(e) => result.error = Some(e.to_string()),
    }
    if let Err(e) = record(cfg, project, env, &result) {
        tracing::warn!("could not record the verification of {}: {e}", result.backup);
    }
    result
}

fn drill(cfg: &Config, project: &Project, env: &str, opened: Opened, keys: &Keys, ui: &Ui, result: &mut VerifyResult) -> Result<()> {
    let database = project.database(env)?;
    let manifest = opened.manifest.clone().ok_or_else(|| crate::failed!("{}: no manifest to verify against", opened.source))?;
    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)?;
    let (reader, check) = opened.split();
    let progress = ui.progress("verify", check.size);
    let (reader, decoded) = pipeline::decoder(crate::restore::with_progress(reader, progress.clone()), keys, &check.source)?;
    let temp = temp_db_name(&format!("verify_{database}"));
    let mut admin = admin_session(&pg)?;
    admin.create_database(&temp, None)?;
    admin.close()?;
    let guard = Dropper { pg: &pg, name: temp.clone() };
    // Ownership is not what a drill proves (the host-loss drill does): restore without owners
    // so a verify host without the roles can still prove the data.
    let opts = RestoreOptions {
        source: Source { input: Input::Latest, from: From::Local, wait: None, check_first: false },
        target_db: None,
        force: false,
        drop_old: false,
        jobs: None,
        table: None,
        no_owner: true,
        now: result.at,
    };
    crate::fault::point("verify:restoring");
    let restored = restore_into(&pg, &temp, reader, decoded.payload(), &opts, &check.source).and_then(|_| check.check_digest());
    progress.finish();
    if let Err(e) = restored {
        // A corrupt file usually fails the decoder before the checksum is known: say which it is.
        if check.from != "remote"
            && let Ok(d) = pipeline::sha256_file(std::path::Path::new(&check.source))
            && (d.size != manifest.size || d.sha256 != manifest.sha256)
        {
            return Err(crate::failed!(
                "{}: does not match its manifest (sha256 {} vs {}): the file is corrupt or was changed ({e})",
                check.source,
                d.sha256,
                manifest.sha256
            ));
        }
        return Err(e);
    }
    let mut s = pg.session(&temp)?;
    let actual = s.count_rows()?;
    result.indexes_checked = amcheck(&mut s);
    s.close()?;
    drop(guard);
    let expected = manifest.tables.clone().unwrap_or_default();
    let mut names: Vec<&String> = expected.keys().chain(actual.keys()).collect();
    names.sort();
    names.dedup();
    result.tables = names
        .into_iter()
        .map(|t| TableCheck { table: t.clone(), expected: expected.get(t).copied(), restored: actual.get(t).copied() })
        .collect();
    if manifest.tables.is_none() {
        return Err(crate::failed!(
            "{}: the manifest has no row counts (an adopted backup): it restored, but nothing could be compared",
            manifest.file
        ));
    }
    let exp: BTreeMap<&String, &u64> = expected.iter().collect();
    let problems = crate::restore::compare_counts(&exp, &actual, false);
    if !problems.is_empty() {
        return Err(crate::failed!("{}: {}", manifest.file, problems.join("; ")));
    }
    Ok(())
}

/// Checks every btree index with amcheck when the server offers it; returns how many, or None
/// when amcheck is not available here.
fn amcheck(s: &mut crate::postgres::Session) -> Option<u64> {
    let available = s.query_value("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'").ok()?;
    if available.trim() != "1" || s.exec("CREATE EXTENSION IF NOT EXISTS amcheck").is_err() {
        return None;
    }
    let sql = "SELECT count(bt_index_check(c.oid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace WHERE am.amname = 'btree' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relpersistence <> 't'";
    s.query_value(sql).ok().and_then(|v| v.trim().parse().ok())
}

/// Drops the drill's temporary database when the drill ends, however it ends.
struct Dropper<'a> {
    pg: &'a Pg,
    name: String,
}

impl Drop for Dropper<'_> {
    fn drop(&mut self) {
        if let Err(e) = admin_session(self.pg).and_then(|mut s| s.drop_database(&self.name)) {
            tracing::error!("could not drop {}: {e}; the next `pgtier run` retries", self.name);
        }
    }
}

/// Appends the outcome to the backup's manifest, locally (atomically) and in every tier folder.
fn record(cfg: &Config, project: &Project, env: &str, result: &VerifyResult) -> Result<()> {
    let v = Verification {
        at: result.at,
        ok: result.ok,
        from: result.from.clone(),
        error: result.error.clone(),
        seconds: Some(result.seconds),
    };
    let dir = cfg.env_dir(&project.name, env);
    let mut updated: Option<Manifest> = None;
    if dir.is_dir() {
        let _lock = DirLock::acquire(&dir)?;
        let listing = Listing::scan(&dir, &project.name, env)?;
        if let Some(b) = listing.find(&result.backup) {
            let mut m = b.manifest.clone();
            m.verifications.push(v.clone());
            write_atomic(&b.manifest_path, &m.to_bytes())?;
            updated = Some(m);
        }
    }
    let Some(remote) = Remote::open(cfg)? else { return Ok(()) };
    // Manifests this host has are not fetched again; only remote-only ones are read.
    let listing = Listing::scan(&dir, &project.name, env)?;
    let cat = crate::offsite::RemoteCatalog::load(&remote, &project.name, env, Some(&listing))?;
    let Some(stem) = crate::names::Stem::parse(&result.backup) else { return Ok(()) };
    let Some(rb) = cat.backups.get(&stem) else { return Ok(()) };
    let m = match updated {
        Some(m) => m,
        None => {
            let Some(mut m) = rb.manifest.clone() else { return Ok(()) };
            m.verifications.push(v);
            m
        }
    };
    for key in rb.manifest_keys.values() {
        remote.store.put_bytes(key, &m.to_bytes(), &PutOptions { class: StorageClass::Standard, sha256: None })?;
    }
    Ok(())
}

/// The newest database backup's name where `from` looks first.
fn newest(cfg: &Config, project: &Project, env: &str, from: From) -> Option<String> {
    if from != From::Remote
        && let Ok(l) = Listing::scan(&cfg.env_dir(&project.name, env), &project.name, env)
        && let Some(b) = l.latest()
    {
        return Some(b.stem.to_string());
    }
    all_backups(cfg, project, env, From::Remote).ok()?.pop()
}

/// The backups `verify --all` drills: every database backup here, or off-site with `--from remote`.
pub fn all_backups(cfg: &Config, project: &Project, env: &str, from: From) -> Result<Vec<String>> {
    if from == From::Remote {
        let remote = Remote::open(cfg)?.ok_or_else(|| crate::usage!("--from remote needs remote: in {}", cfg.file.display()))?;
        let cat = crate::offsite::RemoteCatalog::load(&remote, &project.name, env, None)?;
        return Ok(cat
            .backups
            .values()
            .filter(|b| b.stem.kind == Kind::Database && b.manifest.is_some() && !b.copies.is_empty())
            .map(|b| b.stem.to_string())
            .collect());
    }
    let listing = Listing::scan(&cfg.env_dir(&project.name, env), &project.name, env)?;
    Ok(listing.databases().map(|b| b.stem.to_string()).collect())
}

/// Whether the newest backup of the env needs a drill under the policy's schedule.
pub fn due(project: &Project, listing: &Listing, now: DateTime<Utc>) -> bool {
    let Some(days) = project.policy.verify.window_days() else { return false };
    // The window has a day of slack for the audit; the schedule itself is one period.
    let period = chrono::Duration::days((days - 1).max(1));
    let last = listing.databases().filter_map(|b| b.manifest.last_verified_ok().map(|v| v.at)).max();
    last.is_none_or(|t| now - t >= period)
}
