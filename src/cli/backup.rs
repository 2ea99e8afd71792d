//! `pgtier backup PROJECT ENV [--tag TAG]`.

use clap::Args;

use super::{Ctx, Target};
use crate::error::Result;
use crate::ops::backup::{BackupOptions, backup};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier backup shop production                   back up now; prints the path of the new file\n  pgtier backup shop production --tag pre-deploy  a backup kept apart from the tiers (tagged_keep)"
)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: Target,
    /// Tag the backup (e.g. pre-deploy); tagged backups are kept by their own count.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Wait up to this long for another agent's lease on an env instead of exiting 11.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "6h", value_parser = super::parse_duration)]
    pub wait_lock: Option<std::time::Duration>,
}

pub fn run(ctx: &Ctx, a: BackupArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&a.target.project)?;
    for t in &a.tags {
        crate::names::check_component(t).map_err(|m| crate::usage!("--tag {t:?}: {m}"))?;
    }
    let world = crate::context::Context::new(&cfg);
    let mut e = world.env(project, &a.target.env);
    let _lease = e.lease_for("backup", false, a.wait_lock)?;
    let b = backup(&mut e, &BackupOptions { tags: a.tags, now: ctx.now }, &ctx.ui)?;
    if b.manifest.tiers.is_empty() && b.manifest.tags.is_empty() {
        // With an hourly tier, a second backup in an hour joins no tier: say so now, not when
        // the next prune deletes it.
        tracing::warn!(
            "{} joins no tier: this hour already has a backup; the next prune deletes it once a newer one exists (add --tag NAME to keep it apart)",
            b.stem
        );
    }
    if ctx.ui.json {
        ctx.print_json(&serde_json::json!({ "path": b.data_path, "manifest": b.manifest_path, "backup": b.stem.to_string(), "size": b.manifest.size, "sha256": b.manifest.sha256, "tiers": b.manifest.tiers }));
    } else {
        crate::outln!("{}", b.data_path.display());
    }
    Ok(crate::error::EXIT_OK)
}
