//! The fleet seen from the bucket alone: every project/env under a destination's prefix, read
//! from one listing of the prefix (streamed, one env in memory at a time) and a few requests per
//! env (the newest manifests for the last drill, the newest copy of each tier for its lock, the
//! lease), with no projects.yml and read-only credentials. `audit` also reads the lock of every
//! copy in a locked tier.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::names::{Kind, Stem};
use crate::remote::lease::Holder;
use crate::remote::{EnvLayout, Remote, RemoteKey};
use crate::store::ObjectMeta;
use crate::vocab::{LockMode, TierName};

/// How to look.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub now: DateTime<Utc>,
    /// An env whose newest backup is older than this is stale.
    pub stale_after: chrono::Duration,
    /// Read the lock of every copy in a locked tier (one HEAD each), not only the newest.
    pub every_lock: bool,
}

/// One tier of one env.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetTier {
    pub copies: usize,
    /// Copies by storage class.
    pub classes: BTreeMap<String, usize>,
    /// The newest backup with a copy in the tier.
    pub newest: Option<String>,
    /// The newest copy's Object Lock (its lock horizon), if it has one.
    pub lock_mode: Option<LockMode>,
    pub locked_until: Option<DateTime<Utc>>,
    /// Copies without a lock in a tier whose newest copy is locked (only with `every_lock`).
    pub unlocked: Option<usize>,
}

/// The last restore drill recorded in a manifest.
#[derive(Debug, Clone, Serialize)]
pub struct FleetDrill {
    pub backup: String,
    pub at: DateTime<Utc>,
    pub ok: bool,
}

/// One project/env.
#[derive(Debug, Clone, Serialize)]
pub struct FleetEnv {
    pub project: String,
    pub env: String,
    pub backups: usize,
    pub newest: Option<String>,
    pub newest_at: Option<DateTime<Utc>>,
    pub age_seconds: Option<i64>,
    pub tiers: BTreeMap<TierName, FleetTier>,
    pub last_drill: Option<FleetDrill>,
    /// The lease object, when one is there (an agent at work, or one that died holding it).
    pub lease: Option<Holder>,
    pub findings: Vec<String>,
}

/// The whole prefix.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub remote: String,
    pub generated_at: DateTime<Utc>,
    pub envs: Vec<FleetEnv>,
    /// Whether no env has a finding.
    pub ok: bool,
}

/// How many of the newest manifests are read to find the last drill (drills are at most
/// weekly, on the newest backup of their night).
const DRILL_LOOKBACK: usize = 8;

/// What the listing gives of one env before its summary is made.
#[derive(Default)]
struct Gathered {
    /// Data copies by backup, tier.
    copies: BTreeMap<Stem, BTreeMap<TierName, ObjectMeta>>,
    /// A manifest key for each backup (any tier).
    manifests: BTreeMap<Stem, String>,
    lease: Option<String>,
}

/// Reads the fleet under `remote`'s prefix.
pub fn fleet(remote: &Remote, opts: &FleetOptions) -> Result<Fleet> {
    let mut envs = Vec::new();
    let mut current: Option<(String, String, Gathered)> = None;
    let mut failed: Option<crate::error::Error> = None;
    remote.store.list_each("", &mut |o: ObjectMeta| {
        let mut parts = o.key.splitn(3, '/');
        let (Some(project), Some(env), Some(_)) = (parts.next(), parts.next(), parts.next()) else { return Ok(()) };
        if current.as_ref().is_none_or(|(p, e, _)| p != project || e != env) {
            if let Some((p, e, g)) = current.take() {
                match summarise(remote, &p, &e, g, opts) {
                    Ok(s) => envs.push(s),
                    Err(err) => {
                        failed.get_or_insert(err);
                    }
                }
            }
            current = Some((project.to_string(), env.to_string(), Gathered::default()));
        }
        let (p, e, g) = current.as_mut().expect("set above");
        match EnvLayout::new(p, e).parse(&o.key) {
            Some(RemoteKey::Data { tier, stem }) => {
                g.copies.entry(stem).or_default().insert(tier, o);
            }
            Some(RemoteKey::Manifest { stem, .. }) => {
                g.manifests.entry(stem).or_insert(o.key);
            }
            Some(RemoteKey::Lease) => g.lease = Some(o.key),
            _ => {}
        }
        Ok(())
    })?;
    if let Some((p, e, g)) = current.take() {
        envs.push(summarise(remote, &p, &e, g, opts)?);
    }
    if let Some(err) = failed {
        return Err(err);
    }
    // Folders with no backup of pgtier's at all are not envs.
    envs.retain(|e: &FleetEnv| e.backups > 0 || e.lease.is_some());
    missing_tiers(&mut envs);
    let ok = envs.iter().all(|e| e.findings.is_empty());
    Ok(Fleet { remote: remote.store.describe(), generated_at: opts.now, envs, ok })
}

