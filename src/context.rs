//! What one command knows of the world, loaded once: the remote, opened on first use and shared
//! by every project/env (one client, one credential load, one async runtime); and per
//! project/env, its local listing and its off-site catalog, each read on first use and read
//! again only when the command says it changed them (`local_changed`, `remote_changed`).

use std::cell::OnceCell;
use std::path::PathBuf;

use crate::catalog::Listing;
use crate::config::{Config, Project};
use crate::error::{Error, Result};
use crate::remote::{EnvOffsite, Remote, RemoteState};

/// One command's view of the configuration and the remote.
pub struct Context<'a> {
    pub cfg: &'a Config,
    remote: OnceCell<std::result::Result<Option<Remote>, String>>,
}

impl<'a> Context<'a> {
    pub fn new(cfg: &'a Config) -> Context<'a> {
        Context { cfg, remote: OnceCell::new() }
    }

    /// The configured remote (None when there is none), opened the first time it is asked for.
    pub fn remote(&self) -> Result<Option<&Remote>> {
        match self.remote.get_or_init(|| Remote::open(self.cfg).map_err(|e| e.to_string())) {
            Ok(r) => Ok(r.as_ref()),
            Err(e) => Err(Error::Failed(format!("cannot open the remote: {e}"))),
        }
    }

    /// The configured remote, or a usage error saying `what` needs one.
    pub fn require_remote(&self, what: &str) -> Result<&Remote> {
        self.remote()?.ok_or_else(|| crate::usage!("{what} needs remote: in {}", self.cfg.file.display()))
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
            offsite: None,
        }
    }
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
    offsite: Option<std::result::Result<EnvOffsite, Error>>,
}

impl<'c> EnvContext<'c> {
    /// The remote, if one is configured and it opened.
    pub fn remote(&self) -> Result<Option<&'c Remote>> {
        self.ctx.remote()
    }

    /// The local backups (read on first use).
    pub fn listing(&mut self) -> Result<&Listing> {
        if self.listing.is_none() {
            self.listing = Some(Listing::scan(&self.dir, &self.project.name, &self.env)?);
        }
        Ok(self.listing.as_ref().expect("just read"))
    }

    /// Reads the off-site catalog with a HEAD of every copy, unless it is read already; false
    /// without a remote.
    fn load_offsite(&mut self) -> Result<bool> {
        let Some(remote) = self.remote()? else { return Ok(false) };
        if self.offsite.is_none() {
            self.listing()?;
            let listing = self.listing.as_ref().expect("read above");
            self.offsite = Some(EnvOffsite::load(remote, &self.project.name, &self.env, listing));
        }
        Ok(true)
    }

    /// The local listing and the off-site catalog (or why it could not be read); None without
    /// a remote.
    pub fn both(&mut self) -> Result<(&Listing, Option<std::result::Result<&EnvOffsite, &Error>>)> {
        self.listing()?;
        let remote = self.load_offsite()?;
        let listing = self.listing.as_ref().expect("read above");
        Ok((listing, if remote { self.offsite.as_ref().map(|o| o.as_ref()) } else { None }))
    }

    /// What local retention needs of the remote: None without a remote; an unreachable one
    /// confirms nothing (with a warning).
    pub fn remote_state(&mut self) -> Result<Option<RemoteState>> {
        if self.remote()?.is_none() {
            return Ok(None);
        }
        let (project, env) = (self.project.name.clone(), self.env.clone());
        let (listing, offsite) = self.both()?;
        Ok(offsite.map(|o| crate::remote::catalog::state_or_nothing(o, listing, &project, &env)))
    }

    /// Say that the local folder changed (a backup was written, backups were pruned).
    pub fn local_changed(&mut self) {
        self.listing = None;
    }

    /// Say that the remote changed (a sync ran).
    pub fn remote_changed(&mut self) {
        self.offsite = None;
    }

    /// The database this env backs up.
    pub fn database(&self) -> &str {
        self.project.databases.get(&self.env).map(String::as_str).unwrap_or("postgres")
    }
}
