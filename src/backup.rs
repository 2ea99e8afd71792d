//! Taking a backup: pg_dump in an exported snapshot, row counts in the same snapshot, streamed
//! through compression, encryption and SHA-256 into a file that appears only when complete,
//! then the manifest, written last.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::catalog::{Listing, LocalBackup};
use crate::config::{Compression, Config, EncryptionConfig, Project};
use crate::error::{IoContext, Result};
use crate::fsutil::{DirLock, PartialFile, ensure_private_dir, write_atomic};
use crate::manifest::{EncryptionInfo, FORMAT_VERSION, Manifest};
use crate::names::{Kind, Stem};
use crate::pipeline::{self, Digest, FinishWrite, HashWriter};
use crate::postgres::Pg;
use crate::postgres::archive::Toc;
use crate::retention::{self, Candidate};

use crate::ui::{Progress, Ui};

/// What to back up and when it counts as taken.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub tags: Vec<String>,
    /// The backup's timestamp (the clock, or `--now`).
    pub now: DateTime<Utc>,
}

/// Backs up one project/env into its local folder and returns the new backup.
pub fn backup(cfg: &Config, project: &Project, env: &str, opts: &BackupOptions, ui: &Ui) -> Result<LocalBackup> {
    let database = project.database(env)?;
    for t in &opts.tags {
        crate::names::check_component(t).map_err(|m| crate::usage!("--tag: {m}"))?;
    }
    let started = Instant::now();
    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)?;
    let mut slot = Slot::reserve(cfg, project, env, Kind::Database, opts.now)?;

    // Export a snapshot and count rows in it while pg_dump dumps the same snapshot.
    let mut session = pg.session(database)?;
    let settings = session.database_info(database)?;
    session.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    session.exec(&format!("SET LOCAL lock_timeout = {}", cfg.lock_wait_timeout.as_millis()))?;
    let snapshot = session.query_value("SELECT pg_export_snapshot()")?;
    let (dump_done, wait_dump) = std::sync::mpsc::channel::<()>();
    let counting = std::thread::spawn(move || -> Result<BTreeMap<String, u64>> {
        let counts = session.count_rows();
        // The snapshot must outlive pg_dump's import of it: hold the transaction until told.
        let _ = wait_dump.recv();
        if counts.is_ok() {
            session.exec("COMMIT")?;
            session.close()?;
        }
        counts
    });

    let args = vec![
        "--format=custom".to_string(),
        "--compress=0".into(),
        "--no-password".into(),
        format!("--snapshot={}", snapshot.trim()),
        format!("--lock-wait-timeout={}", cfg.lock_wait_timeout.as_millis()),
    ];
    let mut dump = pg.spawn("pg_dump", Some(database), &args, Stdio::null())?;
    let mut toc = None;
    let written = slot.write(&mut dump, ui, "pg_dump", Some(&mut toc));
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            drop(dump_done);
            // A counting failure ends the snapshot pg_dump imports: it is then the cause.
            if let Ok(Err(counting_failed)) = counting.join() {
                let _ = dump.wait();
                return Err(counting_failed.context(format!("backup of {}/{env}: counting rows in the dump's snapshot", project.name)));
            }
            // A pg_dump that failed on its own says why; one that pgtier stopped does not.
            return match dump.wait() {
                Err(tool) if !tool.to_string().contains("killed by a signal") => {
                    Err(tool.context(format!("backup of {}/{env} (database {database:?})", project.name)))
                }
                _ => Err(e),
            };
        }
    };
    let dumped = dump.wait().map_err(|e| e.context(format!("backup of {}/{env} (database {database:?})", project.name)));
    drop(dump_done);
    let counts = counting.join().map_err(|_| crate::failed!("row counting thread panicked"))?;
    // A counting failure ends the snapshot's transaction, which pg_dump then reports as an
    // invalid snapshot: the counting error is the cause, so it is the one reported.
    let counts = counts.map_err(|e| e.context(format!("backup of {}/{env}: counting rows in the dump's snapshot", project.name)))?;
    dumped?;
    if written.raw_size == 0 {
        return Err(crate::failed!("pg_dump produced no output for {database:?}"));
    }
    let contents = Contents {
        tables: Some(counts),
        settings,
        fingerprint: toc.as_ref().map(Toc::fingerprint),
        large_objects: toc.as_ref().map(Toc::large_objects),
    };
    let b = slot.finish(written, &pg, database, "custom", contents, &opts.tags, started)?;
    tracing::info!(
        "backed up {}/{env} to {} ({} bytes, {} tables)",
        project.name,
        b.data_path.display(),
        b.manifest.size,
        b.manifest.tables.as_ref().map_or(0, |t| t.len())
    );
    Ok(b)
}

/// Dumps the cluster's roles and tablespaces (`pg_dumpall --globals-only`) beside the env's
/// database backups, so a restore onto a new server has the roles that own the objects. Role
/// passwords are left out unless `globals.role_passwords` is set.
pub fn backup_globals(cfg: &Config, project: &Project, env: &str, now: DateTime<Utc>, ui: &Ui) -> Result<LocalBackup> {
    let database = project.database(env)?;
    let started = Instant::now();
    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)?;
    let mut slot = Slot::reserve(cfg, project, env, Kind::Globals, now)?;
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
    let b = slot.finish(written, &pg, database, "plain", Contents::default(), &[], started)?;
    tracing::info!("saved the roles and tablespaces of {}/{env} to {}", project.name, b.data_path.display());
    Ok(b)
}

/// A backup being written: its reserved name and temporary file.
struct Slot<'a> {
    project: &'a Project,
    env: &'a str,
    dir: PathBuf,
    kind: Kind,
    stem: Stem,
    suffix: String,
    partial: PartialFile,
}

