//! Taking a backup: pg_dump's custom archive, its table of contents and row counts read from
//! the stream itself, streamed through compression, encryption and SHA-256 into a file that
//! appears only when complete, then the manifest, written last. With `backup.jobs` above 1,
//! pg_dump's directory format written with that many connections, stored as one tar stream.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::{Compression, EncryptionConfig, Project};
use crate::context::EnvContext;
use crate::error::{IoContext, Result};
use crate::fsutil::{DirLock, PartialFile, ensure_private_dir, write_atomic};
use crate::names::{Kind, Stem};
use crate::pipeline::tarball;
use crate::pipeline::{self, Digest, FinishWrite, HashWriter};
use crate::postgres::Pg;
use crate::postgres::archive::Toc;
use crate::postgres::directory::{self, FileRows};
use crate::postgres::rows::{CountingReader, RowCounter};
use crate::records::listing::{Listing, LocalBackup};
use crate::records::manifest::{EncryptionInfo, Manifest, Stored};
use crate::records::retention::{self, Candidate};

use crate::ui::{Progress, Ui};

/// What to back up and when it counts as taken.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub tags: Vec<String>,
    /// The backup's timestamp (the clock, or `--now`).
    pub now: DateTime<Utc>,
}

/// Backs up one project/env into its local folder and returns the new backup; `e` goes on
/// from the folder as read (or proven unchanged) under the env lock, with the backup in it.
pub fn backup(e: &mut EnvContext, opts: &BackupOptions, ui: &Ui) -> Result<LocalBackup> {
    let (cfg, project, env) = (e.cfg, e.project, e.env.clone());
    let env = env.as_str();
    let database = project.database(env)?;
    for t in &opts.tags {
        crate::names::check_component(t).map_err(|m| crate::usage!("tag {t:?}: {m}"))?;
    }
    let started = Instant::now();
    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)?;
    let mut slot = if project.backup_jobs > 1 {
        // Each file of the dump is compressed by pg_dump; the tar stream of them is not again.
        let files = directory::file_compression(project.policy.compression, pg.pg_dump_version());
        Slot::reserve(e, Kind::Database, opts.now, Payload::Tar { files })?
    } else {
        Slot::reserve(e, Kind::Database, opts.now, Payload::Stream)?
    };

    let mut session = pg.session(database)?;
    let settings = session.database_info(database)?;
    session.close()?;

    if project.backup_jobs > 1 {
        return dump_directory(e, slot, &pg, database, settings, opts, started, ui);
    }
    // Rows are counted from the dump's own data as it streams by: exactly what was dumped, with
    // no second scan of any table and no lock beyond pg_dump's own.
    let args = vec![
        "--format=custom".to_string(),
        "--compress=0".into(),
        "--no-password".into(),
        format!("--lock-wait-timeout={}", cfg.lock_wait_timeout.as_millis()),
    ];
    let mut dump = pg.spawn("pg_dump", Some(database), &args, Stdio::null())?;
    let mut read = None;
    let written = match slot.write(&mut dump, ui, "pg_dump", Some(&mut read)) {
        Ok(w) => w,
        Err(e) => {
            // A pg_dump that failed on its own says why; one that pgtier stopped does not.
            return match dump.finish() {
                Err(tool) if !tool.killed() => {
                    Err(crate::Error::from(tool).context(format!("backup of {}/{env} (database {database:?})", project.name)))
                }
                _ => Err(e),
            };
        }
    };
    dump.wait().map_err(|e| e.context(format!("backup of {}/{env} (database {database:?})", project.name)))?;
    if written.raw_size == 0 {
        return Err(crate::failed!("pg_dump produced no output for {database:?}"));
    }
    let (toc, tables) = match read {
        Some((toc, counter)) => {
            let counts = counter.lock().expect("row counter").finish();
            let tables = match counts {
                Ok(by_id) => Some(table_counts(&pg, database, &toc, &by_id)?),
                Err(why) => {
                    tracing::warn!("could not count rows in pg_dump's output ({why}): the manifest gets no row counts");
                    None
                }
            };
            (Some(toc), tables)
        }
        None => (None, None),
    };
    let contents =
        Contents { tables, settings, fingerprint: toc.as_ref().map(Toc::fingerprint), large_objects: toc.as_ref().map(Toc::large_objects) };
    let b = slot.finish(e, written, &pg, database, contents, &opts.tags, started)?;
    tracing::info!(
        "backed up {}/{env} to {} ({} bytes, {} tables)",
        project.name,
        b.data_path.display(),
        b.manifest.size,
        b.manifest.tables.as_ref().map_or(0, |t| t.len())
    );
    Ok(b)
}

