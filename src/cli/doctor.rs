//! `pgtier doctor [PROJECT [ENV]] [--send-test-alert]`: the online pre-flight. One line per
//! check as it completes; exit 1 on any failure. `config check` stays offline.

use clap::Args;

use super::Ctx;
use crate::error::Result;
use crate::ops::doctor::{Check, Options, Status};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier doctor                      everything the first night needs, checked now\n  pgtier doctor shop production      one project/env (backup_root, remotes and alerts too)\n  pgtier doctor --send-test-alert    also deliver a test alert through every channel"
)]
pub struct DoctorArgs {
    /// Only this project (default: every one).
    pub project: Option<String>,
    /// Only this env of PROJECT (default: every one).
    pub env: Option<String>,
    /// Deliver a test alert through every configured alert channel.
    #[arg(long)]
    pub send_test_alert: bool,
}

pub fn run(ctx: &Ctx, a: DoctorArgs) -> Result<i32> {
    let mut cfg = match ctx.config() {
        Ok(c) => c,
        Err(e) => {
            // The first check: nothing else can be checked without it.
            let fix = if ctx.config_path.exists() {
                "fix the file and key it names (`pgtier config check` lists every problem)".to_string()
            } else {
                format!(
                    "there is no {}: `pgtier config init {}` writes a commented one (and projects.yml) to start from",
                    ctx.config_path.display(),
                    ctx.config_path.parent().filter(|p| !p.as_os_str().is_empty()).map_or(".".into(), |p| p.display().to_string())
                )
            };
            let c = Check::fail("config", e.to_string(), fix);
            if ctx.ui.json {
                ctx.print_json(&serde_json::json!({ "ok": false, "checks": [c] }));
            } else {
                line(&c);
            }
            return Ok(e.exit_code());
        }
    };
    if let Some(p) = &a.project
        && !cfg.projects.contains_key(p)
    {
        return Err(crate::usage!("unknown project {p:?} (known: {})", cfg.projects.keys().cloned().collect::<Vec<_>>().join(", ")));
    }
    crate::ops::discover::every_database(&mut cfg, a.project.as_deref());
    if let (Some(p), Some(env)) = (&a.project, &a.env)
        && cfg.projects[p].database(env).is_err()
    {
        return Err(crate::usage!(
            "project {p} has no env {env:?} (known: {})",
            cfg.projects[p].databases.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let mut checks = Vec::new();
    let first =
        Check::ok("config", format!("{}: {} project(s), {} destination(s)", cfg.file.display(), cfg.projects.len(), cfg.remotes.len()));
    let json = ctx.ui.json;
    let mut report = |c: Check| {
        if !json {
            line(&c);
        }
        checks.push(c);
    };
    report(first);
    let opts = Options { project: a.project, env: a.env, send_test_alert: a.send_test_alert };
    crate::ops::doctor::run(&cfg, &opts, &mut report);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    if json {
        ctx.print_json(&serde_json::json!({ "ok": failed == 0, "checks": checks }));
    } else if failed > 0 {
        crate::outln!(
            "\n{failed} check(s) failed{}: the first night would not work as configured",
            if warned > 0 { format!(", {warned} warning(s)") } else { String::new() }
        );
    } else {
        crate::outln!("\nall {} checks passed{}", checks.len(), if warned > 0 { format!(" ({warned} warning(s))") } else { String::new() });
    }
    Ok(crate::error::exit_if(failed > 0))
}

fn line(c: &Check) {
    let word = match c.status {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Fail => "FAIL",
    };
    crate::outln!("{word:<5} {:<28} {}", c.check, c.detail);
    if let Some(fix) = &c.fix {
        crate::outln!("{:<5} {:<28} fix: {fix}", "", "");
    }
}