impl<'a> Slot<'a> {
    fn reserve(cfg: &'a Config, project: &'a Project, env: &'a str, kind: Kind, now: DateTime<Utc>) -> Result<Slot<'a>> {
        let dir = cfg.env_dir(&project.name, env);
        ensure_private_dir(&dir)?;
        let suffix = file_suffix(kind, project.policy.compression, project.encryption.as_deref());
        let (stem, partial) = reserve(&dir, kind, now, &suffix)?;
        Ok(Slot { project, env, dir, kind, stem, suffix, partial })
    }

    /// Streams the tool's stdout into the temporary file; kills the tool if writing fails.
    /// With `toc`, the stream is a custom archive whose table of contents is read on the way.
    fn write(&mut self, tool: &mut crate::postgres::Running, ui: &Ui, label: &str, toc: Option<&mut Option<Toc>>) -> Result<Written> {
        let stdout: Box<dyn Read + Send> = Box::new(tool.child.stdout.take().expect("piped stdout"));
        let mut stdout = match toc {
            None => stdout,
            Some(slot) => match crate::postgres::archive::read_head(stdout) {
                Ok((Ok(t), rest)) => {
                    *slot = Some(t);
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
        let written =
            write_stream(&mut self.partial, &mut stdout, self.project.policy.compression, self.project.encryption.as_deref(), &progress);
        progress.finish();
        drop(stdout);
        if written.is_err() {
            let _ = tool.child.kill();
        }
        written
    }

    /// Commits the file, then decides tiers and writes the manifest under the env lock, so
    /// concurrent backups see each other.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        written: Written,
        pg: &Pg,
        database: &str,
        format: &str,
        contents: Contents,
        tags: &[String],
        started: Instant,
    ) -> Result<LocalBackup> {
        let Slot { project, env, dir, kind, stem, suffix, partial } = self;
        // Under the env lock, the file and its manifest appear together for every other pgtier
        // process; only a crash in between leaves the file alone (removed by the next run).
        let _lock = DirLock::acquire(&dir)?;
        let marker = crate::fsutil::pending_marker(&dir, &stem.to_string());
        write_atomic(&marker, b"")?;
        partial.commit()?;
        crate::fault::point("backup:before-manifest");
        let listing = Listing::scan(&dir, &project.name, env)?;
        let tiers = if tags.is_empty() {
            let existing: Vec<Candidate> =
                listing.backups.iter().filter(|b| b.stem.kind == kind && b.stem != stem).map(crate::prune::candidate).collect();
            retention::tiers_for_new(&existing, stem.time, &project.policy).into_iter().collect()
        } else {
            Vec::new()
        };
        let compression = project.policy.compression;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            kind,
            project: project.name.clone(),
            env: env.to_string(),
            database: database.to_string(),
            created_at: stem.time,
            file: format!("{stem}{suffix}"),
            format: format.into(),
            compression: compression.name().into(),
            compression_level: level(compression),
            encryption: written.encryption,
            size: written.digest.size,
            sha256: written.digest.sha256,
            pg_dump_version: Some(pg.pg_dump_version().to_string()),
            server_version: Some(pg.server_version().to_string()),
            database_settings: contents.settings,
            schema_fingerprint: contents.fingerprint,
            large_objects: contents.large_objects,
            tables: contents.tables,
            tags: tags.to_vec(),
            tiers,
            duration_seconds: Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
            adopted: false,
            verifications: Vec::new(),
        };
        let manifest_path = dir.join(manifest.manifest_name()?);
        write_atomic(&manifest_path, &manifest.to_bytes())?;
        crate::fsutil::remove_if_exists(&marker)?;
        Ok(LocalBackup { stem, data_path: dir.join(&manifest.file), manifest, manifest_path })
    }
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

/// `.dump.gz.age` and the like.
pub fn file_suffix(kind: Kind, compression: Compression, encryption: Option<&EncryptionConfig>) -> String {
    let mut s = format!(".{}", kind.payload_ext());
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
    let raw_size = pipeline::copy_counted(source, &mut chain, progress).map_err(|e| write_error(&path, e))?;
    chain.finish().map_err(|e| write_error(&path, e))?;
    let digest = digest.get().expect("hash stage finished");
    Ok(Written { digest, encryption: info, raw_size })
}

fn write_error(path: &Path, e: std::io::Error) -> crate::error::Error {
    crate::failed!("writing {}: {e}", path.display())
}

/// Claims the first free stem for `time` (`db_..._HHMMSS`, then `-2`, `-3`, ...) by creating its
/// temporary file exclusively, so two backups in the same second never collide.
pub fn reserve(dir: &Path, kind: Kind, time: DateTime<Utc>, suffix: &str) -> Result<(Stem, PartialFile)> {
    for seq in 1..10_000 {
        let stem = Stem::new(kind, time, seq);
        let target: PathBuf = dir.join(format!("{stem}{suffix}"));
        if stem_in_use(dir, &stem)? {
            continue;
        }
        let Some(partial) = PartialFile::try_create(&target)? else { continue };
        // Another process may have finished this stem between the check and the create.
        if stem_in_use(dir, &stem)? {
            continue;
        }
        return Ok((stem, partial));
    }
    Err(crate::failed!("{}: no free backup name for {time}", dir.display()))
}

/// Whether any file (ours or foreign) already uses `stem`.
fn stem_in_use(dir: &Path, stem: &Stem) -> Result<bool> {
    let prefix = format!("{stem}.");
    for entry in std::fs::read_dir(dir).at(dir)? {
        let name = entry.at(dir)?.file_name();
        if name.to_string_lossy().starts_with(&prefix) {
            return Ok(true);
        }
    }
    Ok(false)
}
