//! `pgtier prune [PROJECT [ENV]] [--dry-run]`: apply the local side of each policy.

use clap::Args;

use super::{Ctx, print_plan};
use crate::context::Context;
use crate::error::Result;
use crate::ops::prune::prune_env;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier prune --dry-run             explain every keep and delete, change nothing\n  pgtier prune shop production"
)]
pub struct PruneArgs {
    /// A project of projects.yml (default: every one).
    pub project: Option<String>,
    /// An environment of PROJECT (default: every one).
    pub env: Option<String>,
    /// Print every decision without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait up to this long for another agent's lease on an env instead of exiting 11.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "6h", value_parser = super::parse_duration)]
    pub wait_lock: Option<std::time::Duration>,
}

pub fn run(ctx: &Ctx, a: PruneArgs) -> Result<i32> {
    let cfg = ctx.config_with_envs(a.project.as_deref(), a.env.as_deref())?;
    let mut plans = Vec::new();
    let mut failed = 0;
    let mut locked = false;
    let world = Context::new(&cfg);
    for (project, env) in cfg.select(a.project.as_deref(), a.env.as_deref())? {
        let mut e = world.env(project, &env);
        let _lease = match e.lease_for("prune", a.dry_run, a.wait_lock) {
            Ok(l) => l,
            Err(err) => {
                tracing::error!("prune {}/{env}: {err}", project.name);
                if matches!(err, crate::error::Error::Locked(_)) {
                    locked = true;
                } else {
                    failed += 1;
                }
                continue;
            }
        };
        let remote = e.remote_state()?;
        match prune_env(&mut e, ctx.now, remote.as_ref(), a.dry_run) {
            Ok(plan) => plans.push(plan),
            Err(e) => {
                tracing::error!("prune {}/{env}: {e}", project.name);
                failed += 1;
            }
        }
    }
    if ctx.ui.json {
        ctx.print_json(&plans);
    } else {
        for p in &plans {
            print_plan(p, a.dry_run);
        }
    }
    Ok(super::exit_code(failed > 0, locked))
}
