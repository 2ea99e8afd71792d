//! `pgtier restore PROJECT ENV [BACKUP|FILE|-]`.

use clap::Args;

use super::{Ctx, Target};
use crate::error::Result;
use crate::ops::restore::{Input, RestoreOptions, Source, restore};
use crate::remote::ThawWait;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier restore shop production                         the latest backup, into the database of the env (asks first)\n  pgtier restore shop production --target-db shop_check  beside the original\n  pgtier restore shop production --from remote --identity key.txt   after a host loss\n  pgtier restore shop production db_20250106_020000 --table public.orders --target-db tmp"
)]
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
    /// Parallel pg_restore jobs (spools the archive to scratch_dir first).
    #[arg(long)]
    pub jobs: Option<u32>,
    /// Restore only this table (schema.table or table).
    #[arg(long)]
    pub table: Option<String>,
    /// Do not restore object ownership (pg_restore --no-owner).
    #[arg(long)]
    pub no_owner: bool,
    /// Swap the restored database in without gathering planner statistics first (ANALYZE).
    #[arg(long)]
    pub no_analyze: bool,
    /// An extra decryption key: an age identity file or an OpenPGP secret key (repeatable).
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Where a backup comes from, and how long to wait for a Glacier thaw.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// local, remote (any destination: a hot copy first, then a cold one), auto (a local copy
    /// whose checksum matches, else remote), or a destination's name.
    #[arg(long, value_name = "local|remote|auto|NAME", default_value = "local", value_parser = parse_from)]
    pub from: FromArg,
    /// Wait for a Glacier/Deep Archive thaw, up to this long (default 48h); without it, the thaw
    /// is requested and pgtier exits 75 saying when to run again.
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "48h", value_parser = super::parse_duration)]
    pub wait: Option<std::time::Duration>,
    /// How often to check on a thaw while waiting.
    #[arg(long, value_name = "INTERVAL", default_value = "60s", value_parser = super::parse_duration)]
    pub wait_poll: std::time::Duration,
    /// Glacier retrieval tier for the thaw (overrides remote.restore_tier).
    #[arg(long, value_enum)]
    pub restore_tier: Option<RestoreTier>,
}

/// `--from`: where to look for a backup, as the library's `Origin` and, for a destination's
/// name, that destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromArg {
    origin: crate::ops::restore::Origin,
    destination: Option<String>,
}

impl FromArg {
    /// The library's value.
    pub fn origin(&self) -> crate::ops::restore::Origin {
        self.origin
    }
}

fn parse_from(s: &str) -> std::result::Result<FromArg, String> {
    use crate::ops::restore::Origin;
    let (origin, destination) = match s {
        "local" => (Origin::Local, None),
        "remote" => (Origin::Remote, None),
        "auto" => (Origin::Auto, None),
        name if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) => {
            (Origin::Remote, Some(name.to_string()))
        }
        other => return Err(format!("expected local, remote, auto or a destination's name, got {other:?}")),
    };
    Ok(FromArg { origin, destination })
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RestoreTier {
    Bulk,
    Standard,
    Expedited,
}

impl SourceArgs {
    /// The backup to open, from where the flags say, waiting as they say.
    pub fn source(&self, input: Input) -> Source {
        Source {
            input,
            from: self.from.origin(),
            destination: self.from.destination.clone(),
            wait: self.wait.map(|timeout| ThawWait { timeout, poll: self.wait_poll }),
            check_first: true,
            thaw_tier: self.restore_tier.map(|t| format!("{t:?}")),
            thaw: true,
            tier: None,
        }
    }
}

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&a.target.project)?;
    project.database(&a.target.env)?;
    if a.jobs == Some(0) {
        return Err(crate::usage!("--jobs must be at least 1"));
    }
    if a.jobs.is_some_and(|j| j > 1) && a.table.is_some() {
        return Err(crate::usage!("--jobs does not apply to --table, which restores in one transaction"));
    }
    if a.jobs.is_some() && project.connection.container.is_some() {
        return Err(crate::usage!("--jobs needs a direct connection: pg_restore -j reads a file, which a container cannot see"));
    }
    if let Some(t) = &a.target_db {
        crate::ops::restore::check_db_name(t).map_err(|e| crate::usage!("--target-db: {e}"))?;
    }
    if a.source.from.origin() == crate::ops::restore::Origin::Remote
        && a.backup.as_deref().is_some_and(|b| b == "-" || std::path::Path::new(b).is_file())
    {
        return Err(crate::usage!("--from remote takes a backup name, not a file or stdin"));
    }
    let input = match a.backup.as_deref() {
        None => Input::Latest,
        Some("-") => Input::Stdin,
        Some(s) => Input::Named(s.to_string()),
    };
    let opts = RestoreOptions {
        source: a.source.source(input),
        target_db: a.target_db,
        force: a.force,
        drop_old: a.drop_old,
        jobs: a.jobs,
        table: a.table,
        no_owner: a.no_owner,
        now: ctx.now,
        analyze: !a.no_analyze,
    };
    let mut keys = project.keys()?;
    for f in &a.identities {
        keys.add_key_file(f)?;
    }
    let world = crate::context::Context::new(&cfg);
    let mut e = world.env(project, &a.target.env);
    let report = match restore(&mut e, &opts, &keys, &ctx.ui) {
        Ok(r) => r,
        // After a host loss the local folder is empty: say what is off-site.
        Err(e @ crate::Error::NotFound(_)) if opts.source.from == crate::ops::restore::Origin::Local => {
            return Err(match super::offsite_hint(&cfg, project, &a.target.env) {
                Some(hint) => crate::error::Error::NotFound(format!("{e}. {hint}")),
                None => e,
            });
        }
        Err(e) => return Err(e),
    };
    if ctx.ui.json {
        ctx.print_json(&report);
    } else {
        match &report.table {
            Some(t) => crate::outln!("restored table {t} from {} ({}) into database {}", report.source, report.from, report.database),
            None => crate::outln!("restored {} ({}) into database {}", report.source, report.from, report.database),
        }
        match (report.tables_checked, report.rows) {
            (Some(n), Some(rows)) => crate::outln!("checked {n} table(s), {rows} rows: match the manifest"),
            (Some(n), None) if report.table.is_some() => crate::outln!("restored {n} table(s) (with partitions); no row counts to compare"),
            _ => {}
        }
        if let Some(n) = report.objects_checked {
            crate::outln!(
                "compared {n} schema objects and database properties{}: match the backup",
                report.large_objects.filter(|n| *n > 0).map(|n| format!(" and {n} large objects")).unwrap_or_default()
            );
        }
        if let Some(secs) = report.analyze_seconds {
            crate::outln!("planner statistics gathered (ANALYZE) in {secs:.1} s, before the database was put in place");
        }
        for w in &report.warnings {
            crate::outln!("warning: {w}");
        }
        if let Some(old) = &report.old_database {
            crate::outln!("the previous database is kept as {old} (drop it with DROP DATABASE, or restore with --drop-old)");
        }
    }
    Ok(crate::error::EXIT_OK)
}