/// The parallel dump: `pg_dump -Fd --jobs` writes the dump's files (each compressed) into a
/// private scratch folder in one snapshot; they then stream as one tar through encryption and
/// SHA-256 into the backup file, each removed from the folder once archived, their rows
/// counted on the way. The table of contents, fingerprint and large objects are recorded as
/// for a custom archive.
#[allow(clippy::too_many_arguments)]
fn dump_directory(
    e: &mut EnvContext,
    mut slot: Slot,
    pg: &Pg,
    database: &str,
    settings: Option<crate::postgres::DbInfo>,
    opts: &BackupOptions,
    started: Instant,
    ui: &Ui,
) -> Result<LocalBackup> {
    let (cfg, project, env) = (e.cfg, e.project, e.env.clone());
    let what = || format!("backup of {}/{env} (database {database:?})", project.name);
    let Payload::Tar { files } = slot.payload else { unreachable!("a directory dump reserves a tar slot") };
    let scratch = crate::scratch::tempdir("dump")?;
    let dir = scratch.path().join(slot.stem.to_string());
    let mut args = directory::dump_args(&dir, project.backup_jobs, files);
    args.push("--no-password".into());
    args.push(format!("--lock-wait-timeout={}", cfg.lock_wait_timeout.as_millis()));
    let spinner = ui.progress(&format!("pg_dump -j {}", project.backup_jobs), None);
    let dumped = pg.spawn("pg_dump", Some(database), &args, Stdio::null()).and_then(|d| d.wait());
    spinner.finish();
    dumped.map_err(|e| e.context(what()))?;
    crate::fault::point("backup:dumped");
    let toc_path = dir.join(tarball::FIRST);
    let head = std::fs::read(&toc_path).at(&toc_path)?;
    let toc = match crate::postgres::archive::parse(&head) {
        Ok((toc, _)) => toc,
        Err(why) => return Err(crate::failed!("{}: pg_dump wrote a table of contents pgtier cannot read ({why:?})", toc_path.display())),
    };
    let files = tarball::listing(&dir).at(&dir)?;
    let progress = ui.progress("archive", Some(files.iter().map(|(_, len)| len).sum()));
    let mut rows = FileRows::new(&toc);
    let top = slot.stem.to_string();
    let written = slot.write_with(|out| {
        let mut n = 0u64;
        tarball::pack(&dir, &files, &top, out, &mut |name, bytes| {
            n += bytes.len() as u64;
            progress.inc(bytes.len() as u64);
            rows.feed(name, bytes);
        })?;
        Ok(n)
    });
    progress.finish();
    let written = written?;
    let tables = match rows.finish() {
        Ok(by_id) => Some(table_counts(pg, database, &toc, &by_id)?),
        Err(why) => {
            tracing::warn!("could not count rows in pg_dump's files ({why}): the manifest gets no row counts");
            None
        }
    };
    let contents = Contents { tables, settings, fingerprint: Some(toc.fingerprint()), large_objects: Some(toc.large_objects()) };
    let b = slot.finish(e, written, pg, database, contents, &opts.tags, started)?;
    tracing::info!(
        "backed up {}/{env} to {} ({} bytes, {} tables, {} pg_dump jobs)",
        project.name,
        b.data_path.display(),
        b.manifest.size,
        b.manifest.tables.as_ref().map_or(0, |t| t.len()),
        project.backup_jobs
    );
    Ok(b)
}

