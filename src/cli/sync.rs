//! `pgtier sync [PROJECT [ENV]] [--dry-run]`: put each tier off-site with its storage class.

use clap::Args;

use super::Ctx;
use crate::context::Context;
use crate::error::Result;
use crate::ops::sync::{SyncOptions, sync_env};
use crate::plan::offsite::Action;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier sync --dry-run              what would go up, be copied, kept or deleted, per destination\n  pgtier sync shop production"
)]
pub struct SyncArgs {
    /// A project of projects.yml (default: every one).
    pub project: Option<String>,
    /// An environment of PROJECT (default: every one).
    pub env: Option<String>,
    /// Print the plan without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete remote copies before their storage class's minimum billable duration.
    #[arg(long)]
    pub allow_early_delete: bool,
    /// Wait up to this long for another agent's lease on an env instead of exiting 11.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "6h", value_parser = super::parse_duration)]
    pub wait_lock: Option<std::time::Duration>,
}

pub fn run(ctx: &Ctx, a: SyncArgs) -> Result<i32> {
    let cfg = ctx.config_with_envs(a.project.as_deref(), a.env.as_deref())?;
    let selected = cfg.select(a.project.as_deref(), a.env.as_deref())?;
    let world = Context::new(&cfg);
    world.require_remote("sync")?;
    let mut totals = crate::ops::sync::SyncReport::default();
    let mut envs = Vec::new();
    let mut all_actions = Vec::new();
    let mut failed = false;
    let mut locked = false;
    let several = world.names().len() > 1;
    for (project, env) in selected {
        let opts = SyncOptions { now: ctx.now, allow_early_delete: a.allow_early_delete, dry_run: a.dry_run };
        let mut e = world.env(project, &env);
        let _lease = match e.lease_for("sync", a.dry_run, a.wait_lock) {
            Ok(l) => l,
            Err(err) => {
                tracing::error!("sync {}/{env}: {err}", project.name);
                locked |= matches!(err, crate::error::Error::Locked(_));
                failed |= !matches!(err, crate::error::Error::Locked(_));
                continue;
            }
        };
        // One destination failing never stops the others.
        for (name, r) in world.destinations() {
            let place = if several { format!("{}/{env}@{name}", project.name) } else { format!("{}/{env}", project.name) };
            match r.and_then(|r| sync_env(&mut e, r, opts, &ctx.ui)) {
                Ok((plan, rep)) => {
                    if !ctx.ui.json {
                        for (i, act) in plan.actions.iter().enumerate().filter(|(_, x)| a.dry_run || !matches!(x, Action::Keep { .. })) {
                            let status = match (a.dry_run, rep.done.get(i).copied().unwrap_or(false), act) {
                                (true, _, _) => "plan",
                                (false, true, _) => "done",
                                (false, false, Action::Blocked { .. }) => "blocked",
                                (false, false, _) if rep.errors.is_empty() => "not done",
                                (false, false, _) => "NOT DONE",
                            };
                            crate::outln!("{:<8} {place} {} {}", status, act.backup(), act.describe());
                        }
                    }
                    failed |= !rep.errors.is_empty();
                    totals.uploaded += rep.uploaded;
                    totals.copied += rep.copied;
                    totals.deleted += rep.deleted;
                    totals.skipped += rep.skipped;
                    totals.deferred += rep.deferred;
                    totals.blocked += rep.blocked;
                    totals.manifests += rep.manifests;
                    totals.bytes_uploaded += rep.bytes_uploaded;
                    totals.locked += rep.locked;
                    // Each step says whether it was done (never, in a dry run).
                    all_actions.extend(plan.actions.into_iter().enumerate().map(|(i, act)| {
                        let done = !a.dry_run && rep.done.get(i).copied().unwrap_or(false);
                        let mut v = serde_json::to_value(&act).unwrap_or_default();
                        if let Some(o) = v.as_object_mut() {
                            o.insert("done".into(), done.into());
                        }
                        (act, v)
                    }));
                    envs.push(rep);
                }
                Err(err) => {
                    tracing::error!("sync {place} (destination {name}): {err}");
                    failed = true;
                }
            }
        }
    }
    if ctx.ui.json {
        ctx.print_json(&serde_json::json!({
            "dry_run": a.dry_run,
            "uploaded": totals.uploaded,
            "copied": totals.copied,
            "deleted": totals.deleted,
            "skipped": totals.skipped,
            "deferred": totals.deferred,
            "blocked": totals.blocked,
            "manifests": totals.manifests,
            "bytes_uploaded": totals.bytes_uploaded,
            "locked": totals.locked,
            "envs": envs,
            "actions": all_actions.iter().map(|(_, v)| v).collect::<Vec<_>>(),
        }));
    } else {
        crate::outln!(
            "{}: uploaded {}, copied {}, deleted {}, already there {}, locked {}, kept for billing or lock {}, blocked {}",
            if a.dry_run { "would sync" } else { "synced" },
            totals.uploaded,
            totals.copied,
            totals.deleted,
            totals.skipped,
            totals.locked,
            totals.deferred,
            totals.blocked
        );
        let billing = all_actions.iter().filter(|(x, _)| matches!(x, Action::Defer { reason, .. } if reason.billing_only())).count();
        if billing > 0 && !a.allow_early_delete {
            crate::outln!(
                "(--allow-early-delete deletes the {billing} cop{} kept for billing now; a lock cannot be cut short)",
                if billing == 1 { "y" } else { "ies" }
            );
        }
    }
    Ok(super::exit_code(failed, locked))
}
