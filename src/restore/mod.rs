//! Restoring a backup: the data is checked against its manifest before it is trusted, restored
//! into a new database, its row counts compared, and only then swapped in by rename. A failure
//! at any step drops the half-made database and leaves the original exactly as it was.

mod databases;
mod source;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, Project};
use crate::crypto::Keys;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::names::Kind;
use crate::pipeline::{self, Layer};
use crate::postgres::Pg;
use crate::ui::{Progress, Ui};

pub use databases::{TEMP_DB_PREFIX, admin_session, drop_stale_temp_dbs, old_db_name, temp_db_name};
use databases::{TempDb, check_db_name, swap};
pub use source::{From, Input, Opened, Source, open_local, open_remote, open_source};

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub source: Source,
    pub target_db: Option<String>,
    pub force: bool,
    pub drop_old: bool,
    pub jobs: Option<u32>,
    pub table: Option<String>,
    pub no_owner: bool,
    pub now: DateTime<Utc>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub project: String,
    pub env: String,
    /// The database that now holds the restored data.
    pub database: String,
    /// Backup name, file path or `-`.
    pub source: String,
    /// `local`, `file`, `stdin` or `remote`.
    pub from: String,
    /// The previous database, renamed and kept (None if none was replaced or it was dropped).
    pub old_database: Option<String>,
    pub replaced: bool,
    pub table: Option<String>,
    /// Tables whose row counts were compared with the manifest (None: not checked).
    pub tables_checked: Option<usize>,
    pub rows: Option<u64>,
    pub warnings: Vec<String>,
}

/// Restores into the project/env's database (or `--target-db`) as described in the module doc.
pub fn restore(cfg: &Config, project: &Project, env: &str, opts: &RestoreOptions, keys: &Keys, ui: &Ui) -> Result<RestoreReport> {
    let database = project.database(env)?.to_string();
    let opened = open_source(cfg, project, env, &opts.source, Kind::Database, ui)?;
    restore_opened(cfg, project, env, &database, opened, opts, keys, ui)
}