/// Dumps the cluster's roles and tablespaces (`pg_dumpall --globals-only`) beside the env's
/// database backups, so a restore onto a new server has the roles that own the objects. Role
/// passwords are left out unless `globals.role_passwords` is set.
pub fn backup_globals(e: &mut EnvContext, now: DateTime<Utc>, ui: &Ui) -> Result<LocalBackup> {
    let (cfg, project, env) = (e.cfg, e.project, e.env.clone());
    let env = env.as_str();
    let database = project.database(env)?;
    let started = Instant::now();
    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)?;
    let mut slot = Slot::reserve(e, Kind::Globals, now, Payload::Stream)?;
    let conninfo = format!("dbname='{}'", database.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut args = vec!["--globals-only".to_string(), "--no-password".into(), format!("--dbname={conninfo}")];
    if !cfg.globals.role_passwords {
        args.push("--no-role-passwords".into());
    }
    let mut dump = pg.spawn("pg_dumpall", None, &args, Stdio::null())?;
    let written = slot.write(&mut dump, ui, "pg_dumpall", None)?;
    dump.wait().map_err(|e| e.context(format!("globals of {}/{env}", project.name)))?;
    if written.raw_size == 0 {
        return Err(crate::failed!("pg_dumpall produced no output for {}/{env}", project.name));
    }
    let b = slot.finish(e, written, &pg, database, Contents::default(), &[], started)?;
    tracing::info!("saved the roles and tablespaces of {}/{env} to {}", project.name, b.data_path.display());
    Ok(b)
}

/// A backup being written: its reserved name and temporary file, and the env folder as it was
/// when the name was taken.
struct Slot<'a> {
    project: &'a Project,
    env: String,
    dir: PathBuf,
    kind: Kind,
    stem: Stem,
    suffix: String,
    payload: Payload,
    partial: PartialFile,
    listing: Listing,
}

/// What a backup's stored stream holds, as the slot writes it.
#[derive(Debug, Clone, Copy)]
enum Payload {
    /// pg_dump's or pg_dumpall's output, compressed as the policy says.
    Stream,
    /// A directory-format dump's files, each compressed by pg_dump as `files`, in one tar stream.
    Tar { files: Compression },
}

impl Payload {
    /// What compresses the stored stream itself.
    fn stream_compression(self, policy: Compression) -> Compression {
        match self {
            Payload::Stream => policy,
            Payload::Tar { .. } => Compression::None,
        }
    }

    /// The compression the manifest records: the stream's, or that of the dump's files.
    fn recorded_compression(self, policy: Compression) -> Compression {
        match self {
            Payload::Stream => policy,
            Payload::Tar { files } => files,
        }
    }
}

