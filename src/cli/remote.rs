//! `pgtier remote init [NAME] [--dry-run]`: create or check each destination's bucket with
//! versioning, Object Lock where a policy locks a tier it holds, and lifecycle rules for
//! noncurrent versions and unfinished uploads; say what was done and what could not be.

use clap::{Args, Subcommand};

use super::Ctx;
use crate::config::{Location, RemoteUrl};
use crate::context::Context;
use crate::error::Result;
use crate::store::SetupStep;

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Create or check the bucket of each destination (or of NAME).
    Init(InitArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier remote init --dry-run   what it would create or change on each destination\n  pgtier remote init aws         create or check the bucket of the destination named aws"
)]
pub struct InitArgs {
    /// One destination (default: every one).
    pub name: Option<String>,
    /// Say what would be done without doing it.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Ctx, cmd: RemoteCommand) -> Result<i32> {
    let RemoteCommand::Init(a) = cmd;
    let cfg = ctx.config()?;
    let world = Context::new(&cfg);
    if !world.has_remote() {
        return Err(crate::usage!("no destination is configured (remote: or remotes: in {})", cfg.file.display()));
    }
    if let Some(n) = &a.name {
        world.destination(n)?;
    }
    let mut failed = false;
    let mut out = Vec::new();
    for rc in cfg.remotes.iter().filter(|r| a.name.as_ref().is_none_or(|n| *n == r.name)) {
        // Object Lock when any policy locks a tier this destination holds.
        let lock =
            cfg.policies.values().any(|p| p.tiers.iter().any(|t| t.object_lock.is_some() && t.lives(Location::Remote) && rc.holds(t.name)));
        let said: Result<Vec<SetupStep>> = (|| {
            let r = world.destination(&rc.name)?;
            let mut steps = setup(r, rc, lock, a.dry_run)?;
            steps.push(conditional_writes(r, a.dry_run)?);
            Ok(steps)
        })();
        let (steps, error) = match said {
            Ok(l) => (l, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        failed |= error.is_some() || steps.iter().any(|s| matches!(s, SetupStep::Failed(_)));
        let lines: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        if !ctx.ui.json {
            for l in &lines {
                crate::outln!("{:<8} {}", rc.name, l);
            }
            if let Some(e) = &error {
                crate::outln!("{:<8} FAILED: {e}", rc.name);
            }
        }
        out.push(serde_json::json!({ "destination": rc.name, "object_lock": lock, "dry_run": a.dry_run, "done": lines, "error": error }));
    }
    if ctx.ui.json {
        ctx.print_json(&out);
    }
    Ok(crate::error::exit_if(failed))
}

/// The bucket's (or folder's) versioning, Object Lock and lifecycle.
fn setup(r: &crate::remote::Remote, rc: &crate::config::RemoteConfig, lock: bool, dry_run: bool) -> Result<Vec<SetupStep>> {
    match &rc.url {
        RemoteUrl::File(dir) => {
            if dry_run {
                Ok(vec![SetupStep::Done(format!("would create folder {} (0700)", dir.display()))])
            } else {
                crate::fsutil::ensure_private_dir(dir)?;
                Ok(vec![SetupStep::Done(format!("folder {} is ready (a folder has no versions, locks or lifecycle rules)", dir.display()))])
            }
        }
        RemoteUrl::S3 { .. } => {
            let locks = r.store.locks().ok_or_else(|| crate::failed!("{}: no Object Lock support", r.store.describe()))?;
            Ok(locks.setup("", lock, dry_run)?)
        }
    }
}

/// Whether the store honours conditional writes, which the lease between agents needs: tried
/// on a scratch key.
fn conditional_writes(r: &crate::remote::Remote, dry_run: bool) -> Result<SetupStep> {
    if dry_run {
        return Ok(SetupStep::Done("would try conditional writes (If-None-Match, If-Match) on a scratch object".into()));
    }
    Ok(SetupStep::Done(match crate::remote::lease::probe(&*r.store)? {
        crate::remote::lease::Conditional::Honoured => {
            "conditional writes are honoured: agents on several hosts take turns through a lease per project/env".into()
        }
        crate::remote::lease::Conditional::Ignored(why) => format!(
            "conditional writes are NOT honoured ({why}): agents on several hosts cannot be kept apart; run one agent per project/env"
        ),
    }))
}
