//! Telling monitoring: an alert (JSON: project, env, operation, error, time) for every failure
//! of backup, sync, prune, verify or audit, and for warnings such as low disk space or a backup
//! that shrank suspiciously, sent to a webhook and/or a command's stdin; and an optional success
//! ping at the end of a good run. An alert that cannot be delivered is logged and never changes
//! the exit code.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::AlertsConfig;

/// How bad an alert is; in JSON `error` or `warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One alert.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub severity: Severity,
    pub project: Option<String>,
    pub env: Option<String>,
    /// `backup`, `sync`, `prune`, `verify`, `audit`, `run`, `disk-space`, `anomaly`.
    pub operation: String,
    pub error: String,
    pub time: DateTime<Utc>,
    pub host: String,
}

impl Alert {
    pub fn error(project: Option<&str>, env: Option<&str>, operation: &str, error: impl Into<String>) -> Alert {
        Alert::new(Severity::Error, project, env, operation, error)
    }

    pub fn warning(project: Option<&str>, env: Option<&str>, operation: &str, error: impl Into<String>) -> Alert {
        Alert::new(Severity::Warning, project, env, operation, error)
    }

    fn new(severity: Severity, project: Option<&str>, env: Option<&str>, operation: &str, error: impl Into<String>) -> Alert {
        Alert {
            severity,
            project: project.map(str::to_string),
            env: env.map(str::to_string),
            operation: operation.into(),
            error: error.into(),
            time: Utc::now(),
            host: hostname(),
        }
    }
}

/// This host's name, for alerts and scratch object names.
pub fn hostname() -> String {
    crate::fsutil::hostname()
}

/// Sends alerts where pgtier.yml says.
pub struct Alerter {
    cfg: AlertsConfig,
}

impl Alerter {
    pub fn new(cfg: &AlertsConfig) -> Alerter {
        Alerter { cfg: cfg.clone() }
    }

    /// Delivers an alert to every configured channel; failures are logged, never raised.
    pub fn send(&self, alert: &Alert) {
        for (channel, result) in self.deliver(alert) {
            if let Err(e) = result {
                tracing::warn!("could not deliver the alert to the {channel}: {e}");
            }
        }
    }

    /// Delivers an alert to every configured channel and says how each went.
    pub fn deliver(&self, alert: &Alert) -> Vec<(&'static str, Result<(), String>)> {
        let body = serde_json::to_vec(alert).expect("alert serialises");
        let mut out = Vec::new();
        if let Some(url) = &self.cfg.webhook {
            out.push(("webhook", http_post(url, "application/json", &[], &body, self.cfg.timeout)));
        }
        // One JSON object per line on the command's stdin (JSON Lines).
        let mut line = body.clone();
        line.push(b'\n');
        if let Some(cmd) = &self.cfg.command {
            out.push(("command", run_command(cmd, &line, self.cfg.timeout)));
        }
        out
    }

    /// Pings the success URL (healthchecks-style) with the run's summary.
    pub fn success(&self, summary: &serde_json::Value) {
        if let Some(url) = &self.cfg.success_ping
            && let Err(e) =
                http_post(url, "application/json", &[], &serde_json::to_vec(summary).expect("summary serialises"), self.cfg.timeout)
        {
            tracing::warn!("could not send the success ping: {e}");
        }
    }
}

/// How long a channel may take now: its own timeout, or at most 2 s once SIGINT or SIGTERM
/// arrived (the failure still goes out, and the command still ends within seconds).
pub fn patience(timeout: Duration) -> Duration {
    if crate::signals::interrupted() { timeout.min(Duration::from_secs(2)) } else { timeout }
}

/// Runs the alert command with `body` on its stdin; given up on (and killed) after `timeout`,
/// so a command that hangs cannot hold the run.
fn run_command(cmd: &str, body: &[u8], timeout: Duration) -> Result<(), String> {
    let timeout = patience(timeout);
    let mut child = Command::new("sh");
    // The command gets only what a shell needs, never pgtier's secrets (AWS credentials,
    // webhook URLs in the environment).
    child.env_clear();
    for (k, v) in std::env::vars_os() {
        let keep = k.to_str().is_some_and(|n| ALERT_COMMAND_ENV.contains(&n) || n.starts_with("LC_"));
        if keep {
            child.env(k, v);
        }
    }
    let mut child = child
        .args(["-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let _ = child.stdin.take().expect("piped stdin").write_all(body);
    let mut stderr = child.stderr.take().expect("piped stderr");
    let said = std::thread::spawn(move || {
        // What the command says is kept to a small cap; the rest is read and dropped, so the
        // command never blocks on a full pipe.
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match std::io::Read::read(&mut stderr, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) if kept.len() < RESPONSE_CAP => kept.extend_from_slice(&buf[..n.min(RESPONSE_CAP - kept.len())]),
                Ok(_) => {}
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| format!("{cmd}: {e}"))? {
            Some(status) => break status,
            None if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd}: still running after {} s; stopped", timeout.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if status.success() { Ok(()) } else { Err(format!("{cmd}: {status} {}", said.join().unwrap_or_default().trim())) }
}

/// The environment the alert command gets (and `LC_*`); documented in docs/operations.md.
pub const ALERT_COMMAND_ENV: [&str; 7] = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"];

/// How much of a receiver's answer is read (its status is what counts).
const RESPONSE_CAP: usize = 64 * 1024;

/// POSTs `body` with `content_type` and extra `headers` over http or https (rustls, the
/// system's roots); the whole exchange is bounded by
/// `timeout`, so a receiver that hangs cannot hold the run.
pub fn http_post(url: &str, content_type: &str, headers: &[(&str, String)], body: &[u8], timeout: Duration) -> Result<(), String> {
    let timeout = patience(timeout);
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let shown = crate::ui::redact_url(url);
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{shown}: {e}"))?;
    let rt = crate::runtime::shared().map_err(|e| format!("cannot start the HTTP client runtime: {e}"))?;
    rt.block_on(async {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("TLS roots: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let mut req = hyper::Request::post(uri)
            .header("content-type", content_type)
            .header("user-agent", concat!("pgtier/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(Full::new(bytes::Bytes::copy_from_slice(body))).map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = client.request(req).await.map_err(|e| format!("{shown}: {}", crate::error::innermost(&e)))?;
            let status = resp.status();
            // The answer is read to a small cap and no further: a receiver cannot fill memory.
            let mut body = resp.into_body();
            let mut read = 0usize;
            while read < RESPONSE_CAP {
                match body.frame().await {
                    Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            if status.is_success() { Ok(()) } else { Err(format!("{shown}: HTTP {status}")) }
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("{shown}: no answer within {} s", timeout.as_secs()))?
    })
}
