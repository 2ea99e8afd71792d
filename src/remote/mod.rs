//! Everything pgtier knows about the remote, in one place: the configured store seen through
//! its prefix (`prefix`), where each object lives (`layout`), what is off-site for one
//! project/env (`catalog`), and opening a copy, thawing it first when it is archived (`thaw`).
//! sync, prune, audit, metrics, status, list, restore and verify all read the remote through
//! this module.

pub mod catalog;
pub mod layout;
pub mod lease;
pub mod prefix;
pub mod thaw;

pub use catalog::{ConfirmedRemote, DestinationState, EnvOffsite, RemoteBackup, RemoteCatalog, RemoteState, is_confirmed};
pub use layout::{EnvLayout, RemoteKey};
pub use prefix::PrefixStore;
pub use thaw::{Reading, ThawWait, open_copy, thaw_eta};

use crate::config::{RemoteConfig, RemoteUrl};
use crate::error::Result;
use crate::store::Store;
use crate::store::{LocalStore, S3Options, S3Store};

/// The S3 client's options for a destination's settings.
pub fn s3_options(rc: &RemoteConfig, bucket: &str) -> S3Options {
    S3Options {
        bucket: bucket.to_string(),
        endpoint_url: rc.endpoint_url.clone(),
        region: rc.region.clone(),
        force_path_style: rc.force_path_style,
        timeout: rc.timeout,
        connect_timeout: rc.connect_timeout,
        attempts: rc.attempts,
        concurrency: rc.concurrency,
        checksums_when_required: rc.checksums == crate::config::Checksums::WhenRequired,
        name: rc.name.clone(),
        credentials: None,
    }
}

/// One configured destination, opened. `store` is a `PrefixStore`: keys given to it are
/// relative to the destination's URL.
pub struct Remote {
    pub store: std::sync::Arc<dyn Store>,
    pub config: RemoteConfig,
}

impl Remote {
    /// Reads an object to its end and returns its size and SHA-256 (a read failure is
    /// `Unreachable`: it proves nothing about the copy).
    pub fn read_digest(&self, key: &str) -> Result<crate::pipeline::Digest> {
        let reader = self.store.get(key)?;
        crate::pipeline::digest_reader(reader).map_err(|e| {
            if crate::signals::interrupted() {
                crate::error::Error::Cancelled
            } else {
                crate::error::Error::Unreachable(format!("{}: {e}", self.url(key)))
            }
        })
    }

    /// Opens one destination.
    pub fn open(rc: &RemoteConfig) -> Result<Remote> {
        let (inner, prefix): (std::sync::Arc<dyn Store>, &str) = match &rc.url {
            RemoteUrl::S3 { bucket, prefix } => (std::sync::Arc::new(S3Store::new(&s3_options(rc, bucket))?), prefix.as_str()),
            RemoteUrl::File(root) => (std::sync::Arc::new(LocalStore::new(root)), ""),
        };
        Ok(Remote { store: std::sync::Arc::new(PrefixStore::new(inner, prefix)), config: rc.clone() })
    }

    /// The destination's name (`default` for `remote:`).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Where `project`/`env` keeps its objects.
    pub fn layout(&self, project: &str, env: &str) -> EnvLayout {
        EnvLayout::new(project, env)
    }

    /// For messages: `s3://bucket/prefix/{key}`.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.store.describe())
    }

    /// What to say when this host's clock and the store's differ by more than five minutes
    /// (from the store's latest answer): locks end by the store's clock.
    pub fn clock_problem(&self) -> Option<String> {
        let skew = self.store.clock_skew().filter(|s| s.num_seconds().abs() > 300)?;
        let (how, then) = if skew > chrono::Duration::zero() {
            ("ahead of", "copies whose lock ended by this host's clock are deleted only once the store's clock agrees")
        } else {
            ("behind", "copies are kept until this host's clock catches up")
        };
        Some(format!(
            "this host's clock is {} {how} the clock of destination {} ({}): {then}; set the host's time right (NTP)",
            crate::ui::span(skew),
            self.name(),
            self.store.describe()
        ))
    }
}
