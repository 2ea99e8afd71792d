//! What is off-site: the remote listing of a project/env, which copies are confirmed, and the
//! remote part of the audit. (Filled in by the off-site work.)

use chrono::{DateTime, Utc};

use crate::audit::Finding;
use crate::config::{Config, Project};
use crate::error::Result;
use crate::prune::{ConfirmedRemote, EnvPlan};

/// Confirmed off-site copies by backup, or None when no remote is configured.
pub fn confirmed_copies(cfg: &Config, _project: &Project, _env: &str) -> Result<Option<ConfirmedRemote>> {
    Ok(cfg.remote.as_ref().map(|_| ConfirmedRemote::new()))
}

/// The remote part of the audit.
pub fn audit_remote(_cfg: &Config, _project: &Project, _env: &str, _now: DateTime<Utc>, _plan: &EnvPlan) -> Result<Vec<Finding>> {
    Ok(Vec::new())
}
