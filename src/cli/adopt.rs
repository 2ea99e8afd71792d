//! `pgtier adopt PROJECT ENV`: write manifests for the old scripts' dumps so they join the tiers.

use clap::Args;

use super::{Ctx, Target};
use crate::error::Result;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier adopt shop production --dry-run   which old db_YYYYMMDD_HHMMSS.sql.gz files would join the tiers\n  pgtier adopt shop production             write their manifests; then `pgtier list shop production`"
)]
pub struct AdoptArgs {
    #[command(flatten)]
    pub target: Target,
    /// Say what would be adopted without writing manifests.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Ctx, a: AdoptArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&a.target.project)?;
    let adopted = crate::ops::adopt::adopt(&cfg, project, &a.target.env, a.dry_run)?;
    if ctx.ui.json {
        ctx.print_json(&adopted);
    } else {
        for x in &adopted {
            let tiers: Vec<_> = x.tiers.iter().map(|t| t.as_str()).collect();
            crate::outln!(
                "{} {} as {} ({} {}, tiers {})",
                if a.dry_run { "would adopt" } else { "adopted" },
                x.file,
                x.backup,
                x.format,
                x.compression,
                tiers.join(",")
            );
        }
        crate::outln!("{} file(s) {}", adopted.len(), if a.dry_run { "to adopt" } else { "adopted" });
    }
    Ok(crate::error::EXIT_OK)
}
