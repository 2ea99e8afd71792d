//! `pgtier status` without an env: every project/env at a glance, for a person at 3 a.m.: the
//! newest backup and its age, copies per tier here and off-site, the last drill and its result,
//! and what is wrong, each in plain words.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Ctx;
use crate::context::Context;
use crate::error::Result;

/// One project/env in the overview (`status --json` without an env).
#[derive(Debug, Serialize)]
pub struct EnvOverview {
    pub project: String,
    pub env: String,
    /// The newest database backup, as `backup` in `list` and `status PROJECT ENV`.
    pub backup: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// Database backups per tier here (in tier order: daily, weekly, monthly, yearly).
    pub local: BTreeMap<crate::vocab::TierName, usize>,
    /// Database backup copies per tier on each destination (an unreachable one is a problem).
    pub offsite: BTreeMap<String, BTreeMap<crate::vocab::TierName, usize>>,
    pub last_verification: Option<Drill>,
    /// Backups off-site only in an archive class and never drilled: a drill would need a paid
    /// thaw (`verify --thaw`), so none runs on its own. Not a problem.
    pub cold_not_drilled: usize,
    /// `databases: all`: the database is gone from the server. Its backups are kept, and it is
    /// not stale: no new backup is expected.
    pub gone: bool,
    /// What needs a person, in plain words; empty when all is well.
    pub problems: Vec<String>,
}

/// A drill's outcome.
#[derive(Debug, Serialize)]
pub struct Drill {
    pub backup: String,
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// Optional checks it could not run (`amcheck: why`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

use crate::ui::ago;

pub fn run(ctx: &Ctx, project: Option<&str>) -> Result<i32> {
    let cfg = ctx.config_with_envs(project, None)?;
    let world = Context::new(&cfg);
    let mut all = Vec::new();
    for (p, env) in cfg.select(project, None)? {
        let mut e = world.env(p, &env);
        let mut no_local = false;
        let mut o = EnvOverview {
            project: p.name.clone(),
            env: env.clone(),
            backup: None,
            created_at: None,
            local: BTreeMap::new(),
            offsite: BTreeMap::new(),
            last_verification: None,
            cold_not_drilled: 0,
            gone: p.gone(&env),
            problems: Vec::new(),
        };
        let mut cold = std::collections::BTreeSet::new();
        match e.listing() {
            Ok(listing) => {
                if let Some(b) = listing.latest() {
                    o.backup = Some(b.stem.to_string());
                    o.created_at = Some(b.stem.time);
                    if let Some(why) = crate::ops::audit::staleness(&cfg, p, b.stem.time, ctx.now).filter(|_| !o.gone) {
                        o.problems.push(why);
                    }
                } else if p.enabled {
                    o.problems.push("no backup on this host".into());
                    no_local = true;
                }
                for b in listing.databases() {
                    for t in &b.manifest.tiers {
                        *o.local.entry(*t).or_default() += 1;
                    }
                    if let Some(v) = b.manifest.verifications.last()
                        && o.last_verification.as_ref().is_none_or(|d| v.at > d.at)
                    {
                        o.last_verification = Some(Drill { backup: b.stem.to_string(), at: v.at, ok: v.ok, skipped: v.skipped.clone() });
                    }
                }
            }
            Err(err) => o.problems.push(format!("cannot read the local backups: {err}")),
        }
        if let Some(d) = &o.last_verification
            && !d.ok
        {
            o.problems.push(format!(
                "the last restore drill FAILED ({}, {}): run `pgtier verify {} {}`",
                d.backup,
                ago(d.at, ctx.now),
                o.project,
                o.env
            ));
        }
        for (name, r) in world.destinations() {
            match r.and_then(|r| e.catalog(r).map(|_| ())) {
                Ok(()) => {
                    let cat = e.catalog_if_read(name).expect("read above");
                    cold.extend(cat.cold_not_drilled(e.listing_if_read()).cloned());
                    o.offsite.insert(name.to_string(), cat.database_copies().into_iter().map(|(t, n)| (t, n as usize)).collect());
                }
                Err(err) => o.problems.push(format!("destination {name} cannot be read: {err}")),
            }
        }
        o.cold_not_drilled = cold.len();
        // After a host loss: say what is off-site and how to reach it.
        let copies: usize = o.offsite.values().flat_map(|m| m.values()).sum();
        if no_local && copies > 0 {
            o.problems.push(format!(
                "{copies} cop{} off-site: `pgtier list {} {} --remote` lists them, `--from remote` restores from them",
                if copies == 1 { "y is" } else { "ies are" },
                o.project,
                o.env
            ));
        }
        all.push(o);
    }
    // A server that could not be asked, or a database that cannot name an env: not backed up.
    let server_problems: Vec<String> = cfg.database_findings().into_iter().map(|f| format!("{}: {}", f.file, f.message)).collect();
    let problems: usize = all.iter().map(|o| o.problems.len()).sum::<usize>() + server_problems.len();
    if ctx.ui.json {
        ctx.print_json(&all);
    } else {
        for o in &all {
            let offsite: usize = o.offsite.values().flat_map(|m| m.values()).sum();
            let newest = match (&o.backup, o.created_at) {
                (Some(b), Some(t)) => format!("newest {b} ({})", ago(t, ctx.now)),
                _ if offsite > 0 => "no backup on this host".to_string(),
                _ => "no backup yet".to_string(),
            };
            let drill = match &o.last_verification {
                Some(d) if d.ok => format!("last drill ok {}{}", ago(d.at, ctx.now), super::list::skipped_words(&d.skipped)),
                Some(d) => format!("last drill FAILED {}", ago(d.at, ctx.now)),
                None => "never drilled".to_string(),
            };
            let drill = match o.cold_not_drilled {
                0 => drill,
                n => format!("{drill}; {n} cold, not drilled"),
            };
            let verdict = match (o.problems.is_empty(), o.gone) {
                (false, _) => "PROBLEM",
                (true, true) => "gone   ",
                (true, false) => "ok     ",
            };
            let newest = if o.gone { format!("database gone from the server, backups kept; {newest}") } else { newest };
            crate::outln!("{verdict}  {}/{}: {newest}; {drill}", o.project, o.env);
            let tiers = |m: &BTreeMap<crate::vocab::TierName, usize>| {
                if m.is_empty() { "-".to_string() } else { m.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ") }
            };
            crate::outln!("         here: {}", tiers(&o.local));
            for (d, m) in &o.offsite {
                crate::outln!("         {d}: {}", tiers(m));
            }
            for p in &o.problems {
                crate::outln!("         ! {p}");
            }
        }
        for p in &server_problems {
            crate::outln!("PROBLEM  {p}");
        }
        crate::outln!("{}", if problems == 0 { format!("{} env(s), all well", all.len()) } else { format!("{problems} problem(s)") });
    }
    Ok(crate::error::exit_if(problems > 0))
}
