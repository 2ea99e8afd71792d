//! Command-line definitions and one thin file per command: load config, call the library, print.

mod adopt;
mod audit;
mod backup;
mod config_check;
mod config_init;
mod docs;
mod doctor;
mod fleet;
mod list;
mod overview;
mod policy;
mod prune;
mod remote;
mod report;
mod restore;
mod restore_globals;
mod run;
mod status;
mod sync;
mod verify;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::ui::Ui;

/// PostgreSQL backups in daily/weekly/monthly tiers, encrypted, off-site, proven to restore.
#[derive(Debug, Parser)]
#[command(
    name = "pgtier",
    version,
    about,
    max_term_width = 100,
    after_help = "Examples:\n  pgtier config init /etc/pgtier     a commented pgtier.yml and projects.yml to start from\n  pgtier doctor --send-test-alert    check online what the first night needs\n  pgtier run                         the nightly job: backup, sync, prune, the scheduled drill\n  pgtier status                      every project/env at a glance\n  pgtier restore shop production --from remote   after losing the host"
)]
pub struct Cli {
    /// Agent configuration file.
    #[arg(long, global = true, env = "PGTIER_CONFIG", default_value = "pgtier.yml", help_heading = "Global options")]
    pub config: PathBuf,
    /// Machine-readable output on stdout.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// For drills and replays: evaluate as if the clock said this (RFC 3339).
    #[arg(long, global = true, value_parser = parse_now, help_heading = "Global options")]
    pub now: Option<DateTime<Utc>>,
    /// More detail: audit lists every keep/delete decision; logs at debug (-v) or trace (-vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
    /// Only errors on stderr; run, audit, sync, prune and verify print nothing when all is well.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up one database now; prints the backup file's path.
    Backup(backup::BackupArgs),
    /// Restore a backup (default: the latest) into the env's database or --target-db.
    Restore(restore::RestoreArgs),
    /// List the backups of a project/env (here, off-site, or both).
    List(list::ListArgs),
    /// The nightly job: backup, sync, prune for every enabled project/env.
    Run(run::RunArgs),
    /// Put each tier off-site with its storage class; remove what the tiers no longer keep.
    Sync(sync::SyncArgs),
    /// Apply the saved roles and tablespaces (skipping those that exist) before a restore.
    RestoreGlobals(restore_globals::RestoreGlobalsArgs),
    /// Prove backups restore: restore into a temporary database and compare every table's rows.
    Verify(verify::VerifyArgs),
    /// Every project/env at a glance; with PROJECT ENV, its deployment manifest (JSON).
    Status(status::StatusArgs),
    /// Delete local backups the policy no longer keeps (explains every decision).
    Prune(prune::PruneArgs),
    /// Policy commands.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Audit backups against their policy: integrity, retention, freshness, keys.
    Audit(audit::AuditArgs),
    /// Take in the old scripts' db_YYYYMMDD_HHMMSS.sql.gz files so they join the tiers.
    Adopt(adopt::AdoptArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check now, online, everything the first night needs; one line per check with its fix.
    Doctor(doctor::DoctorArgs),
    /// A year of backups at a glance: one self-contained HTML page (--html) or its data (--json).
    Report(report::ReportArgs),
    /// Off-site destination commands.
    #[command(subcommand)]
    Remote(remote::RemoteCommand),
    /// Every project/env under a bucket's prefix, from the bucket alone (no projects.yml).
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page, or write one page per command with --dir.
    Man(docs::ManArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented pgtier.yml and projects.yml to start from (asks at a terminal).
    Init(config_init::InitArgs),
    /// Validate pgtier.yml, projects.yml and the policies offline; report every problem.
    #[command(
        after_help = "Examples:\n  pgtier config check                       every file, every key (offline; `pgtier doctor` checks online)\n  pgtier --config /etc/pgtier/pgtier.yml config check --json"
    )]
    Check,
}

/// PROJECT ENV, both required.
#[derive(Debug, Args)]
pub struct Target {
    /// Project name (a key of projects.yml with a database: block).
    pub project: String,
    /// Environment name (a key of database.databases).
    pub env: String,
}

/// A `--wait`/`--wait-lock` style duration: "90s", "30m", "6h", "250ms" or seconds.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    crate::config::yaml::parse_duration(s).ok_or_else(|| format!("expected a duration like 90s, 30m or 6h, got {s:?}"))
}

fn parse_now(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("expected RFC 3339 like 2025-01-06T02:00:00Z: {e}"))
}

/// What every command gets.
pub struct Ctx {
    /// The command's name as typed (`list`, `policy simulate`): the `command` of `--json` output.
    pub command: &'static str,
    pub config_path: PathBuf,
    /// -v count: commands that summarise show their details from -v on.
    pub verbose: u8,
    pub ui: Ui,
    pub now: DateTime<Utc>,
}

impl Ctx {
    /// Loads and validates the configuration.
    pub fn config(&self) -> Result<Config> {
        let cfg = Config::load(&self.config_path)?;
        crate::scratch::init(&cfg.scratch_dir);
        Ok(cfg)
    }

