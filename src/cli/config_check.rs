//! `pgtier config check`: load everything and report every problem with file and key (exit 2).

use super::Ctx;
use crate::config::Config;
use crate::error::Result;

pub fn run(ctx: &Ctx) -> Result<i32> {
    let (cfg, problems) = Config::check(&ctx.config_path);
    if !problems.is_empty() {
        for p in &problems {
            tracing::error!("{}", crate::error::printable(&p.to_string()));
        }
        if ctx.ui.json {
            ctx.print_json(&serde_json::json!({ "ok": false, "problems": problems.iter().map(|p| p.to_string()).collect::<Vec<_>>() }));
        }
        return Ok(crate::error::EXIT_USAGE);
    }
    let cfg = cfg.expect("a config without problems");
    let summary = serde_json::json!({
        "ok": true,
        "config": cfg.file,
        "projects_file": cfg.projects_file,
        "backup_root": cfg.backup_root,
        "projects": cfg.projects.values().map(|p| serde_json::json!({
            "name": p.name,
            "envs": p.databases,
            "every_database": p.every_database.as_ref().map(|e| serde_json::json!({ "exclude": e.exclude })),
            "policy": p.policy.name,
            "enabled": p.enabled,
            "encrypted": p.encryption.is_some(),
            "connection": if p.connection.container.is_some() { "container" } else { "direct" },
        })).collect::<Vec<_>>(),
        "policies": cfg.policies.keys().collect::<Vec<_>>(),
        "remote": cfg.remotes.first().map(|r| r.url.to_string()),
        "remotes": cfg.remotes.iter().map(|r| serde_json::json!({"name": r.name, "url": r.url.to_string(), "tiers": r.tiers, "prune": r.prune})).collect::<Vec<_>>(),
        "notes": cfg.notes,
    });
    if ctx.ui.json {
        ctx.print_json(&summary);
    } else {
        crate::outln!("{}: ok", cfg.file.display());
        for p in cfg.projects.values() {
            let mut envs: Vec<_> = p.databases.iter().map(|(e, d)| format!("{e}={d}")).collect();
            if let Some(every) = &p.every_database {
                let except: Vec<&str> = every.exclude.iter().map(String::as_str).collect();
                envs.push(if except.is_empty() {
                    "every database on the server".to_string()
                } else {
                    format!("every database on the server but {}", except.join(", "))
                });
            }
            crate::outln!(
                "  project {}: {} (policy {}{}{})",
                p.name,
                envs.join(", "),
                p.policy.name,
                if p.encryption.is_some() { ", encrypted" } else { "" },
                if p.enabled { "" } else { ", backups disabled" }
            );
        }
        for n in &cfg.notes {
            crate::outln!("  note: {n}");
        }
    }
    Ok(crate::error::EXIT_OK)
}
