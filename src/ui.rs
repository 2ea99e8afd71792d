//! What the user sees besides results: progress bars on a terminal (never under cron or with
//! `--json`), and yes/no questions when a terminal is there to answer them.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Output settings shared by every command.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    /// stderr is a terminal (progress bars) and stdin is one (questions).
    pub stderr_tty: bool,
    pub stdin_tty: bool,
}

impl Ui {
    /// Detects terminals; `json` and `quiet` switch progress off.
    pub fn detect(json: bool, quiet: bool) -> Ui {
        Ui { json, quiet, stderr_tty: std::io::stderr().is_terminal(), stdin_tty: std::io::stdin().is_terminal() }
    }

    fn shows_progress(&self) -> bool {
        self.stderr_tty && !self.json && !self.quiet
    }

    /// A progress bar for `label`: bytes with rate and ETA when `total` is known.
    pub fn progress(&self, label: &str, total: Option<u64>) -> Progress {
        if !self.shows_progress() {
            return Progress(None);
        }
        let bar = match total {
            Some(t) => {
                let b = ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("{msg:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
                        .expect("template")
                        .progress_chars("=> "),
                );
                b
            }
            None => {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template("{msg:>12} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}").expect("template"),
                );
                b
            }
        };
        bar.set_message(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress(Some(bar))
    }

    /// Asks a yes/no question on the terminal; false when there is no terminal to ask.
    pub fn confirm(&self, question: &str) -> bool {
        if !(self.stdin_tty && self.stderr_tty) {
            return false;
        }
        eprint!("{question} Type yes to continue: ");
        let _ = std::io::stderr().flush();
        // Read by hand: read_line retries EINTR, so Ctrl-C at the prompt would be ignored.
        let mut answer = Vec::new();
        let mut stdin = std::io::stdin().lock();
        let mut byte = [0u8; 1];
        loop {
            match std::io::Read::read(&mut stdin, &mut byte) {
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => answer.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted && !crate::signals::interrupted() => {}
                Err(_) => {
                    eprintln!();
                    return false;
                }
            }
        }
        String::from_utf8_lossy(&answer).trim() == "yes"
    }
}

/// A progress bar, or nothing when progress is not shown.
#[derive(Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A progress that shows nothing.
    pub fn hidden() -> Progress {
        Progress(None)
    }

    /// Adds `n` bytes.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// Sets the position.
    pub fn set(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.set_position(n);
        }
    }

    /// Changes the label.
    pub fn label(&self, label: &str) {
        if let Some(b) = &self.0 {
            b.set_message(label.to_string());
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Bytes for humans.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `s` cut to `n` characters, with an ellipsis when cut.
pub fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// How long ago `t` was, for people: "45 s ago", "12 min ago", "3 h ago", "2 d ago".
pub fn ago(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    if now < t { "in the future".to_string() } else { format!("{} ago", span(now - t)) }
}

/// A length of time in the largest unit that reads well: "45 s", "12 min", "3 h", "2 d".
pub fn span(d: chrono::Duration) -> String {
    match d.num_seconds().abs() {
        s if s < 90 => format!("{s} s"),
        s if s < 90 * 60 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// A URL as pgtier prints it: scheme, host and port only. Whatever else a URL holds may be a
/// secret (`user:password@`, `?token=`, a webhook's path, a healthchecks UUID, a bot token),
/// so every URL of a channel goes through here before it reaches a message, a log or `--json`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "(a URL)".into() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = if rest[end..].trim_matches('/').is_empty() { "" } else { "/…" };
    format!("{scheme}://{host}{tail}")
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn every_part_that_may_be_a_secret_goes() {
        for (url, shown) in [
            ("https://hooks.slack.com/services/T0/B0/SECRET", "https://hooks.slack.com/…"),
            ("https://user:pass@ntfy.example:8443/topic?auth=tok", "https://ntfy.example:8443/…"),
            ("https://hooks.example?token=abc", "https://hooks.example/…"),
            ("https://hc-ping.com/0f1e2d3c-aaaa-bbbb-cccc-123456789abc", "https://hc-ping.com/…"),
            ("https://api.telegram.org/bot123:ABC/sendMessage", "https://api.telegram.org/…"),
            ("http://a@b@host/x#frag", "http://host/…"),
            ("https://example.com/", "https://example.com"),
            ("not a url with SECRET", "(a URL)"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}

/// The pieces of the self-contained HTML pages (`report`, `fleet report`).
pub mod html {
    /// Escapes text for HTML and SVG.
    pub fn esc(s: &str) -> String {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }

    /// The pages' one stylesheet.
    pub const CSS: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;background:#fff;max-width:1200px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;border-top:1px solid #ddd;padding-top:14px}\
h3{font-size:14px;margin:14px 0 2px}\
.meta{color:#555}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700}.dim{color:#777}\
ul.findings{margin:6px 0;padding-left:20px}ul.findings li{color:#cf222e}\
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}\
svg{display:block;margin:4px 0;width:100%;height:auto}svg text{font-family:system-ui,sans-serif;fill:#444}\
.scroll{overflow-x:auto}table.tiers{border-collapse:collapse;font-size:13px;margin:6px 0}\
table.tiers th,table.tiers td{padding:3px 10px 3px 0;text-align:left;vertical-align:top;border-bottom:1px solid #eee}\
table.tiers th{border-bottom:1px solid #bbb;font-weight:600}table.tiers td.place{word-break:break-all;max-width:260px;font-weight:600}\
table.tiers td.num{text-align:right}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}\
@page{margin:12mm}@media print{body{margin:0;font-size:11px;max-width:none}h2{break-before:page;border-top:0}\
section:first-of-type h2{break-before:auto}.scroll{overflow:visible}table.tiers{font-size:10px}svg,table.tiers tr{break-inside:avoid}}";
}
