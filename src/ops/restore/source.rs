//! Where a backup comes from: a local backup (checked against its manifest first, or while
//! streaming), a file or stdin made by hand, or an off-site copy (thawed first if archived).

use std::io::Read;
use std::path::Path;

use crate::config::{Config, Project};
use crate::context::{Context, EnvContext};
use crate::error::{Error, IoContext, Result};
use crate::names::Kind;
use crate::pipeline::{self, DigestCell, HashReader};
use crate::records::listing::Listing;
use crate::records::manifest::Manifest;
use crate::ui::Ui;

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

/// Where a backup comes from: where to look for it, and, once opened, where it was found
/// (`local` or `remote`; serialised in lower case in every report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Local,
    Remote,
    /// A local copy whose checksum matches, else the remote one (where to look only).
    Auto,
    /// A dump file named by its path (found only).
    File,
    /// A dump on standard input (found only).
    Stdin,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Local => "local",
            Origin::Remote => "remote",
            Origin::Auto => "auto",
            Origin::File => "file",
            Origin::Stdin => "stdin",
        })
    }
}

/// Which backup, where to look for it, and whether to wait for a Glacier thaw.
#[derive(Debug, Clone)]
pub struct Source {
    pub input: Input,
    pub from: Origin,
    /// With `Origin::Remote` or `Auto`: only this destination (None: any).
    pub destination: Option<String>,
    /// Wait for a Glacier thaw (None: request it and exit 75 saying when to run again).
    pub wait: Option<crate::remote::ThawWait>,
    /// Request a thaw of a backup held only in an archive class (a restore does; a drill only
    /// when asked, as the retrieval is paid).
    pub thaw: bool,
    /// Read the copy of this tier only (a drill of each tier's newest copy).
    pub tier: Option<crate::vocab::TierName>,
    /// Check a local file's SHA-256 before reading it (restore), or while streaming it, to be
    /// checked at the end (verify, which restores into a throwaway database anyway).
    pub check_first: bool,
    /// The Glacier retrieval tier for a thaw (`--restore-tier`); None: the remote's own.
    pub thaw_tier: Option<String>,
}

impl Source {
    /// The same place, another backup.
    pub fn with_input(&self, input: Input) -> Source {
        Source { input, ..self.clone() }
    }
}

/// A stream to restore from, with what is known about it.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub manifest: Option<Manifest>,
    pub source: String,
    pub from: Origin,
    pub size: Option<u64>,
    /// Set when the stream was not checked beforehand: its digest, known at end of stream,
    /// must match the manifest before the data is trusted.
    pub digest: Option<DigestCell>,
    /// Fallbacks taken to open it (another destination, another copy, remote instead of
    /// local): every report shows them.
    pub warnings: Vec<String>,
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
            warnings: self.warnings,
        };
        (self.reader, check)
    }

    /// After the stream was read to its end: the bytes were the manifest's.
    pub fn check_digest(&self) -> Result<()> {
        let (Some(cell), Some(m)) = (&self.digest, &self.manifest) else { return Ok(()) };
        match cell.get() {
            Some(d) if d.size == m.size && d.sha256 == m.sha256 => Ok(()),
            Some(d) => Err(crate::error::Error::Integrity(format!(
                "{}: the downloaded bytes do not match the manifest (size {} vs {}, sha256 {} vs {}); not trusting them",
                self.source, d.size, m.size, d.sha256, m.sha256
            ))),
            None => Err(crate::error::Error::Incomplete(format!(
                "{}: the stream was not read to its end, so its checksum is unknown",
                self.source
            ))),
        }
    }
}

