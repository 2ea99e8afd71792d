//! Fail points for the reliability tests: `PGTIER_FAILPOINT=NAME` makes pgtier kill itself
//! (SIGKILL, as a crash or an OOM kill would) when it reaches the point named NAME, so tests can
//! prove that a crash at that exact stage loses nothing; `PGTIER_FAILPOINT=NAME=stop` stops it
//! there instead (SIGSTOP, as a frozen VM or a stalled disk would), for a test to resume with
//! SIGCONT. Unset, a point costs one cached check.

use std::sync::OnceLock;

static POINT: OnceLock<Option<String>> = OnceLock::new();

/// Dies here if the failpoint is `name`.
pub fn point(name: &str) {
    let armed = POINT.get_or_init(|| std::env::var("PGTIER_FAILPOINT").ok());
    if armed.as_deref().and_then(|a| a.strip_suffix("=stop")) == Some(name) {
        eprintln!("pgtier: failpoint {name}: stopping myself");
        // SAFETY: raising SIGSTOP on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGSTOP);
        }
    } else if armed.as_deref() == Some(name) {
        eprintln!("pgtier: failpoint {name}: killing myself");
        // SAFETY: raising SIGKILL on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
