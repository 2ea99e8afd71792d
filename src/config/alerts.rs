//! `alerts:` in pgtier.yml: the generic webhook, command and success ping, and the native
//! channels that get one message per run (Slack and its look-alikes, Discord, Teams, Telegram,
//! ntfy, email) plus healthchecks-style start / success / fail pings.
//!
//! A URL that carries a token may be written as `env:NAME` (read from the environment when it
//! is used) or `file:/path` (its first line), so that no secret needs to sit in pgtier.yml.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

/// One value or a list of them (`slack: URL` or `slack: [URL, URL]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `alerts:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub webhook: Option<String>,
    pub command: Option<String>,
    pub success_ping: Option<String>,
    pub anomaly_threshold_percent: Option<u32>,
    pub slack: Option<OneOrMany<String>>,
    pub discord: Option<OneOrMany<String>>,
    pub teams: Option<OneOrMany<String>>,
    pub ntfy: Option<OneOrMany<String>>,
    pub telegram: Option<OneOrMany<RawTelegram>>,
    pub email: Option<OneOrMany<RawEmail>>,
    pub healthchecks: Option<String>,
    /// Seconds each channel may take (default 10).
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelegram {
    pub bot_token_file: String,
    pub chat_id: String,
    /// The Bot API's address (default https://api.telegram.org), for a self-hosted Bot API server.
    pub api_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// host:port of the SMTP server.
    pub smtp: String,
    /// starttls (default), tls (SMTPS) or none (loopback relays only).
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<String>,
    pub from: String,
    pub to: OneOrMany<String>,
}

/// `alerts:`, validated.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub webhook: Option<String>,
    pub command: Option<String>,
    pub success_ping: Option<String>,
    pub anomaly_threshold_percent: u32,
    /// The channels that get one message per run.
    pub channels: Vec<Channel>,
    /// healthchecks.io (or a compatible) check URL: start, success and fail pings.
    pub healthchecks: Option<String>,
    pub timeout: std::time::Duration,
}

impl Default for AlertsConfig {
    /// No channel; a 50% drop is an anomaly; 10 s per channel.
    fn default() -> AlertsConfig {
        AlertsConfig {
            webhook: None,
            command: None,
            success_ping: None,
            anomaly_threshold_percent: 50,
            channels: Vec::new(),
            healthchecks: None,
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// One place a run's message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// An incoming webhook taking `{"text": ...}`: Slack, Mattermost, Rocket.Chat.
    Slack(String),
    Discord(String),
    /// A Teams workflow webhook (an Adaptive Card).
    Teams(String),
    Telegram {
        bot_token_file: PathBuf,
        chat_id: String,
        api_url: String,
    },
    /// An ntfy topic URL.
    Ntfy(String),
    Email(Email),
}

/// How to reach the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (refused if the server cannot).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on this host.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

impl Channel {
    /// Its kind, for messages ("slack", "email").
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Slack(_) => "slack",
            Channel::Discord(_) => "discord",
            Channel::Teams(_) => "teams",
            Channel::Telegram { .. } => "telegram",
            Channel::Ntfy(_) => "ntfy",
            Channel::Email(_) => "email",
        }
    }
}

/// Checks a URL-valued setting: an http(s) URL, or `env:NAME` / `file:/path` for one that holds a token.
fn url(file: &Path, key: &str, u: &str, problems: &mut Vec<Error>) {
    let ok = u.starts_with("http://")
        || u.starts_with("https://")
        || u.strip_prefix("env:").is_some_and(|n| !n.is_empty())
        || u.strip_prefix("file:").is_some_and(|p| !p.is_empty());
    if !ok {
        // The value is not repeated: a webhook URL missing its scheme is still a secret.
        problems.push(Error::config(
            file,
            key,
            "expected an http:// or https:// URL (or env:NAME, file:/path); the value given is neither",
        ));
    }
}

/// Validates `alerts:`; relative paths are relative to `base` (the folder of pgtier.yml).
pub fn resolve(file: &Path, base: &Path, a: RawAlerts, problems: &mut Vec<Error>) -> AlertsConfig {
    for (key, u) in [("alerts.webhook", &a.webhook), ("alerts.success_ping", &a.success_ping), ("alerts.healthchecks", &a.healthchecks)] {
        if let Some(u) = u {
            url(file, key, u, problems);
        }
    }
    let mut channels = Vec::new();
    let mut urls = |key: &str, list: Option<OneOrMany<String>>, make: fn(String) -> Channel| {
        for (i, u) in list.map(OneOrMany::into_vec).unwrap_or_default().into_iter().enumerate() {
            url(file, &format!("alerts.{key}[{i}]"), &u, problems);
            channels.push(make(u));
        }
    };
    urls("slack", a.slack, Channel::Slack);
    urls("discord", a.discord, Channel::Discord);
    urls("teams", a.teams, Channel::Teams);
    urls("ntfy", a.ntfy, Channel::Ntfy);
    for t in a.telegram.map(OneOrMany::into_vec).unwrap_or_default() {
        let api_url = t.api_url.unwrap_or_else(|| "https://api.telegram.org".into());
        url(file, "alerts.telegram.api_url", &api_url, problems);
        channels.push(Channel::Telegram { bot_token_file: super::resolve(base, &t.bot_token_file), chat_id: t.chat_id, api_url });
    }
    for (i, e) in a.email.map(OneOrMany::into_vec).unwrap_or_default().into_iter().enumerate() {
        let key = |k: &str| format!("alerts.email[{i}].{k}");
        let (host, port) = match e.smtp.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
            Some((h, Ok(p))) if !h.is_empty() => (h.to_string(), p),
            _ => {
                problems.push(Error::config(file, key("smtp"), format!("expected host:port, got {:?}", e.smtp)));
                continue;
            }
        };
        let tls = match e.tls.as_deref().unwrap_or("starttls") {
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                problems.push(Error::config(file, key("tls"), format!("expected starttls, tls or none, got {other:?}")));
                continue;
            }
        };
        if e.password_file.is_some() && e.username.is_none() {
            problems.push(Error::config(file, key("username"), "password_file needs a username"));
        }
        // Without TLS the password crosses the network in clear: only to a relay on this host.
        let loopback = matches!(host.trim_matches(['[', ']']), "localhost" | "::1") || host.starts_with("127.");
        if tls == SmtpTls::None && e.username.is_some() && !loopback {
            problems.push(Error::config(
                file,
                key("tls"),
                format!("tls: none would send the SMTP password to {host} in clear; use starttls or tls (none is only for a relay on this host, 127.0.0.1 or ::1)"),
            ));
        }
        let to = e.to.into_vec();
        if to.is_empty() {
            problems.push(Error::config(file, key("to"), "expected at least one address"));
        }
        channels.push(Channel::Email(Email {
            host,
            port,
            tls,
            username: e.username,
            password_file: e.password_file.map(|p| super::resolve(base, &p)),
            from: e.from,
            to,
        }));
    }
    let defaults = AlertsConfig::default();
    AlertsConfig {
        webhook: a.webhook,
        command: a.command,
        success_ping: a.success_ping,
        anomaly_threshold_percent: a.anomaly_threshold_percent.unwrap_or(defaults.anomaly_threshold_percent),
        channels,
        healthchecks: a.healthchecks,
        timeout: a.timeout_seconds.map_or(defaults.timeout, |s| std::time::Duration::from_secs(s.clamp(1, 300))),
    }
}
