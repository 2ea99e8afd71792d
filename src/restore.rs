//! Restoring a backup: the data is checked against its manifest before it is trusted, restored
//! into a new database, its row counts compared, and only then swapped in by rename. A failure
//! at any step drops the half-made database and leaves the original exactly as it was.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::Listing;
use crate::config::{Config, Project};
use crate::crypto::Keys;
use crate::error::{IoContext, Result};
use crate::manifest::Manifest;
use crate::names::Kind;
use crate::pipeline::{self, DigestCell, HashReader, Layer};
use crate::postgres::{Pg, Session, quote_ident};
use crate::ui::{Progress, Ui};

/// Prefix of every temporary database pgtier creates; `cleanup` drops the ones whose creator died.
pub const TEMP_DB_PREFIX: &str = "pgtier_tmp_";

/// What to restore.
#[derive(Debug, Clone)]
pub enum Input {
    /// The newest backup of the project/env.
    Latest,
    /// A backup stem (`db_20250106_020000`), file name, or a path to any dump file.
    Named(String),
    /// A dump on standard input.
    Stdin,
}

/// Where to look for the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    Local,
    Remote,
    /// A local copy whose checksum matches, else the remote one.
    Auto,
}

/// Which backup, where to look for it, and whether to wait for a Glacier thaw.
#[derive(Debug, Clone)]
pub struct Source {
    pub input: Input,
    pub from: From,
    /// Wait for a Glacier thaw (None: request it and exit 1 saying when to run again).
    pub wait: Option<crate::offsite::ThawWait>,
    /// Check a local file's SHA-256 before reading it (restore), or while streaming it, to be
    /// checked at the end (verify, which restores into a throwaway database anyway).
    pub check_first: bool,
}

impl Source {
    /// The same place, another backup.
    pub fn with_input(&self, input: Input) -> Source {
        Source { input, ..self.clone() }
    }
}

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

/// A stream to restore from, with what is known about it.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub manifest: Option<Manifest>,
    pub source: String,
    pub from: String,
    pub size: Option<u64>,
    /// Set when the stream was not checked beforehand: its digest, known at end of stream,
    /// must match the manifest before the data is trusted.
    pub digest: Option<DigestCell>,
}

impl Opened {
    /// Separates the reader from what is needed to check it afterwards.
    pub fn split(self) -> (Box<dyn Read + Send>, Opened) {
        let check = Opened {
            reader: Box::new(std::io::empty()),
            manifest: self.manifest,
            source: self.source,
            from: self.from,
            size: self.size,
            digest: self.digest,
        };
        (self.reader, check)
    }

    /// After the stream was read to its end: the bytes were the manifest's.
    pub fn check_digest(&self) -> Result<()> {
        let (Some(cell), Some(m)) = (&self.digest, &self.manifest) else { return Ok(()) };
        match cell.get() {
            Some(d) if d.size == m.size && d.sha256 == m.sha256 => Ok(()),
            Some(d) => Err(crate::failed!(
                "{}: the downloaded bytes do not match the manifest (size {} vs {}, sha256 {} vs {}); not trusting them",
                self.source,
                d.size,
                m.size,
                d.sha256,
                m.sha256
            )),
            None => Err(crate::failed!("{}: the stream was not read to its end, so its checksum is unknown", self.source)),
        }
    }
}

/// Finds and opens a backup of `kind` locally, remotely, or local-first (`--from auto`).
pub fn open_source(cfg: &Config, project: &Project, env: &str, source: &Source, kind: Kind, ui: &Ui) -> Result<Opened> {
    let Source { input, from, wait, check_first } = source;
    let (from, wait) = (*from, *wait);
    let is_path = matches!(input, Input::Stdin) || matches!(input, Input::Named(s) if Path::new(s).is_file());
    match from {
        From::Local => open_local(cfg, project, env, input, kind, *check_first),
        From::Remote if is_path => Err(crate::usage!("--from remote takes a backup name, not a file or stdin")),
        From::Remote => open_remote(cfg, project, env, input, wait, kind, ui),
        From::Auto if is_path => open_local(cfg, project, env, input, kind, *check_first),
        From::Auto => match open_local(cfg, project, env, input, kind, *check_first) {
            Ok(o) => {
                tracing::info!("restoring from the local copy {}", o.source);
                Ok(o)
            }
            Err(e) if cfg.remote.is_some() => {
                tracing::warn!("no usable local copy ({e}); restoring from the remote copy");
                open_remote(cfg, project, env, input, wait, kind, ui)
            }
            Err(e) => Err(e),
        },
    }
}