fn summarise(remote: &Remote, project: &str, env: &str, g: Gathered, opts: &FleetOptions) -> Result<FleetEnv> {
    let databases: Vec<&Stem> = g.copies.keys().filter(|s| s.kind == Kind::Database).collect();
    let newest = databases.last().copied();
    let mut tiers: BTreeMap<TierName, FleetTier> = BTreeMap::new();
    // Database backups only: the roles saved beside them are not what a tier is counted in.
    for (stem, copies) in g.copies.iter().filter(|(s, _)| s.kind == Kind::Database) {
        for (tier, o) in copies {
            let t = tiers.entry(*tier).or_default();
            t.copies += 1;
            *t.classes.entry(o.class().as_str().to_string()).or_default() += 1;
            t.newest = Some(stem.to_string());
        }
    }
    let mut findings = Vec::new();
    // Lock horizons: the newest copy of each tier; with `every_lock`, every copy of a tier
    // whose newest copy is locked.
    for (tier, t) in tiers.iter_mut() {
        let Some(stem) = t.newest.as_deref().and_then(Stem::parse) else { continue };
        let Some(o) = g.copies.get(&stem).and_then(|c| c.get(tier)) else { continue };
        let head = remote.store.head(&o.key)?;
        if let Some(l) = head.lock {
            t.lock_mode = Some(l.mode);
            t.locked_until = Some(l.until);
            if l.until <= opts.now {
                findings.push(format!(
                    "the newest {tier} copy's lock ended {}: new locked copies are not arriving",
                    crate::ui::ago(l.until, opts.now)
                ));
            }
            if opts.every_lock {
                let mut unlocked = 0;
                for copies in g.copies.iter().filter(|(s, _)| s.kind == Kind::Database).map(|(_, c)| c) {
                    if let Some(o) = copies.get(tier)
                        && remote.store.head(&o.key)?.lock.is_none()
                    {
                        unlocked += 1;
                    }
                }
                t.unlocked = Some(unlocked);
                if unlocked > 0 {
                    findings.push(format!(
                        "{unlocked} {tier} cop{} without Object Lock in a locked tier",
                        if unlocked == 1 { "y" } else { "ies" }
                    ));
                }
            }
        }
    }
    let newest_at = newest.map(|s| s.time);
    let age_seconds = newest_at.map(|t| (opts.now - t).num_seconds());
    match newest_at {
        None => findings.push("no database backup".into()),
        Some(t) if opts.now - t > opts.stale_after => findings.push(format!(
            "stale: the newest backup is {} old (more than {})",
            crate::ui::span(opts.now - t),
            crate::ui::span(opts.stale_after)
        )),
        _ => {}
    }
    // The last drill, from the newest manifests.
    let mut last_drill = None;
    for stem in databases.iter().rev().take(DRILL_LOOKBACK) {
        let Some(key) = g.manifests.get(stem) else { continue };
        let m = match crate::remote::catalog::read_manifest(remote, key, stem) {
            Ok(m) => m,
            Err(e) => {
                findings.push(format!("could not read the manifest of {stem} ({e}): the last drill shown may be an older one"));
                continue;
            }
        };
        if let Some(v) = m.verifications.iter().max_by_key(|v| v.at) {
            last_drill = Some(FleetDrill { backup: stem.to_string(), at: v.at, ok: v.ok });
            break;
        }
    }
    if let Some(d) = last_drill.as_ref().filter(|d| !d.ok) {
        findings.push(format!("the last restore drill ({}, {}) failed", d.backup, crate::ui::ago(d.at, opts.now)));
    }
    let lease = match &g.lease {
        Some(key) => remote.store.get_tagged(key, 64 * 1024).ok().and_then(|(b, _)| serde_json::from_slice::<Holder>(&b).ok()),
        None => None,
    };
    if let Some(h) = &lease
        && !h.released
        && h.expires < opts.now
    {
        findings.push(format!("lease stuck: {} (an agent died holding it; the next run takes it over)", h.describe(opts.now)));
    }
    Ok(FleetEnv {
        project: project.to_string(),
        env: env.to_string(),
        backups: databases.len(),
        newest: newest.map(|s| s.to_string()),
        newest_at,
        age_seconds,
        tiers,
        last_drill,
        lease,
        findings,
    })
}

