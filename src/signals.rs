//! Ctrl-C and SIGTERM: instead of dying mid-way, pgtier notices, stops its streams, runs its
//! cleanups (temporary files and databases) and exits 130.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM, and the watcher that passes the signal on to
/// the PostgreSQL tools running at that moment.
pub fn install() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
    let _ = std::thread::Builder::new().name("signals".into()).spawn(watch);
}

/// The tools running now (pg_dump, pg_restore, psql, pg_dumpall), by process id.
static CHILDREN: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// How long a tool gets to end after the SIGINT passed on to it, before it is killed.
const CHILD_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Records a tool that is running, so a signal reaches it too. A tool started after the signal
/// is one of the cleanups (dropping a temporary database) and is not recorded: the watcher,
/// which wakes up to 50 ms after the signal, must not cancel it.
pub fn track_child(pid: u32) {
    if interrupted() {
        return;
    }
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid as i32);
    }
}

/// The tool has been waited for.
pub fn untrack_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|p| *p != pid as i32);
    }
}

/// Waits for SIGINT or SIGTERM, then passes SIGINT on to the tools running at that moment: a
/// tool in the middle of a long statement (an index build, a count, amcheck) cancels it on the
/// server, as it does at a terminal, so the command ends in seconds instead of when the
/// statement would have. A tool still there after a grace period is killed. Tools started for
/// the cleanup afterwards (dropping a temporary database) are left alone.
fn watch() {
    while !interrupted() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let running: Vec<i32> = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for pid in &running {
        // SAFETY: signalling a child of ours that has not been reaped (it is still tracked).
        unsafe { libc::kill(*pid, libc::SIGINT) };
    }
    std::thread::sleep(CHILD_GRACE);
    let still: Vec<i32> = CHILDREN.lock().map(|c| c.iter().filter(|p| running.contains(p)).copied().collect()).unwrap_or_default();
    for pid in still {
        // SAFETY: as above; a tool that ignored SIGINT is stopped for good.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Whether a SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Why a stream stopped short, carried inside its `io::Error` so that whoever reads the stream
/// branches on the kind (`stop_of`), never on the words.
#[derive(Debug, thiserror::Error)]
pub enum StreamStop {
    /// SIGINT or SIGTERM arrived.
    #[error("interrupted by a signal")]
    Cancelled,
    /// The source broke off (a download whose connection dropped and could not be resumed):
    /// it says nothing about the bytes themselves.
    #[error("{0}")]
    SourceLost(String),
}

/// The error a stream returns once interrupted. Not `ErrorKind::Interrupted`: `std::io::copy`,
/// `read_to_end` and `read_exact` retry that kind forever, which spun pgtier at 100 % CPU.
pub fn cancelled() -> std::io::Error {
    std::io::Error::other(StreamStop::Cancelled)
}

/// The error a stream returns when its source broke off (see `StreamStop::SourceLost`).
pub fn source_lost(why: String) -> std::io::Error {
    std::io::Error::other(StreamStop::SourceLost(why))
}

/// Why `e` stopped a stream, when a stream said so, however deep a decoder wrapped it.
pub fn stop_of(e: &std::io::Error) -> Option<&StreamStop> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|x| x as &(dyn std::error::Error + 'static));
    while let Some(err) = cur {
        if let Some(stop) = err.downcast_ref::<StreamStop>() {
            return Some(stop);
        }
        // An io::Error's own `source` skips the error it carries: step into that one.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|x| x as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// What a cancelled run or sync says in its report.
pub const CANCELLED: &str = "interrupted by a signal";

/// An I/O error to return from a stream once interrupted.
pub fn check_io() -> std::io::Result<()> {
    if interrupted() { Err(cancelled()) } else { Ok(()) }
}

/// A failed-by-signal error for the library's own loops.
pub fn check() -> crate::error::Result<()> {
    if interrupted() { Err(crate::error::Error::Cancelled) } else { Ok(()) }
}

/// Sleeps for `d`, waking early (with `Error::Cancelled`) when a signal arrives: every wait of
/// pgtier's own (retries, backoff, polling a thaw or a lock) ends within a tenth of a second of
/// SIGINT or SIGTERM.
pub fn sleep(d: std::time::Duration) -> crate::error::Result<()> {
    let until = std::time::Instant::now() + d;
    loop {
        check()?;
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod stop_tests {
    use super::*;

    /// A decoder that wraps the stream's error in its own (and that in an io::Error again).
    #[derive(Debug, thiserror::Error)]
    #[error("decoding failed")]
    struct Decoder(#[source] std::io::Error);

    #[test]
    fn a_stream_stop_is_found_however_deep_it_was_wrapped() {
        let plain = source_lost("downloading k: reset".into());
        assert!(matches!(stop_of(&plain), Some(StreamStop::SourceLost(_))));
        let wrapped = std::io::Error::other(Decoder(source_lost("downloading k: reset".into())));
        assert!(matches!(stop_of(&wrapped), Some(StreamStop::SourceLost(_))));
        assert!(matches!(stop_of(&std::io::Error::other(Decoder(cancelled()))), Some(StreamStop::Cancelled)));
        assert!(stop_of(&std::io::Error::other("corrupt block")).is_none());
    }
}