/// Opens a remote backup (the newest of `kind`, or the named one); works with `backup_root` gone.
pub fn open_remote(
    cfg: &Config,
    project: &Project,
    env: &str,
    input: &Input,
    wait: Option<crate::offsite::ThawWait>,
    kind: Kind,
    ui: &Ui,
) -> Result<Opened> {
    let remote =
        crate::offsite::Remote::open(cfg)?.ok_or_else(|| crate::usage!("--from remote needs remote: in {}", cfg.file.display()))?;
    let cat = crate::offsite::RemoteCatalog::load(&remote, &project.name, env, None)?;
    for (key, why) in &cat.broken {
        tracing::warn!("{}: {why}", remote.url(key));
    }
    let found = match input {
        Input::Latest => cat.backups.values().rev().find(|b| b.stem.kind == kind && b.manifest.is_some() && !b.copies.is_empty()),
        Input::Named(spec) => {
            let name = Path::new(spec).file_name().and_then(|n| n.to_str()).unwrap_or(spec);
            let stem = crate::names::Stem::parse(name).or_else(|| crate::names::Stem::split_file_name(name).map(|(s, _)| s));
            stem.and_then(|s| cat.backups.get(&s))
        }
        Input::Stdin => None,
    };
    let b = found.ok_or_else(|| {
        crate::failed!("no such backup of {}/{env} off-site under {}", project.name, remote.url(&remote.env_prefix(&project.name, env)))
    })?;
    let manifest = b.manifest.clone().ok_or_else(|| crate::failed!("{}: its manifest is missing off-site", b.stem))?;
    let (reader, key) = crate::offsite::open_copy(&remote, b, wait, ui)?;
    let (reader, digest) = HashReader::new(reader);
    Ok(Opened {
        reader: Box::new(reader),
        source: remote.url(&key),
        from: "remote".into(),
        size: Some(manifest.size),
        manifest: Some(manifest),
        digest: Some(digest),
    })
}

/// Restores into the project/env's database (or `--target-db`) as described in the module doc.
pub fn restore(cfg: &Config, project: &Project, env: &str, opts: &RestoreOptions, keys: &Keys, ui: &Ui) -> Result<RestoreReport> {
    let database = project.database(env)?.to_string();
    let opened = open_source(cfg, project, env, &opts.source, Kind::Database, ui)?;
    restore_opened(cfg, project, env, &database, opened, opts, keys, ui)
}

/// Finds and checks a local backup of `kind`, a file or stdin.
pub fn open_local(cfg: &Config, project: &Project, env: &str, input: &Input, kind: Kind, check_first: bool) -> Result<Opened> {
    let dir = cfg.env_dir(&project.name, env);
    match input {
        Input::Stdin => Ok(Opened {
            reader: Box::new(std::io::stdin()),
            manifest: None,
            source: "-".into(),
            from: "stdin".into(),
            size: None,
            digest: None,
        }),
        Input::Latest => {
            let listing = Listing::scan(&dir, &project.name, env)?;
            let b = listing
                .backups
                .iter()
                .rev()
                .find(|b| b.stem.kind == kind)
                .ok_or_else(|| crate::failed!("no local backups of {}/{env} in {}", project.name, dir.display()))?;
            open_checked(&b.data_path, b.manifest.clone(), "local", check_first)
        }
        Input::Named(spec) => {
            let path = Path::new(spec);
            if path.is_file() {
                let manifest = sidecar_manifest(path)?;
                if let Some(m) = &manifest
                    && (m.project != project.name || m.env != env)
                {
                    return Err(crate::usage!("{spec} is a backup of {}/{}, not {}/{env}", m.project, m.env, project.name));
                }
                return match manifest {
                    Some(m) => open_checked(path, m, "file", check_first),
                    None => {
                        let f = std::fs::File::open(path).at(path)?;
                        let size = f.metadata().ok().map(|m| m.len());
                        Ok(Opened { reader: Box::new(f), manifest: None, source: spec.clone(), from: "file".into(), size, digest: None })
                    }
                };
            }
            let listing = Listing::scan(&dir, &project.name, env)?;
            let b = listing.find(spec).ok_or_else(|| {
                crate::failed!("no backup {spec:?} of {}/{env} in {} (and no file of that name)", project.name, dir.display())
            })?;
            open_checked(&b.data_path, b.manifest.clone(), "local", check_first)
        }
    }
}

/// The manifest beside `path`, if `path` is a pgtier backup file with one.
fn sidecar_manifest(path: &Path) -> Result<Option<Manifest>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return Ok(None) };
    let Some((stem, _)) = crate::names::Stem::split_file_name(name) else { return Ok(None) };
    let m_path = path.with_file_name(format!("{stem}.json"));
    if !m_path.is_file() {
        return Ok(None);
    }
    let m = Manifest::read(&m_path)?;
    Ok((m.file == name).then_some(m))
}

