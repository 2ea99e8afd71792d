//! Restoring a backup: the data is checked against its manifest before it is trusted, restored
//! into a new database, its row counts compared, and only then swapped in by rename. A failure
//! at any step drops the half-made database and leaves the original exactly as it was.

pub mod apps;
mod arriving;
mod databases;
pub mod fidelity;
pub mod globals;
mod script;
mod source;
mod sql_guard;
pub mod table;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, Project};
use crate::context::EnvContext;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::names::Kind;
use crate::pipeline::{self, Layer};
use crate::postgres::archive::{self, CompareOptions, Toc};
use crate::postgres::{DbInfo, Pg, Session, quote_literal};
use crate::records::manifest::Manifest;
use crate::ui::{Progress, Ui};

pub use databases::TempDb;
pub use databases::check_db_name;
use databases::swap;
pub use databases::{TEMP_DB_PREFIX, drop_database, drop_stale_temp_dbs, old_db_name, temp_db_name};
pub use source::{Chosen, Input, Opened, Origin, Source, choose_remote, open_local, open_remote, open_source};
use sql_guard::SqlGuard;

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
    /// ANALYZE a whole restored database before it is swapped in (`--no-analyze` skips it).
    pub analyze: bool,
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
    pub from: Origin,
    /// The previous database, renamed and kept (None if none was replaced or it was dropped).
    pub old_database: Option<String>,
    pub replaced: bool,
    pub table: Option<String>,
    /// Tables whose row counts were compared with the manifest (None: not checked).
    pub tables_checked: Option<usize>,
    pub rows: Option<u64>,
    /// Schema objects and database properties compared with the backup's (None: not compared).
    pub objects_checked: Option<usize>,
    /// Large objects the backup holds, all restored.
    pub large_objects: Option<u64>,
    /// How long ANALYZE of the restored database took before the swap (None: not run).
    pub analyze_seconds: Option<f64>,
    pub warnings: Vec<String>,
}

/// Restores into the project/env's database (or `--target-db`) as described in the module doc.
pub fn restore(e: &mut EnvContext, opts: &RestoreOptions, keys: &Keys, ui: &Ui) -> Result<RestoreReport> {
    let (cfg, project, env) = (e.cfg, e.project, e.env.clone());
    let database = project.database(&env)?.to_string();
    let opened = open_source(e, &opts.source, Kind::Database, ui)?;
    restore_opened(cfg, project, &env, &database, opened, opts, keys, ui)
}

/// The decoded content of a backup: a pg_dump archive (with its table of contents) or plain SQL
/// (without), and where pg_restore or psql reads it.
pub struct Payload {
    pub toc: Option<Box<Toc>>,
    pub input: ArchiveInput,
}

/// Where the archive is read from: a stream (a custom archive or SQL from its first byte), or
/// a directory-format dump unpacked from its tar stream into a private scratch folder (still
/// arriving, or whole).
pub enum ArchiveInput {
    Stream(Box<dyn Read + Send>),
    Arriving(Box<arriving::Arriving>),
    Folder {
        /// The folder holding `toc.dat`.
        path: std::path::PathBuf,
        /// The scratch folder around it, removed when the restore is done.
        _scratch: tempfile::TempDir,
    },
}

impl ArchiveInput {
    /// What the tool reads on its stdin; a folder's path goes last in `args` instead (pg_restore
    /// reads a directory-format dump only from its folder, waited for whole). The folder stays
    /// until the returned guard is dropped.
    pub fn into_stdin(self, args: &mut Vec<String>) -> Result<(Box<dyn Read + Send>, Option<tempfile::TempDir>)> {
        match self {
            ArchiveInput::Stream(r) => Ok((r, None)),
            ArchiveInput::Arriving(a) => {
                let (path, scratch) = a.settle()?;
                args.push(path.display().to_string());
                Ok((Box::new(std::io::empty()), Some(scratch)))
            }
            ArchiveInput::Folder { path, _scratch } => {
                args.push(path.display().to_string());
                Ok((Box::new(std::io::empty()), Some(_scratch)))
            }
        }
    }

