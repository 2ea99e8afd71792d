//! One agent at a time per project/env, across hosts: a lease object in the bucket
//! (`{project}/{env}/.pgtier-lease`), written only with S3 conditional writes. It is created with
//! `If-None-Match: *`; renewed, taken over once expired, and released with `If-Match` on the ETag
//! last seen, so two agents can never both believe they wrote it. The expiry is written inside,
//! by the store's clock, and a thread renews it while the holder works.
//!
//! Deletion is fenced: once a lease was lost in this process (it expired while the holder was
//! stalled, or another agent took it over) every later deletion, local or off-site, is refused
//! for the rest of the run (`may_delete`). A holder killed with SIGKILL blocks others until the
//! expiry only.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{Condition, Store, StoreError};

/// The lease's name in an env's folder.
pub const NAME: &str = ".pgtier-lease";
/// A lease object is small; anything larger is not one.
const MAX_BYTES: u64 = 64 * 1024;

/// What the lease object says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Random, so a holder knows its own lease from another process's with the same pid.
    pub run: String,
    /// What the holder is doing (`run`, `backup`, `sync`, `prune`).
    pub command: String,
    pub since: DateTime<Utc>,
    /// By the store's clock.
    pub expires: DateTime<Utc>,
    #[serde(default)]
    pub released: bool,
}

impl Holder {
    /// Whether another agent may take the lease over at `store_now`.
    pub fn free_at(&self, store_now: DateTime<Utc>) -> bool {
        self.released || self.expires <= store_now
    }

    /// "host db-1, pid 4242 (run), since 2026-12-05 01:00:03 UTC, expires in 8m 10s".
    pub fn describe(&self, store_now: DateTime<Utc>) -> String {
        let when = if self.expires > store_now {
            format!("expires in {}", crate::ui::span(self.expires - store_now))
        } else {
            format!("expired {} ago", crate::ui::span(store_now - self.expires))
        };
        format!("host {}, pid {} ({}), since {}, {when}", self.host, self.pid, self.command, self.since.format("%Y-%m-%d %H:%M:%S UTC"))
    }
}

/// The store's time now, from this host's clock and the skew the store's answers showed.
fn store_now(store: &dyn Store) -> DateTime<Utc> {
    Utc::now() - store.clock_skew().unwrap_or_else(chrono::Duration::zero)
}

/// A lease written by a run of this host whose process is gone (kill -9, an OOM kill): nobody
/// holds it, so it is taken over at once rather than at its expiry.
fn left_by_a_dead_run(h: &Holder) -> bool {
    let dead = h.host == crate::fsutil::hostname() && !crate::fsutil::process_alive(h.pid as i32);
    if dead {
        tracing::info!("taking over the lease that pid {} of this host left when it died", h.pid);
    }
    dead
}

/// Whether a store honours conditional writes, as `probe` found; cached per store for the
/// process (one probe per command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional {
    Honoured,
    /// Why not, in words for the operator.
    Ignored(String),
}

/// Tries conditional writes on a scratch key: a second create and a write with a wrong ETag must
/// both be refused. A store that accepts either would let two agents hold one lease.
pub fn probe(store: &dyn Store) -> std::result::Result<Conditional, StoreError> {
    static SEEN: OnceLock<Mutex<HashMap<String, Conditional>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let name = store.describe();
    if let Some(c) = seen.lock().unwrap_or_else(|p| p.into_inner()).get(&name) {
        return Ok(c.clone());
    }
    let key = format!(".pgtier-probe-{}-{}-{}", crate::fsutil::hostname(), std::process::id(), random_id());
    let found = probe_key(store, &key);
    let _ = store.delete(&key);
    let found = found?;
    seen.lock().unwrap_or_else(|p| p.into_inner()).insert(name, found.clone());
    Ok(found)
}