/// Finds and opens a backup of `kind` locally, remotely, or local-first (`Origin::Auto`).
///
/// A local backup is found in the env's listing as the command has it (a night's, kept current
/// under the env lock); the destinations are the command's.
pub fn open_source(e: &mut EnvContext, source: &Source, kind: Kind, ui: &Ui) -> Result<Opened> {
    let (cfg, project, world) = (e.cfg, e.project, e.world());
    let env = e.env.clone();
    let env = env.as_str();
    let Source { input, from, check_first, .. } = source;
    let from = *from;
    let is_path = matches!(input, Input::Stdin) || matches!(input, Input::Named(s) if Path::new(s).is_file());
    // Only a backup named or chosen in the env folder needs its listing; a folder that cannot
    // be read is read again by open_local, which says why.
    let known = if from == Origin::Remote || is_path { None } else { e.listing().ok() };
    match from {
        Origin::Local | Origin::File | Origin::Stdin => open_local(cfg, project, env, input, kind, *check_first, known),
        Origin::Remote if is_path => Err(crate::usage!("a restore from the remote takes a backup name, not a file or stdin")),
        Origin::Remote => open_remote(world, project, env, source, kind, ui),
        Origin::Auto if is_path => open_local(cfg, project, env, input, kind, *check_first, known),
        Origin::Auto => match open_local(cfg, project, env, input, kind, *check_first, known) {
            Ok(o) => {
                tracing::info!("restoring from the local copy {}", o.source);
                Ok(o)
            }
            Err(e) if !cfg.remotes.is_empty() && !matches!(e, Error::Cancelled) => {
                let mut o = open_remote(world, project, env, source, kind, ui)?;
                o.warnings.insert(0, format!("no usable local copy ({e}): read the off-site copy"));
                Ok(o)
            }
            Err(e) => Err(e),
        },
    }
}

/// A remote backup chosen for reading, on the destination that will serve it, and every
/// fallback taken on the way (another destination, another tier's manifest).
pub struct Chosen<'w> {
    pub remote: &'w crate::remote::Remote,
    pub backup: crate::remote::RemoteBackup,
    pub warnings: Vec<String>,
}