    /// Loads the configuration with the envs of `databases: all` projects filled in from their
    /// servers (only `project`'s when given; none when `env` names one: it needs no list).
    pub fn config_with_envs(&self, project: Option<&str>, env: Option<&str>) -> Result<Config> {
        let mut cfg = self.config()?;
        if env.is_none() {
            crate::ops::discover::every_database(&mut cfg, project);
        }
        Ok(cfg)
    }

    /// Prints `value` as the command's JSON result on stdout, in the envelope every `--json`
    /// output shares: `{"schema_version": 1, "command": "list", "result": ...}`.
    pub fn print_json<T: Serialize>(&self, value: &T) {
        let envelope = Envelope { schema_version: JSON_SCHEMA_VERSION, command: self.command, result: value };
        crate::outln!("{}", serde_json::to_string_pretty(&envelope).expect("serialisable output"));
    }
}

/// The version of the `--json` contract (docs/json.md). It changes only when a field is removed
/// or changes meaning; new fields may appear in any version.
pub const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    schema_version: u32,
    command: &'a str,
    result: &'a T,
}

/// The name of a command as typed, for the `--json` envelope.
fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::List(_) => "list",
        Command::Run(_) => "run",
        Command::Sync(_) => "sync",
        Command::RestoreGlobals(_) => "restore-globals",
        Command::Verify(_) => "verify",
        Command::Status(_) => "status",
        Command::Prune(_) => "prune",
        Command::Policy(_) => "policy simulate",
        Command::Audit(_) => "audit",
        Command::Adopt(_) => "adopt",
        Command::Config(ConfigCommand::Check) => "config check",
        Command::Config(ConfigCommand::Init(_)) => "config init",
        Command::Doctor(_) => "doctor",
        Command::Report(_) => "report",
        Command::Remote(_) => "remote init",
        Command::Fleet(fleet::FleetCommand::Status(_)) => "fleet status",
        Command::Fleet(fleet::FleetCommand::Audit(_)) => "fleet audit",
        Command::Fleet(fleet::FleetCommand::Report(_)) => "fleet report",
        Command::Completions(_) => "completions",
        Command::Man(_) => "man",
    }
}

/// The exit code of a command over several envs: a failure is 1; envs that only another
/// agent's lease kept it from are 11 (try again later, or wait).
fn exit_code(failed: bool, locked: bool) -> i32 {
    match (failed, locked) {
        (true, _) => crate::error::EXIT_FAILED,
        (false, true) => crate::error::EXIT_LOCKED,
        _ => crate::error::EXIT_OK,
    }
}

/// An error as the operator reads it: the library's message, and what to do next in the
/// command line's own words (the library names the step, never the flag).
pub fn explain(e: &crate::Error) -> String {
    use crate::error::Error;
    let next = match e {
        Error::Locked(_) => "; use --wait-lock to wait for it",
        Error::ThawPending(_) => ". Run the same command again then, or add --wait to wait for it",
        _ => remedy_words(e.remedy_of()),
    };
    format!("{e}{next}")
}

/// A remedy in the command line's words.
fn remedy_words(remedy: Option<crate::error::Remedy>) -> &'static str {
    use crate::error::Remedy;
    match remedy {
        Some(Remedy::Force) => ": add --force to go ahead",
        Some(Remedy::ExtraKey) => ", or pass --identity FILE",
        Some(Remedy::OtherDatabase) => ". Restore it beside the original with --target-db",
        None => "",
    }
}

/// After a host loss: when this host has no backups of `project`/`env` but a destination does,
/// how many and what to type. None when there is nothing to say (or the remote cannot be read).
pub fn offsite_hint(cfg: &Config, project: &crate::config::Project, env: &str) -> Option<String> {
    let world = crate::context::Context::new(cfg);
    for (name, r) in world.destinations() {
        let Ok(r) = r else { continue };
        let Ok(cat) = crate::remote::RemoteCatalog::load(r, &project.name, env, None) else { continue };
        let n = cat.databases().count();
        if n > 0 {
            let from = if world.names().len() > 1 { name.to_string() } else { "remote".to_string() };
            return Some(format!(
                "{n} backup{} of {}/{env} {} off-site{}: add --from {from} (`pgtier list {} {env} --remote` lists them)",
                if n == 1 { "" } else { "s" },
                project.name,
                if n == 1 { "is" } else { "are" },
                if world.names().len() > 1 { format!(" on {name}") } else { String::new() },
                project.name
            ));
        }
    }
    None
}

