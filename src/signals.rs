//! Ctrl-C and SIGTERM: instead of dying mid-way, pgtier notices, stops its streams, runs its
//! cleanups (temporary files and databases) and exits 130.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM.
pub fn install() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// Whether a SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The error a stream returns once interrupted. Not `ErrorKind::Interrupted`: `std::io::copy`,
/// `read_to_end` and `read_exact` retry that kind forever, which spun pgtier at 100 % CPU.
pub fn cancelled() -> std::io::Error {
    std::io::Error::other(CANCELLED)
}

/// The message of a cancelled stream, to recognise it in reports.
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