impl<'a> Slot<'a> {
    /// Takes a free name under the env lock, checked against the context's listing if nothing
    /// changed the folder since it was read, else against the folder read now.
    fn reserve(e: &mut EnvContext<'a>, kind: Kind, now: DateTime<Utc>, payload: Payload) -> Result<Slot<'a>> {
        let (project, env, dir) = (e.project, e.env.clone(), e.dir.clone());
        ensure_private_dir(&dir)?;
        let ext = match payload {
            Payload::Stream => kind.payload_ext(),
            Payload::Tar { .. } => "tar",
        };
        let suffix = file_suffix(ext, payload.stream_compression(project.policy.compression), project.encryption.as_deref());
        let lock = DirLock::acquire(&dir)?;
        let mut listing = Listing::under_lock(e.take_listing(), &dir, &project.name, &env, &lock)?;
        let (stem, partial) = reserve(&dir, &listing, kind, now, &suffix)?;
        listing.partials.push(partial.path().to_path_buf());
        listing.changed_under(&dir, &lock);
        Ok(Slot { project, env, dir, kind, stem, suffix, payload, partial, listing })
    }

    /// Streams the tool's stdout into the temporary file; kills the tool if writing fails.
    /// With `read`, the stream is a custom archive whose table of contents is read, and whose
    /// rows are counted, on the way.
    fn write(
        &mut self,
        tool: &mut crate::postgres::Running,
        ui: &Ui,
        label: &str,
        read: Option<&mut Option<ArchiveRead>>,
    ) -> Result<Written> {
        let stdout: Box<dyn Read + Send> = Box::new(tool.child.stdout.take().expect("piped stdout"));
        let mut stdout = match read {
            None => stdout,
            Some(slot) => match crate::postgres::archive::read_head(stdout) {
                Ok((Ok(t), rest)) => {
                    let counter = Arc::new(Mutex::new(RowCounter::new(t.head_len, t.int_size)));
                    let rest: Box<dyn Read + Send> = Box::new(CountingReader::new(rest, Arc::clone(&counter)));
                    *slot = Some((t, counter));
                    rest
                }
                Ok((Err(why), rest)) => {
                    tracing::warn!(
                        "cannot read the table of contents of pg_dump's output ({why}): the manifest gets no schema fingerprint"
                    );
                    rest
                }
                // The output ended or broke early: pg_dump's own complaint, if any, says why.
                Err(e) => return Err(crate::failed!("reading pg_dump's output: {e}")),
            },
        };
        let progress = ui.progress(label, None);
        let compression = self.payload.stream_compression(self.project.policy.compression);
        let written = write_stream(&mut self.partial, &mut stdout, compression, self.project.encryption.as_deref(), &progress);
        progress.finish();
        drop(stdout);
        if written.is_err() {
            let _ = tool.child.kill();
        }
        written
    }

    /// Lets `fill` write the payload into the temporary file (see `write_with`).
    fn write_with(&mut self, fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<u64>) -> Result<Written> {
        let compression = self.payload.stream_compression(self.project.policy.compression);
        write_with(&mut self.partial, compression, self.project.encryption.as_deref(), fill)
    }

    /// Commits the file, then decides tiers and writes the manifest under the env lock, so
    /// concurrent backups see each other.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        e: &mut EnvContext,
        written: Written,
        pg: &Pg,
        database: &str,
        contents: Contents,
        tags: &[String],
        started: Instant,
    ) -> Result<LocalBackup> {
        let Slot { project, env, dir, kind, stem, suffix, payload, partial, listing } = self;
        let env = env.as_str();
        // Under the env lock, the file and its manifest appear together for every other pgtier
        // process; only a crash in between leaves the file alone (removed by the next run).
        let lock = DirLock::acquire(&dir)?;
        // Tiers are decided from every backup there is now: the listing of the reservation if
        // no other writer came since, else the folder read again.
        let mut listing = Listing::under_lock(Some(listing), &dir, &project.name, env, &lock)?;
        let partial_path = partial.path().to_path_buf();
        let marker = crate::fsutil::pending_marker(&dir, &stem.to_string());
        write_atomic(&marker, b"")?;
        partial.commit()?;
        crate::fault::point("backup:before-manifest");
        let tiers = if tags.is_empty() {
            let existing: Vec<Candidate<Stem>> =
                listing.backups.iter().filter(|b| b.stem.kind == kind && b.stem != stem).map(|b| b.manifest.candidate(&b.stem)).collect();
            retention::tiers_for_new(&existing, stem.time, &project.policy).into_iter().collect()
        } else {
            Vec::new()
        };
        let compression = payload.recorded_compression(project.policy.compression);
        let format = match (payload, kind) {
            (Payload::Tar { .. }, _) => "directory",
            (Payload::Stream, Kind::Database) => "custom",
            (Payload::Stream, Kind::Globals) => "plain",
        };
        let stored = Stored { format, compression: compression.name(), size: written.digest.size, sha256: written.digest.sha256 };
        let manifest = Manifest {
            compression_level: level(compression),
            encryption: written.encryption,
            pg_dump_version: Some(pg.pg_dump_version().to_string()),
            server_version: Some(pg.server_version().to_string()),
            database_settings: contents.settings,
            schema_fingerprint: contents.fingerprint,
            large_objects: contents.large_objects,
            tables: contents.tables,
            tags: tags.to_vec(),
            tiers,
            duration_seconds: Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
            ..Manifest::new(&project.name, env, database, &stem, format!("{stem}{suffix}"), stored)
        };
        let manifest_path = dir.join(manifest.manifest_name()?);
        write_atomic(&manifest_path, &manifest.to_bytes())?;
        crate::fsutil::remove_if_exists(&marker)?;
        let backup = LocalBackup { stem, data_path: dir.join(&manifest.file), manifest, manifest_path };
        listing.add(backup.clone(), &marker);
        listing.partials.retain(|p| *p != partial_path);
        listing.changed_under(&dir, &lock);
        e.adopt(listing);
        Ok(backup)
    }
}

/// An archive's table of contents and the rows counted in its data.
type ArchiveRead = (Toc, Arc<Mutex<RowCounter>>);