    /// Whether the archive is a directory-format dump's folder.
    pub fn is_folder(&self) -> bool {
        !matches!(self, ArchiveInput::Stream(_))
    }
}

/// The parallel pg_restore jobs for a directory-format dump when none were asked for: one per
/// core of this host.
pub fn default_jobs() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// A backup that could not be read to its end: interrupted by a signal (says so), else corrupt
/// or truncated. `then` is added to the latter ("; nothing was changed").
///
/// A source that broke off (a dropped download) is `Unreachable`: it proves nothing of the
/// backup.
pub(crate) fn unreadable(source: &str, e: &std::io::Error, then: &str) -> Error {
    use crate::signals::StreamStop;
    match crate::signals::stop_of(e) {
        _ if crate::signals::interrupted() => Error::Cancelled,
        Some(StreamStop::Cancelled) => Error::Cancelled,
        Some(StreamStop::SourceLost(why)) => Error::Unreachable(format!("reading {source}: {why}{then}")),
        None => crate::failed!("reading {source}: {e} (the backup is corrupt or truncated){then}"),
    }
}

/// Reads what a decoded stream holds: an archive's table of contents, or SQL. A tar of a
/// directory-format dump is unpacked into the scratch folder as it arrives, returned once its
/// `toc.dat` is there (its files stay compressed as pg_dump wrote them, so it takes at most
/// about `size`, the stored size, which must be free there: else nothing is unpacked and
/// nothing is changed).
pub fn payload(reader: Box<dyn Read + Send>, layer: Layer, source: &str, size: Option<u64>) -> Result<Payload> {
    match layer {
        Layer::CustomArchive => {
            let (toc, reader) = archive::read_head(reader).map_err(|e| unreadable(source, &e, ""))?;
            let toc = toc.map_err(|m| crate::failed!("{source}: {m}; nothing was changed"))?;
            Ok(Payload { toc: Some(Box::new(toc)), input: ArchiveInput::Stream(reader) })
        }
        Layer::Tar => {
            let (toc, arriving) = arriving::start(reader, source, size)?;
            Ok(Payload { toc: Some(Box::new(toc)), input: ArchiveInput::Arriving(Box::new(arriving)) })
        }
        Layer::Sql => Ok(Payload { toc: None, input: ArchiveInput::Stream(reader) }),
        other => Err(crate::failed!("{source}: cannot restore {}", other.name())),
    }
}

/// Before a single archive is spooled for `pg_restore -j`: the decoded archive is at least as
/// large as the stored bytes, so less room than that in the scratch folder cannot suffice.
fn check_spool_room(source: &str, size: Option<u64>) -> Result<()> {
    let Some(size) = size else { return Ok(()) };
    let (dir, free) = crate::scratch::free_space()?;
    if free < size {
        return Err(crate::failed!(
            "a parallel restore of {source} spools the decoded archive into {} first, which needs more than its stored {} (decoded, it is larger); only {} is free there. Free space there, set scratch_dir in pgtier.yml to a folder with room, or restore without --jobs; nothing was changed",
            dir.display(),
            crate::ui::human_size(size),
            crate::ui::human_size(free)
        ));
    }
    Ok(())
}

/// How pg_restore loads an archive.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub no_owner: bool,
    pub no_privileges: bool,
    pub jobs: Option<u32>,
    /// Archive entries (dump ids) left out, e.g. policies naming roles this server lacks.
    pub skip: Vec<i64>,
    /// The pg_restore to use (`tool_for`); None: the connection's own.
    pub tool: Option<crate::postgres::tools::RestoreTool>,
}

