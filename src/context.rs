//! What one command knows of the world, loaded once: the off-site destinations, each opened on
//! first use and shared by every project/env (one client, one credential load, one async
//! runtime); and per project/env, its local listing and each destination's catalog, each read
//! on first use. An operation that changes the local folder takes the listing under the env
//! lock, where it is proven current or read again (`Listing::under_lock`), and gives it back
//! with the change recorded (`adopt`); one that changes a destination records it in place or
//! says so (`remote_changed`).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{Config, Project, RemoteConfig};
use crate::error::{Error, Result};
use crate::records::listing::Listing;
use crate::remote::lease::{self, Lease, Taken};
use crate::remote::{DestinationState, EnvOffsite, Remote, RemoteCatalog, RemoteState};

/// One command's view of the configuration and the destinations.
pub struct Context<'a> {
    pub cfg: &'a Config,
    /// One cell per configured destination, in the configured order.
    remotes: Vec<OnceCell<std::result::Result<Remote, String>>>,
}

impl<'a> Context<'a> {
    pub fn new(cfg: &'a Config) -> Context<'a> {
        Context { cfg, remotes: cfg.remotes.iter().map(|_| OnceCell::new()).collect() }
    }

    /// Whether any destination is configured.
    pub fn has_remote(&self) -> bool {
        !self.cfg.remotes.is_empty()
    }

    /// The names of the configured destinations, in order.
    pub fn names(&self) -> Vec<&str> {
        self.cfg.remotes.iter().map(|r| r.name.as_str()).collect()
    }

    fn open(&self, i: usize) -> Result<&Remote> {
        let rc = &self.cfg.remotes[i];
        match self.remotes[i].get_or_init(|| shared_store(rc).map(|store| Remote { store, config: rc.clone() })) {
            Ok(r) => Ok(r),
            Err(e) => Err(Error::Unreachable(format!("destination {}: cannot open it: {e}", rc.name))),
        }
    }

    /// Every destination, opened (or why it could not be), in the configured order.
    pub fn destinations(&self) -> Vec<(&str, Result<&Remote>)> {
        (0..self.cfg.remotes.len()).map(|i| (self.cfg.remotes[i].name.as_str(), self.open(i))).collect()
    }

    /// The destination called `name`; a usage error listing the names when there is none.
    pub fn destination(&self, name: &str) -> Result<&Remote> {
        match self.cfg.remotes.iter().position(|r| r.name == name) {
            Some(i) => self.open(i),
            None if self.cfg.remotes.is_empty() => {
                Err(crate::usage!("no destination is configured (remote: or remotes: in {})", self.cfg.file.display()))
            }
            None => {
                Err(crate::usage!("no destination named {name:?} in {} (configured: {})", self.cfg.file.display(), self.names().join(", ")))
            }
        }
    }

    /// The first destination (the only one with `remote:`), or a usage error saying `what`
    /// needs one.
    pub fn require_remote(&self, what: &str) -> Result<&Remote> {
        if self.cfg.remotes.is_empty() {
            return Err(crate::usage!("{what} needs remote: (or remotes:) in {}", self.cfg.file.display()));
        }
        self.open(0)
    }

    /// One project/env of this command.
    pub fn env<'c>(&'c self, project: &'c Project, env: &str) -> EnvContext<'c> {
        EnvContext {
            cfg: self.cfg,
            project,
            env: env.to_string(),
            dir: self.cfg.env_dir(&project.name, env),
            ctx: self,
            listing: None,
            offsite: BTreeMap::new(),
            light: BTreeMap::new(),
        }
    }
}

/// The process's one client per destination: every context of the command (an operation that
/// opens its own, a second pass) shares it, so credentials are looked up once.
fn shared_store(rc: &RemoteConfig) -> std::result::Result<std::sync::Arc<dyn crate::store::Store>, String> {
    type Opened = std::collections::HashMap<String, std::sync::Arc<dyn crate::store::Store>>;
    static OPENED: std::sync::OnceLock<std::sync::Mutex<Opened>> = std::sync::OnceLock::new();
    let key = format!("{rc:?}");
    let mut opened = OPENED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = opened.get(&key) {
        return Ok(s.clone());
    }
    let store = Remote::open(rc).map_err(|e| e.to_string())?.store;
    opened.insert(key, store.clone());
    Ok(store)
}

/// One project/env within a command.
pub struct EnvContext<'c> {
    pub cfg: &'c Config,
    pub project: &'c Project,
    pub env: String,
    /// `{backup_root}/{project}/{env}`.
    pub dir: PathBuf,
    ctx: &'c Context<'c>,
    listing: Option<Listing>,
    /// Each destination's catalog with a HEAD of every copy, by destination name, once read.
    offsite: BTreeMap<String, std::result::Result<EnvOffsite, Error>>,
    /// Each destination's catalog without HEADs, for a command that needs no more (until
    /// one needs the HEADs: then it becomes that destination's `offsite`). Only catalogs that
    /// were read: a failed read is the caller's error, and tried again on the next call.
    light: BTreeMap<String, RemoteCatalog>,
}