fn probe_key(store: &dyn Store, key: &str) -> std::result::Result<Conditional, StoreError> {
    let url = format!("{}/{key}", store.describe());
    let unsupported = |e: StoreError| match e {
        StoreError::Other(m) => Ok(Conditional::Ignored(format!("it refused a conditional write: {m}"))),
        e => Err(e),
    };
    let etag = match store.put_if(key, b"{}", Condition::Absent) {
        Ok(t) => t,
        Err(e) => return unsupported(e),
    };
    match store.put_if(key, b"{}", Condition::Absent) {
        Ok(_) => return Ok(Conditional::Ignored(format!("it let a second create of {url} (If-None-Match: *) overwrite the first"))),
        Err(StoreError::Precondition(_)) => {}
        Err(e) => return unsupported(e),
    }
    let wrong = if etag == "\"0\"" { "\"1\"" } else { "\"0\"" };
    match store.put_if(key, b"{}", Condition::Matches(wrong)) {
        Ok(_) => Ok(Conditional::Ignored(format!("it let a write with a wrong ETag (If-Match) replace {url}"))),
        Err(StoreError::Precondition(_)) => Ok(Conditional::Honoured),
        Err(e) => unsupported(e),
    }
}

fn random_id() -> String {
    let mut b = [0u8; 8];
    // SAFETY: getrandom fills the buffer it is given.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t = Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64 ^ ((std::process::id() as u64) << 32);
        b = t.to_le_bytes();
    }
    hex::encode(b)
}

/// The held lease's state, shared with its renewing thread and the deletion fence.
struct Shared {
    ttl: Duration,
    state: Mutex<State>,
}

struct State {
    etag: String,
    holder: Holder,
    /// When the request of the last renewal that the store accepted was sent.
    confirmed: Instant,
    lost: Option<String>,
}

impl Shared {
    /// Past this age of the last confirmed renewal, the holder counts its lease as lost, a
    /// fifth of the ttl before any other agent may count it as expired.
    fn limit(&self) -> Duration {
        self.ttl * 4 / 5
    }

    /// None while the lease holds; why not once it is lost (and from then on).
    fn check(&self) -> Option<String> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.lost.is_none() && s.confirmed.elapsed() > self.limit() {
            s.lost = Some(format!(
                "the lease was last renewed {} ago, longer than it may be trusted ({}): this agent was stalled",
                crate::ui::span(chrono::Duration::from_std(s.confirmed.elapsed()).unwrap_or_default()),
                crate::ui::span(chrono::Duration::from_std(self.limit()).unwrap_or_default())
            ));
        }
        s.lost.clone()
    }
}

/// The process's deletion fence.
#[derive(Default)]
struct Fence {
    /// The lease held now, if any.
    held: Option<Arc<Shared>>,
    /// Once set, nothing is deleted for the rest of the process.
    refused: Option<String>,
}

fn fence() -> std::sync::MutexGuard<'static, Fence> {
    static FENCE: OnceLock<Mutex<Fence>> = OnceLock::new();
    FENCE.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether this process may still delete anything: not once a lease it held was lost, nor
/// after `refuse_deletions`.
pub fn may_delete() -> Result<()> {
    let mut f = fence();
    if f.refused.is_none()
        && let Some(why) = f.held.as_ref().and_then(|h| h.check())
    {
        tracing::warn!("lease lost: {why}; nothing more is deleted in this run");
        f.refused = Some(why);
    }
    match &f.refused {
        Some(why) => Err(Error::Failed(format!("nothing is deleted: {why}"))),
        None => Ok(()),
    }
}

/// Refuses every deletion for the rest of the process (a lease that could not be taken or
/// confirmed).
pub fn refuse_deletions(why: &str) {
    let mut f = fence();
    if f.refused.is_none() {
        f.refused = Some(why.to_string());
    }
}

/// A lease held on one project/env; renewed by a thread until dropped, then released.
pub struct Lease {
    store: Arc<dyn Store>,
    key: String,
    shared: Arc<Shared>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    renewer: Option<std::thread::JoinHandle<()>>,
    /// Whether this process's deletions are fenced by it (`fence`).
    fenced: bool,
}

/// What taking a lease came to.
pub enum Taken {
    Held(Lease),
    /// The store does not honour conditional writes: no lease, only this host's lock; why.
    Unsupported(String),
}

