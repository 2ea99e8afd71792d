//! `pgtier run [--dry-run] [PROJECT [ENV]]`: the nightly job (backup, sync, prune) with a summary.

use clap::Args;

use super::Ctx;
use crate::error::Result;
use crate::ops::run::{RunOptions, run as run_job};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier -q run                      the nightly job for every enabled project/env (cron)\n  pgtier run shop production --dry-run\n  pgtier run --wait-lock 1h          wait for another run to finish instead of exiting 11\n  pgtier -q run --tier hourly        from an hourly timer: a backup if this hour has none, sync and prune"
)]
pub struct RunArgs {
    /// A project of projects.yml (default: every one).
    pub project: Option<String>,
    /// An environment of PROJECT (default: every one).
    pub env: Option<String>,
    /// Say what would happen without backing up, uploading or deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait up to this long for another run's lock, or another agent's lease on an env, instead of exiting 11.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "6h", value_parser = super::parse_duration)]
    pub wait_lock: Option<std::time::Duration>,
    /// Delete remote copies before their storage class's minimum billable duration.
    #[arg(long)]
    pub allow_early_delete: bool,
    /// Back up only when a backup taken now would join one of these tiers (hourly from an
    /// hourly timer); the drill is left to the nightly run. Envs whose policy has none of them are skipped.
    #[arg(long, value_name = "TIER", value_delimiter = ',', value_parser = parse_tier)]
    pub tier: Vec<crate::config::TierName>,
}

fn parse_tier(s: &str) -> std::result::Result<crate::config::TierName, String> {
    crate::config::TierName::parse(s).ok_or_else(|| format!("unknown tier {s:?}; expected hourly, daily, weekly, monthly or yearly"))
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    let cfg = ctx.config_with_envs(a.project.as_deref(), a.env.as_deref())?;
    let selected = cfg.select(a.project.as_deref(), a.env.as_deref())?;
    let tiers = (!a.tier.is_empty()).then(|| a.tier.iter().copied().collect());
    let opts = RunOptions { dry_run: a.dry_run, wait_lock: a.wait_lock, now: ctx.now, allow_early_delete: a.allow_early_delete, tiers };
    let report = run_job(&cfg, &selected, &opts, &ctx.ui)?;
    if ctx.ui.json {
        ctx.print_json(&report);
    } else {
        for w in &report.warnings {
            crate::outln!("warning {w}");
        }
        for e in &report.envs {
            let status = if let Some(s) = &e.skipped {
                format!("skipped ({s})")
            } else if e.ok {
                "ok".to_string()
            } else {
                "FAILED".to_string()
            };
            let mut parts = Vec::new();
            if let Some(b) = &e.backup {
                parts.push(format!("backup {b}"));
            }
            if let Some(why) = &e.backup_skipped {
                parts.push(format!("no backup ({why})"));
            }
            if !e.syncs.is_empty() {
                // Summed over every destination.
                let sum = |f: fn(&crate::ops::sync::SyncReport) -> u64| e.syncs.iter().map(f).sum::<u64>();
                parts.push(format!(
                    "uploaded {}, copied {}, deleted {} off-site",
                    sum(|s| s.uploaded),
                    sum(|s| s.copied),
                    sum(|s| s.deleted)
                ));
            }
            if !a.dry_run && e.prune_ran && e.pruned > 0 {
                parts.push(format!("pruned {}", e.pruned));
            }
            crate::outln!("{:<8} {}/{} {} ({:.1} s)", status, e.project, e.env, parts.join(", "), e.seconds);
            for w in &e.warnings {
                crate::outln!("           {w}");
            }
            for err in &e.errors {
                crate::outln!("  error  {err}");
            }
        }
        for err in &report.errors {
            crate::outln!("error    {err}");
        }
        let failed = report.envs.iter().filter(|e| !e.ok).count();
        crate::outln!(
            "{}",
            if !report.errors.is_empty() {
                format!("run: FAILED ({} env(s) ran, {failed} of them failed)", report.envs.len())
            } else if failed == 0 {
                format!("run: {} env(s) ok", report.envs.len())
            } else {
                format!("run: {failed} of {} env(s) FAILED", report.envs.len())
            }
        );
    }
    // Envs that only another agent's lease kept this run from: exit 11, as for a held lock.
    let failed: Vec<_> = report.envs.iter().filter(|e| !e.ok).collect();
    let locked = report.errors.is_empty() && !failed.is_empty() && failed.iter().all(|e| e.errors.iter().all(|x| x.operation == "lease"));
    Ok(super::exit_code(!report.ok && !locked, locked))
}
