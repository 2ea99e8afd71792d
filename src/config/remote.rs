//! Off-site destinations: `remotes:` (a list of named destinations) or `remote:` (one, named
//! `default`), each an S3 bucket (or S3-compatible store) or a `file://` folder, holding all the
//! off-site tiers or a subset, with per-tier storage classes of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::raw;
use crate::config::Policy;
use crate::error::{Error, Result};
use crate::vocab::{Location, StorageClass, TierName};

/// One off-site destination.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// `default` for `remote:`; letters, digits, `-`, `_`, `.`.
    pub name: String,
    pub url: RemoteUrl,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    /// Glacier retrieval tier for `RestoreObject`: Bulk, Standard or Expedited.
    pub restore_tier: String,
    /// How many days a thawed copy stays readable.
    pub restore_days: u32,
    /// Parallel part uploads/downloads.
    pub concurrency: usize,
    /// How long one request may wait for the store's answer (or for the next bytes of it).
    pub timeout: std::time::Duration,
    /// How long connecting may take.
    pub connect_timeout: std::time::Duration,
    /// How many times a request is tried (the first try included), with backoff in between.
    pub attempts: u32,
    /// Whether requests carry the newer `x-amz-checksum-*` headers.
    pub checksums: Checksums,
    /// The off-site tiers this destination holds (None: every one).
    pub tiers: Option<BTreeSet<TierName>>,
    /// Storage classes that replace the policy's for this destination.
    pub storage_classes: BTreeMap<TierName, StorageClass>,
    /// Whether this host deletes what the tiers no longer keep here (`prune: false`: a separate
    /// pruning identity does, and this host's credentials need no delete right).
    pub prune: bool,
    /// The key this destination was configured under, for messages (`remote`, `remotes[1]`).
    pub key: String,
}

impl RemoteConfig {
    /// Whether this destination holds copies of `tier` (an off-site tier of the policy).
    pub fn holds(&self, tier: TierName) -> bool {
        self.tiers.as_ref().is_none_or(|t| t.contains(&tier))
    }

    /// The storage class of `tier` here: this destination's override, else the policy's.
    pub fn class_of(&self, tier: TierName, policy_class: StorageClass) -> StorageClass {
        self.storage_classes.get(&tier).copied().unwrap_or(policy_class)
    }

    /// Whether this destination can hold Object Lock retention (S3 and S3-compatible stores).
    pub fn can_lock(&self) -> bool {
        matches!(self.url, RemoteUrl::S3 { .. })
    }
}

/// The remote URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteUrl {
    S3 { bucket: String, prefix: String },
    File(PathBuf),
}

impl std::fmt::Display for RemoteUrl {
    /// As written in pgtier.yml: `s3://bucket/prefix`, `file:///mnt/nas`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            RemoteUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{}", prefix.trim_end_matches('/')),
            RemoteUrl::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// AWS's `request_checksum_calculation`: send the newer checksum headers whenever the request
/// supports them (and fall back once if the store rejects them), or only when an operation
/// requires them (for stores that reject them: some MinIO, Ceph, B2, R2 versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksums {
    WhenSupported,
    WhenRequired,
}

/// The destinations of pgtier.yml: `remote:` (one, named `default`) or `remotes:` (a list).
pub fn destinations(file: &Path, one: Option<raw::Remote>, many: Option<Vec<raw::Remote>>) -> Result<Vec<RemoteConfig>> {
    match (one, many) {
        (Some(_), Some(_)) => Err(Error::config(file, "remotes", "give either remote: (one destination) or remotes: (a list), not both")),
        (None, None) => Ok(Vec::new()),
        (Some(r), None) => Ok(vec![remote_config(file, "remote", r, "default")?]),
        (None, Some(list)) => {
            if list.is_empty() {
                return Err(Error::config(file, "remotes", "the list is empty; remove it, or name at least one destination"));
            }
            let mut out: Vec<RemoteConfig> = Vec::new();
            for (i, r) in list.into_iter().enumerate() {
                let key = format!("remotes[{i}]");
                let name = r.name.clone().ok_or_else(|| Error::config(file, format!("{key}.name"), "every destination needs a name"))?;
                check_name(&name).map_err(|m| Error::config(file, format!("{key}.name"), m))?;
                if out.iter().any(|o| o.name == name) {
                    return Err(Error::config(file, format!("{key}.name"), format!("{name:?} names two destinations")));
                }
                out.push(remote_config(file, &key, r, &name)?);
            }
            Ok(out)
        }
    }
}

/// A destination given on the command line (`--remote s3://bucket/prefix`), with the defaults
/// of pgtier.yml for everything else; `endpoint_url` (an S3-compatible store) implies path-style
/// addressing. Errors name the option.
pub fn from_url(url: &str, endpoint_url: Option<String>, region: Option<String>) -> Result<RemoteConfig> {
    let force_path_style = endpoint_url.is_some().then_some(true);
    let r = raw::Remote {
        name: None,
        url: url.to_string(),
        request_checksum_calculation: None,
        tiers: None,
        storage_classes: None,
        prune: Some(false),
        endpoint_url,
        region,
        force_path_style,
        restore_tier: None,
        restore_days: None,
        concurrency: None,
        timeout_seconds: None,
        connect_timeout_seconds: None,
        attempts: None,
    };
    remote_config(Path::new("--remote"), "--remote", r, "fleet").map_err(|e| match e {
        Error::Config { key, message, .. } => {
            crate::usage!("{}: {message}", key.replace("--remote.url", "--remote").replace("--remote.", "--"))
        }
        e => e,
    })
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    match name {
        "local" | "remote" | "auto" => Err(format!("{name:?} is reserved (it is a --from word)")),
        _ if ok => Ok(()),
        _ => Err(format!("{name:?}: use letters, digits, - _ . (up to 64)")),
    }
}

