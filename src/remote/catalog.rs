//! What is off-site for one project/env: every backup found under its folder (by typed name),
//! with its manifest and copies per tier, the objects that are not pgtier's, and which copies are
//! confirmed (size and stored SHA-256 are the manifest's).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::{Remote, RemoteKey};
use crate::error::Result;
use crate::names::Stem;
use crate::records::listing::{Listing, LocalBackup};
use crate::records::manifest::Manifest;
use crate::records::retention::Candidate;
use crate::store::{ObjectMeta, StoreError};
use crate::vocab::TierName;

/// Which remote tiers hold a confirmed copy (size and checksum) of each backup.
pub type ConfirmedRemote = BTreeMap<Stem, BTreeSet<TierName>>;

/// What the destinations hold, as local retention needs it.
#[derive(Debug, Clone, Default)]
pub struct RemoteState {
    /// Each destination's confirmed copies (one that could not be reached confirms nothing).
    pub destinations: Vec<DestinationState>,
    /// Backups that exist only off-site: they count in the plan (periods, the newest backup)
    /// exactly as they do for sync, so both sides decide alike.
    pub remote_only: Vec<Candidate<Stem>>,
}

/// One destination's confirmed copies.
#[derive(Debug, Clone, Default)]
pub struct DestinationState {
    pub name: String,
    /// The off-site tiers it holds (None: every one).
    pub holds: Option<BTreeSet<TierName>>,
    pub confirmed: ConfirmedRemote,
}

impl RemoteState {
    /// One destination (`default`) with these confirmed copies.
    pub fn single(confirmed: ConfirmedRemote) -> RemoteState {
        RemoteState { destinations: vec![DestinationState { name: "default".into(), holds: None, confirmed }], remote_only: Vec::new() }
    }