impl<'c> EnvContext<'c> {
    /// The command's context.
    pub fn world(&self) -> &'c Context<'c> {
        self.ctx
    }

    /// The local backups (read on first use).
    pub fn listing(&mut self) -> Result<&Listing> {
        if self.listing.is_none() {
            self.listing = Some(Listing::scan(&self.dir, &self.project.name, &self.env)?);
        }
        Ok(self.listing.as_ref().expect("just read"))
    }

    /// Reads `remote`'s catalog of this env with a HEAD of every copy, unless read already.
    fn load_offsite(&mut self, remote: &Remote) -> Result<()> {
        if !self.offsite.contains_key(remote.name()) {
            self.listing()?;
            let listing = self.listing.as_ref().expect("read above");
            let loaded = match self.light.remove(remote.name()) {
                Some(cat) => cat.heads(remote).map(|heads| EnvOffsite { cat, heads }),
                None => EnvOffsite::load(remote, &self.project.name, &self.env, listing),
            };
            self.offsite.insert(remote.name().to_string(), loaded);
        }
        Ok(())
    }

    /// `remote`'s catalog of this env (or why it could not be read), without a HEAD of every
    /// copy unless the command made them already: a listing of the prefix, and the manifests
    /// of backups this host does not hold.
    pub fn catalog(&mut self, remote: &Remote) -> Result<&RemoteCatalog> {
        let name = remote.name();
        if self.catalog_if_read(name).is_none() {
            self.listing()?;
            let cat = RemoteCatalog::load(remote, &self.project.name, &self.env, self.listing.as_ref())?;
            self.light.insert(name.to_string(), cat);
        }
        Ok(self.catalog_if_read(name).expect("read above"))
    }

    /// Destination `name`'s catalog, if the command has read it (with or without HEADs).
    pub fn catalog_if_read(&self, name: &str) -> Option<&RemoteCatalog> {
        match self.offsite.get(name) {
            Some(Ok(o)) => Some(&o.cat),
            _ => self.light.get(name),
        }
    }

    /// The local listing and `remote`'s catalog of this env (or why it could not be read).
    pub fn both(&mut self, remote: &Remote) -> Result<(&Listing, std::result::Result<&EnvOffsite, &Error>)> {
        self.load_offsite(remote)?;
        // The catalog may have been read before the local folder changed (a prune since): the
        // listing is read again then, the catalog is not.
        self.listing()?;
        let listing = self.listing.as_ref().expect("read above");
        Ok((listing, self.offsite[remote.name()].as_ref()))
    }

    /// What local retention needs of the destinations: None without any; one that cannot be
    /// reached confirms nothing (with a warning), so nothing it should hold is released here.
    pub fn remote_state(&mut self) -> Result<Option<RemoteState>> {
        if !self.ctx.has_remote() {
            return Ok(None);
        }
        let mut state = RemoteState::default();
        let (project, env) = (self.project.name.clone(), self.env.clone());
        for (name, remote) in self.ctx.destinations() {
            let holds = self.cfg.remotes.iter().find(|r| r.name == name).and_then(|r| r.tiers.clone());
            let confirmed = match remote {
                Ok(r) => {
                    let (listing, offsite) = self.both(r)?;
                    match offsite {
                        Ok(o) => {
                            state.remote_only.extend(o.remote_only(listing));
                            o.cat.confirmed(&o.heads)
                        }
                        Err(e) => {
                            warn_unconfirmed(&project, &env, name, e);
                            Default::default()
                        }
                    }
                }
                Err(e) => {
                    warn_unconfirmed(&project, &env, name, &e);
                    Default::default()
                }
            };
            state.destinations.push(DestinationState { name: name.to_string(), holds, confirmed });
        }
        state.remote_only.sort_by(|a, b| a.id.cmp(&b.id));
        state.remote_only.dedup_by(|a, b| a.id == b.id);
        Ok(Some(state))
    }

