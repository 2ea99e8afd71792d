//! Everything pgtier knows about the remote, in one place: the configured store seen through
//! its prefix (`prefix`), where each object lives (`layout`), what is off-site for one
//! project/env (`catalog`), and opening a copy, thawing it first when it is archived (`thaw`).
//! sync, prune, audit, metrics, status, list, restore and verify all read the remote through
//! this module.

pub mod catalog;
pub mod layout;
pub mod prefix;
pub mod thaw;

pub use catalog::{ConfirmedRemote, EnvOffsite, RemoteBackup, RemoteCatalog, RemoteState, is_confirmed};
pub use layout::{EnvLayout, RemoteKey};
pub use prefix::PrefixStore;
pub use thaw::{ThawWait, open_copy, thaw_eta};

use crate::config::{Config, RemoteConfig, RemoteUrl};
use crate::error::Result;
use crate::store::Store;

/// The configured remote, opened. `store` is a `PrefixStore`: keys given to it are relative to
/// the configured URL.
pub struct Remote {
    pub store: std::sync::Arc<dyn Store>,
    pub config: RemoteConfig,
}

impl Remote {
    /// Opens the remote of `cfg`, if one is configured.
    pub fn open(cfg: &Config) -> Result<Option<Remote>> {
        let Some(rc) = &cfg.remote else { return Ok(None) };
        let prefix = match &rc.url {
            RemoteUrl::S3 { prefix, .. } => prefix.as_str(),
            RemoteUrl::File(_) => "",
        };
        let store = std::sync::Arc::new(PrefixStore::new(crate::store::open(rc)?.into(), prefix));
        Ok(Some(Remote { store, config: rc.clone() }))
    }

    /// Where `project`/`env` keeps its objects.
    pub fn layout(&self, project: &str, env: &str) -> EnvLayout {
        EnvLayout::new(project, env)
    }

    /// For messages: `s3://bucket/prefix/{key}`.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.store.describe())
    }
}
