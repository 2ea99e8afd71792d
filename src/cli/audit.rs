//! `pgtier audit [PROJECT [ENV]]`: retention, integrity and freshness against the policy.

use std::collections::BTreeSet;

use clap::Args;

use super::{Ctx, print_plan};
use crate::context::Context;
use crate::error::Result;
use crate::ops::audit::audit_remote;
use crate::ops::audit::{Finding, audit_local, audit_policy};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier audit                       every project/env: retention, integrity, freshness, keys, locks\n  pgtier -q audit                    print only when something is wrong (cron)\n  pgtier audit --read-data=1/7       also download a seventh of the off-site copies and check their bytes\n  pgtier audit shop production --json"
)]
pub struct AuditArgs {
    /// A project of projects.yml (default: every one).
    pub project: Option<String>,
    /// An environment of PROJECT (default: every one).
    pub env: Option<String>,
    /// Also download every off-site copy (or a sample: 10% at random, or 2/7 for the second of
    /// seven fixed groups) and check its bytes against the manifest. Cold copies are not read.
    #[arg(long, value_name = "all|N%|n/t", num_args = 0..=1, require_equals = true, default_missing_value = "all", value_parser = parse_sample)]
    pub read_data: Option<crate::ops::audit::read_data::Sample>,
}

fn parse_sample(s: &str) -> std::result::Result<crate::ops::audit::read_data::Sample, String> {
    crate::ops::audit::read_data::Sample::parse(s)
        .ok_or_else(|| format!("expected all, a percentage like 10% or a group like 2/7, got {s:?}"))
}

pub fn run(ctx: &Ctx, a: AuditArgs) -> Result<i32> {
    let cfg = ctx.config_with_envs(a.project.as_deref(), a.env.as_deref())?;
    let selected = cfg.select(a.project.as_deref(), a.env.as_deref())?;
    let mut policy_findings: Vec<Finding> = Vec::new();
    let server_findings = cfg.database_findings();
    let mut seen = BTreeSet::new();
    for (p, _) in &selected {
        if seen.insert(p.policy.name.clone()) {
            policy_findings.extend(audit_policy(&p.policy));
        }
    }
    let world = Context::new(&cfg);
    let mut envs = Vec::new();
    for (project, env) in &selected {
        // Each destination is read once, for the local plan and for its own findings.
        let mut e = world.env(project, env);
        let state = e.remote_state()?;
        let mut audit = audit_local(&mut e, ctx.now, state.as_ref())?;
        for (name, r) in world.destinations() {
            match r {
                Ok(r) => match e.both(r)? {
                    (listing, Ok(o)) => {
                        let found = audit_remote(r, project, env, ctx.now, listing, o);
                        audit.findings.extend(found.findings);
                        audit.notes.extend(found.notes);
                        audit.locks.extend(found.locks);
                        if let Some(sample) = a.read_data {
                            let (read, findings) = crate::ops::audit::read_data::read_back(r, o, sample)?;
                            audit.findings.extend(findings);
                            audit.read_back.push(read);
                        }
                    }
                    (_, Err(err)) => audit.findings.push(Finding::new("remote-unreachable", r.store.describe(), err.to_string())),
                },
                Err(err) => audit.findings.push(Finding::new("remote-unreachable", name, err.to_string())),
            }
        }
        audit.findings.extend(crate::ops::audit::audit_keys(project, e.listing()?));
        envs.push(audit);
    }
    let total = policy_findings.len() + server_findings.len() + envs.iter().map(|e| e.findings.len()).sum::<usize>();
    if ctx.ui.json {
        ctx.print_json(
            &serde_json::json!({ "ok": total == 0, "finding_count": total, "policies": policy_findings, "servers": server_findings, "envs": envs, "notes": cfg.notes }),
        );
    } else {
        // Without -v: the findings and a one-line verdict. With -v: every keep/delete decision,
        // notes and the lock horizons too.
        let verbose = ctx.verbose > 0;
        for f in &server_findings {
            crate::outln!("FINDING {} [{}] {}", f.file, f.rule, f.message);
        }
        for e in &envs {
            if e.gone {
                let note = e.notes.iter().find(|n| n.contains("gone from the server")).cloned().unwrap_or_default();
                crate::outln!("gone    {}/{}: {note}", e.project, e.env);
            }
            if verbose {
                print_plan(&e.plan, true);
            }
            for f in &e.findings {
                crate::outln!("FINDING {}/{} [{}] {}: {}", e.project, e.env, f.rule, f.file, f.message);
            }
            for rb in &e.read_back {
                crate::outln!(
                    "read    {}/{} on {}: {} cop{} ({}) read back, {} damaged, {} unreadable{}",
                    e.project,
                    e.env,
                    rb.destination,
                    rb.copies_read,
                    if rb.copies_read == 1 { "y" } else { "ies" },
                    crate::ui::human_size(rb.bytes_read),
                    rb.mismatched,
                    rb.unreadable,
                    if rb.cold_skipped > 0 { format!(", {} cold (not read: a thaw is paid)", rb.cold_skipped) } else { String::new() }
                );
            }
            if !verbose {
                continue;
            }
            for n in &e.notes {
                crate::outln!("note    {}/{}: {n}", e.project, e.env);
            }
            for l in &e.locks {
                crate::outln!(
                    "locked  {}/{} {} on {}: {}, {} cop{} locked{}{}; {}",
                    e.project,
                    e.env,
                    l.tier,
                    l.destination,
                    l.mode,
                    l.locked_copies,
                    if l.locked_copies == 1 { "y" } else { "ies" },
                    l.horizon.map(|h| format!(" until {} at the latest", h.format("%Y-%m-%d"))).unwrap_or_default(),
                    if l.unlocked_copies > 0 { format!(", {} NOT locked", l.unlocked_copies) } else { String::new() },
                    if l.proven.is_empty() { "nothing proven".to_string() } else { format!("proven: {}", l.proven.join(", ")) }
                );
            }
        }
        for f in &policy_findings {
            crate::outln!("FINDING policy [{}] {}: {}", f.rule, f.file, f.message);
        }
        let backups: usize = envs.iter().map(|e| e.plan.entries.len()).sum();
        let troubled = envs.iter().filter(|e| !e.findings.is_empty()).count();
        let locks: usize = envs.iter().map(|e| e.locks.len()).sum();
        let scope = format!(
            "{} project/env(s), {backups} backup(s){}",
            envs.len(),
            if locks > 0 { format!(", {locks} locked tier(s)") } else { String::new() }
        );
        crate::outln!(
            "{}",
            if total == 0 {
                format!("audit: ok ({scope} as their policies say{})", if verbose { "" } else { "; -v shows every decision" })
            } else {
                format!("audit: {total} finding(s) in {troubled} of {scope}")
            }
        );
    }
    Ok(crate::error::exit_if(total > 0))
}