    /// The local listing, if the command has read it.
    pub fn listing_if_read(&self) -> Option<&Listing> {
        self.listing.as_ref()
    }

    /// Hands the listing (if read) to an operation that checks it under the env lock and gives
    /// it back with `adopt`.
    pub fn take_listing(&mut self) -> Option<Listing> {
        self.listing.take()
    }

    /// Goes on from `listing`, read by an operation under the env lock after its change.
    pub fn adopt(&mut self, listing: Listing) {
        self.listing = Some(listing);
    }

    /// Say that a destination changed in ways not recorded (it is read again on next use).
    pub fn remote_changed(&mut self, name: &str) {
        self.offsite.remove(name);
        self.light.remove(name);
    }

    /// Destination `name`'s catalog of this env, if the command has read it (and could).
    pub fn offsite_if_read(&self, name: &str) -> Option<&EnvOffsite> {
        self.offsite.get(name).and_then(|o| o.as_ref().ok())
    }

    /// The local listing (if read) and destination `name`'s catalog (if read and readable), for
    /// an operation to record in place what it changed.
    pub fn both_mut(&mut self, name: &str) -> (Option<&Listing>, Option<&mut EnvOffsite>) {
        (self.listing.as_ref(), self.offsite.get_mut(name).and_then(|o| o.as_mut().ok()))
    }

    /// The database this env backs up.
    pub fn database(&self) -> &str {
        self.project.database(&self.env).unwrap_or("postgres")
    }
}

fn warn_unconfirmed(project: &str, env: &str, name: &str, e: &Error) {
    tracing::warn!(
        "{project}/{env}: cannot check the copies on destination {name} ({e}); local backups it should hold stay until they can be confirmed"
    );
}

/// One project/env's lease for a command (see `remote::lease`), with what to tell the operator.
pub struct EnvLease {
    pub lease: Option<Lease>,
    /// Why there is no lease where one was wanted (the store ignores conditional writes, or
    /// could not be reached: then nothing is deleted in this run).
    pub warning: Option<String>,
}

impl EnvLease {
    /// Why the lease was lost during the command, if it was.
    pub fn lost(&self) -> Option<String> {
        self.lease.as_ref().and_then(Lease::lost)
    }
}

impl<'c> EnvContext<'c> {
    /// Takes this env's lease at the first destination for `command`, waiting up to `wait` for
    /// another agent; `Locked` (exit 11) naming the holder when it cannot. Without a
    /// destination there is nothing to share and no lease. A destination that cannot be reached
    /// gives no lease: the command goes on (a backup is still worth taking), deleting nothing.
    pub fn lease(&self, command: &str, wait: Option<std::time::Duration>) -> Result<EnvLease> {
        let Some((name, first)) = self.ctx.destinations().into_iter().next() else { return Ok(EnvLease { lease: None, warning: None }) };
        let without = |e: &dyn std::fmt::Display| {
            if crate::signals::interrupted() {
                return Err(Error::Cancelled);
            }
            let w =
                format!("could not take the lease on destination {name} ({e}): going on without it, and nothing is deleted in this run");
            lease::refuse_deletions(&w);
            Ok(EnvLease { lease: None, warning: Some(w) })
        };
        let remote = match first {
            Ok(r) => r,
            Err(e) => return without(&e),
        };
        let key = remote.layout(&self.project.name, &self.env).lease_key();
        match Lease::take(remote.store.clone(), &key, self.cfg.lease_ttl, wait, command) {
            Ok(Taken::Held(l)) => Ok(EnvLease { lease: Some(l.fence()), warning: None }),
            Ok(Taken::Unsupported(why)) => Ok(EnvLease { lease: None, warning: Some(why) }),
            Err(e @ (Error::Locked(_) | Error::Cancelled)) => Err(e),
            Err(e) => without(&e),
        }
    }

    /// The lease for a single-step command (`backup`, `sync`, `prune`), its warning logged;
    /// none in a dry run, which changes nothing.
    pub fn lease_for(&self, command: &str, dry_run: bool, wait: Option<std::time::Duration>) -> Result<Option<EnvLease>> {
        if dry_run {
            return Ok(None);
        }
        let l = self.lease(command, wait)?;
        if let Some(w) = &l.warning {
            tracing::warn!("{}/{}: {w}", self.project.name, self.env);
        }
        Ok(Some(l))
    }
}
