//! `pgtier list PROJECT ENV [--latest]`.

use clap::Args;
use serde::Serialize;

use super::{Ctx, Target, human_size};
use crate::catalog::Listing;
use crate::error::Result;

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print only the newest backup's path (like the old get_latest_backup).
    #[arg(long)]
    pub latest: bool,
    /// Only backups on this host (the default).
    #[arg(long)]
    pub local: bool,
}

/// One row of `list --json`.
#[derive(Debug, Serialize)]
pub struct Row {
    pub backup: String,
    pub kind: crate::names::Kind,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub tiers: Vec<crate::config::TierName>,
    pub tags: Vec<String>,
    pub encrypted: bool,
    pub locations: Vec<String>,
    pub last_verified: Option<chrono::DateTime<chrono::Utc>>,
}

pub fn run(ctx: &Ctx, a: ListArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&a.target.project)?;
    let env = &a.target.env;
    project.database(env)?;
    let dir = cfg.env_dir(&project.name, env);
    let listing = Listing::scan(&dir, &project.name, env)?;
    if a.latest {
        return match listing.latest() {
            Some(b) => {
                if ctx.ui.json {
                    ctx.print_json(&serde_json::json!({ "backup": b.stem.to_string(), "path": b.data_path }));
                } else {
                    println!("{}", b.data_path.display());
                }
                Ok(0)
            }
            None => Err(crate::failed!("no backups of {}/{env} in {}", project.name, dir.display())),
        };
    }
    let rows: Vec<Row> = listing
        .backups
        .iter()
        .map(|b| Row {
            backup: b.stem.to_string(),
            kind: b.stem.kind,
            created_at: b.stem.time,
            path: b.data_path.display().to_string(),
            size: b.manifest.size,
            sha256: b.manifest.sha256.clone(),
            tiers: b.manifest.tiers.clone(),
            tags: b.manifest.tags.clone(),
            encrypted: b.manifest.encryption.is_some(),
            locations: vec!["local".into()],
            last_verified: b.manifest.last_verified_ok().map(|v| v.at),
        })
        .collect();
    if ctx.ui.json {
        ctx.print_json(&rows);
    } else {
        println!("{:<24} {:<20} {:>10}  {:<22} {:<12} VERIFIED", "BACKUP", "CREATED (UTC)", "SIZE", "TIERS", "TAGS");
        for r in &rows {
            let tiers: Vec<_> = r.tiers.iter().map(|t| t.as_str()).collect();
            println!(
                "{:<24} {:<20} {:>10}  {:<22} {:<12} {}",
                r.backup,
                r.created_at.format("%Y-%m-%d %H:%M:%S"),
                human_size(r.size),
                if tiers.is_empty() { "-".into() } else { tiers.join(",") },
                if r.tags.is_empty() { "-".into() } else { r.tags.join(",") },
                r.last_verified.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "-".into())
            );
        }
    }
    for (p, why) in &listing.broken {
        tracing::warn!("{}: {why}", p.display());
    }
    for p in &listing.foreign {
        tracing::info!(
            "{}: not described by any pgtier manifest (left alone; `pgtier adopt` takes in the old scripts' dumps)",
            p.display()
        );
    }
    Ok(0)
}
