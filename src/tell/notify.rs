//! One message per run, for people: what failed, the error, what is still safe (the newest good
//! backup, its age and where its copies are) and what to type next. Sent to every native channel
//! of `alerts:` (Slack and look-alikes, Discord, Teams, Telegram, ntfy, email), each in its own
//! format and with its own timeout; a channel that fails is logged and never changes the exit
//! code. healthchecks-style pings mark a run's start, success or failure.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::alerts::{Email, SmtpTls};
use crate::config::{AlertsConfig, Channel, Config};
use crate::context::EnvContext;
use crate::records::listing::Listing;
use crate::remote::{Remote, RemoteCatalog};
use crate::tell::alerts::Severity;
use crate::tell::alerts::{Alert, http_post};
use crate::ui::cut;

/// A run's message.
#[derive(Debug, Clone)]
pub struct Digest {
    /// `pgtier: FAILED backup shop/production on db1`.
    pub subject: String,
    pub body: String,
    /// Whether anything failed (else only warnings).
    pub failed: bool,
}

/// Composes the message for `events` (failures and warnings of one command). `safe` holds the
/// still-safe line of each env the command opened (by `project/env`); the others are read.
pub fn compose(cfg: &Config, events: &[Alert], remotes: &[&Remote], safe: &BTreeMap<String, String>, now: DateTime<Utc>) -> Option<Digest> {
    let first = events.iter().find(|a| a.severity == Severity::Error).or(events.first())?;
    let failed = events.iter().any(|a| a.severity == Severity::Error);
    let host = crate::tell::alerts::hostname();
    let what = |a: &Alert| match (&a.project, &a.env) {
        (Some(p), Some(e)) => format!("{} {p}/{e}", a.operation),
        (Some(p), None) => format!("{} {p}", a.operation),
        _ => a.operation.clone(),
    };
    let more = if events.len() > 1 { format!(" and {} more", events.len() - 1) } else { String::new() };
    let word = if failed { "FAILED" } else { "WARNING" };
    let subject = format!("pgtier: {word} {}{more} on {host}", what(first));
    let mut body = String::new();
    for a in events {
        // The run's errors read "backup: why"; the line already names the operation.
        let error = a.error.strip_prefix(&format!("{}: ", a.operation)).unwrap_or(&a.error);
        body += &format!("{} {}: {error}\n", if a.severity == Severity::Error { "FAILED" } else { "WARNING" }, what(a));
    }
    // Each project/env once, in the order they first failed or warned.
    let mut envs: Vec<(String, String)> = Vec::new();
    for pe in events.iter().filter_map(|a| Some((a.project.clone()?, a.env.clone()?))) {
        if !envs.contains(&pe) {
            envs.push(pe);
        }
    }
    if !envs.is_empty() {
        body += "\nStill safe:\n";
        for (p, e) in &envs {
            let line = match safe.get(&format!("{p}/{e}")) {
                Some(line) => line.clone(),
                None => still_safe(cfg, p, e, remotes, now),
            };
            body += &format!("  {p}/{e}: {line}\n");
        }
        let (p, e) = &envs[0];
        body += &format!("\nInvestigate: pgtier doctor {p} {e}; pgtier -v audit {p} {e}; pgtier list {p} {e} --all\n");
    } else {
        body += "\nInvestigate: pgtier doctor; pgtier status\n";
    }
    Some(Digest { subject, body, failed })
}

const UNREADABLE: &str = "the local folder cannot be read";

/// The newest backup whose last drill did not fail, its age, and where its copies are, read now.
fn still_safe(cfg: &Config, project: &str, env: &str, remotes: &[&Remote], now: DateTime<Utc>) -> String {
    let Ok(listing) = Listing::scan(&cfg.env_dir(project, env), project, env) else { return UNREADABLE.into() };
    let cats: Vec<_> = remotes.iter().map(|r| (r.name(), RemoteCatalog::load(r, project, env, Some(&listing)).ok())).collect();
    safe_line(&listing, cats.iter().map(|(name, cat)| (*name, cat.as_ref())), now)
}

