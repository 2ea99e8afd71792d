//! `pgtier status PROJECT ENV`: the old scripts' deployment manifest, as JSON: the latest backup, the
//! latest of each tier, the deployment (tagged) backup, the last proof of restore, what is off-site.
//! `pgtier status [PROJECT]`: a human overview of every project/env, one block each.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::json;

use super::{Ctx, Target};
use crate::error::Result;
use crate::names::Kind;
use crate::records::listing::Listing;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier status                      every project/env at a glance\n  pgtier status shop production      the deployment manifest (JSON)"
)]
pub struct StatusArgs {
    /// A project (default: every one); with ENV, its deployment manifest as JSON.
    pub project: Option<String>,
    /// An environment of PROJECT.
    pub env: Option<String>,
}

pub fn run(ctx: &Ctx, a: StatusArgs) -> Result<i32> {
    match (&a.project, &a.env) {
        (Some(p), Some(e)) => manifest(ctx, &Target { project: p.clone(), env: e.clone() }),
        _ => super::overview::run(ctx, a.project.as_deref()),
    }
}

/// The deployment manifest of one project/env.
fn manifest(ctx: &Ctx, target: &Target) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&target.project)?;
    let env = &target.env;
    let database = project.database(env)?;
    // The folder and each destination's catalog, read once through the command's context.
    let world = crate::context::Context::new(&cfg);
    let mut e = world.env(project, env);
    e.listing()?;
    // A destination that cannot be reached or read is shown with its error.
    let read: Vec<(&str, Result<()>)> =
        world.destinations().into_iter().map(|(name, r)| (name, r.and_then(|r| e.catalog(r).map(|_| ())))).collect();
    let listing = e.listing_if_read().expect("read above");
    let describe = |b: &crate::records::listing::LocalBackup| json!({ "backup": b.stem.to_string(), "created_at": b.stem.time, "path": b.data_path, "size": b.manifest.size, "tiers": b.manifest.tiers, "tags": b.manifest.tags });
    let latest = listing.latest();
    let mut by_tier = BTreeMap::new();
    for b in listing.databases() {
        for t in &b.manifest.tiers {
            by_tier.insert(t.as_str().to_string(), describe(b));
        }
    }
    let deployment = listing.databases().rev().find(|b| !b.manifest.tags.is_empty());
    let verification = listing
        .databases()
        .flat_map(|b| b.manifest.verifications.iter().map(move |v| (b, v)))
        .max_by_key(|(_, v)| v.at)
        .map(|(b, v)| json!({ "backup": b.stem.to_string(), "at": v.at, "ok": v.ok, "from": v.from, "error": v.error }));
    let last_ok = listing
        .databases()
        .filter_map(|b| b.manifest.last_verified_ok().map(|v| (b, v)))
        .max_by_key(|(_, v)| v.at)
        .map(|(b, v)| json!({ "backup": b.stem.to_string(), "at": v.at, "from": v.from }));
    let destinations: Vec<serde_json::Value> = read
        .into_iter()
        .map(|(name, read)| {
            let mut v = match read.and_then(|()| world.destination(name)) {
                Ok(r) => offsite_summary(r, e.catalog_if_read(name).expect("read above"), listing, &project.name, env),
                Err(err) => json!({ "configured": true, "error": err.to_string() }),
            };
            v["name"] = json!(name);
            v
        })
        .collect();
    let offsite = destinations.first().cloned().unwrap_or_else(|| json!({ "configured": false }));
    let state = crate::tell::metrics::load(&cfg).envs.get(&format!("{}/{env}", project.name)).cloned();
    let status = json!({
        "project": project.name,
        "env": env,
        "database": database,
        "backup": latest.map(|b| b.stem.to_string()),
        "database_backup": latest.map(|b| b.data_path.display().to_string()),
        "latest": latest.map(describe),
        "latest_per_tier": by_tier,
        "deployment_backup": deployment.map(describe),
        "last_verification": verification,
        "last_successful_verification": last_ok,
        "offsite": offsite,
        "destinations": destinations,
        "local": { "backups": listing.databases().count(), "bytes": listing.backups.iter().map(|b| b.manifest.size).sum::<u64>(), "folder": cfg.env_dir(&project.name, env) },
        "globals": listing.backups.iter().rev().find(|b| b.stem.kind == Kind::Globals).map(|b| b.stem.to_string()),
        "last_run": state,
    });
    // The deployment manifest, as the old scripts printed it; with --json, in the
    // envelope every --json output shares.
    if ctx.ui.json {
        ctx.print_json(&status);
    } else {
        crate::outln!("{}", serde_json::to_string_pretty(&status).expect("serialisable"));
    }
    Ok(crate::error::EXIT_OK)
}

/// One destination's side of an env, for `status`.
fn offsite_summary(
    r: &crate::remote::Remote,
    cat: &crate::remote::RemoteCatalog,
    local: &Listing,
    project: &str,
    env: &str,
) -> serde_json::Value {
    let tiers: BTreeMap<String, u64> = cat.database_copies().into_iter().map(|(t, n)| (t.to_string(), n)).collect();
    let newest = cat.databases().next_back();
    json!({
        "configured": true,
        "url": r.url(r.layout(project, env).prefix()),
        "backups": cat.databases().count(),
        "per_tier": tiers,
        "latest": newest.map(|b| b.stem.to_string()),
        "latest_key": newest.and_then(|b| b.copies.values().next()).map(|o| r.url(&o.key)),
        "cold_not_drilled": cat.cold_not_drilled(Some(local)).count(),
    })
}
