//! What is off-site for one project/env: the remote catalog (`{prefix}/{project}/{env}/{tier}/`),
//! which copies are confirmed (size and SHA-256), opening a remote backup for restore (thawing
//! archived copies first, waiting for them if asked), and the remote part of the audit.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use crate::catalog::Listing;
use crate::config::{Config, Project, RemoteConfig, RemoteUrl, StorageClass, TierName};
use crate::error::Result;
use crate::manifest::Manifest;
use crate::names::Stem;
use crate::prune::{ConfirmedRemote, RemoteState};
use crate::store::{ObjectMeta, Store, StoreError, Thaw};

/// The configured remote, opened.
pub struct Remote {
    pub store: Box<dyn Store>,
    pub config: RemoteConfig,
    /// The key prefix (no leading or trailing `/`; may be empty).
    pub prefix: String,
}

impl Remote {
    /// Opens the remote of `cfg`, if one is configured.
    pub fn open(cfg: &Config) -> Result<Option<Remote>> {
        let Some(rc) = &cfg.remote else { return Ok(None) };
        let prefix = match &rc.url {
            RemoteUrl::S3 { prefix, .. } => prefix.clone(),
            RemoteUrl::File(_) => String::new(),
        };
        Ok(Some(Remote { store: crate::store::open(rc)?, config: rc.clone(), prefix }))
    }

    /// `{prefix}/{project}/{env}/`.
    pub fn env_prefix(&self, project: &str, env: &str) -> String {
        if self.prefix.is_empty() { format!("{project}/{env}/") } else { format!("{}/{project}/{env}/", self.prefix) }
    }

    /// The key of `file` in `tier`'s folder.
    pub fn key(&self, project: &str, env: &str, tier: TierName, file: &str) -> String {
        format!("{}{tier}/{file}", self.env_prefix(project, env))
    }

    /// For messages: `s3://bucket/prefix/...`.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.store.describe())
    }
}

/// One backup as found off-site.
#[derive(Debug, Clone)]
pub struct RemoteBackup {
    pub stem: Stem,
    /// Its manifest (the local one when this host has it, else read from the store).
    pub manifest: Option<Manifest>,
    /// Data objects by tier (from the listing: no SHA-256 yet).
    pub copies: BTreeMap<TierName, ObjectMeta>,
    /// Manifest objects by tier.
    pub manifest_keys: BTreeMap<TierName, String>,
}

/// Everything under one project/env's remote prefix.
#[derive(Debug, Default)]
pub struct RemoteCatalog {
    pub backups: BTreeMap<Stem, RemoteBackup>,
    /// Keys under the prefix that are not pgtier's (never touched).
    pub foreign: Vec<String>,
    /// Manifests that could not be read or lie, with the reason.
    pub broken: Vec<(String, String)>,
}

impl RemoteCatalog {
    /// Lists the env's prefix. Manifests are taken from `local` where this host has them and
    /// read from the store otherwise (after a host loss, all of them).
    pub fn load(remote: &Remote, project: &str, env: &str, local: Option<&Listing>) -> Result<RemoteCatalog> {
        let prefix = remote.env_prefix(project, env);
        let objects = remote.store.list(&prefix)?;
        let mut cat = RemoteCatalog::default();
        for o in objects {
            let rel = &o.key[prefix.len()..];
            let parsed = rel.split_once('/').and_then(|(t, name)| Some((TierName::parse(t)?, name)));
            let Some((tier, name)) = parsed.filter(|(_, n)| !n.contains('/')) else {
                cat.foreign.push(o.key.clone());
                continue;
            };
            if let Some(stem) = name.strip_suffix(".json").and_then(Stem::parse) {
                cat.entry(&stem).manifest_keys.insert(tier, o.key.clone());
            } else if let Some((stem, _)) = Stem::split_file_name(name) {
                cat.entry(&stem).copies.insert(tier, o);
            } else {
                cat.foreign.push(o.key.clone());
            }
        }
        let mut broken = Vec::new();
        let here: BTreeMap<&Stem, &crate::catalog::LocalBackup> =
            local.map(|l| l.backups.iter().map(|b| (&b.stem, b)).collect()).unwrap_or_default();
        for (stem, b) in cat.backups.iter_mut() {
            if let Some(l) = here.get(stem) {
                b.manifest = Some(l.manifest.clone());
                continue;
            }
            let Some(key) = b.manifest_keys.values().next().cloned() else { continue };
            match read_manifest(remote, &key, stem) {
                Ok(m) if m.project == project && m.env == env => b.manifest = Some(m),
                Ok(m) => broken.push((key, format!("describes {}/{}, not {project}/{env}", m.project, m.env))),
                Err(e) => broken.push((key, e.to_string())),
            }
        }
        cat.broken = broken;
        // A data object whose name is not the file its manifest describes is not pgtier's.
        for b in cat.backups.values_mut() {
            if let Some(m) = &b.manifest {
                let (keep, stray): (BTreeMap<_, _>, BTreeMap<_, _>) =
                    std::mem::take(&mut b.copies).into_iter().partition(|(_, o)| o.key.ends_with(&format!("/{}", m.file)));
                b.copies = keep;
                cat.foreign.extend(stray.into_values().map(|o| o.key));
            }
        }
        Ok(cat)
    }

