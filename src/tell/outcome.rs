//! Where outcomes go once an operation ends: alerts (every channel of `alerts:`) and the state
//! monitoring reads (`metrics`). `run`, `verify` and the single commands all report through
//! one `Outcomes`, so a failure is alerted, and a success recorded, the same way whichever
//! command saw it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::context::EnvContext;
use crate::remote::Remote;
use crate::tell::alerts::{Alert, Alerter};
use crate::tell::metrics::Figures;
use crate::tell::notify::Ping;

/// The outcome hook of one command.
pub struct Outcomes<'a> {
    cfg: &'a Config,
    alerter: Alerter,
    /// This command's failures and warnings: one message to the native channels at the end.
    events: RefCell<Vec<Alert>>,
    /// The healthchecks run id, once `started` pinged.
    run_id: RefCell<Option<String>>,
    /// The command's clock (`--now`), for the ages in messages.
    now: DateTime<Utc>,
    /// Each env the command opened (`project/env`), as the metrics textfile counts it ...
    figures: RefCell<BTreeMap<String, Figures>>,
    /// ... and, if it failed or warned, the message's still-safe line: both taken from the
    /// env's context before it closes, so the end of the command reads nothing again.
    safe: RefCell<BTreeMap<String, String>>,
}

/// How one project/env's nightly run ended, for monitoring.
#[derive(Debug, Clone, Copy)]
pub struct EnvOutcome {
    pub ok: bool,
    pub seconds: f64,
    pub backup_size: Option<u64>,
    pub verified: Option<bool>,
}

impl<'a> Outcomes<'a> {
    pub fn new(cfg: &'a Config) -> Outcomes<'a> {
        Outcomes::at(cfg, Utc::now())
    }

    /// An outcome hook whose messages measure ages from `now` (the command's `--now`).
    pub fn at(cfg: &'a Config, now: DateTime<Utc>) -> Outcomes<'a> {
        Outcomes {
            cfg,
            alerter: Alerter::new(&cfg.alerts),
            events: RefCell::new(Vec::new()),
            run_id: RefCell::new(None),
            now,
            figures: RefCell::default(),
            safe: RefCell::default(),
        }
    }

    /// `operation` failed (for `project`/`env` when given): alert (the webhook and command at
    /// once, the native channels in the one message at the end).
    pub fn failed(&self, project: Option<&str>, env: Option<&str>, operation: &str, message: impl Into<String>) {
        self.event(Alert::error(project, env, operation, message));
    }

    /// Something worth a person's look that is not a failure: alert as a warning.
    pub fn warning(&self, project: Option<&str>, env: Option<&str>, operation: &str, message: impl Into<String>) {
        self.event(Alert::warning(project, env, operation, message));
    }

    fn event(&self, alert: Alert) {
        self.alerter.send(&alert);
        self.events.borrow_mut().push(alert);
    }

    /// The command is done with env `e` (which failed or warned if `eventful`): keep what the
    /// end of the command tells of it. What cannot be read now is read again at the end.
    pub fn env_done(&self, e: &mut EnvContext, eventful: bool) {
        let key = format!("{}/{}", e.project.name, e.env);
        if self.cfg.metrics_textfile.is_some()
            && let Ok(f) = Figures::of(e)
        {
            self.figures.borrow_mut().insert(key.clone(), f);
        }
        if eventful {
            let line = crate::tell::notify::still_safe_in(e, self.now);
            self.safe.borrow_mut().insert(key, line);
        }
    }

    /// A nightly run started: the healthchecks start ping, so a run that never ends is noticed.
    pub fn started(&self) {
        if self.cfg.alerts.healthchecks.is_some() {
            let id = crate::tell::notify::run_id();
            crate::tell::notify::healthchecks(&self.cfg.alerts, Ping::Start, &id, "pgtier run started");
            *self.run_id.borrow_mut() = Some(id);
        }
    }

    /// Sends what this command saw as one message to every native channel (nothing when all
    /// was well). `remotes` tell where the newest good backup's copies are.
    pub fn flush(&self, remotes: &[&Remote]) -> Option<crate::tell::notify::Digest> {
        let events = std::mem::take(&mut *self.events.borrow_mut());
        let digest = crate::tell::notify::compose(self.cfg, &events, remotes, &self.safe.borrow(), self.now)?;
        for (channel, result) in crate::tell::notify::send(&self.cfg.alerts, &digest) {
            if let Err(e) = result {
                tracing::warn!("could not deliver the message to {channel}: {e}");
            }
        }
        Some(digest)
    }

    /// A nightly run of `project`/`env` ended: record it for monitoring.
    pub fn env_ran(&self, project: &str, env: &str, o: EnvOutcome) {
        let at = Utc::now();
        self.record(project, env, |s| {
            if o.ok {
                s.last_success = Some(at);
            } else {
                s.last_failure = Some(at);
            }
            s.last_duration_seconds = Some(o.seconds);
            if o.backup_size.is_some() {
                s.last_backup_size_bytes = o.backup_size;
            }
            if o.verified == Some(true) {
                s.last_verify_success = Some(at);
            }
        });
    }

    /// A restore drill of `project`/`env` passed at `at`.
    pub fn verified(&self, project: &str, env: &str, at: DateTime<Utc>) {
        self.record(project, env, |s| s.last_verify_success = Some(at));
    }

    fn record(&self, project: &str, env: &str, f: impl FnOnce(&mut crate::tell::metrics::EnvState)) {
        if let Err(err) = crate::tell::metrics::update(self.cfg, project, env, f) {
            tracing::warn!("could not record the outcome for monitoring: {err}");
        }
    }

    /// The command is over: rewrite the metrics textfile, and ping the success channel when
    /// `success` carries a summary.
    pub fn finish(&self, remotes: &[&Remote], success: Option<serde_json::Value>) {
        if let Err(err) = crate::tell::metrics::write(self.cfg, remotes, &self.figures.borrow()) {
            tracing::warn!("could not write the metrics textfile: {err}");
        }
        let digest = self.flush(remotes);
        let run_id = self.run_id.borrow_mut().take();
        if let Some(summary) = &success {
            self.alerter.success(summary);
        }
        if let Some(id) = run_id {
            match (&success, &digest) {
                (Some(summary), _) => crate::tell::notify::healthchecks(&self.cfg.alerts, Ping::Success, &id, &summary.to_string()),
                (None, Some(d)) => {
                    crate::tell::notify::healthchecks(&self.cfg.alerts, Ping::Fail, &id, &format!("{}\n\n{}", d.subject, d.body))
                }
                (None, None) => crate::tell::notify::healthchecks(&self.cfg.alerts, Ping::Fail, &id, "pgtier run failed"),
            }
        }
    }
}