    /// The copies of `stem` that `wanted` (its off-site tiers) still lacks: `weekly`, or
    /// `weekly on nas` when there are several destinations. Empty: every destination that
    /// should hold it has confirmed its copy.
    pub fn missing(&self, stem: &Stem, wanted: &BTreeSet<TierName>) -> Vec<String> {
        if self.destinations.is_empty() {
            // Nothing known off-site confirms nothing.
            return wanted.iter().map(|t| t.to_string()).collect();
        }
        let several = self.destinations.len() > 1;
        let mut out = Vec::new();
        for d in &self.destinations {
            let here = d.confirmed.get(stem);
            for t in wanted.iter().filter(|t| d.holds.as_ref().is_none_or(|h| h.contains(t))) {
                if !here.is_some_and(|c| c.contains(t)) {
                    out.push(if several { format!("{t} on {}", d.name) } else { t.to_string() });
                }
            }
        }
        out
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
    /// Why none of its manifest objects could be read (after retries), tier by tier, when none
    /// could.
    pub manifest_error: Option<String>,
    /// The tiers whose manifest failed (and why) while another tier's copy was read instead.
    pub fallbacks: Vec<(TierName, String)>,
}

/// Everything under one project/env's remote folder.
#[derive(Debug, Default)]
pub struct RemoteCatalog {
    pub backups: BTreeMap<Stem, RemoteBackup>,
    /// Keys under the folder that are not pgtier's (never touched).
    pub foreign: Vec<String>,
    /// Manifests that could not be read or lie, with the reason.
    pub broken: Vec<(String, String)>,
}

impl RemoteCatalog {
    /// Lists the env's folder. Manifests are taken from `local` where this host has them and
    /// read from the store otherwise (after a host loss, all of them).
    pub fn load(remote: &Remote, project: &str, env: &str, local: Option<&Listing>) -> Result<RemoteCatalog> {
        let layout = remote.layout(project, env);
        let mut cat = RemoteCatalog::default();
        for o in remote.store.list(layout.prefix())? {
            match layout.parse(&o.key) {
                Some(RemoteKey::Manifest { tier, stem }) => {
                    cat.entry(&stem).manifest_keys.insert(tier, o.key.clone());
                }
                Some(RemoteKey::Data { tier, stem }) => {
                    cat.entry(&stem).copies.insert(tier, o);
                }
                Some(RemoteKey::Canary { .. } | RemoteKey::Lease) => {}
                Some(RemoteKey::Foreign) | None => cat.foreign.push(o.key.clone()),
            }
        }
        let mut broken = Vec::new();
        let here: BTreeMap<&Stem, &LocalBackup> = local.map(|l| l.backups.iter().map(|b| (&b.stem, b)).collect()).unwrap_or_default();
        for (stem, b) in cat.backups.iter_mut() {
            if let Some(l) = here.get(stem) {
                b.manifest = Some(l.manifest.clone());
                continue;
            }
            // Every tier holds its own copy of the manifest: one that cannot be read (a 503, a
            // reset, a stall) is no reason to lose sight of the backup while another reads.
            let mut failed: Vec<(String, String)> = Vec::new();
            let mut said: Vec<(TierName, String)> = Vec::new();
            for (tier, key) in &b.manifest_keys {
                let why = match read_manifest(remote, key, stem) {
                    Ok(m) if m.project == project && m.env == env => {
                        b.manifest = Some(m);
                        break;
                    }
                    Ok(m) => format!("describes {}/{}, not {project}/{env}", m.project, m.env),
                    Err(e) => e.to_string(),
                };
                // The store's messages name the object; the tier says which one here.
                let url = remote.url(key);
                let short = why.strip_prefix(&format!("reading {url}: ")).or_else(|| why.strip_prefix(&format!("{url}: "))).unwrap_or(&why);
                said.push((*tier, short.to_string()));
                failed.push((key.clone(), why));
            }
            match (&b.manifest, said.is_empty()) {
                (_, true) => {}
                (Some(_), false) => b.fallbacks = said,
                (None, false) => b.manifest_error = Some(said.iter().map(|(t, why)| format!("{t}: {why}")).collect::<Vec<_>>().join("; ")),
            }
            broken.extend(failed);
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

    /// The backup `stem`, added empty when it is not here yet.
    pub fn entry(&mut self, stem: &Stem) -> &mut RemoteBackup {
        self.backups.entry(stem.clone()).or_insert_with(|| RemoteBackup {
            stem: stem.clone(),
            manifest: None,
            copies: BTreeMap::new(),
            manifest_keys: BTreeMap::new(),
            manifest_error: None,
            fallbacks: Vec::new(),
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
            // A copy counts only with its tier's manifest beside it: sync writes the manifests
            // after the data, and a prune (in another process) that let the local backup go in
            // between left a copy nothing describes, which no sync could describe again.
            for (tier, o) in b.copies.iter().filter(|(tier, _)| b.manifest_keys.contains_key(*tier)) {
                if heads.get(&o.key).is_some_and(|h| is_confirmed(h, m)) {
                    out.entry(b.stem.clone()).or_default().insert(*tier);
                }
            }
        }
        out
    }

    /// Database backups with at least one copy here, oldest first.
    pub fn databases(&self) -> impl DoubleEndedIterator<Item = &RemoteBackup> {
        self.backups.values().filter(|b| b.stem.kind == crate::names::Kind::Database && !b.copies.is_empty())
    }

    /// Database backups that no drill can reach without a paid thaw: never drilled, not on this
    /// host (`local`), and every copy here in an archive class (GLACIER, DEEP_ARCHIVE).
    pub fn cold_not_drilled<'a>(&'a self, local: Option<&'a Listing>) -> impl Iterator<Item = &'a Stem> + 'a {
        self.databases()
            .filter(move |b| {
                b.manifest.as_ref().is_some_and(|m| m.verifications.is_empty())
                    && local.is_none_or(|l| !l.databases().any(|lb| lb.stem == b.stem))
                    && b.copies.values().all(|o| !o.thaw.readable())
            })
            .map(|b| &b.stem)
    }

    /// Copies of database backups per tier (what monitoring counts).
    pub fn database_copies(&self) -> BTreeMap<TierName, u64> {
        let mut out = BTreeMap::new();
        for b in self.backups.values().filter(|b| b.stem.kind == crate::names::Kind::Database) {
            for tier in b.copies.keys() {
                *out.entry(*tier).or_default() += 1;
            }
        }
        out
    }
}

/// A remote copy is confirmed when its size and SHA-256 are the manifest's: the store's own
/// SHA-256 of its bytes where it keeps one, and always the one pgtier recorded as it hashed the
/// bytes it sent (a copy whose bytes were never hashed against the manifest is not confirmed).
pub fn is_confirmed(head: &ObjectMeta, m: &Manifest) -> bool {
    head.size == m.size && head.sha256.as_deref() == Some(m.sha256.as_str()) && head.content_sha256.as_deref().is_none_or(|c| c == m.sha256)
}

/// How many times a manifest is read before it counts as unreadable, and the pause before
/// each retry (the store's own retries of each request come on top).
const MANIFEST_ATTEMPTS: u32 = 3;
const MANIFEST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads one manifest object, retrying transport faults (an error answer, a connection reset
/// mid-body) with backoff; a manifest that is missing or does not parse is not retried.
pub fn read_manifest(remote: &Remote, key: &str, stem: &Stem) -> Result<Manifest> {
    let mut attempt = 1;
    loop {
        let fetched = remote.store.get(key).map_err(crate::error::Error::from).and_then(|r| {
            let mut bytes = Vec::new();
            r.take(crate::records::manifest::MAX_MANIFEST_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| crate::error::Error::Unreachable(format!("{}: {e}", remote.url(key))))?;
            Ok(bytes)
        });
        match fetched {
            Ok(bytes) => return Manifest::from_bytes(&bytes, std::path::Path::new(&remote.url(key)), Some(stem)),
            Err(e @ (crate::error::Error::NotFound(_) | crate::error::Error::Cancelled)) => return Err(e),
            Err(e) if attempt >= MANIFEST_ATTEMPTS => return Err(crate::error::Error::Unreachable(format!("{e} ({attempt} tries)"))),
            Err(e) => {
                tracing::debug!("reading {} (attempt {attempt} of {MANIFEST_ATTEMPTS}): {e}", remote.url(key));
                crate::signals::sleep(MANIFEST_BACKOFF * 4u32.pow(attempt - 1))?;
                attempt += 1;
            }
        }
    }
}

/// One env's off-site side, read once: the catalog and a HEAD of every copy.
pub struct EnvOffsite {
    pub cat: RemoteCatalog,
    pub heads: BTreeMap<String, ObjectMeta>,
}

impl EnvOffsite {
    /// Lists the env's folder and HEADs every copy (manifests come from `local` where it has them).
    pub fn load(remote: &Remote, project: &str, env: &str, local: &Listing) -> Result<EnvOffsite> {
        let cat = RemoteCatalog::load(remote, project, env, Some(local))?;
        let heads = cat.heads(remote)?;
        Ok(EnvOffsite { cat, heads })
    }

    /// The backups that live only off-site, as the retention planner sees them: they count in
    /// the local plan (periods, the newest backup) as they do for sync.
    pub fn remote_only(&self, local: &Listing) -> Vec<Candidate<Stem>> {
        let here: BTreeSet<&Stem> = local.backups.iter().map(|l| &l.stem).collect();
        self.cat
            .backups
            .values()
            .filter(|b| !here.contains(&b.stem))
            .filter_map(|b| Some(b.manifest.as_ref()?.candidate(&b.stem)))
            .collect()
    }
}