/// Restores an opened stream for `project`/`env` into `database` (or `--target-db`).
#[allow(clippy::too_many_arguments)]
pub fn restore_opened(
    cfg: &Config,
    project: &Project,
    env: &str,
    database: &str,
    opened: Opened,
    opts: &RestoreOptions,
    keys: &Keys,
    ui: &Ui,
) -> Result<RestoreReport> {
    let target = opts.target_db.clone().unwrap_or_else(|| database.to_string());
    check_db_name(&target)?;
    let mut warnings = Vec::new();
    if opened.manifest.is_none() {
        let w = format!("{}: no manifest, so the checksum and row-count checks are skipped", opened.source);
        tracing::warn!("{w}");
        warnings.push(w);
    }
    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)
        .or_else(|_| Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), "postgres"))?;
    let mut admin = admin_session(&pg)?;
    let existing = admin.database_info(&target)?;
    let replacing = existing.is_some();
    if replacing && !opts.force {
        let what = match &opts.table {
            Some(t) => format!("restore table {t} into existing database {target:?}, replacing that table"),
            None => format!("replace existing database {target:?} (the old one is kept, renamed, until --drop-old)"),
        };
        if !ui.confirm(&format!("This will {what}.")) {
            return Err(crate::usage!("database {target:?} exists: add --force to {what}"));
        }
    }
    if opts.jobs.is_some() && project.connection.container.is_some() {
        return Err(crate::usage!("--jobs needs a direct connection: pg_restore -j reads a file, which a container cannot see"));
    }

    let source = opened.source.clone();
    let from = opened.from.clone();
    let manifest = opened.manifest.clone();
    let progress = ui.progress("restore", opened.size);
    let mut report = RestoreReport {
        project: project.name.clone(),
        env: env.to_string(),
        database: target.clone(),
        source,
        from,
        old_database: None,
        replaced: false,
        table: opts.table.clone(),
        tables_checked: None,
        rows: None,
        warnings,
    };

    // One table into the live database: pg_restore --clean in one transaction.
    if let (Some(table), true) = (&opts.table, replacing) {
        if opened.digest.is_some() {
            return Err(crate::usage!(
                "--table into the live database needs a checked local copy: restore from remote with --target-db, or sync it down first"
            ));
        }
        let (reader, decoded) = pipeline::decoder(with_progress(opened.reader, progress.clone()), keys, &report.source)?;
        if decoded.payload() != Layer::CustomArchive {
            return Err(crate::usage!("--table needs a custom-format archive; {} holds {}", report.source, decoded.payload().name()));
        }
        let mut args = restore_args(&target, opts.no_owner);
        args.extend(["--clean".into(), "--if-exists".into(), "--single-transaction".into()]);
        args.extend(table_args(table));
        feed(&pg, "pg_restore", None, &args, reader, &report.source)?;
        progress.finish();
        if let Some(m) = &manifest {
            check_counts(&pg, &target, m, Some(table), &mut report)?;
        }
        return Ok(report);
    }

    // Decoding starts here: a wrong key or a foreign file fails before any database is made.
    let (opened_reader, opened_check) = opened.split();
    let (reader, decoded) = pipeline::decoder(with_progress(opened_reader, progress.clone()), keys, &report.source)?;
    let temp = temp_db_name(&target);
    // Copy the database it replaces; on a new server, recreate the one the backup came from.
    let like = match (&existing, manifest.as_ref().and_then(|m| m.database_settings.clone())) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(saved)) if admin.role_exists(&saved.owner)? => Some(saved),
        (None, Some(saved)) => {
            let w = format!(
                "role {:?}, which owned the database, does not exist here: run `pgtier restore-globals` first to keep owners; the database will be owned by {}",
                saved.owner,
                pg.user()
            );
            tracing::warn!("{w}");
            report.warnings.push(w);
            None
        }
        (None, None) => None,
    };
    let created = match admin.create_database(&temp, like.as_ref()) {
        Err(e) if existing.is_none() && like.is_some() => {
            // The old server's locale may not exist here: keep the owner, take this server's locale.
            tracing::warn!("could not recreate the database's encoding and locale here ({e}); using this server's defaults");
            let owner_only = like.as_ref().map(|l| crate::postgres::DbInfo {
                owner: l.owner.clone(),
                encoding: String::new(),
                collate: String::new(),
                ctype: String::new(),
            });
            admin.create_database(&temp, owner_only.as_ref())
        }
        other => other,
    };
    created.map_err(|e| e.context(format!("creating temporary database {temp:?}")))?;
    let mut guard = TempDb { pg: &pg, name: Some(temp.clone()) };
    let result = (|| -> Result<()> {
        restore_into(&pg, &temp, reader, decoded.payload(), opts, &report.source)?;
        opened_check.check_digest()?;
        progress.finish();
        if let Some(m) = &manifest
            && project.verify_on_restore
        {
            check_counts(&pg, &temp, m, opts.table.as_deref(), &mut report)?;
        }
        Ok(())
    })();
    progress.finish();
    result?;

    if replacing {
        let old = old_db_name(&target, opts.now);
        let containers = project.app_containers.get(env).cloned().unwrap_or_default();
        crate::fault::point("restore:before-swap");
        crate::apps::with_stopped(&containers, || swap(&pg, &target, &temp, &old))?;
        report.replaced = true;
        if opts.drop_old {
            admin.drop_database(&old)?;
        } else {
            report.old_database = Some(old);
        }
    } else {
        admin.rename_database(&temp, &target)?;
    }
    guard.name = None;
    admin.close()?;
    Ok(report)
}

/// Streams a decoded payload (`layer`: custom archive or SQL) into the empty database `db`.
pub fn restore_into(pg: &Pg, db: &str, reader: Box<dyn Read + Send>, layer: Layer, opts: &RestoreOptions, source: &str) -> Result<()> {
    match layer {
        Layer::CustomArchive => {
            let mut args = restore_args(db, opts.no_owner);
            if let Some(t) = &opts.table {
                args.extend(table_args(t));
            }
            match opts.jobs.filter(|j| *j > 1) {
                None => feed(pg, "pg_restore", None, &args, reader, source),
                Some(jobs) => {
                    // pg_restore -j needs a seekable file: spool the decoded archive first.
                    let mut tmp = tempfile::Builder::new()
                        .prefix("pgtier-restore-")
                        .tempfile()
                        .map_err(|e| crate::failed!("cannot create a temporary file: {e}"))?;
                    let mut reader = reader;
                    pipeline::copy_counted(&mut reader, tmp.as_file_mut(), &Progress::hidden())
                        .map_err(|e| crate::failed!("{source}: {e}"))?;
                    args.push(format!("--jobs={jobs}"));
                    args.push(tmp.path().display().to_string());
                    pg.spawn("pg_restore", None, &args, Stdio::null())?.wait()
                }
            }
        }
        Layer::Sql => {
            if opts.table.is_some() || opts.jobs.is_some_and(|j| j > 1) {
                return Err(crate::usage!("--table and --jobs need a custom-format archive; {source} is SQL text"));
            }
            let args: Vec<String> =
                ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-o", "/dev/null"].iter().map(|s| s.to_string()).collect();
            feed(pg, "psql", Some(db), &args, reader, source)
        }
        other => Err(crate::failed!("{source}: cannot restore {}", other.name())),
    }
}