/// A tier most envs of a project hold, missing from one whose backups are old enough to have
/// it, is a finding: a policy changed on one host, or a destination that stopped receiving it.
fn missing_tiers(envs: &mut [FleetEnv]) {
    let mut by_project: BTreeMap<String, (usize, BTreeMap<TierName, usize>)> = BTreeMap::new();
    for e in envs.iter() {
        let (n, tiers) = by_project.entry(e.project.clone()).or_default();
        *n += 1;
        for t in e.tiers.keys() {
            *tiers.entry(*t).or_default() += 1;
        }
    }
    for e in envs.iter_mut() {
        let (n, tiers) = &by_project[&e.project];
        for (tier, held) in tiers {
            if *held * 2 > *n && !e.tiers.contains_key(tier) && e.backups > 0 {
                e.findings.push(format!("no {tier} copies, which {held} of the project's {n} envs have"));
            }
        }
    }
}

/// The fleet as one self-contained HTML page (nothing fetched, and the browser told so): a row
/// per env, its findings under it.
pub fn html(f: &Fleet) -> String {
    use crate::ui::html::{CSS, esc};
    let mut rows = String::new();
    for e in &f.envs {
        let newest = match (&e.newest, e.newest_at) {
            (Some(b), Some(t)) => format!("{} ({})", esc(&crate::ui::ago(t, f.generated_at)), esc(b)),
            _ => "none".into(),
        };
        let tiers: Vec<String> = e
            .tiers
            .iter()
            .map(|(t, x)| {
                let classes: Vec<String> = x.classes.iter().map(|(c, n)| format!("{n} {c}")).collect();
                let lock = x.locked_until.map(|u| format!(", locked until {}", u.format("%Y-%m-%d"))).unwrap_or_default();
                esc(&format!("{t}: {}{lock}", classes.join(", ")))
            })
            .collect();
        let drill = match &e.last_drill {
            Some(d) => esc(&format!("{} {}", if d.ok { "ok" } else { "FAILED" }, crate::ui::ago(d.at, f.generated_at))),
            None => "never".into(),
        };
        let (class, status) = if e.findings.is_empty() { ("ok", "ok") } else { ("bad", "problem") };
        rows += &format!(
            "<tr class=\"{class}\" data-env=\"{}/{}\"><td>{}/{}</td><td>{status}</td><td>{}</td><td>{newest}</td><td>{}</td><td>{drill}</td></tr>",
            esc(&e.project),
            esc(&e.env),
            esc(&e.project),
            esc(&e.env),
            e.backups,
            tiers.join("<br>")
        );
        if !e.findings.is_empty() {
            let items: Vec<String> = e.findings.iter().map(|x| format!("<li>{}</li>", esc(x))).collect();
            rows += &format!("<tr class=\"findings\"><td></td><td colspan=\"5\"><ul>{}</ul></td></tr>", items.join(""));
        }
    }
    let bad = f.envs.iter().filter(|e| !e.findings.is_empty()).count();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>pgtier fleet: {remote}</title><style>{CSS}\
         table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}}\
         tr.bad td:nth-child(2){{color:#b00020;font-weight:600}}tr.findings td{{color:#b00020;border-bottom:1px solid #ddd}}</style></head><body>\
         <h1>pgtier fleet: {remote}</h1><p class=\"meta\">{} project/env(s), {bad} with findings; read from the bucket at {} UTC.</p>\
         <table><thead><tr><th>project/env</th><th>status</th><th>backups</th><th>newest</th><th>tiers</th><th>last drill</th></tr></thead>\
         <tbody>{rows}</tbody></table></body></html>\n",
        f.envs.len(),
        f.generated_at.format("%Y-%m-%d %H:%M"),
        remote = esc(&f.remote),
    )
}