/// Before anything is created: the backup is not of a newer major than this server (a
/// downgrade pg_restore cannot do faithfully), and a pg_restore here restores its archive into
/// this server (else what to install). A parallel restore the chosen tool cannot do is said in
/// `warnings` and done in one job.
pub fn tool_for(pg: &Pg, toc: &Toc, load: &mut Load, warnings: &mut Vec<String>) -> Result<()> {
    let server = pg.server_version();
    if let Some(from) = crate::postgres::tools::major_of(&toc.server_version)
        && from > server.major
    {
        return Err(crate::error::Error::Unsupported(format!(
            "this backup is of PostgreSQL {} (taken with pg_dump {}); restoring it onto PostgreSQL {server} would be a downgrade, which pg_restore cannot do faithfully. Restore it onto PostgreSQL {from} or newer; nothing was created",
            toc.server_version, toc.dump_version
        )));
    }
    let tool = pg.restore_tool((toc.version.0, toc.version.1))?;
    if tool.through_psql && load.jobs.is_some_and(|j| j > 1) {
        warnings.push(format!(
            "{} cannot restore in parallel into PostgreSQL {server} (its script goes through psql): restored in one job",
            tool.describe()
        ));
        load.jobs = None;
    }
    load.tool = Some(tool);
    Ok(())
}

impl Load {
    /// What a comparison with the backup leaves out.
    pub fn compare(&self) -> CompareOptions {
        CompareOptions { ignore_owners: self.no_owner, ignore_privileges: self.no_privileges }
    }
}

