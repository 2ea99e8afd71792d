//! Application containers (`app_containers:`) stopped around an in-place restore and started
//! again afterwards, also when the restore fails.

use std::process::Command;

use crate::error::Result;

/// Stops `containers`, runs `f`, then starts them again whatever `f` returned.
pub fn with_stopped<T>(containers: &[String], f: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut stopped = Vec::new();
    for c in containers {
        if let Err(e) = docker(&["stop", c]) {
            let e = e.context(format!("stopping application container {c}"));
            return Err(match start_all(&stopped) {
                Ok(()) => e,
                Err(s) => e.context(s.to_string()),
            });
        }
        tracing::info!("stopped application container {c}");
        stopped.push(c.clone());
    }
    let result = f();
    let restarted = start_all(&stopped);
    match (result, restarted) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(s)) => Err(e.context(s.to_string())),
    }
}

fn start_all(containers: &[String]) -> Result<()> {
    let mut failed = Vec::new();
    for c in containers {
        match docker(&["start", c]) {
            Ok(()) => tracing::info!("started application container {c}"),
            Err(e) => failed.push(format!("{c}: {e}")),
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(crate::failed!("could not start application containers again: {}", failed.join("; "))) }
}

fn docker(args: &[&str]) -> Result<()> {
    let out = Command::new("docker").args(args).output().map_err(|e| crate::failed!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(crate::failed!("docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}