/// The still-safe line of an env from what a command has read of it (a nightly run's listing
/// and each destination's catalog); a destination it did not read is listed now.
pub fn still_safe_in(e: &mut EnvContext, now: DateTime<Utc>) -> String {
    let world = e.world();
    let mut names = Vec::new();
    for (name, r) in world.destinations() {
        let Ok(r) = r else { continue };
        // One that cannot be read is said so in the line.
        let _ = e.catalog(r);
        names.push(name);
    }
    if e.listing().is_err() {
        return UNREADABLE.into();
    }
    let e = &*e;
    let Some(listing) = e.listing_if_read() else { return UNREADABLE.into() };
    safe_line(listing, names.into_iter().map(|n| (n, e.catalog_if_read(n))), now)
}

fn safe_line<'a>(listing: &Listing, cats: impl Iterator<Item = (&'a str, Option<&'a RemoteCatalog>)>, now: DateTime<Utc>) -> String {
    let good = listing.databases().rev().find(|b| b.manifest.verifications.last().is_none_or(|v| v.ok));
    let Some(b) = good else { return "NO good backup on this host".into() };
    let mut places = vec!["here".to_string()];
    for (name, cat) in cats {
        match cat {
            Some(cat) => {
                if let Some(rb) = cat.backups.get(&b.stem).filter(|rb| !rb.copies.is_empty()) {
                    let tiers: Vec<&str> = rb.copies.keys().map(|t| t.as_str()).collect();
                    places.push(format!("{name} ({})", tiers.join(", ")));
                }
            }
            None => places.push(format!("{name} (could not be read now)")),
        }
    }
    let drill = match b.manifest.verifications.last() {
        Some(v) => format!(", restore proven {}", crate::ui::ago(v.at, now)),
        None => String::new(),
    };
    format!("{}, taken {}{drill}; copies {}", b.stem, crate::ui::ago(b.stem.time, now), places.join(", "))
}

/// Sends `d` to every native channel; returns each channel's outcome.
pub fn send(cfg: &AlertsConfig, d: &Digest) -> Vec<(String, Result<(), String>)> {
    cfg.channels.iter().map(|ch| (ch.kind().to_string(), send_one(ch, d, cfg.timeout))).collect()
}

fn send_one(ch: &Channel, d: &Digest, timeout: Duration) -> Result<(), String> {
    let text = format!("{}\n\n{}", d.subject, d.body);
    let json_post =
        |url: &str, v: serde_json::Value| http_post(&secret_url(url)?, "application/json", &[], v.to_string().as_bytes(), timeout);
    // The text quotes names from outside (a database called `<!channel>`): each service gets
    // it in a form it shows literally, so it can neither ping anyone nor disguise a link.
    match ch {
        Channel::Slack(url) => json_post(url, json!({ "text": slack_text(&text) })),
        // Discord refuses a message over 2,000 characters.
        Channel::Discord(url) => json_post(url, json!({ "content": discord_text(&text, 1990), "allowed_mentions": { "parse": [] } })),
        // Text runs are shown as they are (a TextBlock would read Markdown).
        Channel::Teams(url) => json_post(
            url,
            json!({ "type": "message", "attachments": [{ "contentType": "application/vnd.microsoft.card.adaptive", "content": {
                "type": "AdaptiveCard", "version": "1.4", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "body": [
                    { "type": "RichTextBlock", "inlines": [{ "type": "TextRun", "text": d.subject, "weight": "Bolder", "color": if d.failed { "Attention" } else { "Warning" } }] },
                    { "type": "RichTextBlock", "inlines": [{ "type": "TextRun", "text": d.body, "fontType": "Monospace" }] }
                ] } }] }),
        ),
        Channel::Telegram { bot_token_file, chat_id, api_url } => {
            let token = crate::fsutil::read_secret_line(bot_token_file).map_err(|e| e.to_string())?;
            let url = format!("{}/bot{}/sendMessage", api_url.trim_end_matches('/'), token.as_str());
            // Telegram's limit is 4,096 characters; the token never reaches a message or a log.
            http_post(
                &url,
                "application/json",
                &[],
                // No parse_mode: Telegram shows the text as it is.
                json!({ "chat_id": chat_id, "text": cut(&text, 4000), "disable_web_page_preview": true }).to_string().as_bytes(),
                timeout,
            )
            .map_err(|e| e.replace(token.as_str(), "<token>"))
        }
        Channel::Ntfy(url) => {
            let (priority, tags) = if d.failed { ("high", "rotating_light") } else { ("default", "warning") };
            http_post(
                &secret_url(url)?,
                "text/plain; charset=utf-8",
                &[
                    ("Title", d.subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()),
                    ("Priority", priority.into()),
                    ("Tags", tags.into()),
                ],
                d.body.as_bytes(),
                timeout,
            )
        }
        Channel::Email(e) => email(e, d, timeout),
    }
}