/// Connects for a restore: through a maintenance database, so neither the target nor the
/// database named in the config needs to exist.
pub fn connect_admin(cfg: &Config, project: &Project, database: &str) -> Result<Pg> {
    Pg::connect_admin(&project.connection, cfg.pg_bindir.as_deref(), Some(database))
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
    let mut warnings = opened.warnings.clone();
    if opened.manifest.is_none() {
        warnings.push(format!("{}: no manifest, so the checksum and row-count checks are skipped", opened.source));
    }
    if opts.jobs.is_some_and(|j| j > 1) && opts.table.is_some() {
        return Err(crate::usage!("a parallel restore does not apply to one table, which restores in one transaction"));
    }
    if opts.jobs.is_some() && project.connection.container.is_some() {
        return Err(crate::usage!(
            "a parallel restore needs a direct connection: pg_restore -j reads a file, which a container cannot see"
        ));
    }
    let pg = connect_admin(cfg, project, database)?;
    let mut admin = pg.admin_session()?;
    let existing = admin.database_info(&target)?;
    let replacing = existing.is_some();
    if replacing && opts.table.is_some() && opened.digest.is_some() {
        return Err(crate::usage!("restoring one table into the live database needs a checked local copy: sync the backup down first")
            .remedy(crate::error::Remedy::OtherDatabase));
    }
    if replacing && !opts.force {
        let what = match &opts.table {
            Some(t) => format!("restore table {t} into existing database {target:?}, replacing that table"),
            None => format!("replace existing database {target:?} (the old one is kept, renamed, until it is dropped)"),
        };
        // Name what comes back, and how old it is, before anything is replaced.
        let from = match &opened.manifest {
            Some(m) => format!(
                "{} (taken {}, {})",
                opened.source,
                m.created_at.format("%Y-%m-%d %H:%M UTC"),
                crate::ui::ago(m.created_at, opts.now)
            ),
            None => opened.source.clone(),
        };
        if !ui.confirm(&format!("Restoring {from}. This will {what}.")) {
            return Err(
                crate::usage!("database {target:?} exists; refusing to {what} without confirmation").remedy(crate::error::Remedy::Force)
            );
        }
    }

    let progress = ui.progress("restore", opened.size);
    let mut report = RestoreReport {
        project: project.name.clone(),
        env: env.to_string(),
        database: target.clone(),
        source: opened.source.clone(),
        from: opened.from,
        old_database: None,
        replaced: false,
        table: opts.table.clone(),
        tables_checked: None,
        rows: None,
        objects_checked: None,
        large_objects: None,
        analyze_seconds: None,
        warnings,
    };
    let manifest = opened.manifest.clone();
    // Decoding starts here: a wrong key or a foreign file fails before any database is made.
    let (opened_reader, check) = opened.split();
    let size = check.size.or(manifest.as_ref().map(|m| m.size));
    let (reader, decoded) = pipeline::decoder(with_progress(opened_reader, progress.clone()), keys, &report.source)?;
    if decoded.payload() == Layer::Tar && project.connection.container.is_some() {
        return Err(crate::usage!(
            "{} is a directory-format dump, which pg_restore reads from a folder that a container cannot see: restore it over a direct connection (host/port); nothing was changed",
            report.source
        ));
    }
    let Payload { toc, input } = payload(reader, decoded.payload(), &report.source, size)?;
    let jobs = opts.jobs.or_else(|| input.is_folder().then(default_jobs));
    let mut load = Load { no_owner: opts.no_owner, jobs, ..Load::default() };
    if let Some(toc) = &toc {
        tool_for(&pg, toc, &mut load, &mut report.warnings)?;
    }
    if load.jobs.is_some_and(|j| j > 1) && !input.is_folder() && opts.table.is_none() {
        check_spool_room(&report.source, size)?;
    }

    if let Some(spec) = &opts.table {
        let Some(toc) = toc else {
            return Err(crate::usage!("restoring one table needs a custom-format archive; {} is SQL text", report.source));
        };
        let root = table::resolve(&toc, spec)?;
        let name = table::TableName::of(root);
        // pg_restore's script for the table runs with the tool chosen for this archive.
        let tool_pg = load.tool.as_ref().map(|t| pg.with_restore_tool(t));
        let tool_pg = tool_pg.as_ref().unwrap_or(&pg);
        report.table = Some(name.to_string());
        let outcome = if replacing {
            let mut s = pg.session(&target)?;
            let exists = s.query_value(&format!("SELECT to_regclass({}) IS NOT NULL", quote_literal(&name.sql())))?;
            s.close()?;
            let dest = if exists.trim() == "t" { table::Destination::Replace } else { table::Destination::CreateIn };
            let outcome =
                table::restore_table(tool_pg, &target, &toc, root, dest, input, manifest.as_ref(), opts.no_owner, &report.source)?;
            check.check_digest()?;
            outcome
        } else {
            let temp = temp_db_name(&target);
            let mut guard = TempDb::new(&pg, &temp);
            let created = fidelity::create_like_archive(&mut admin, &temp, &toc, !opts.no_owner)?;
            report.warnings.extend(created.warnings);
            let outcome = table::restore_table(
                tool_pg,
                &temp,
                &toc,
                root,
                table::Destination::CreateNew,
                input,
                manifest.as_ref(),
                opts.no_owner,
                &report.source,
            )?;
            check.check_digest()?;
            fidelity::apply_properties(&mut admin, &temp, &toc, load.compare())?;
            admin.rename_database(&temp, &target)?;
            guard.name = None;
            outcome
        };
        progress.finish();
        report.warnings.extend(outcome.notes);
        report.tables_checked = Some(outcome.tables);
        report.rows = outcome.rows;
        admin.close()?;
        return Ok(report);
    }

    let temp = temp_db_name(&target);
    // Armed before the database exists, so an interruption between CREATE DATABASE's commit
    // and its answer still drops it (the drop is IF EXISTS).
    let mut guard = TempDb::new(&pg, &temp);
    let creation_differs = match &toc {
        Some(toc) => {
            let created = fidelity::create_like_archive(&mut admin, &temp, toc, !opts.no_owner)
                .map_err(|e| e.context(format!("creating temporary database {temp:?}")))?;
            report.warnings.extend(created.warnings);
            created.creation_differs
        }
        None => {
            create_for_sql(&mut admin, &pg, &temp, existing.as_ref(), manifest.as_ref(), &mut report.warnings)?;
            true
        }
    };
    let result = (|| -> Result<()> {
        let notes = restore_into(&pg, &temp, toc.as_deref(), input, &load, &report.source, &|| check.check_digest())?;
        report.warnings.extend(notes);
        check.check_digest()?;
        progress.finish();
        if let Some(toc) = &toc {
            fidelity::apply_properties(&mut admin, &temp, toc, load.compare())?;
            let compared = fidelity::compare(&pg, &temp, toc, &load, creation_differs)?;
            if !compared.diffs.is_empty() {
                return Err(crate::failed!(
                    "the restored database differs from the backup ({}); the original is untouched",
                    compared.diffs.join("; ")
                ));
            }
            report.objects_checked = Some(toc.objects(load.compare()).len());
            report.large_objects = Some(toc.large_objects());
        }
        if let Some(m) = &manifest
            && project.verify_on_restore
        {
            check_counts(&pg, &temp, m, None, &mut report)?;
        }
        // Planner statistics before the application meets the database: a freshly restored
        // database without them plans every query blind.
        if opts.analyze {
            let started = std::time::Instant::now();
            let mut s = pg.session(&temp)?;
            s.exec("ANALYZE").map_err(|e| e.context("gathering planner statistics (ANALYZE) before the swap"))?;
            s.close()?;
            report.analyze_seconds = Some((started.elapsed().as_secs_f64() * 100.0).round() / 100.0);
        }
        Ok(())
    })();
    progress.finish();
    result?;

    if replacing {
        let old = old_db_name(&mut admin, &target, opts.now)?;
        let containers = project.app_containers.get(env).or_else(|| project.app_containers.get("")).cloned().unwrap_or_default();
        crate::fault::point("restore:before-swap");
        crate::ops::restore::apps::with_stopped(&containers, || swap(&pg, &target, &temp, &old))?;
        guard.name = None;
        report.replaced = true;
        if opts.drop_old {
            drop_database(&pg, &old).map_err(|e| {
                crate::failed!(
                    "the restore succeeded: {target:?} now holds the backup. But the previous database, kept as {old:?}, could not be dropped ({e}); drop it by hand when it is no longer needed"
                )
            })?;
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

/// Creates the database a SQL file is restored into: like the one it replaces, or on a new
/// server like the one the manifest describes.
fn create_for_sql(
    admin: &mut Session,
    pg: &Pg,
    temp: &str,
    existing: Option<&DbInfo>,
    manifest: Option<&Manifest>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let like = match (existing, manifest.and_then(|m| m.database_settings.clone())) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(saved)) if admin.role_exists(&saved.owner)? => Some(saved),
        (None, Some(saved)) => {
            warnings.push(format!(
                "role {:?}, which owned the database, does not exist here: run `pgtier restore-globals` first to keep owners; the database will be owned by {}",
                saved.owner,
                pg.user()
            ));
            None
        }
        (None, None) => None,
    };
    let created = match admin.create_database(temp, like.as_ref()) {
        Err(e) if existing.is_none() && like.is_some() => {
            warnings.push(format!("could not recreate the database's encoding and locale here ({e}); using this server's defaults"));
            let owner_only = like.as_ref().map(|l| DbInfo {
                owner: l.owner.clone(),
                encoding: String::new(),
                collate: String::new(),
                ctype: String::new(),
            });
            admin.create_database(temp, owner_only.as_ref())
        }
        other => other,
    };
    created.map_err(|e| e.context(format!("creating temporary database {temp:?}")))
}

/// Loads a decoded payload (an archive with its table of contents `toc`, or SQL without) into
/// the empty database `db`; returns notes for the report. `verify` checks the stream's checksum
/// once it was read to its end: a directory-format dump loaded as it arrives has it speak
/// before a failure of the load (the load of a corrupt stream fails too).
pub fn restore_into(
    pg: &Pg,
    db: &str,
    toc: Option<&Toc>,
    input: ArchiveInput,
    load: &Load,
    source: &str,
    verify: &dyn Fn() -> Result<()>,
) -> Result<Vec<String>> {
    match toc {
        Some(toc) => {
            let pg = &match &load.tool {
                Some(t) => pg.with_restore_tool(t),
                None => pg.clone(),
            };
            let through_psql = load.tool.as_ref().is_some_and(|t| t.through_psql);
            let mut args = if through_psql { restore_options(load.no_owner) } else { restore_args(db, load.no_owner) };
            if load.no_privileges {
                args.push("--no-privileges".into());
            }
            let input = match input {
                ArchiveInput::Arriving(arriving) if !through_psql => {
                    arriving.load(pg, toc, &args, load, verify)?;
                    return Ok(Vec::new());
                }
                other => other,
            };
            let _list = if load.skip.is_empty() {
                None
            } else {
                let list = table::write_list(toc, |e| !load.skip.contains(&e.dump_id))?;
                args.push(format!("--use-list={}", list.path().display()));
                Some(list)
            };
            let jobs = load.jobs.filter(|j| *j > 1 && !through_psql);
            if input.is_folder() {
                // pg_restore reads the unpacked folder itself, in parallel where it can.
                if let Some(jobs) = jobs {
                    args.push(format!("--jobs={jobs}"));
                }
                let (reader, _folder) = input.into_stdin(&mut args)?;
                match through_psql {
                    true => script::whole(pg, db, &args, reader, source)?,
                    false => pg.spawn("pg_restore", None, &args, Stdio::null())?.wait()?,
                }
                return Ok(Vec::new());
            }
            let (reader, _) = input.into_stdin(&mut args)?;
            match jobs {
                None if through_psql => script::whole(pg, db, &args, reader, source)?,
                None => feed(pg, "pg_restore", None, &args, reader, source)?,
                Some(jobs) => {
                    // pg_restore -j needs a seekable file: spool the decoded archive first.
                    let mut tmp = crate::scratch::tempfile("restore")?;
                    let mut reader = reader;
                    pipeline::copy_counted(&mut reader, tmp.as_file_mut(), &Progress::hidden())
                        .map_err(|e| crate::failed!("{source}: {e}"))?;
                    args.push(format!("--jobs={jobs}"));
                    args.push(tmp.path().display().to_string());
                    pg.spawn("pg_restore", None, &args, Stdio::null())?.wait()?;
                }
            }
            Ok(Vec::new())
        }
        None => {
            if load.jobs.is_some_and(|j| j > 1) {
                return Err(crate::usage!("a parallel restore needs a custom-format archive; {source} is SQL text"));
            }
            let (reader, _) = input.into_stdin(&mut Vec::new())?;
            let notes = Arc::new(Mutex::new(Vec::new()));
            let guarded = Box::new(SqlGuard::new(reader, db, Arc::clone(&notes)));
            let args: Vec<String> =
                ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-o", "/dev/null"].iter().map(|s| s.to_string()).collect();
            feed(pg, "psql", Some(db), &args, guarded, source)?;
            let n = notes.lock().expect("notes").clone();
            Ok(n)
        }
    }
}

fn restore_args(db: &str, no_owner: bool) -> Vec<String> {
    // A conninfo string, so no database name is ever read as connection options.
    let conninfo = format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut args = vec!["--no-password".to_string(), "--exit-on-error".into(), format!("--dbname={conninfo}")];
    args.extend(restore_options(no_owner));
    args
}

/// pg_restore's options other than where it restores to.
fn restore_options(no_owner: bool) -> Vec<String> {
    if no_owner { vec!["--no-owner".into()] } else { Vec::new() }
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
    let waited = running.finish();
    let fed = fed.join().map_err(|_| crate::failed!("restore feeder panicked"))?;
    let _ = drain.join();
    // psql says these only on its stderr: read there, where the tool's own words are.
    match (fed, waited) {
        (Err(e), _) if e.kind() == sql_guard::REFUSED => Err(crate::usage!("refusing {source}: {e}; nothing was changed")),
        (_, Err(f)) if f.stderr.contains("backslash commands are restricted") => Err(crate::usage!(
            "refusing {source}: it contains a psql command (a backslash command inside a line), which pgtier does not run; nothing was changed"
        )),
        (_, Err(f)) if f.stderr.contains("invalid command \\restrict") => Err(crate::failed!(
            "this psql cannot run SQL files in restricted mode (\\restrict): install PostgreSQL client tools of version 13.22, 14.19, 15.14, 16.10, 17.6 or newer"
        )),
        (Err(e), _) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(unreadable(source, &e, "")),
        (_, Err(f)) => Err(f.into()),
        (_, Ok(())) => Ok(()),
    }
}

/// Compares row counts in `db` with the manifest's; every difference is named.
fn check_counts(pg: &Pg, db: &str, m: &Manifest, table: Option<&str>, report: &mut RestoreReport) -> Result<()> {
    let Some(expected) = &m.tables else {
        report.warnings.push("the manifest has no row counts; not compared".into());
        return Ok(());
    };
    let actual = pg.count_rows_parallel(db, default_jobs() as usize)?;
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