impl Lease {
    /// Takes the lease at `key` (waiting up to `wait` while another agent holds it), or fails
    /// with `Locked` naming the holder.
    pub fn take(store: Arc<dyn Store>, key: &str, ttl: Duration, wait: Option<Duration>, command: &str) -> Result<Taken> {
        if let Conditional::Ignored(why) = probe(&*store)? {
            return Ok(Taken::Unsupported(format!(
                "{} does not honour conditional writes ({why}): agents on other hosts are not kept apart, only runs on this host",
                store.describe()
            )));
        }
        let started = Instant::now();
        let run = random_id();
        let mut cut_short = 0;
        loop {
            crate::signals::check()?;
            let sent = Instant::now();
            let mine = |now: DateTime<Utc>| Holder {
                host: crate::fsutil::hostname(),
                pid: std::process::id(),
                run: run.clone(),
                command: command.to_string(),
                since: Utc::now(),
                expires: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
                released: false,
            };
            let holder = mine(store_now(&*store));
            let body = serde_json::to_vec_pretty(&holder).expect("lease");
            let taken = match store.put_if(key, &body, Condition::Absent) {
                Ok(etag) => Some((etag, holder)),
                Err(StoreError::Precondition(_)) => {
                    let (bytes, etag) = match store.get_tagged(key, MAX_BYTES) {
                        Ok(x) => x,
                        // Released by deletion between the two requests: try again.
                        Err(StoreError::NotFound(_)) => continue,
                        // A read cut short (the holder replaced or deleted it mid-read): the
                        // lease is small and read again, a few times.
                        Err(StoreError::Unreachable(m)) if cut_short < 5 => {
                            cut_short += 1;
                            tracing::debug!("reading the lease again: {m}");
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let now = store_now(&*store);
                    let held = serde_json::from_slice::<Holder>(&bytes).ok().filter(|h| !h.free_at(now) && !left_by_a_dead_run(h));
                    match held {
                        Some(h) => {
                            let who = h.describe(now);
                            match wait {
                                Some(w) if started.elapsed() < w => {
                                    std::thread::sleep(Duration::from_millis(500).min(ttl / 4));
                                    continue;
                                }
                                Some(w) => {
                                    return Err(Error::Locked(format!(
                                        "another pgtier agent still holds the lease {}/{key} after waiting {}: {who}",
                                        store.describe(),
                                        crate::ui::span(chrono::Duration::from_std(w).unwrap_or_default())
                                    )));
                                }
                                None => {
                                    return Err(Error::Locked(format!(
                                        "another pgtier agent holds the lease {}/{key}: {who}",
                                        store.describe()
                                    )));
                                }
                            }
                        }
                        // Released, expired, left by a dead run of this host, or not a lease at
                        // all (a torn hand edit): taken over only if nobody wrote it since it
                        // was read.
                        None => {
                            let holder = mine(now);
                            let body = serde_json::to_vec_pretty(&holder).expect("lease");
                            match store.put_if(key, &body, Condition::Matches(&etag)) {
                                Ok(etag) => Some((etag, holder)),
                                Err(StoreError::Precondition(_) | StoreError::NotFound(_)) => None,
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            };
            if let Some((etag, holder)) = taken {
                let shared = Arc::new(Shared { ttl, state: Mutex::new(State { etag, holder, confirmed: sent, lost: None }) });
                let stop = Arc::new((Mutex::new(false), Condvar::new()));
                let renewer = {
                    let (store, key, shared, stop) = (store.clone(), key.to_string(), shared.clone(), stop.clone());
                    std::thread::Builder::new()
                        .name("lease".into())
                        .spawn(move || renew(&*store, &key, &shared, &stop))
                        .map_err(|e| Error::Failed(format!("cannot start the lease's renewing thread: {e}")))?
                };
                return Ok(Taken::Held(Lease { store, key: key.to_string(), shared, stop, renewer: Some(renewer), fenced: false }));
            }
        }
    }

    /// Makes every deletion of this process depend on the lease: refused once it is lost,
    /// for the rest of the process.
    pub fn fence(mut self) -> Lease {
        fence().held = Some(self.shared.clone());
        self.fenced = true;
        self
    }

    /// Why the lease is lost, if it is.
    pub fn lost(&self) -> Option<String> {
        self.shared.check()
    }
}

/// Renews every quarter of the ttl until told to stop; a refused renewal (another agent wrote
/// the lease) or one confirmed too long ago loses it for good.
fn renew(store: &dyn Store, key: &str, shared: &Shared, stop: &(Mutex<bool>, Condvar)) {
    let every = shared.ttl / 4;
    loop {
        {
            let (m, cv) = stop;
            let g = m.lock().unwrap_or_else(|p| p.into_inner());
            let (g, _) = cv.wait_timeout_while(g, every, |s| !*s).unwrap_or_else(|p| p.into_inner());
            if *g {
                return;
            }
        }
        if shared.check().is_some() {
            return;
        }
        let (etag, mut holder) = {
            let s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            (s.etag.clone(), s.holder.clone())
        };
        let sent = Instant::now();
        holder.expires = store_now(store) + chrono::Duration::from_std(shared.ttl).unwrap_or_default();
        let body = serde_json::to_vec_pretty(&holder).expect("lease");
        let answer = store.put_if(key, &body, Condition::Matches(&etag));
        let mut s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        match answer {
            // Accepted only if this agent was not already counting itself stalled.
            Ok(etag) if s.lost.is_none() => {
                s.etag = etag;
                s.holder = holder;
                s.confirmed = sent;
            }
            Ok(_) => return,
            Err(StoreError::Precondition(_) | StoreError::NotFound(_)) => {
                s.lost.get_or_insert_with(|| format!("another agent took the lease {}/{key} over", store.describe()));
                return;
            }
            Err(e) => tracing::warn!("could not renew the lease {}/{key}: {e}; trying again", store.describe()),
        }
    }
}

impl Drop for Lease {
    /// Stops renewing and releases the lease (if it is still this agent's), so the next agent
    /// need not wait for the expiry.
    fn drop(&mut self) {
        {
            let (m, cv) = &*self.stop;
            *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        if self.fenced {
            let mut f = fence();
            if let Some(why) = self.shared.check() {
                f.refused.get_or_insert(why);
            }
            if f.held.as_ref().is_some_and(|h| Arc::ptr_eq(h, &self.shared)) {
                f.held = None;
            }
        }
        let (etag, mut holder, lost) = {
            let s = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            (s.etag.clone(), s.holder.clone(), s.lost.is_some())
        };
        // Released by deleting it (nothing is left in the bucket between runs), once proven
        // still ours; where it cannot be deleted (a bucket whose default retention locks it),
        // by marking it released.
        if lost || self.shared.check().is_some() {
            return;
        }
        if self.store.delete(&self.key).is_ok() {
            return;
        }
        holder.released = true;
        holder.expires = store_now(&*self.store);
        let body = serde_json::to_vec_pretty(&holder).expect("lease");
        if let Err(e) = self.store.put_if(&self.key, &body, Condition::Matches(&etag)) {
            tracing::warn!("could not release the lease {}/{}: {e}; it expires by itself", self.store.describe(), self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn a_second_agent_is_told_who_holds_the_lease_and_gets_it_once_released() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(0));
        let Taken::Held(first) = Lease::take(store.clone(), "p/e/.pgtier-lease", Duration::from_secs(60), None, "run").unwrap() else {
            panic!("memory honours conditions")
        };
        let Err(Error::Locked(m)) = Lease::take(store.clone(), "p/e/.pgtier-lease", Duration::from_secs(60), None, "run") else {
            panic!("a second agent must not get a held lease")
        };
        assert!(m.contains(&format!("pid {} (run)", std::process::id())) && m.contains("expires in"), "{m}");
        drop(first);
        assert!(matches!(Lease::take(store, "p/e/.pgtier-lease", Duration::from_secs(60), None, "run").unwrap(), Taken::Held(_)));
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_its_old_holder_knows_it_lost_it() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(0));
        let Taken::Held(old) = Lease::take(store.clone(), "k", Duration::from_millis(400), None, "run").unwrap() else { panic!() };
        // Stalled: no renewal reaches the store (the renewing thread is stopped by hand).
        *old.stop.0.lock().unwrap() = true;
        old.stop.1.notify_all();
        std::thread::sleep(Duration::from_millis(500));
        let Taken::Held(_new) = Lease::take(store.clone(), "k", Duration::from_secs(60), None, "run").unwrap() else { panic!() };
        assert!(old.lost().is_some());
    }
}