/// Picks a remote backup (the newest of `kind`, or the named one) from everything the
/// destinations know: every destination `source` allows, every tier's manifest. The newest
/// means the newest: when its manifest cannot be read anywhere (after retries), this refuses
/// rather than take an older one, and names the newest that does read.
pub fn choose_remote<'w>(
    world: &'w crate::context::Context,
    project: &Project,
    env: &str,
    source: &Source,
    kind: Kind,
) -> Result<Chosen<'w>> {
    let cfg = world.cfg;
    let mut warnings = Vec::new();
    let remotes: Vec<&crate::remote::Remote> = match &source.destination {
        Some(name) => vec![world.destination(name)?],
        None if !world.has_remote() => {
            return Err(crate::usage!("restoring from the remote needs remote: (or remotes:) in {}", cfg.file.display()));
        }
        None => {
            let mut open = Vec::new();
            let mut first_err = None;
            for (name, r) in world.destinations() {
                match r {
                    Ok(r) => open.push(r),
                    Err(e) => {
                        warnings.push(format!("destination {name} could not be opened ({e}): its copies were not considered"));
                        first_err.get_or_insert(e);
                    }
                }
            }
            if open.is_empty() {
                return Err(first_err.unwrap_or_else(|| crate::failed!("no destination could be opened")));
            }
            open
        }
    };
    let wanted = match &source.input {
        Input::Named(spec) => {
            let name = Path::new(spec).file_name().and_then(|n| n.to_str()).unwrap_or(spec);
            Some(crate::names::Stem::parse(name).or_else(|| crate::names::Stem::split_file_name(name).map(|(s, _)| s)))
        }
        _ => None,
    };
    // Each destination's backups that a finished sync put there (a copy and a manifest).
    let mut found: Vec<(&crate::remote::Remote, crate::remote::RemoteBackup)> = Vec::new();
    let mut listed = 0;
    let mut problems = Vec::new();
    for r in &remotes {
        let cat = match crate::remote::RemoteCatalog::load(r, &project.name, env, None) {
            Ok(c) => c,
            Err(e) if remotes.len() > 1 && !matches!(e, Error::Cancelled) => {
                warnings.push(format!("destination {} could not be listed ({e}): its copies were not considered", r.name()));
                problems.push(format!("destination {}: {e}", r.name()));
                continue;
            }
            Err(e) => return Err(e),
        };
        listed += 1;
        let matches = |b: &crate::remote::RemoteBackup| match &wanted {
            None => b.stem.kind == kind,
            Some(stem) => stem.as_ref() == Some(&b.stem),
        };
        // With a tier named, only backups with a copy in it (and only that copy is read).
        let in_tier = |b: &crate::remote::RemoteBackup| source.tier.is_none_or(|t| b.copies.contains_key(&t));
        found.extend(
            cat.backups
                .into_values()
                .filter(|b| matches(b) && in_tier(b) && !b.copies.is_empty() && !b.manifest_keys.is_empty())
                .map(|b| (*r, b)),
        );
    }
    if listed == 0 {
        return Err(crate::failed!("no destination could be listed ({})", problems.join("; ")));
    }
    let what = format!("{}/{env}", project.name);
    let Some(newest) = found.iter().map(|(_, b)| b.stem.clone()).max() else {
        let places: Vec<String> = remotes.iter().map(|r| r.url(r.layout(&project.name, env).prefix())).collect();
        let mut msg = format!("no such backup of {what} off-site under {}", places.join(", "));
        if !problems.is_empty() {
            msg.push_str(&format!(" ({})", problems.join("; ")));
        }
        return Err(Error::NotFound(msg));
    };
    // The newest readable one, should the newest not read: named so the operator can choose it.
    let next_readable = found.iter().filter(|(_, b)| b.stem < newest && b.manifest.is_some()).map(|(_, b)| b.stem.clone()).max();
    let (readable, unreadable): (Vec<_>, Vec<_>) =
        found.into_iter().filter(|(_, b)| b.stem == newest).partition(|(_, b)| b.manifest.is_some());
    let several = remotes.len() > 1;
    let on = |r: &crate::remote::Remote| if several { format!(" on destination {}", r.name()) } else { String::new() };
    for (r, b) in &unreadable {
        if !readable.is_empty() {
            warnings.push(format!(
                "the manifest of {}{} could not be read ({}): read from another destination",
                b.stem,
                on(r),
                b.manifest_error.as_deref().unwrap_or("unknown")
            ));
        }
    }
    let mut readable = readable;
    if readable.is_empty() {
        let why: Vec<String> =
            unreadable.iter().map(|(r, b)| format!("{}{}", b.manifest_error.as_deref().unwrap_or("unknown"), on(r))).collect();
        let which = if wanted.is_some() {
            format!("backup {newest} of {what}")
        } else {
            format!("the newest backup of {what} off-site, {newest},")
        };
        let instead = match (&wanted, next_readable) {
            (None, Some(n)) => format!(
                ". Not falling back to an older backup: try again, or name the backup to use (the newest whose manifest reads is {n})"
            ),
            _ => ". Try again".to_string(),
        };
        return Err(Error::Unreachable(format!(
            "{which} cannot be read: no copy of its manifest could be read ({}){instead}",
            why.join("; ")
        )));
    }
    // Hot copies first, then the configured order of destinations.
    let first = readable.first().map(|(r, b)| (r.name().to_string(), b.copies.values().map(|o| o.class()).max()));
    let hot =
        |b: &crate::remote::RemoteBackup| b.copies.iter().any(|(t, o)| source.tier.is_none_or(|w| w == *t) && !o.class().needs_thaw());
    readable.sort_by_key(|(_, b)| !hot(b));
    let (remote, backup) = readable.into_iter().next().expect("not empty");
    if let Some((name, Some(class))) = first
        && name != remote.name()
    {
        warnings.push(format!("read from destination {}: its copy needs no thaw, unlike the one on {name} ({class})", remote.name()));
    }
    warnings.extend(
        backup.fallbacks.iter().map(|(tier, why)| {
            format!("the {tier} manifest of {} could not be read ({why}): read another tier's copy instead", backup.stem)
        }),
    );
    Ok(Chosen { remote, backup, warnings })
}

