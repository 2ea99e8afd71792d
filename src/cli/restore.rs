//! `pgtier restore PROJECT ENV [BACKUP|FILE|-]`.

use clap::Args;

use super::{Ctx, Target};
use crate::crypto::Keys;
use crate::error::Result;
use crate::restore::{Input, RestoreOptions, restore};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub target: Target,
    /// A backup name (db_YYYYMMDD_HHMMSS), a file path, or - for stdin. Default: the latest.
    pub backup: Option<String>,
    /// Restore beside the original into this database, leaving the original alone.
    #[arg(long)]
    pub target_db: Option<String>,
    /// Replace an existing database without asking.
    #[arg(long)]
    pub force: bool,
    /// Drop the replaced database after a successful swap instead of keeping it.
    #[arg(long)]
    pub drop_old: bool,
    /// Parallel pg_restore jobs (spools the archive to a temporary file first).
    #[arg(long)]
    pub jobs: Option<u32>,
    /// Restore only this table (schema.table or table).
    #[arg(long)]
    pub table: Option<String>,
    /// Do not restore object ownership (pg_restore --no-owner).
    #[arg(long)]
    pub no_owner: bool,
    /// An extra decryption key: an age identity file or an OpenPGP secret key (repeatable).
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<std::path::PathBuf>,
}

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&a.target.project)?;
    project.database(&a.target.env)?;
    if a.jobs == Some(0) {
        return Err(crate::usage!("--jobs must be at least 1"));
    }
    let input = match a.backup.as_deref() {
        None => Input::Latest,
        Some("-") => Input::Stdin,
        Some(s) => Input::Named(s.to_string()),
    };
    let opts = RestoreOptions {
        input,
        target_db: a.target_db,
        force: a.force,
        drop_old: a.drop_old,
        jobs: a.jobs,
        table: a.table,
        no_owner: a.no_owner,
        now: ctx.now,
    };
    let mut keys = Keys::for_project(project)?;
    for f in &a.identities {
        keys.add_key_file(f)?;
    }
    let report = restore(&cfg, project, &a.target.env, &opts, &keys, &ctx.ui)?;
    if ctx.ui.json {
        ctx.print_json(&report);
    } else {
        println!("restored {} into database {}", report.source, report.database);
        if let (Some(n), Some(rows)) = (report.tables_checked, report.rows) {
            println!("checked {n} tables, {rows} rows: match the manifest");
        }
        if let Some(old) = &report.old_database {
            println!("the previous database is kept as {old} (drop it with DROP DATABASE, or restore with --drop-old)");
        }
    }
    Ok(0)
}