/// Row counts by table, keyed `schema.table` as PostgreSQL's `format('%I.%I')` writes them (the
/// key the restored database's counts are compared under). Only the tables' own data counts
/// (an extension's configuration rows are not a table of the database's).
fn table_counts(pg: &Pg, database: &str, toc: &Toc, by_id: &BTreeMap<i64, u64>) -> Result<BTreeMap<String, u64>> {
    let tables: std::collections::BTreeSet<i64> = toc.entries.iter().filter(|e| e.desc == "TABLE").map(|e| e.dump_id).collect();
    let rows: Vec<serde_json::Value> = toc
        .entries
        .iter()
        .filter(|e| e.desc == "TABLE DATA" && e.deps.iter().any(|d| tables.contains(d)))
        .map(|e| serde_json::json!({"s": e.namespace, "t": e.tag, "n": by_id.get(&e.dump_id).copied().unwrap_or(0)}))
        .collect();
    let mut s = pg.session(database)?;
    let sql = format!(
        "SELECT coalesce(jsonb_object_agg(format('%I.%I', s, t), n), '{{}}') FROM jsonb_to_recordset({}::jsonb) AS x(s text, t text, n bigint)",
        crate::postgres::quote_literal(&serde_json::Value::Array(rows).to_string())
    );
    let counts = s.query_json(&sql)?;
    s.close()?;
    Ok(counts)
}

/// What a backup holds, as recorded in its manifest.
#[derive(Default)]
struct Contents {
    tables: Option<BTreeMap<String, u64>>,
    settings: Option<crate::postgres::DbInfo>,
    fingerprint: Option<String>,
    large_objects: Option<u64>,
}

/// The compression level recorded in manifests.
pub fn level(c: Compression) -> Option<i32> {
    match c {
        Compression::Gzip(l) => Some(l as i32),
        Compression::Zstd(l) => Some(l),
        Compression::None => None,
    }
}

/// `.dump.gz.age`, `.tar.age` and the like, after the payload's extension `ext`.
pub fn file_suffix(ext: &str, compression: Compression, encryption: Option<&EncryptionConfig>) -> String {
    let mut s = format!(".{ext}");
    if let Some(ext) = compression.ext() {
        s = s + "." + ext;
    }
    if let Some(e) = encryption {
        s = s + "." + crate::crypto::extension(e);
    }
    s
}

/// What a finished write produced.
pub struct Written {
    pub digest: Digest,
    pub encryption: Option<EncryptionInfo>,
    /// Bytes read from the source before compression.
    pub raw_size: u64,
}

/// Streams `source` through compression and encryption into `partial`, hashing what is stored.
pub fn write_stream(
    partial: &mut PartialFile,
    source: &mut dyn Read,
    compression: Compression,
    encryption: Option<&EncryptionConfig>,
    progress: &Progress,
) -> Result<Written> {
    write_with(partial, compression, encryption, |chain| pipeline::copy_counted(source, chain, progress))
}

/// Lets `fill` write the payload through compression and encryption into `partial`, hashing
/// what is stored; `fill` returns the bytes it wrote.
fn write_with(
    partial: &mut PartialFile,
    compression: Compression,
    encryption: Option<&EncryptionConfig>,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<u64>,
) -> Result<Written> {
    let path = partial.path().to_path_buf();
    let file = partial.file().try_clone().at(&path)?;
    let (hash, digest) = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let mut chain: Box<dyn FinishWrite> = Box::new(hash);
    let mut info = None;
    if let Some(e) = encryption {
        let (c, i) = crate::crypto::encryptor(e, chain)?;
        chain = c;
        info = Some(i);
    }
    let mut chain = pipeline::compressor(compression, chain).at(&path)?;
    let raw_size = fill(&mut chain).map_err(|e| write_error(&path, e))?;
    chain.finish().map_err(|e| write_error(&path, e))?;
    let digest = digest.get().expect("hash stage finished");
    Ok(Written { digest, encryption: info, raw_size })
}

fn write_error(path: &Path, e: std::io::Error) -> crate::error::Error {
    crate::failed!("writing {}: {e}", path.display())
}

/// Claims the first free stem for `time` (`db_..._HHMMSS`, then `-2`, `-3`, ...) by creating its
/// temporary file exclusively, so two backups in the same second never collide.
/// Takes the first name for `time` that no file of `listing` (current under the env lock held
/// by the caller) uses, and no live writer holds.
fn reserve(dir: &Path, listing: &Listing, kind: Kind, time: DateTime<Utc>, suffix: &str) -> Result<(Stem, PartialFile)> {
    for seq in 1..10_000 {
        let stem = Stem::new(kind, time, seq);
        if listing.uses(&stem) {
            continue;
        }
        let target: PathBuf = dir.join(format!("{stem}{suffix}"));
        let Some(partial) = PartialFile::try_create(&target)? else { continue };
        return Ok((stem, partial));
    }
    Err(crate::failed!("{}: no free backup name for {time}", dir.display()))
}