fn restore_args(db: &str, no_owner: bool) -> Vec<String> {
    // A conninfo string, so no database name is ever read as connection options.
    let conninfo = format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut args = vec!["--no-password".to_string(), "--exit-on-error".into(), format!("--dbname={conninfo}")];
    if no_owner {
        args.push("--no-owner".into());
    }
    args
}

/// `-n schema -t table` for `schema.table`, `-t table` otherwise.
fn table_args(table: &str) -> Vec<String> {
    match table.split_once('.') {
        Some((schema, name)) => vec![format!("--schema={schema}"), format!("--table={name}")],
        None => vec![format!("--table={table}")],
    }
}

pub fn with_progress(input: Box<dyn Read + Send>, progress: Progress) -> Box<dyn Read + Send> {
    struct P(Box<dyn Read + Send>, Progress);
    impl Read for P {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            crate::signals::check_io()?;
            let n = self.0.read(buf)?;
            self.1.inc(n as u64);
            Ok(n)
        }
    }
    Box::new(P(input, progress))
}

/// Runs `tool` with `reader` on its stdin; a decoding error wins over the tool's complaint
/// about the input it left truncated.
fn feed(pg: &Pg, tool: &str, database: Option<&str>, args: &[String], mut reader: Box<dyn Read + Send>, source: &str) -> Result<()> {
    let mut running = pg.spawn(tool, database, args, Stdio::piped())?;
    let mut stdin = running.child.stdin.take().expect("piped stdin");
    let mut stdout = running.child.stdout.take().expect("piped stdout");
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let fed = std::thread::spawn(move || -> std::io::Result<u64> {
        let n = pipeline::copy_counted(&mut reader, &mut stdin, &Progress::hidden());
        drop(stdin);
        match n {
            // pg_restore --table stops reading once it has its table: read on, so the
            // stream's checksum is still checked to the end.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                std::io::copy(&mut reader, &mut std::io::sink())?;
                Err(e)
            }
            other => other,
        }
    });
    let waited = running.wait();
    let fed = fed.join().map_err(|_| crate::failed!("restore feeder panicked"))?;
    let _ = drain.join();
    match (fed, waited) {
        (Err(e), _) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(crate::failed!("reading {source}: {e} (the backup is corrupt or truncated)"))
        }
        (_, Err(e)) => Err(e),
        (_, Ok(())) => Ok(()),
    }
}

/// Compares row counts in `db` with the manifest's; every difference is named.
fn check_counts(pg: &Pg, db: &str, m: &Manifest, table: Option<&str>, report: &mut RestoreReport) -> Result<()> {
    let Some(expected) = &m.tables else {
        report.warnings.push("the manifest has no row counts; not compared".into());
        return Ok(());
    };
    let mut s = pg.session(db)?;
    let actual = s.count_rows()?;
    s.close()?;
    let expected: BTreeMap<&String, &u64> = match table {
        None => expected.iter().collect(),
        Some(t) => expected.iter().filter(|(k, _)| table_matches(k, t)).collect(),
    };
    let problems = compare_counts(&expected, &actual, table.is_some());
    if !problems.is_empty() {
        return Err(crate::failed!("restored data does not match the manifest of {}: {}", m.file, problems.join("; ")));
    }
    report.tables_checked = Some(expected.len());
    report.rows = Some(expected.values().copied().sum());
    Ok(())
}

/// The differences between expected and restored row counts.
pub fn compare_counts(expected: &BTreeMap<&String, &u64>, actual: &BTreeMap<String, u64>, only_expected: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (t, n) in expected {
        match actual.get(*t) {
            None => problems.push(format!("table {t} is missing")),
            Some(a) if a != *n => problems.push(format!("table {t} has {a} rows, expected {n}")),
            _ => {}
        }
    }
    if !only_expected {
        for t in actual.keys() {
            if !expected.contains_key(t) {
                problems.push(format!("table {t} was not in the backup"));
            }
        }
    }
    problems
}

/// Whether manifest key `key` (`schema.table`, quoted where needed) is the table `spec` names.
fn table_matches(key: &str, spec: &str) -> bool {
    key == spec || key.split_once('.').is_some_and(|(_, t)| t == spec || t.trim_matches('"') == spec)
}