/// Text for Slack and the services that take its payload (Mattermost, Rocket.Chat): `&`, `<`
/// and `>` escaped, so `<!channel>` or `<https://x|y>` stay text; `@channel`, `@here`, `@all`
/// and `@everyone` broken with a zero-width space, so nobody is pinged.
fn slack_text(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    no_mass_mentions(&escaped)
}

/// Text for Discord: inside a code block (no Markdown, no masked links, no mentions shown), cut
/// to `max` characters.
fn discord_text(text: &str, max: usize) -> String {
    let inner = no_mass_mentions(&text.replace("```", "ʼʼʼ"));
    format!("```\n{}\n```", cut(&inner, max.saturating_sub(8)))
}

fn no_mass_mentions(text: &str) -> String {
    let mut out = text.to_string();
    for word in ["@channel", "@here", "@all", "@everyone"] {
        out = out.replace(word, &format!("@\u{200b}{}", &word[1..]));
    }
    out
}

/// A URL as configured, or the secret it points at: `env:NAME` or `file:/path` (first line).
pub fn secret_url(u: &str) -> Result<String, String> {
    if let Some(name) = u.strip_prefix("env:") {
        std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))
    } else if let Some(path) = u.strip_prefix("file:") {
        crate::fsutil::read_secret_line(std::path::Path::new(path)).map(|s| s.to_string()).map_err(|e| e.to_string())
    } else {
        Ok(u.to_string())
    }
}

fn email(e: &Email, d: &Digest, timeout: Duration) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{Message, SmtpTransport, Transport};
    let mut msg = Message::builder().from(e.from.parse().map_err(|err| format!("from {:?}: {err}", e.from))?).subject(&d.subject);
    for to in &e.to {
        msg = msg.to(to.parse().map_err(|err| format!("to {to:?}: {err}"))?);
    }
    let msg = msg.header(ContentType::TEXT_PLAIN).body(d.body.clone()).map_err(|err| err.to_string())?;
    let builder = match e.tls {
        SmtpTls::StartTls => SmtpTransport::starttls_relay(&e.host).map_err(|err| err.to_string())?,
        SmtpTls::Tls => SmtpTransport::relay(&e.host).map_err(|err| err.to_string())?,
        SmtpTls::None => SmtpTransport::builder_dangerous(&e.host),
    };
    let mut builder = builder.port(e.port).timeout(Some(crate::tell::alerts::patience(timeout)));
    if let Some(user) = &e.username {
        let password = match &e.password_file {
            Some(p) => crate::fsutil::read_secret_line(p).map_err(|err| err.to_string())?.to_string(),
            None => String::new(),
        };
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    builder.build().send(&msg).map(|_| ()).map_err(|err| format!("{}:{}: {err}", e.host, e.port))
}

/// A run's phase, for healthchecks pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

/// Pings the healthchecks check URL for `run_id`: `/start`, the URL itself, or `/fail`, with
/// `body` as the log. A start without an end is how a run that never finished is noticed.
pub fn healthchecks(cfg: &AlertsConfig, phase: Ping, run_id: &str, body: &str) {
    let Some(url) = &cfg.healthchecks else { return };
    let result = secret_url(url).and_then(|base| {
        let base = base.trim_end_matches('/');
        let url = match phase {
            Ping::Start => format!("{base}/start?rid={run_id}"),
            Ping::Success => format!("{base}?rid={run_id}"),
            Ping::Fail => format!("{base}/fail?rid={run_id}"),
        };
        http_post(&url, "text/plain; charset=utf-8", &[], cut(body, 10_000).as_bytes(), cfg.timeout)
    });
    if let Err(e) = result {
        tracing::warn!("could not ping healthchecks ({phase:?}): {e}");
    }
}

/// A new run id (a random UUID, as healthchecks expects).
pub fn run_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}
