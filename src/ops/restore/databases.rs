//! The database side of a restore: temporary databases (recognisable names, a guard that drops
//! them, cleanup of those whose pgtier died) and the swap that puts a restored database in place.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::postgres::{Pg, Session, quote_ident, quote_literal};

/// Prefix of every temporary database pgtier creates; `cleanup` drops the ones whose creator died.
pub const TEMP_DB_PREFIX: &str = "pgtier_tmp_";

/// Swaps `temp` in for `target`, keeping the old one as `old`: connections are ended and both
/// renames happen in one transaction, so at any instant (a crash included) the name holds either
/// the old database or the new one. A client that reconnects in between makes the transaction
/// fail without changing anything; it is retried a few times.
pub(super) fn swap(pg: &Pg, target: &str, temp: &str, old: &str) -> Result<()> {
    let (t, tmp, o) = (quote_ident(target), quote_ident(temp), quote_ident(old));
    let mut last = None;
    for attempt in 1..=5 {
        let mut s = pg.admin_session()?;
        let done = (|| -> Result<()> {
            s.exec("BEGIN")?;
            let ended = s.terminate_connections(target)?;
            if ended > 0 {
                tracing::info!("ended {ended} connection(s) to {target}");
            }
            s.exec(&format!("ALTER DATABASE {t} RENAME TO {o}"))?;
            crate::fault::point("restore:mid-swap");
            s.exec(&format!("ALTER DATABASE {tmp} RENAME TO {t}"))?;
            s.exec("COMMIT")
        })();
        match done {
            Ok(()) => return s.close(),
            Err(e) => {
                tracing::warn!("swapping in {target:?} (attempt {attempt} of 5): {e}");
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(200 * attempt));
            }
        }
    }
    Err(last
        .expect("at least one attempt")
        .context(format!("could not swap the restored database in for {target:?}; it was left unchanged")))
}

/// Drops the temporary database unless disarmed, however the restore or drill ends.
pub struct TempDb<'a> {
    pub(super) pg: &'a Pg,
    pub(super) name: Option<String>,
}

impl<'a> TempDb<'a> {
    /// Guards `name`, which was just created.
    pub fn new(pg: &'a Pg, name: &str) -> TempDb<'a> {
        TempDb { pg, name: Some(name.to_string()) }
    }

    /// Drops it now, reporting a failure (a leaked database is a failure, not a log line).
    pub fn drop_now(&mut self) -> Result<()> {
        match self.name.take() {
            Some(name) => drop_database(self.pg, &name),
            None => Ok(()),
        }
    }
}

impl Drop for TempDb<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            match drop_database(self.pg, &name) {
                Ok(()) => tracing::info!("dropped temporary database {name}"),
                Err(e) => tracing::error!("could not drop temporary database {name}: {e}; the next `pgtier run` retries"),
            }
        }
    }
}

static TEMP_SEQ: AtomicU32 = AtomicU32::new(0);

/// `pgtier_tmp_{pid}_{n}_{target}`, cut to PostgreSQL's 63 bytes.
pub fn temp_db_name(target: &str) -> String {
    let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    truncate_name(&format!("{TEMP_DB_PREFIX}{}_{}_{n}_{target}", host_tag(), std::process::id()))
}

/// This host, in a temporary database's name (`h` and six hex digits of its name's hash): a
/// server shared by several pgtier hosts has each one clean up only its own leftovers.
fn host_tag() -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(crate::tell::alerts::hostname().as_bytes());
    format!("h{}", &hex::encode(h)[..6])
}

/// Whether a temporary database was left by a pgtier process of this host that is gone. Names
/// without a host tag (older versions) are judged by their process id alone.
fn left_by_a_dead_process(name: &str) -> bool {
    let rest = &name[TEMP_DB_PREFIX.len()..];
    let mut parts = rest.split('_');
    let first = parts.next().unwrap_or_default();
    let pid = if first.len() == 7 && first.starts_with('h') && first[1..].chars().all(|c| c.is_ascii_hexdigit()) {
        if first != host_tag() {
            return false;
        }
        parts.next()
    } else {
        Some(first)
    };
    let pid: Option<i32> = pid.and_then(|p| p.parse().ok());
    !pid.is_some_and(crate::fsutil::process_alive)
}

/// `{target}_pgtier_old_{YYYYMMDD_HHMMSS}` (then `_2`, `_3`, … when taken), the target cut so
/// the suffix survives.
pub fn old_db_name(admin: &mut Session, target: &str, now: DateTime<Utc>) -> Result<String> {
    for n in 1..1000 {
        let mut suffix = format!("_pgtier_old_{}", now.format("%Y%m%d_%H%M%S"));
        if n > 1 {
            suffix += &format!("_{n}");
        }
        let name = format!("{}{suffix}", truncate_at(target, 63 - suffix.len()));
        if admin.database_info(&name)?.is_none() {
            return Ok(name);
        }
    }
    Err(crate::failed!("no free name to keep the old {target:?} under"))
}

/// Drops `db`, ending its connections; subscriptions inside it (which would block the drop) are
/// detached from their replication slot and dropped first, leaving the slot on the publisher alone.
pub fn drop_database(pg: &Pg, db: &str) -> Result<()> {
    let mut admin = pg.admin_session()?;
    let subs: Vec<String> = admin.query_json(&format!(
        "SELECT coalesce(jsonb_agg(s.subname), '[]') FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = {}",
        quote_literal(db)
    ))?;
    if !subs.is_empty() {
        let mut s = pg.session(db)?;
        for sub in &subs {
            let q = quote_ident(sub);
            s.exec(&format!("ALTER SUBSCRIPTION {q} DISABLE"))?;
            s.exec(&format!("ALTER SUBSCRIPTION {q} SET (slot_name = NONE)"))?;
            s.exec(&format!("DROP SUBSCRIPTION {q}"))?;
        }
        s.close()?;
    }
    admin.drop_database(db)?;
    admin.close()
}

fn truncate_name(s: &str) -> String {
    truncate_at(s, 63).to_string()
}

fn truncate_at(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub fn check_db_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 63 || name.chars().any(|c| c.is_control()) {
        return Err(crate::usage!("{name:?} is not a database name (1 to 63 bytes, no control characters)"));
    }
    if name.starts_with(TEMP_DB_PREFIX) {
        return Err(crate::usage!("{name:?}: database names starting with {TEMP_DB_PREFIX} are reserved for pgtier's temporary databases"));
    }
    Ok(())
}

/// Drops temporary databases left by pgtier processes that no longer exist on this host.
pub fn drop_stale_temp_dbs(pg: &Pg) -> Result<Vec<String>> {
    let mut admin = pg.admin_session()?;
    let mut dropped = Vec::new();
    for name in admin.databases_like(TEMP_DB_PREFIX)? {
        if left_by_a_dead_process(&name) {
            drop_database(pg, &name)?;
            dropped.push(name);
        }
    }
    admin.close()?;
    Ok(dropped)
}