/// Opens a remote backup (the newest of `kind`, or the named one; see `choose_remote`); works
/// with `backup_root` gone. The backup is read from a destination holding a hot copy if there
/// is one, else from the first holding a cold copy (thawed first).
pub fn open_remote(world: &Context, project: &Project, env: &str, source: &Source, kind: Kind, ui: &Ui) -> Result<Opened> {
    let Chosen { remote, backup: b, mut warnings } = choose_remote(world, project, env, source, kind)?;
    let manifest = b.manifest.clone().ok_or_else(|| crate::failed!("{}: its manifest is missing off-site", b.stem))?;
    let how = crate::remote::Reading { tier: source.tier, thaw: source.thaw, wait: source.wait, thaw_tier: source.thaw_tier.clone() };
    let (reader, key, copy_warnings) = crate::remote::open_copy(remote, &b, &how, ui)?;
    warnings.extend(copy_warnings);
    if world.names().len() > 1 {
        tracing::info!("reading {} from destination {}", b.stem, remote.name());
    }
    let (reader, digest) = HashReader::new(reader);
    Ok(Opened {
        reader: Box::new(reader),
        source: remote.url(&key),
        from: Origin::Remote,
        size: Some(manifest.size),
        manifest: Some(manifest),
        digest: Some(digest),
        warnings,
    })
}

/// Finds and checks a local backup of `kind`, a file or stdin.
pub fn open_local(
    cfg: &Config,
    project: &Project,
    env: &str,
    input: &Input,
    kind: Kind,
    check_first: bool,
    known: Option<&Listing>,
) -> Result<Opened> {
    let dir = cfg.env_dir(&project.name, env);
    let mut read_now = None;
    match input {
        Input::Stdin => Ok(Opened {
            reader: Box::new(std::io::stdin()),
            manifest: None,
            source: "-".into(),
            from: Origin::Stdin,
            size: None,
            digest: None,
            warnings: Vec::new(),
        }),
        Input::Latest => {
            let listing = listing_of(known, &mut read_now, &dir, &project.name, env)?;
            let b = listing
                .backups
                .iter()
                .rev()
                .find(|b| b.stem.kind == kind)
                .ok_or_else(|| Error::NotFound(format!("no local backups of {}/{env} in {}", project.name, dir.display())))?;
            open_checked(&b.data_path, b.full_manifest()?, Origin::Local, check_first)
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
                    Some(m) => open_checked(path, m, Origin::File, check_first),
                    None => {
                        let f = std::fs::File::open(path).at(path)?;
                        let size = f.metadata().ok().map(|m| m.len());
                        Ok(Opened {
                            reader: Box::new(f),
                            manifest: None,
                            source: spec.clone(),
                            from: Origin::File,
                            size,
                            digest: None,
                            warnings: Vec::new(),
                        })
                    }
                };
            }
            let listing = listing_of(known, &mut read_now, &dir, &project.name, env)?;
            let b = listing.find(spec).ok_or_else(|| {
                crate::failed!("no backup {spec:?} of {}/{env} in {} (and no file of that name)", project.name, dir.display())
            })?;
            open_checked(&b.data_path, b.full_manifest()?, Origin::Local, check_first)
        }
    }
}

/// `known`, else the folder read now into `slot`.
fn listing_of<'a>(known: Option<&'a Listing>, slot: &'a mut Option<Listing>, dir: &Path, project: &str, env: &str) -> Result<&'a Listing> {
    match known {
        Some(l) => Ok(l),
        None => Ok(slot.insert(Listing::scan(dir, project, env)?)),
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
fn open_checked(path: &Path, manifest: Manifest, from: Origin, check_first: bool) -> Result<Opened> {
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
            from,
            size: Some(size),
            manifest: Some(manifest),
            digest: Some(digest),
            warnings: Vec::new(),
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
        from,
        size: Some(manifest.size),
        manifest: Some(manifest),
        digest: None,
        warnings: Vec::new(),
    })
}