fn remote_config(file: &Path, key: &str, r: raw::Remote, name: &str) -> Result<RemoteConfig> {
    let err = |k: &str, m: String| Error::config(file, format!("{key}.{k}"), m);
    if key == "remote" && r.name.as_deref().is_some_and(|n| n != "default") {
        return Err(err("name", "remote: is the destination named default; use remotes: to name destinations".into()));
    }
    let url = if let Some(rest) = r.url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(err("url", "s3:// URL has no bucket".into()));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if prefix.split('/').any(|c| c == ".." || c == ".") {
            return Err(err("url", "the prefix must not contain . or .. components".into()));
        }
        RemoteUrl::S3 { bucket: bucket.to_string(), prefix }
    } else if let Some(path) = r.url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(err("url", "file:// URLs need an absolute path (file:///mnt/nas/backups)".into()));
        }
        RemoteUrl::File(PathBuf::from(path))
    } else {
        return Err(err("url", format!("expected s3://bucket/prefix or file:///path, got {:?}", r.url)));
    };
    if let Some(e) = &r.endpoint_url
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        return Err(err("endpoint_url", format!("expected an http(s):// URL, got {e:?}")));
    }
    let restore_tier = match r.restore_tier.as_deref().unwrap_or("standard").to_ascii_lowercase().as_str() {
        "bulk" => "Bulk",
        "standard" => "Standard",
        "expedited" => "Expedited",
        other => return Err(err("restore_tier", format!("expected bulk, standard or expedited, got {other:?}"))),
    }
    .to_string();
    let concurrency = r.concurrency.unwrap_or(4);
    if !(1..=32).contains(&concurrency) {
        return Err(err("concurrency", "expected 1 to 32".into()));
    }
    let bounded = |k: &str, v: Option<u32>, default: u32, max: u32| -> Result<u32> {
        let v = v.unwrap_or(default);
        if (1..=max).contains(&v) { Ok(v) } else { Err(err(k, format!("expected 1 to {max}, got {v}"))) }
    };
    let timeout = bounded("timeout_seconds", r.timeout_seconds, 60, 3600)?;
    let connect_timeout = bounded("connect_timeout_seconds", r.connect_timeout_seconds, 10, 600)?;
    let attempts = bounded("attempts", r.attempts, 6, 20)?;
    let checksums = match r.request_checksum_calculation.as_deref().unwrap_or("when_supported") {
        "when_supported" => Checksums::WhenSupported,
        "when_required" => Checksums::WhenRequired,
        other => return Err(err("request_checksum_calculation", format!("expected when_supported or when_required, got {other:?}"))),
    };
    let tiers = match r.tiers {
        None => None,
        Some(list) => {
            let mut set = BTreeSet::new();
            for t in list {
                set.insert(
                    TierName::parse(&t)
                        .ok_or_else(|| err("tiers", format!("unknown tier {t:?}; expected daily, weekly, monthly or yearly")))?,
                );
            }
            Some(set)
        }
    };
    let mut storage_classes = BTreeMap::new();
    for (t, c) in r.storage_classes.unwrap_or_default() {
        let tier = TierName::parse(&t).ok_or_else(|| err("storage_classes", format!("unknown tier {t:?}")))?;
        let class = StorageClass::parse(&c).ok_or_else(|| err(&format!("storage_classes.{t}"), format!("unknown storage class {c:?}")))?;
        storage_classes.insert(tier, class);
    }
    Ok(RemoteConfig {
        name: name.to_string(),
        url,
        endpoint_url: r.endpoint_url,
        region: r.region,
        force_path_style: r.force_path_style.unwrap_or(false),
        restore_tier,
        restore_days: r.restore_days.unwrap_or(3).max(1),
        concurrency: concurrency as usize,
        timeout: std::time::Duration::from_secs(timeout as u64),
        connect_timeout: std::time::Duration::from_secs(connect_timeout as u64),
        attempts,
        checksums,
        tiers,
        storage_classes,
        prune: r.prune.unwrap_or(true),
        key: key.to_string(),
    })
}

/// What the destinations must satisfy given the policies: every off-site tier is held by at
/// least one destination (else its copies would go nowhere, and prune would still release the
/// local ones), and a destination that cannot lock holds no locked tier.
pub fn check_policies(file: &Path, remotes: &[RemoteConfig], policies: &BTreeMap<String, std::sync::Arc<Policy>>) -> Vec<Error> {
    let mut out = Vec::new();
    if remotes.is_empty() {
        return out;
    }
    for p in policies.values() {
        for t in p.tiers.iter().filter(|t| t.lives(Location::Remote)) {
            if !remotes.iter().any(|r| r.holds(t.name)) {
                out.push(Error::config(
                    file,
                    "remotes",
                    format!(
                        "policy {}'s tier {} lives off-site, but no destination holds it: add it to a destination's tiers",
                        p.name, t.name
                    ),
                ));
            }
            if t.object_lock.is_none() {
                continue;
            }
            for r in remotes.iter().filter(|r| !r.can_lock() && r.holds(t.name)) {
                out.push(Error::config(
                    file,
                    format!("{}.tiers", r.key),
                    format!(
                        "destination {} is a folder and cannot hold policy {}'s tier {}, which has object_lock (a folder cannot refuse a delete); list the tiers it holds without {}",
                        r.name, p.name, t.name, t.name
                    ),
                ));
            }
        }
    }
    out
}
