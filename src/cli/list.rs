//! `pgtier list PROJECT ENV [--latest] [--wide]`: a table that fits 100 columns with ages
//! relative to now; `--wide` has every detail; `--json` every field.

use clap::Args;
use serde::Serialize;

use super::{Ctx, Target, human_size};
use crate::error::Result;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier list shop production              the backups on this host, ages relative to now\n  pgtier list shop production --all --wide here and off-site, every copy and its storage class\n  pgtier list shop production --latest     the path of the newest file (for scripts)"
)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print only the newest backup's path (like the old get_latest_backup).
    #[arg(long)]
    pub latest: bool,
    /// Only backups on this host (the default).
    #[arg(long, conflicts_with_all = ["remote", "all"])]
    pub local: bool,
    /// Only backups off-site, with each tier's copy and storage class.
    #[arg(long, conflicts_with = "all")]
    pub remote: bool,
    /// Backups here and off-site, with where each one lives.
    #[arg(long)]
    pub all: bool,
    /// Every detail: dates, tags, each off-site copy with its storage class (wider than 100 columns).
    #[arg(long)]
    pub wide: bool,
}

/// The last drill in a few words: `ok 2 d ago`, `FAILED 3 h ago` (a failed drill is never shown
/// as unchecked), `-` when none ran.
fn drill_words(r: &Row, when: impl Fn(chrono::DateTime<chrono::Utc>) -> String) -> String {
    match (&r.last_verification, &r.last_successful_verification) {
        (Some(d), _) if !d.ok => format!("FAILED {}", when(d.at)),
        (_, Some(d)) => format!("ok {}{}", when(d.at), skipped_words(&d.skipped)),
        _ if r.cold => "cold, not drilled".into(),
        _ => "-".into(),
    }
}

/// The table that fits 100 columns: ages relative to now, where each backup lives.
fn print_narrow(rows: &[Row], now: chrono::DateTime<chrono::Utc>) {
    use crate::ui::ago;
    crate::outln!("{:<23} {:>10} {:>9}  {:<20} {:<14} VERIFIED", "BACKUP", "AGE", "SIZE", "TIERS", "WHERE");
    for r in rows {
        let tiers: Vec<_> = r.tiers.iter().map(|t| t.as_str()).collect();
        let place: Vec<&str> = r.locations.iter().map(|l| l.strip_prefix("remote:").unwrap_or(l)).collect();
        crate::outln!(
            "{:<23} {:>10} {:>9}  {:<20} {:<14} {}",
            r.backup,
            ago(r.created_at, now),
            human_size(r.size),
            crate::ui::cut(&if tiers.is_empty() { "-".into() } else { tiers.join(",") }, 20),
            crate::ui::cut(&place.join("+"), 14),
            drill_words(r, |t| ago(t, now))
        );
    }
}

/// Every detail, one backup per line: dates, tags, each off-site copy and its storage class.
fn print_wide(rows: &[Row]) {
    crate::outln!(
        "{:<24} {:<20} {:>10}  {:<22} {:<12} {:<10} {:<42} VERIFIED",
        "BACKUP",
        "CREATED (UTC)",
        "SIZE",
        "TIERS",
        "TAGS",
        "WHERE",
        "OFF-SITE"
    );
    for r in rows {
        let tiers: Vec<_> = r.tiers.iter().map(|t| t.as_str()).collect();
        let several = r.remote.iter().any(|c| c.destination != r.remote[0].destination);
        let off: Vec<_> = r
            .remote
            .iter()
            .map(|c| {
                if several {
                    format!("{}:{}:{}", c.destination, c.tier, c.storage_class)
                } else {
                    format!("{}:{}", c.tier, c.storage_class)
                }
            })
            .collect();
        crate::outln!(
            "{:<24} {:<20} {:>10}  {:<22} {:<12} {:<10} {:<42} {}",
            r.backup,
            r.created_at.format("%Y-%m-%d %H:%M:%S"),
            human_size(r.size),
            if tiers.is_empty() { "-".into() } else { tiers.join(",") },
            if r.tags.is_empty() { "-".into() } else { r.tags.join(",") },
            r.locations.join("+"),
            if off.is_empty() { "-".into() } else { off.join(" ") },
            drill_words(r, |t| t.format("%Y-%m-%d").to_string())
        );
    }
}

/// One off-site copy.
#[derive(Debug, Serialize)]
pub struct Copy {
    /// The destination holding it (`default` for `remote:`).
    pub destination: String,
    pub tier: crate::config::TierName,
    pub storage_class: String,
    pub key: String,
    pub size: u64,
}

/// One row of `list --json`.
#[derive(Debug, Serialize)]
pub struct Row {
    pub backup: String,
    pub kind: crate::names::Kind,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub tiers: Vec<crate::config::TierName>,
    pub tags: Vec<String>,
    pub encrypted: bool,
    pub locations: Vec<String>,
    pub remote: Vec<Copy>,
    /// The last restore drill, passed or failed: a failed one shows as FAILED, never as "not
    /// checked". Named as in `status PROJECT ENV`.
    pub last_verification: Option<Drill>,
    /// The last drill that passed.
    pub last_successful_verification: Option<Drill>,
    /// Never drilled, and every copy is off-site in an archive class (GLACIER, DEEP_ARCHIVE):
    /// a drill would need a paid thaw, so none runs unless asked (`verify --thaw`). Not a fault.
    pub cold: bool,
}

