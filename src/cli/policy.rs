//! `pgtier policy simulate POLICY --days N [--every 1h]`: which backups a policy keeps after N
//! days of runs (one a night, or one every interval).

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Ctx;
use crate::config::{Location, TierName};
use crate::error::Result;
use crate::records::retention::simulate;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// One backup a day at 02:00 UTC (or one every --every) for the N days ending on the --now date, planned as of the last.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier policy simulate default --days 400   which of 400 nightly backups each tier would keep, and why\n  pgtier policy simulate hourly --every 1h    a day of hourly backups: which become the daily, and which are kept"
)]
pub struct SimulateArgs {
    /// Policy name (a file in the policies folder, or default).
    pub policy: String,
    /// Number of days of runs (default 1 with --every).
    #[arg(long, required_unless_present = "every")]
    pub days: Option<u32>,
    /// One backup every this long (1h, 30m, 6h) instead of one a night.
    #[arg(long, value_name = "INTERVAL", value_parser = super::parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Only print the backups that are kept.
    #[arg(long)]
    pub kept_only: bool,
}

#[derive(Serialize)]
struct Row {
    created_at: String,
    keep: bool,
    tiers: Vec<TierName>,
    kept_by: Vec<TierName>,
    locations: Vec<Location>,
    reasons: Vec<String>,
}

pub fn run(ctx: &Ctx, cmd: PolicyCommand) -> Result<i32> {
    let PolicyCommand::Simulate(a) = cmd;
    let days = a.days.unwrap_or(1);
    if days == 0 || days > 1_000_000 {
        return Err(crate::usage!("--days must be between 1 and 1000000"));
    }
    let every = match a.every {
        None => chrono::Duration::days(1),
        Some(d) if d < std::time::Duration::from_secs(60) => {
            return Err(crate::usage!("--every must be at least 1m, got {}s", d.as_secs()));
        }
        Some(d) => chrono::Duration::seconds(d.as_secs().min(u32::MAX as u64) as i64),
    };
    if i64::from(days) * 86_400 / every.num_seconds() > 1_000_000 {
        return Err(crate::usage!(
            "--days {days} --every {}m would simulate more than 1000000 backups: fewer days or a longer interval",
            every.num_minutes()
        ));
    }
    let cfg = ctx.config()?;
    let policy = cfg.policies.get(&a.policy).ok_or_else(|| {
        let known: Vec<_> = cfg.policies.keys().map(String::as_str).collect();
        crate::usage!("unknown policy {:?} (known: {})", a.policy, known.join(", "))
    })?;
    let remote = !cfg.remotes.is_empty();
    let started = std::time::Instant::now();
    let decisions = simulate(policy, days, every, ctx.now);
    let simulated = decisions.len();
    tracing::info!("planned {} backups in {:.1} ms", decisions.len(), started.elapsed().as_secs_f64() * 1000.0);
    let rows: Vec<Row> = decisions
        .into_iter()
        .filter(|d| d.keep || !a.kept_only)
        .map(|d| {
            let locations = [Location::Local, Location::Remote].into_iter().filter(|l| d.keep_at(*l, policy, remote)).collect();
            Row {
                created_at: d.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                keep: d.keep,
                tiers: d.tiers.into_iter().collect(),
                kept_by: d.kept_by.into_iter().collect(),
                locations,
                reasons: d.reasons,
            }
        })
        .collect();
    if ctx.ui.json {
        ctx.print_json(&rows);
        return Ok(crate::error::EXIT_OK);
    }
    for r in &rows {
        let tiers: Vec<_> = r.tiers.iter().map(|t| t.as_str()).collect();
        let locs: Vec<_> = r.locations.iter().map(|l| if *l == Location::Local { "local" } else { "remote" }).collect();
        crate::outln!(
            "{:<6} {}  {:<22} {:<13} {}",
            if r.keep { "keep" } else { "delete" },
            r.created_at,
            tiers.join(","),
            if locs.is_empty() { "-".to_string() } else { locs.join("+") },
            r.reasons.join("; ")
        );
    }
    let kept = rows.iter().filter(|r| r.keep).count();
    crate::outln!("{kept} of {simulated} backups kept by policy {}", policy.name);
    Ok(crate::error::EXIT_OK)
}