    fn entry(&mut self, stem: &Stem) -> &mut RemoteBackup {
        self.backups.entry(stem.clone()).or_insert_with(|| RemoteBackup {
            stem: stem.clone(),
            manifest: None,
            copies: BTreeMap::new(),
            manifest_keys: BTreeMap::new(),
        })
    }

    /// HEADs every data object (for its SHA-256 and thaw state): key -> metadata.
    pub fn heads(&self, remote: &Remote) -> Result<BTreeMap<String, ObjectMeta>> {
        let mut out = BTreeMap::new();
        for b in self.backups.values() {
            for o in b.copies.values() {
                match remote.store.head(&o.key) {
                    Ok(h) => {
                        out.insert(o.key.clone(), h);
                    }
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(out)
    }

    /// Which tiers hold a confirmed copy of each backup, given HEAD results.
    pub fn confirmed(&self, heads: &BTreeMap<String, ObjectMeta>) -> ConfirmedRemote {
        let mut out = ConfirmedRemote::new();
        for b in self.backups.values() {
            let Some(m) = &b.manifest else { continue };
            for (tier, o) in &b.copies {
                if heads.get(&o.key).is_some_and(|h| is_confirmed(h, m)) {
                    out.entry(b.stem.to_string()).or_default().insert(*tier);
                }
            }
        }
        out
    }
}

/// A remote copy is confirmed when its size and stored SHA-256 are the manifest's.
pub fn is_confirmed(head: &ObjectMeta, m: &Manifest) -> bool {
    head.size == m.size && head.sha256.as_deref() == Some(m.sha256.as_str())
}

fn read_manifest(remote: &Remote, key: &str, stem: &Stem) -> Result<Manifest> {
    let mut bytes = Vec::new();
    remote.store.get(key)?.take(16 << 20).read_to_end(&mut bytes).map_err(|e| crate::failed!("{}: {e}", remote.url(key)))?;
    Manifest::from_bytes(&bytes, std::path::Path::new(&remote.url(key)), Some(stem))
}

/// One env's off-site side, read once: the catalog and a HEAD of every copy.
pub struct EnvOffsite {
    pub cat: RemoteCatalog,
    pub heads: BTreeMap<String, ObjectMeta>,
}

impl EnvOffsite {
    /// Lists the env's prefix and HEADs every copy (manifests come from `local` where it has them).
    pub fn load(remote: &Remote, project: &str, env: &str, local: &Listing) -> Result<EnvOffsite> {
        let cat = RemoteCatalog::load(remote, project, env, Some(local))?;
        let heads = cat.heads(remote)?;
        Ok(EnvOffsite { cat, heads })
    }

    /// What local retention needs: confirmed copies, and the backups that live only off-site.
    pub fn state(&self, local: &Listing) -> RemoteState {
        let here: std::collections::BTreeSet<&Stem> = local.backups.iter().map(|l| &l.stem).collect();
        let remote_only = self
            .cat
            .backups
            .values()
            .filter(|b| !here.contains(&b.stem))
            .filter_map(|b| {
                let m = b.manifest.as_ref()?;
                Some(crate::retention::Candidate {
                    id: b.stem.to_string(),
                    created_at: b.stem.time,
                    tags: m.tags.clone(),
                    recorded_tiers: Some(m.tiers.iter().copied().collect()),
                })
            })
            .collect();
        RemoteState { confirmed: self.cat.confirmed(&self.heads), remote_only }
    }
}

/// What is off-site for local retention (confirmed copies, remote-only backups), or None when
/// no remote is configured. An unreachable remote confirms nothing (so nothing local is
/// deleted that the policy wants off-site), with a warning.
pub fn remote_state(cfg: &Config, project: &Project, env: &str) -> Result<Option<RemoteState>> {
    let Some(remote) = Remote::open(cfg)? else { return Ok(None) };
    let listing = Listing::scan(&cfg.env_dir(&project.name, env), &project.name, env)?;
    Ok(Some(state_or_nothing(EnvOffsite::load(&remote, &project.name, env, &listing).as_ref(), &listing, &project.name, env)))
}

/// The state of a loaded remote, or an empty one (nothing confirmed) with a warning.
pub fn state_or_nothing(
    loaded: std::result::Result<&EnvOffsite, &crate::error::Error>,
    local: &Listing,
    project: &str,
    env: &str,
) -> RemoteState {
    match loaded {
        Ok(o) => o.state(local),
        Err(e) => {
            tracing::warn!(
                "{project}/{env}: cannot check the off-site copies ({e}); local backups the policy wants off-site stay until they can be confirmed"
            );
            RemoteState::default()
        }
    }
}

/// How long `restore --wait` waits for a thaw, and how often it asks.
#[derive(Debug, Clone, Copy)]
pub struct ThawWait {
    pub timeout: Duration,
    pub poll: Duration,
}

/// Typical thaw times, for messages.
pub fn thaw_eta(class: StorageClass, tier: &str) -> &'static str {
    match (class, tier) {
        (StorageClass::DeepArchive, "Bulk") => "up to 48 hours",
        (StorageClass::DeepArchive, _) => "up to 12 hours",
        (_, "Expedited") => "1 to 5 minutes",
        (_, "Bulk") => "5 to 12 hours",
        _ => "3 to 5 hours",
    }
}

/// Opens the best copy of a remote backup: a readable one if there is one (daily first), else
/// an archived one after its thaw, waiting for it when `wait` is given; otherwise fails saying
/// the thaw was requested and when to run again. Returns the reader and the key read.
pub fn open_copy(
    remote: &Remote,
    b: &RemoteBackup,
    wait: Option<ThawWait>,
    thaw_tier: Option<&str>,
    ui: &crate::ui::Ui,
) -> Result<(Box<dyn Read + Send>, String)> {
    let m = b.manifest.as_ref().ok_or_else(|| crate::failed!("{}: no manifest off-site; cannot check it", b.stem))?;
    let mut archived: Option<ObjectMeta> = None;
    for o in b.copies.values() {
        let h = match remote.store.head(&o.key) {
            Ok(h) => h,
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        if h.size != m.size {
            tracing::warn!("{}: size {} is not the manifest's {}; trying another copy", remote.url(&o.key), h.size, m.size);
            continue;
        }
        if h.thaw.readable() {
            return Ok((remote.store.get(&o.key)?, o.key.clone()));
        }
        if archived.is_none() {
            archived = Some(h);
        }
    }
    let h = archived.ok_or_else(|| crate::failed!("{}: no usable copy off-site", b.stem))?;
    let tier = thaw_tier.map(str::to_string).unwrap_or_else(|| remote.config.restore_tier.clone());
    if h.thaw == Thaw::Needed {
        remote.store.request_thaw(&h.key, remote.config.restore_days, &tier)?;
        tracing::info!("requested a thaw of {} ({} retrieval, typically {})", remote.url(&h.key), tier, thaw_eta(h.class(), &tier));
    }
    let Some(w) = wait else {
        let eta = thaw_eta(h.class(), &tier);
        return Err(crate::error::Error::ThawPending(format!(
            "{} is in {}: a thaw is under way ({tier} retrieval, typically {eta}; readable for {} days once done). Run the same command again then, or add --wait to wait for it",
            remote.url(&h.key),
            h.class(),
            remote.config.restore_days
        )));
    };
    let progress = ui.progress("thawing", None);
    let started = Instant::now();
    loop {
        let now = remote.store.head(&h.key)?;
        if now.thaw == Thaw::Needed {
            // Never requested, or an earlier thaw expired: ask (again).
            remote.store.request_thaw(&h.key, remote.config.restore_days, &tier)?;
        }
        if now.thaw.readable() {
            progress.finish();
            tracing::info!("{} is thawed after {:.0?}", remote.url(&h.key), started.elapsed());
            return Ok((remote.store.get(&h.key)?, h.key.clone()));
        }
        if started.elapsed() >= w.timeout {
            progress.finish();
            return Err(crate::error::Error::ThawPending(format!(
                "{}: still thawing after {:?} (--wait timeout); the thaw goes on, run again later",
                remote.url(&h.key),
                w.timeout
            )));
        }
        if crate::signals::interrupted() {
            return Err(crate::failed!("interrupted while waiting for the thaw of {}", remote.url(&h.key)));
        }
        progress.label(&format!("thawing {:.0?}", started.elapsed()));
        std::thread::sleep(w.poll.min(w.timeout.saturating_sub(started.elapsed())).max(Duration::from_millis(10)));
    }
}
