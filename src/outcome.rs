//! Where outcomes go once an operation ends: alerts (every channel of `alerts:`) and the state
//! monitoring reads (`metrics`). `run`, `verify` and the single commands all report through
//! one `Outcomes`, so a failure is alerted, and a success recorded, the same way whichever
//! command saw it.

use chrono::{DateTime, Utc};

use crate::alerts::{Alert, Alerter};
use crate::config::Config;
use crate::remote::Remote;

/// The outcome hook of one command.
pub struct Outcomes<'a> {
    cfg: &'a Config,
    alerter: Alerter,
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
        Outcomes { cfg, alerter: Alerter::new(&cfg.alerts) }
    }

    /// `operation` failed (for `project`/`env` when given): alert.
    pub fn failed(&self, project: Option<&str>, env: Option<&str>, operation: &str, message: impl Into<String>) {
        self.alerter.send(&Alert::error(project, env, operation, message));
    }

    /// Something worth a person's look that is not a failure: alert as a warning.
    pub fn warning(&self, project: Option<&str>, env: Option<&str>, operation: &str, message: impl Into<String>) {
        self.alerter.send(&Alert::warning(project, env, operation, message));
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

    fn record(&self, project: &str, env: &str, f: impl FnOnce(&mut crate::metrics::EnvState)) {
        if let Err(err) = crate::metrics::update(self.cfg, project, env, f) {
            tracing::warn!("could not record the outcome for monitoring: {err}");
        }
    }

    /// The command is over: rewrite the metrics textfile, and ping the success channel when
    /// `success` carries a summary.
    pub fn finish(&self, remotes: &[&Remote], success: Option<serde_json::Value>) {
        if let Err(err) = crate::metrics::write(self.cfg, remotes) {
            tracing::warn!("could not write the metrics textfile: {err}");
        }
        if let Some(summary) = success {
            self.alerter.success(&summary);
        }
    }
}
