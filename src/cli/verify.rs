//! `pgtier verify [PROJECT [ENV]] [BACKUP] [--from local|remote] [--all] [--dry-run]`.

use clap::Args;

use super::Ctx;
use super::restore::SourceArgs;
use crate::error::Result;
use crate::ops::restore::{Input, Source};
use crate::ops::verify::{Outcome, VerifyResult, all_backups, check_copy, each_tier, verify};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier verify                      restore the newest backup of every env into a throwaway database\n  pgtier verify --from remote --each-tier\n                                     the newest off-site copy of each tier that needs no thaw (the weekly unit)\n  pgtier verify shop production --all --from remote\n  pgtier verify shop production db_20250106_020000\n\nA copy kept only in GLACIER or DEEP_ARCHIVE is reported as cold, not drilled (exit 0):\nreading it needs a paid thaw, which --thaw requests (with --wait, waits for it)."
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
    /// With --from remote: drill the newest copy of each tier off-site that reads without a
    /// thaw (daily, weekly, monthly…); a backup newest in several tiers is restored once and
    /// its other copies are read back and hashed.
    #[arg(long, conflicts_with_all = ["backup", "all"])]
    pub each_tier: bool,
    /// Thaw a backup kept only in GLACIER or DEEP_ARCHIVE to drill it: a paid retrieval per GB
    /// (hours; add --wait to wait for it). Without it such a backup is "cold, not drilled".
    #[arg(long)]
    pub thaw: bool,
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
    let cfg = ctx.config_with_envs(a.project.as_deref(), a.env.as_deref())?;
    if a.backup.is_some() && a.env.is_none() {
        return Err(crate::usage!("a BACKUP needs PROJECT and ENV"));
    }
    let remote = a.source.from.origin() == crate::ops::restore::Origin::Remote;
    if a.each_tier && !remote {
        return Err(crate::usage!("--each-tier drills each tier's off-site copy: add --from remote (or a destination's name)"));
    }
    if a.thaw && !remote {
        return Err(crate::usage!("--thaw thaws an off-site copy: add --from remote (or a destination's name)"));
    }
    if (a.source.wait.is_some() || a.source.restore_tier.is_some()) && !a.thaw {
        return Err(crate::usage!("--wait and --restore-tier are for a thaw, which a drill requests only with --thaw"));
    }
    let selected = cfg.select(a.project.as_deref(), a.env.as_deref())?;
    let outcomes = crate::tell::outcome::Outcomes::at(&cfg, ctx.now);
    let mut results = Vec::new();
    let mut planned = Vec::new();
    let world = crate::context::Context::new(&cfg);
    for (project, env) in &selected {
        let mut env_ctx = world.env(project, env);
        let base = Source { thaw: a.thaw, ..a.source.source(Input::Latest) };
        let sources: Vec<Source> = match (&a.backup, a.all, a.each_tier) {
            (Some(b), _, _) => vec![base.with_input(Input::Named(b.clone()))],
            (None, true, _) => {
                all_backups(&mut env_ctx, a.source.from.origin())?.into_iter().map(|n| base.with_input(Input::Named(n))).collect()
            }
            (None, false, true) => each_tier(&mut env_ctx, &base)?
                .into_iter()
                .map(|(tier, n)| Source { tier: Some(tier), ..base.with_input(Input::Named(n)) })
                .collect(),
            (None, false, false) => vec![base],
        };
        if a.dry_run {
            // One object per drill it would run; `backup` is null for "the newest".
            planned.extend(sources.iter().map(|s| {
                serde_json::json!({
                    "project": project.name,
                    "env": env,
                    "backup": if let Input::Named(n) = &s.input { Some(n.as_str()) } else { None },
                    "from": a.source.from.origin(),
                    "tier": s.tier,
                })
            }));
            continue;
        }
        let mut keys = project.keys()?;
        for f in &a.identities {
            keys.add_key_file(f)?;
        }
        // A backup newest in several tiers is restored once; its other copies are hashed.
        let mut drilled: Vec<VerifyResult> = Vec::new();
        let mut failed_here = false;
        for source in sources {
            let earlier = match &source.input {
                Input::Named(n) => drilled.iter().find(|d| d.backup == *n && matches!(d.outcome, Outcome::Ok | Outcome::Failed)),
                _ => None,
            };
            let r = match earlier {
                Some(d) => check_copy(&world, project, env, &source, d, ctx.now, &ctx.ui),
                None => verify(&mut env_ctx, &source, &keys, ctx.now, &ctx.ui),
            };
            match (&r.error, r.outcome) {
                (_, Outcome::Cold | Outcome::Thawing) => {}
                (Some(err), _) => {
                    failed_here = true;
                    outcomes.failed(Some(&project.name), Some(env), "verify", format!("{}: {err}", r.backup))
                }
                (None, _) => outcomes.verified(&project.name, env, r.at),
            }
            if earlier.is_none() {
                drilled.push(r.clone());
            }
            results.push(r);
        }
        outcomes.env_done(&mut env_ctx, failed_here);
    }
    if a.dry_run {
        if ctx.ui.json {
            ctx.print_json(&planned);
        } else {
            for p in &planned {
                crate::outln!(
                    "would verify {}/{} {}{}",
                    p["project"].as_str().unwrap_or_default(),
                    p["env"].as_str().unwrap_or_default(),
                    p["backup"].as_str().unwrap_or("(newest)"),
                    p["tier"].as_str().map(|t| format!(" ({t} copy)")).unwrap_or_default()
                );
            }
        }
        return Ok(crate::error::EXIT_OK);
    }
    let remotes: Vec<_> = world.destinations().into_iter().filter_map(|(_, r)| r.ok()).collect();
    outcomes.finish(&remotes, None);
    if ctx.ui.json {
        ctx.print_json(&results);
    } else {
        for r in &results {
            let rows: u64 = r.tables.iter().filter_map(|t| t.restored).sum();
            let word = match r.outcome {
                Outcome::Ok => "ok",
                Outcome::Failed => "FAILED",
                Outcome::NotVerified => "NOT VERIFIED",
                Outcome::Cold => "cold",
                Outcome::Thawing => "thawing",
            };
            let from = match r.tier {
                Some(t) => format!("{}, {t} copy", r.from),
                None => r.from.to_string(),
            };
            if r.outcome == Outcome::Cold {
                crate::outln!("{word:<7} {}/{} {} ({from}): not drilled", r.project, r.env, r.backup);
                for n in &r.notes {
                    crate::outln!("        {n}: add --thaw to drill it");
                }
                continue;
            }
            // What was proven, when anything was; a drill that never restored says only why.
            let proven = if let (Some(t), true) = (r.same_as, r.error.is_none()) {
                format!(": read back, the same bytes as the {t} copy restored above")
            } else if (r.tables.is_empty() && r.error.is_some()) || r.outcome == Outcome::NotVerified {
                String::new()
            } else {
                format!(
                    ": {} tables, {rows} rows{}",
                    r.tables.len(),
                    r.indexes_checked.map(|n| format!(", {n} indexes checked")).unwrap_or_default()
                )
            };
            crate::outln!("{word:<7} {}/{} {} ({from}){proven} in {:.1} s", r.project, r.env, r.backup, r.seconds);
            if let Some(e) = &r.error {
                let next = if r.outcome == Outcome::Thawing {
                    ". Run the same command again then, or add --wait to wait for it"
                } else {
                    super::remedy_words(r.remedy)
                };
                crate::outln!("        {e}{next}");
            }
            for w in &r.warnings {
                crate::outln!("        warning: {w}");
            }
            for k in &r.skipped {
                crate::outln!("        skipped {k}");
            }
        }
    }
    // Every drill done or cold: 0. Only thaws under way besides: 75, as a restore waiting for
    // one (run again later). Anything else: 1.
    let not_fine: Vec<Outcome> = results.iter().map(|r| r.outcome).filter(|o| !o.is_fine()).collect();
    Ok(if not_fine.is_empty() {
        crate::error::EXIT_OK
    } else if not_fine.iter().all(|o| *o == Outcome::Thawing) {
        crate::error::EXIT_THAW_PENDING
    } else {
        crate::error::EXIT_FAILED
    })
}