/// Runs the parsed command; returns the exit code for outcomes that are not errors. A backup,
/// sync, prune or audit that fails (or finds a problem) also reports through the outcome hook
/// (`run` and `verify` report their own, per env and per backup).
pub fn run(cli: Cli) -> Result<i32> {
    let ctx = Ctx {
        command: command_name(&cli.command),
        config_path: cli.config.clone(),
        verbose: cli.verbose,
        ui: Ui::detect(cli.json, cli.quiet),
        now: cli.now.unwrap_or_else(Utc::now),
    };
    let alert = match &cli.command {
        Command::Backup(a) => Some(("backup", Some(a.target.project.clone()), Some(a.target.env.clone()))),
        Command::Sync(a) => Some(("sync", a.project.clone(), a.env.clone())),
        Command::Prune(a) => Some(("prune", a.project.clone(), a.env.clone())),
        Command::Audit(a) => Some(("audit", a.project.clone(), a.env.clone())),
        _ => None,
    };
    // -q: run, audit, sync, prune and verify print nothing when all is well (cron mails only on
    // trouble); on failure, everything they would have printed.
    let hold = cli.quiet
        && !cli.json
        && matches!(cli.command, Command::Run(_) | Command::Audit(_) | Command::Sync(_) | Command::Prune(_) | Command::Verify(_));
    if hold {
        HELD.with(|h| *h.borrow_mut() = Some(Vec::new()));
    }
    // A bug is an error with a message (exit 1, alerted as below), never a bare exit 101.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&ctx, cli.command)))
        .unwrap_or_else(|p| Err(crate::error::Error::Failed(crate::error::panic_message(&*p))));
    if hold {
        let held = HELD.with(|h| h.borrow_mut().take()).unwrap_or_default();
        if !matches!(result, Ok(crate::error::EXIT_OK)) {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&held);
        }
    }
    if let Some((op, project, env)) = alert {
        let problem = match &result {
            Err(e) if e.exit_code() == crate::error::EXIT_FAILED => Some(explain(e)),
            Ok(crate::error::EXIT_FAILED) => Some(format!("{op} failed or found problems; see its output")),
            _ => None,
        };
        if let Some(msg) = problem
            && let Ok(cfg) = Config::load(&ctx.config_path)
        {
            let outcomes = crate::tell::outcome::Outcomes::new(&cfg);
            outcomes.failed(project.as_deref(), env.as_deref(), op, msg);
            outcomes.flush(&[]);
        }
    }
    result
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<i32> {
    match command {
        Command::Backup(a) => backup::run(ctx, a),
        Command::Restore(a) => restore::run(ctx, a),
        // Commands that only show backups read manifests without their row counts.
        Command::List(a) => crate::records::manifest::without_row_counts(|| list::run(ctx, a)),
        Command::Run(a) => run::run(ctx, a),
        Command::Sync(a) => sync::run(ctx, a),
        Command::Remote(c) => remote::run(ctx, c),
        Command::Fleet(c) => fleet::run(ctx, c),
        Command::RestoreGlobals(a) => restore_globals::run(ctx, a),
        Command::Verify(a) => verify::run(ctx, a),
        Command::Status(a) => crate::records::manifest::without_row_counts(|| status::run(ctx, a)),
        Command::Prune(a) => prune::run(ctx, a),
        Command::Policy(c) => policy::run(ctx, c),
        Command::Audit(a) => crate::records::manifest::without_row_counts(|| audit::run(ctx, a)),
        Command::Adopt(a) => adopt::run(ctx, a),
        Command::Config(ConfigCommand::Check) => config_check::run(ctx),
        Command::Config(ConfigCommand::Init(a)) => config_init::run(ctx, a),
        Command::Doctor(a) => doctor::run(ctx, a),
        Command::Report(a) => report::run(ctx, a),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    }
}

/// Prints one line per backup: keep or delete, tiers, and the rules that decided it.
pub fn print_plan(plan: &crate::plan::local::EnvPlan, dry_run: bool) {
    use crate::plan::local::LocalAction;
    for e in &plan.entries {
        let action = match (e.action, dry_run) {
            (LocalAction::Keep, _) => "keep",
            (LocalAction::KeepUntilOffsite, _) => "keep*",
            (LocalAction::Delete, true) => "delete",
            (LocalAction::Delete, false) => "deleted",
        };
        let tiers: Vec<_> = e.tiers.iter().map(|t| t.as_str()).collect();
        let tags = if e.tags.is_empty() { String::new() } else { format!(" [{}]", e.tags.join(",")) };
        crate::outln!(
            "{:<7} {}/{} {}{tags}  {:<22} {}",
            action,
            plan.project,
            plan.env,
            e.backup,
            if tiers.is_empty() { "-".into() } else { tiers.join(",") },
            e.reasons.join("; ")
        );
    }
}

pub use crate::ui::human_size;

/// `println!` that never panics: output cut off by a closed pipe (`pgtier list | head`) is
/// dropped, and the command finishes what it was doing.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        $crate::cli::out_line(format_args!($($arg)*));
    }};
}

thread_local! {
    /// Output held back under `-q`: printed only if the command does not succeed.
    static HELD: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Writes one line of results: to stdout, or into the held output under `-q`.
pub fn out_line(args: std::fmt::Arguments) {
    use std::io::Write as _;
    HELD.with(|h| match h.borrow_mut().as_mut() {
        Some(buf) => {
            let _ = writeln!(buf, "{args}");
        }
        None => {
            let _ = writeln!(std::io::stdout(), "{args}");
        }
    });
}