/// Opens a file after checking its size and SHA-256 against the manifest.
fn open_checked(path: &Path, manifest: Manifest, from: &str, check_first: bool) -> Result<Opened> {
    if !check_first {
        let f = std::fs::File::open(path).at(path)?;
        let size = f.metadata().at(path)?.len();
        if size != manifest.size {
            return Err(crate::failed!(
                "{}: does not match its manifest (size {size} vs {}): the file is corrupt or was changed",
                path.display(),
                manifest.size
            ));
        }
        let (reader, digest) = HashReader::new(f);
        return Ok(Opened {
            reader: Box::new(reader),
            source: path.display().to_string(),
            from: from.into(),
            size: Some(size),
            manifest: Some(manifest),
            digest: Some(digest),
        });
    }
    let digest = pipeline::sha256_file(path)?;
    if digest.size != manifest.size || digest.sha256 != manifest.sha256 {
        return Err(crate::failed!(
            "{}: does not match its manifest (size {} vs {}, sha256 {} vs {}): the file is corrupt or was changed; not restoring it",
            path.display(),
            digest.size,
            manifest.size,
            digest.sha256,
            manifest.sha256
        ));
    }
    let f = std::fs::File::open(path).at(path)?;
    Ok(Opened {
        reader: Box::new(f),
        source: path.display().to_string(),
        from: from.into(),
        size: Some(manifest.size),
        manifest: Some(manifest),
        digest: None,
    })
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

/// Swaps `temp` in for `target`, keeping the old one as `old`. If the second rename fails, the
/// first is undone.
/// Swaps `temp` in for `target`, keeping the old one as `old`: connections are ended and both
/// renames happen in one transaction, so at any instant (a crash included) the name holds either
/// the old database or the new one. A client that reconnects in between makes the transaction
/// fail without changing anything; it is retried a few times.
fn swap(pg: &Pg, target: &str, temp: &str, old: &str) -> Result<()> {
    let (t, tmp, o) = (quote_ident(target), quote_ident(temp), quote_ident(old));
    let mut last = None;
    for attempt in 1..=5 {
        let mut s = admin_session(pg)?;
        let done = (|| -> Result<()> {
            s.exec("BEGIN")?;
            let ended = s.terminate_connections(target)?;
            if ended > 0 {
                tracing::info!("ended {ended} connection(s) to {target}");
            }
            s.exec(&format!("ALTER DATABASE {t} RENAME TO {o}"))?;
            crate::fault::point("restore:mid-swap");
            s.exec(&format!("ALTER DATABASE {tmp} RENAME TO {t}"))?;
            s.exec("COMMIT")
        })();
        match done {
            Ok(()) => return s.close(),
            Err(e) => {
                tracing::warn!("swapping in {target:?} (attempt {attempt} of 5): {e}");
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(200 * attempt));
            }
        }
    }
    Err(last
        .expect("at least one attempt")
        .context(format!("could not swap the restored database in for {target:?}; it was left unchanged")))
}

/// A session on a maintenance database (postgres, else template1).
pub fn admin_session(pg: &Pg) -> Result<Session> {
    pg.session("postgres").or_else(|e| pg.session("template1").map_err(|_| e))
}

/// Drops the temporary database unless disarmed.
struct TempDb<'a> {
    pg: &'a Pg,
    name: Option<String>,
}

impl Drop for TempDb<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            match admin_session(self.pg).and_then(|mut s| s.drop_database(&name)) {
                Ok(()) => tracing::info!("dropped temporary database {name}"),
                Err(e) => tracing::error!("could not drop temporary database {name}: {e}; the next `pgtier run` retries"),
            }
        }
    }
}

static TEMP_SEQ: AtomicU32 = AtomicU32::new(0);

/// `pgtier_tmp_{pid}_{n}_{target}`, cut to PostgreSQL's 63 bytes.
pub fn temp_db_name(target: &str) -> String {
    let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    truncate_name(&format!("{TEMP_DB_PREFIX}{}_{n}_{target}", std::process::id()))
}

/// `{target}_pgtier_old_{YYYYMMDD_HHMMSS}`, the target cut so the suffix survives.
pub fn old_db_name(target: &str, now: DateTime<Utc>) -> String {
    let suffix = format!("_pgtier_old_{}", now.format("%Y%m%d_%H%M%S"));
    let head = truncate_at(target, 63 - suffix.len());
    format!("{head}{suffix}")
}

fn truncate_name(s: &str) -> String {
    truncate_at(s, 63).to_string()
}

fn truncate_at(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn check_db_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.chars().any(|c| c.is_control()) {
        return Err(crate::usage!("--target-db: {name:?} is not a database name (1 to 63 bytes, no control characters)"));
    }
    if name.starts_with(TEMP_DB_PREFIX) {
        return Err(crate::usage!("--target-db: names starting with {TEMP_DB_PREFIX} are reserved for pgtier's temporary databases"));
    }
    Ok(())
}

/// Drops temporary databases left by pgtier processes that no longer exist on this host.
pub fn drop_stale_temp_dbs(pg: &Pg) -> Result<Vec<String>> {
    let mut admin = admin_session(pg)?;
    let mut dropped = Vec::new();
    for name in admin.databases_like(TEMP_DB_PREFIX)? {
        let pid: Option<i32> = name[TEMP_DB_PREFIX.len()..].split('_').next().and_then(|p| p.parse().ok());
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = pid.is_some_and(|p| {
            p == std::process::id() as i32
                || unsafe { libc::kill(p, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        });
        if !alive {
            admin.drop_database(&name)?;
            dropped.push(name);
        }
    }
    admin.close()?;
    Ok(dropped)
}
