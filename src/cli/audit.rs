//! `pgtier audit [PROJECT [ENV]]`: retention, integrity and freshness against the policy.

use std::collections::BTreeSet;

use clap::Args;

use super::{Ctx, print_plan};
use crate::audit::{Finding, audit_local, audit_policy};
use crate::error::Result;

#[derive(Debug, Args)]
pub struct AuditArgs {
    pub project: Option<String>,
    pub env: Option<String>,
}

pub fn run(ctx: &Ctx, a: AuditArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let selected = cfg.select(a.project.as_deref(), a.env.as_deref())?;
    let mut policy_findings: Vec<Finding> = Vec::new();
    let mut seen = BTreeSet::new();
    for (p, _) in &selected {
        if seen.insert(p.policy.name.clone()) {
            policy_findings.extend(audit_policy(&p.policy));
        }
    }
    let mut envs = Vec::new();
    for (project, env) in &selected {
        let remote = crate::offsite::remote_state(&cfg, project, env)?;
        let mut audit = audit_local(&cfg, project, env, ctx.now, remote.as_ref())?;
        audit.findings.extend(crate::offsite::audit_remote(&cfg, project, env, ctx.now, &audit.plan)?);
        audit.findings.extend(crate::crypto::audit_keys(&cfg, project, env));
        envs.push(audit);
    }
    let total = policy_findings.len() + envs.iter().map(|e| e.findings.len()).sum::<usize>();
    if ctx.ui.json {
        ctx.print_json(
            &serde_json::json!({ "ok": total == 0, "findings": total, "policies": policy_findings, "envs": envs, "notes": cfg.notes }),
        );
    } else {
        for e in &envs {
            print_plan(&e.plan, true);
            for f in &e.findings {
                println!("FINDING {}/{} [{}] {}: {}", e.project, e.env, f.rule, f.file, f.message);
            }
            for n in &e.notes {
                println!("note    {}/{}: {n}", e.project, e.env);
            }
        }
        for f in &policy_findings {
            println!("FINDING policy [{}] {}: {}", f.rule, f.file, f.message);
        }
        println!("{}", if total == 0 { "audit: ok".to_string() } else { format!("audit: {total} finding(s)") });
    }
    Ok(if total == 0 { 0 } else { 1 })
}
