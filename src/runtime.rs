//! The one async runtime of the process: S3 clients and webhook deliveries share it (started
//! on first use, two worker threads). Everything above it is synchronous and waits with
//! `block_on` from its own thread.

use std::sync::{Arc, OnceLock};

/// The shared runtime, started on first use.
pub fn shared() -> std::io::Result<Arc<tokio::runtime::Runtime>> {
    static RUNTIME: OnceLock<Arc<tokio::runtime::Runtime>> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("pgtier-io").enable_all().build()?;
    Ok(RUNTIME.get_or_init(|| Arc::new(rt)).clone())
}
