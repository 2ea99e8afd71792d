//! Taking in the old scripts' dumps (`db_YYYYMMDD_HHMMSS.sql.gz`): each gets a manifest (size,
//! checksum, time from its name, format from its bytes, no row counts) and joins the tiers.

use std::io::Read;

use serde::Serialize;

use crate::config::{Config, Project};
use crate::error::{IoContext, Result};
use crate::fsutil::{DirLock, write_atomic};
use crate::names::{Kind, Stem};
use crate::pipeline::{Layer, sha256_file, sniff};
use crate::records::listing::Listing;
use crate::records::manifest::{Manifest, Stored};
use crate::records::retention;

/// One file taken in.
#[derive(Debug, Serialize)]
pub struct Adopted {
    pub file: String,
    pub backup: String,
    pub format: String,
    pub compression: String,
    pub size: u64,
    pub tiers: Vec<crate::config::TierName>,
}

/// Writes manifests for the old scripts' dumps in the env folder, oldest first so tiers are
/// assigned as the nightly runs would have. With `dry_run`, only says what it would adopt.
pub fn adopt(cfg: &Config, project: &Project, env: &str, dry_run: bool) -> Result<Vec<Adopted>> {
    let database = project.database(env)?.to_string();
    let dir = cfg.env_dir(&project.name, env);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = DirLock::acquire(&dir)?;
    let listing = Listing::scan(&dir, &project.name, env)?;
    let mut old: Vec<(Stem, String)> = listing
        .foreign
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .filter_map(|name| {
            let (stem, rest) = Stem::split_file_name(&name)?;
            (stem.kind == Kind::Database && rest == ".sql.gz").then_some((stem, name))
        })
        .collect();
    old.sort();
    let mut existing: Vec<retention::Candidate<Stem>> = listing.databases().map(|b| b.manifest.candidate(&b.stem)).collect();
    let mut out = Vec::new();
    for (stem, name) in old {
        let path = dir.join(&name);
        let mut head = [0u8; 512];
        let n = read_head(&path, &mut head)?;
        let (format, compression) = match sniff(&head[..n]) {
            // The old scripts' pg_dump --format=custom --compress=9 wrote an archive named .sql.gz.
            Layer::CustomArchive => ("custom", "none"),
            Layer::Gzip => match inside_gzip(&path)? {
                Layer::CustomArchive => ("custom", "gzip"),
                Layer::Sql => ("plain", "gzip"),
                Layer::Tar => {
                    refuse_tar(&path);
                    continue;
                }
                other => {
                    tracing::warn!("{}: holds gzip > {}, not a dump pgtier can restore; left alone", path.display(), other.name());
                    continue;
                }
            },
            Layer::Sql => ("plain", "none"),
            Layer::Tar => {
                refuse_tar(&path);
                continue;
            }
            other => {
                tracing::warn!("{}: holds {}, not a dump pgtier can restore; left alone", path.display(), other.name());
                continue;
            }
        };
        let digest = sha256_file(&path)?;
        let tiers: Vec<_> = retention::tiers_for_new(&existing, stem.time, &project.policy).into_iter().collect();
        let stored = Stored { format, compression, size: digest.size, sha256: digest.sha256 };
        let manifest =
            Manifest { tiers: tiers.clone(), adopted: true, ..Manifest::new(&project.name, env, &database, &stem, name.clone(), stored) };
        if !dry_run {
            crate::fsutil::ensure_private_file(&path)?;
            write_atomic(&dir.join(manifest.manifest_name()?), &manifest.to_bytes())?;
        }
        existing.push(manifest.candidate(&stem));
        out.push(Adopted {
            file: name,
            backup: stem.to_string(),
            format: format.into(),
            compression: compression.into(),
            size: manifest.size,
            tiers,
        });
    }
    Ok(out)
}

/// A tar is no dump of the old scripts (they wrote one file per dump): what it holds is not
/// known without reading it whole, so it is not given a manifest that would vouch for it.
fn refuse_tar(path: &std::path::Path) {
    tracing::warn!(
        "{}: holds a tar, not a dump of the old scripts; left alone (if it is a pg_dump directory-format dump, `pgtier restore PROJECT ENV FILE` restores it)",
        path.display()
    );
}

/// What a gzip file holds, from the first bytes of its content.
fn inside_gzip(path: &std::path::Path) -> Result<Layer> {
    let f = std::fs::File::open(path).at(path)?;
    let mut head = [0u8; 512];
    let mut dec = flate2::read::MultiGzDecoder::new(f);
    let mut n = 0;
    while n < head.len() {
        match dec.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(crate::failed!("{}: not a readable gzip file: {e}", path.display())),
        }
    }
    Ok(sniff(&head[..n]))
}

fn read_head(path: &std::path::Path, buf: &mut [u8]) -> Result<usize> {
    let mut f = std::fs::File::open(path).at(path)?;
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..]).at(path)?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}
