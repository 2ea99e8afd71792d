//! `pgtier fleet status|audit|report --remote URL|NAME`: every project/env under a
//! destination's prefix, from the bucket alone.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::Result;
use crate::ops::fleet::{Fleet, FleetOptions, fleet};

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Per project/env: the newest backup and its age, copies per tier and storage class, lock
    /// horizons, the last drill, and what is wrong.
    Status(FleetArgs),
    /// As status, reading the lock of every copy in a locked tier; exits 1 on any finding.
    Audit(FleetArgs),
    /// The whole fleet as one self-contained HTML page (--html FILE) or its data (--json).
    Report(FleetArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier fleet status --remote s3://backups/pg                 no pgtier.yml or projects.yml needed\n  pgtier fleet audit --remote aws --json                       a destination of pgtier.yml, by name\n  pgtier fleet report --remote s3://backups/pg --html fleet.html\n  pgtier fleet status --remote s3://b/pg --endpoint-url http://minio:9000"
)]
pub struct FleetArgs {
    /// The prefix to read: an s3:// or file:// URL, or the name of a destination in pgtier.yml.
    #[arg(long, value_name = "URL|NAME")]
    pub remote: String,
    /// An S3-compatible store's endpoint (with a URL); implies path-style addressing.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The bucket's region (with a URL; default: the AWS chain's).
    #[arg(long)]
    pub region: Option<String>,
    /// An env whose newest backup is older than this is stale.
    #[arg(long, value_name = "DURATION", default_value = "26h", value_parser = super::parse_duration)]
    pub stale_after: std::time::Duration,
    /// Write the report page here (fleet report).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, cmd: FleetCommand) -> Result<i32> {
    let (a, audit, report) = match cmd {
        FleetCommand::Status(a) => (a, false, false),
        FleetCommand::Audit(a) => (a, true, false),
        FleetCommand::Report(a) => (a, false, true),
    };
    if report && a.html.is_none() && !ctx.ui.json {
        return Err(crate::usage!("say where the report goes: --html FILE (a page) or --json (the data)"));
    }
    let rc = if a.remote.contains("://") {
        crate::config::remote_from_url(&a.remote, a.endpoint_url.clone(), a.region.clone())?
    } else {
        if a.endpoint_url.is_some() || a.region.is_some() {
            return Err(crate::usage!("--endpoint-url and --region go with a URL; destination {:?} has its own in pgtier.yml", a.remote));
        }
        let cfg = ctx.config()?;
        cfg.remotes.iter().find(|r| r.name == a.remote).cloned().ok_or_else(|| {
            crate::usage!(
                "--remote {:?} is neither a URL (s3://bucket/prefix, file:///path) nor a destination of {} (configured: {})",
                a.remote,
                cfg.file.display(),
                cfg.remotes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })?
    };
    let remote = crate::remote::Remote::open(&rc)?;
    let opts = FleetOptions {
        now: ctx.now,
        stale_after: chrono::Duration::from_std(a.stale_after).unwrap_or(chrono::Duration::hours(26)),
        every_lock: audit,
    };
    let f = fleet(&remote, &opts)?;
    if let Some(path) = &a.html {
        crate::fsutil::write_atomic(path, crate::ops::fleet::html(&f).as_bytes())?;
    }
    if ctx.ui.json {
        ctx.print_json(&f);
    } else if report {
        crate::outln!("{}", a.html.as_ref().map(|p| p.display().to_string()).unwrap_or_default());
    } else {
        print(&f, ctx.now);
    }
    Ok(crate::error::exit_if(audit && !f.ok))
}

fn print(f: &Fleet, now: chrono::DateTime<chrono::Utc>) {
    if f.envs.is_empty() {
        crate::outln!("no backups of pgtier's under {}", f.remote);
        return;
    }
    for e in &f.envs {
        let newest = match (&e.newest, e.newest_at) {
            (Some(b), Some(t)) => format!("newest {} ({b})", crate::ui::ago(t, now)),
            _ => "no database backup".to_string(),
        };
        let tiers: Vec<String> = e
            .tiers
            .iter()
            .map(|(t, x)| {
                let classes: Vec<String> =
                    x.classes.iter().map(|(c, n)| if x.classes.len() == 1 { c.clone() } else { format!("{n} {c}") }).collect();
                let lock = x.locked_until.map(|u| format!(", locked until {}", u.format("%Y-%m-%d"))).unwrap_or_default();
                format!("{t} {} {}{lock}", x.copies, classes.join("+"))
            })
            .collect();
        let drill = match &e.last_drill {
            Some(d) => format!("; drill {} {}", if d.ok { "ok" } else { "FAILED" }, crate::ui::ago(d.at, now)),
            None => "; never drilled".into(),
        };
        let status = if e.findings.is_empty() { "ok" } else { "PROBLEM" };
        crate::outln!("{status:<8} {}/{}  {newest}; {}{drill}", e.project, e.env, tiers.join(", "));
        if let Some(h) = e.lease.as_ref().filter(|h| !h.released) {
            crate::outln!("           lease: {}", h.describe(now));
        }
        for x in &e.findings {
            crate::outln!("           {x}");
        }
    }
    let bad = f.envs.iter().filter(|e| !e.findings.is_empty()).count();
    crate::outln!("fleet {}: {} env(s), {bad} with findings", f.remote, f.envs.len());
}
