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
    let dir = cfg.env_dir(&project.name, env);
    ensure_private_dir(&dir)?;
    let started = Instant::now();
    let pg = Pg::connect(&project.connection, cfg.pg_bindir.as_deref(), database)?;
    let encryption = project.encryption.as_deref();
    let compression = project.policy.compression;
    let suffix = file_suffix(Kind::Database, compression, encryption);
    let (stem, mut partial) = reserve(&dir, Kind::Database, opts.now, &suffix)?;

    // Export a snapshot and count rows in it while pg_dump dumps the same snapshot.
    let mut session = pg.session(database)?;
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
    let mut stdout = dump.child.stdout.take().expect("piped stdout");
    let progress = ui.progress("pg_dump", None);
    let written = write_stream(&mut partial, &mut stdout, compression, encryption, &progress);
    progress.finish();
    drop(stdout);
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            dump.kill();
            drop(dump_done);
            let _ = counting.join();
            return Err(e);
        }
    };
    let dumped = dump.wait().map_err(|e| e.context(format!("backup of {}/{env} (database {database:?})", project.name)));
    drop(dump_done);
    let counts = counting.join().map_err(|_| crate::failed!("row counting thread panicked"))?;
    dumped?;
    let counts = counts.map_err(|e| e.context("counting rows in the dump's snapshot"))?;
    if written.digest.size == 0 {
        return Err(crate::failed!("pg_dump produced no output for {database:?}"));
    }
    partial.commit()?;

    // Decide tiers and write the manifest under the env lock, so concurrent backups see each other.
    let _lock = DirLock::acquire(&dir)?;
    let listing = Listing::scan(&dir, &project.name, env)?;
    let tiers = if opts.tags.is_empty() {
        let existing: Vec<Candidate> = listing.databases().filter(|b| b.stem != stem).map(crate::prune::candidate).collect();
        retention::tiers_for_new(&existing, stem.time, &project.policy).into_iter().collect()
    } else {
        Vec::new()
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: Kind::Database,
        project: project.name.clone(),
        env: env.to_string(),
        database: database.to_string(),
        created_at: stem.time,
        file: format!("{stem}{suffix}"),
        format: "custom".into(),
        compression: compression.name().into(),
        compression_level: level(compression),
        encryption: written.encryption,
        size: written.digest.size,
        sha256: written.digest.sha256,
        pg_dump_version: Some(pg.pg_dump_version().to_string()),
        server_version: Some(pg.server_version().to_string()),
        tables: Some(counts),
        tags: opts.tags.clone(),
        tiers,
        duration_seconds: Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
        adopted: false,
        verifications: Vec::new(),
    };
    let manifest_path = dir.join(manifest.manifest_name()?);
    write_atomic(&manifest_path, &manifest.to_bytes())?;
    tracing::info!(
        "backed up {}/{env} to {} ({} bytes, {} tables)",
        project.name,
        dir.join(&manifest.file).display(),
        manifest.size,
        manifest.tables.as_ref().map_or(0, |t| t.len())
    );
    Ok(LocalBackup { stem, data_path: dir.join(&manifest.file), manifest, manifest_path })
}

/// The retention planner's view of a local backup.
pub fn candidate(b: &LocalBackup) -> Candidate {
    Candidate {
        id: b.stem.to_string(),
        created_at: b.stem.time,
        tags: b.manifest.tags.clone(),
        recorded_tiers: b.manifest.tiers.iter().copied().collect(),
    }
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
