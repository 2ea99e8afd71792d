//! `pgtier verify [PROJECT [ENV]] [BACKUP] [--from local|remote] [--all] [--dry-run]`.

use clap::Args;

use super::Ctx;
use super::restore::SourceArgs;
use crate::error::Result;
use crate::restore::Input;
use crate::verify::{all_backups, verify};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier verify                      restore the newest backup of every env into a throwaway database\n  pgtier verify shop production --all --from remote\n  pgtier verify shop production db_20250106_020000"
)]
pub struct VerifyArgs {
    /// A project of projects.yml (default: every one).
    pub project: Option<String>,
    /// An environment of PROJECT (default: every one).
    pub env: Option<String>,
    /// One backup (db_YYYYMMDD_HHMMSS); default: the newest of each env.
    pub backup: Option<String>,
    /// Drill every backup, not only the newest.
    #[arg(long, conflicts_with = "backup")]
    pub all: bool,
    /// Say which backups would be drilled.
    #[arg(long)]
    pub dry_run: bool,
    /// An extra decryption key: an age identity file or an OpenPGP secret key.
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(ctx: &Ctx, a: VerifyArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    if a.backup.is_some() && a.env.is_none() {
        return Err(crate::usage!("a BACKUP needs PROJECT and ENV"));
    }
    let selected = cfg.select(a.project.as_deref(), a.env.as_deref())?;
    let outcomes = crate::outcome::Outcomes::at(&cfg, ctx.now);
    let mut results = Vec::new();
    let mut planned = Vec::new();
    for (project, env) in &selected {
        let inputs: Vec<Input> = match (&a.backup, a.all) {
            (Some(b), _) => vec![Input::Named(b.clone())],
            (None, true) => all_backups(&cfg, project, env, a.source.from.origin())?.into_iter().map(Input::Named).collect(),
            (None, false) => vec![Input::Latest],
        };
        if a.dry_run {
            // One object per drill it would run; `backup` is null for "the newest".
            planned.extend(inputs.iter().map(|i| {
                serde_json::json!({
                    "project": project.name,
                    "env": env,
                    "backup": if let Input::Named(n) = i { Some(n.as_str()) } else { None },
                    "from": a.source.from.origin(),
                })
            }));
            continue;
        }
        let mut keys = project.keys()?;
        for f in &a.identities {
            keys.add_key_file(f)?;
        }
        for input in inputs {
            let r = verify(&cfg, project, env, &a.source.source(input), &keys, ctx.now, &ctx.ui);
            match &r.error {
                Some(err) => outcomes.failed(Some(&project.name), Some(env), "verify", format!("{}: {err}", r.backup)),
                None => outcomes.verified(&project.name, env, r.at),
            }
            results.push(r);
        }
    }
    if a.dry_run {
        if ctx.ui.json {
            ctx.print_json(&planned);
        } else {
            for p in &planned {
                crate::outln!(
                    "would verify {}/{} {}",
                    p["project"].as_str().unwrap_or_default(),
                    p["env"].as_str().unwrap_or_default(),
                    p["backup"].as_str().unwrap_or("(newest)")
                );
            }
        }
        return Ok(0);
    }
    let world = crate::context::Context::new(&cfg);
    let remotes: Vec<_> = world.destinations().into_iter().filter_map(|(_, r)| r.ok()).collect();
    outcomes.finish(&remotes, None);
    if ctx.ui.json {
        ctx.print_json(&results);
    } else {
        for r in &results {
            let rows: u64 = r.tables.iter().filter_map(|t| t.restored).sum();
            let word = match r.outcome {
                crate::verify::Outcome::Ok => "ok",
                crate::verify::Outcome::Failed => "FAILED",
                crate::verify::Outcome::NotVerified => "NOT VERIFIED",
            };
            // What was proven, when anything was; a drill that never restored says only why.
            let proven = if r.tables.is_empty() && r.error.is_some() {
                String::new()
            } else {
                format!(
                    ": {} tables, {rows} rows{}",
                    r.tables.len(),
                    r.indexes_checked.map(|n| format!(", {n} indexes checked")).unwrap_or_default()
                )
            };
            crate::outln!("{word:<7} {}/{} {} ({}){proven} in {:.1} s", r.project, r.env, r.backup, r.from, r.seconds);
            if let Some(e) = &r.error {
                crate::outln!("        {e}{}", super::remedy_words(r.remedy));
            }
            for w in &r.warnings {
                crate::outln!("        warning: {w}");
            }
            for k in &r.skipped {
                crate::outln!("        skipped {k}");
            }
        }
    }
    Ok(if results.iter().all(|r| r.ok) { 0 } else { 1 })
}
