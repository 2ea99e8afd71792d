//! `pgtier report [PROJECT [ENV]] --html FILE | --json`: a year of backups at a glance.

use std::path::PathBuf;

use clap::Args;

use super::Ctx;
use crate::error::Result;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier report --html /var/www/backups/index.html   every project/env, one self-contained page\n  pgtier report shop production --html shop.html\n  pgtier report --json                               the same data for other tools"
)]
pub struct ReportArgs {
    /// A project of projects.yml (default: every one).
    pub project: Option<String>,
    /// An environment of PROJECT (default: every one).
    pub env: Option<String>,
    /// Write the report as one self-contained HTML page (no script, nothing fetched).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: ReportArgs) -> Result<i32> {
    if a.html.is_none() && !ctx.ui.json {
        return Err(crate::usage!("say where the report goes: --html FILE (a page) or --json (the data)"));
    }
    let cfg = ctx.config_with_envs(a.project.as_deref(), a.env.as_deref())?;
    let selected = cfg.select(a.project.as_deref(), a.env.as_deref())?;
    let report = crate::ops::report::collect(&cfg, &selected, ctx.now)?;
    if let Some(path) = &a.html {
        let page = crate::ops::report::html::render(&report);
        crate::fsutil::write_atomic(path, page.as_bytes())?;
        if !ctx.ui.json {
            crate::outln!("{}", path.display());
        }
    }
    if ctx.ui.json {
        ctx.print_json(&report);
    }
    Ok(crate::error::EXIT_OK)
}