/// One restore drill's outcome.
#[derive(Debug, Serialize)]
pub struct Drill {
    pub at: chrono::DateTime<chrono::Utc>,
    pub ok: bool,
    /// Where the drill read the backup: `local` or `remote`.
    pub from: String,
    /// Optional checks it could not run (`amcheck: why`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl Drill {
    fn of(v: &crate::records::manifest::Verification) -> Drill {
        Drill { at: v.at, ok: v.ok, from: v.from.clone(), skipped: v.skipped.clone() }
    }
}

/// `, skipped amcheck` for the optional checks a passed drill could not run, else nothing.
pub fn skipped_words(skipped: &[String]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = skipped.iter().map(|s| s.split(':').next().unwrap_or(s)).collect();
    format!(", skipped {}", names.join(", "))
}

pub fn run(ctx: &Ctx, a: ListArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&a.target.project)?;
    let env = &a.target.env;
    project.database(env)?;
    let dir = cfg.env_dir(&project.name, env);
    let world = crate::context::Context::new(&cfg);
    let mut e = world.env(project, env);
    let listing = e.listing()?;
    if a.latest {
        return match listing.latest() {
            Some(b) => {
                if ctx.ui.json {
                    ctx.print_json(&serde_json::json!({ "backup": b.stem.to_string(), "path": b.data_path }));
                } else {
                    crate::outln!("{}", b.data_path.display());
                }
                Ok(crate::error::EXIT_OK)
            }
            None => Err(crate::error::Error::NotFound(format!(
                "no backups of {}/{env} in {}{}",
                project.name,
                dir.display(),
                super::offsite_hint(&cfg, project, env).map(|h| format!(". {h}")).unwrap_or_default()
            ))),
        };
    }
    let mut rows: std::collections::BTreeMap<crate::names::Stem, Row> = std::collections::BTreeMap::new();
    if !a.remote {
        for b in &listing.backups {
            rows.insert(b.stem.clone(), row(&b.stem, &b.manifest, Some(b.data_path.display().to_string())));
        }
    }
    if a.remote && !world.has_remote() {
        return Err(crate::usage!(
            "--remote lists the off-site copies, and no destination is configured (remote: or remotes: in {})",
            cfg.file.display()
        ));
    }
    if a.all && !world.has_remote() {
        tracing::warn!("no destination is configured (remote: or remotes: in {}): these are this host's backups only", cfg.file.display());
    }
    if (a.remote || a.all) && world.has_remote() {
        let several = world.names().len() > 1;
        for (_, remote) in world.destinations() {
            let remote = remote?;
            let cat = crate::remote::RemoteCatalog::load(remote, &project.name, env, Some(listing))?;
            for (stem, b) in &cat.backups {
                let Some(m) = &b.manifest else { continue };
                let r = rows.entry(stem.clone()).or_insert_with(|| row(stem, m, None));
                for (tier, o) in &b.copies {
                    r.remote.push(Copy {
                        destination: remote.name().to_string(),
                        tier: *tier,
                        storage_class: o.class().to_string(),
                        key: remote.url(&o.key),
                        size: o.size,
                    });
                }
                let loc = if several { format!("remote:{}", remote.name()) } else { "remote".to_string() };
                if !b.copies.is_empty() && !r.locations.contains(&loc) {
                    r.locations.push(loc);
                }
            }
            for (key, why) in &cat.broken {
                tracing::warn!("{}: {why}", remote.url(key));
            }
            for key in &cat.foreign {
                tracing::info!("{}: not pgtier's (left alone)", remote.url(key));
            }
        }
    }
    let mut rows: Vec<Row> = rows.into_values().filter(|r| !r.locations.is_empty()).collect();
    for r in &mut rows {
        r.cold = r.last_verification.is_none()
            && !r.locations.iter().any(|l| l == "local")
            && !r.remote.is_empty()
            && r.remote.iter().all(|c| crate::vocab::StorageClass::parse(&c.storage_class).is_some_and(|c| c.needs_thaw()));
    }
    if rows.is_empty()
        && !a.remote
        && !a.all
        && let Some(hint) = super::offsite_hint(&cfg, project, env)
    {
        tracing::warn!("no backups of {}/{env} on this host. {hint}", project.name);
    }
    if ctx.ui.json {
        ctx.print_json(&rows);
    } else if rows.is_empty() {
        let place = if a.remote {
            "off-site".to_string()
        } else if a.all {
            "here or off-site".to_string()
        } else {
            format!("in {}", dir.display())
        };
        crate::outln!("no backups of {}/{env} {place}", project.name);
    } else if a.wide {
        print_wide(&rows);
    } else {
        print_narrow(&rows, ctx.now);
    }
    for (p, why) in &listing.broken {
        tracing::warn!("{}: {why}", p.display());
    }
    for p in &listing.foreign {
        tracing::info!(
            "{}: not described by any pgtier manifest (left alone; `pgtier adopt` takes in the old scripts' dumps)",
            p.display()
        );
    }
    Ok(crate::error::EXIT_OK)
}

fn row(stem: &crate::names::Stem, m: &crate::records::manifest::Manifest, path: Option<String>) -> Row {
    Row {
        backup: stem.to_string(),
        kind: stem.kind,
        created_at: stem.time,
        locations: if path.is_some() { vec!["local".into()] } else { Vec::new() },
        path: path.unwrap_or_default(),
        size: m.size,
        sha256: m.sha256.clone(),
        tiers: m.tiers.clone(),
        tags: m.tags.clone(),
        encrypted: m.encryption.is_some(),
        remote: Vec::new(),
        last_verification: m.verifications.last().map(Drill::of),
        last_successful_verification: m.last_verified_ok().map(Drill::of),
        cold: false,
    }
}
