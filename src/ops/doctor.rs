//! `pgtier doctor`: everything the first night needs, checked now, online. Each check is one
//! line, ok / warn / fail, and a failing or doubtful one says what to do in plain words.
//! Doctor changes nothing but a scratch file in `backup_root` and a scratch object on each
//! destination, both removed at once (and the test alert, when asked for).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::{Config, Location, Project, RemoteConfig, RemoteUrl};
use crate::context::Context;
use crate::crypto::Keys;
use crate::pipeline::FinishWrite;
use crate::postgres::{Pg, Session};
use crate::remote::Remote;
use crate::store::PutOptions;
use crate::store::StoreError;
use crate::vocab::EncryptionConfig;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check: what was checked, what was found, and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: Status,
    /// What was checked: `backup_root`, `shop/production database`, `remote nas`, ...
    pub check: String,
    pub detail: String,
    /// What to do, in plain words; None when there is nothing to do.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { status: Status::Ok, check: check.into(), detail: one_line(detail.into()), fix: None }
    }
    pub fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { status: Status::Warn, check: check.into(), detail: one_line(detail.into()), fix: Some(fix.into()) }
    }
    pub fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { status: Status::Fail, check: check.into(), detail: one_line(detail.into()), fix: Some(fix.into()) }
    }
}

/// A tool's multi-line message (psql's hint on its own line) as one line of the report.
fn one_line(s: String) -> String {
    if s.contains(['\n', '\t']) { s.split_whitespace().collect::<Vec<_>>().join(" ") } else { s }
}

/// What to check.
#[derive(Debug, Default)]
pub struct Options {
    pub project: Option<String>,
    pub env: Option<String>,
    /// Deliver a test alert through every configured channel.
    pub send_test_alert: bool,
}

/// Runs every check, handing each to `report` as soon as it is known.
pub fn run(cfg: &Config, opts: &Options, report: &mut dyn FnMut(Check)) {
    report(backup_root(cfg));
    let projects: Vec<&Project> = cfg.projects.values().filter(|p| opts.project.as_ref().is_none_or(|n| *n == p.name)).collect();
    for p in &projects {
        for f in p.database_findings() {
            report(Check::fail(
                format!("{} databases", p.name),
                f.message,
                "make the server reachable with the project's connection, or add the database to exclude:",
            ));
        }
        for (env, db) in p.databases.iter().filter(|(e, _)| opts.env.as_ref().is_none_or(|n| n == *e)) {
            for c in database(cfg, p, env, db) {
                report(c);
            }
            report(room(cfg, p, env));
        }
        if let Some(enc) = &p.encryption {
            report(encryption(&p.name, enc));
        }
    }
    let world = Context::new(cfg);
    for rc in &cfg.remotes {
        for c in destination(cfg, &world, rc) {
            report(c);
        }
    }
    report(alerts(cfg, opts.send_test_alert));
}

fn backup_root(cfg: &Config) -> Check {
    let what = "backup_root";
    let root = &cfg.backup_root;
    // The first night creates it: check the nearest folder that exists.
    let existing = root.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
    if !existing.is_dir() {
        return Check::fail(
            what,
            format!("{}: {} is not a folder", root.display(), existing.display()),
            format!("point backup_root in {} at a folder", cfg.file.display()),
        );
    }
    let probe = tempfile::Builder::new().prefix(".pgtier-doctor-").tempfile_in(existing);
    if let Err(e) = probe {
        return Check::fail(
            what,
            format!("{}: cannot write in {}: {e}", root.display(), existing.display()),
            "give the user pgtier runs as write access to it, or point backup_root at a folder it can write",
        );
    }
    drop(probe);
    let free = crate::fsutil::free_space(existing).unwrap_or(u64::MAX);
    let state =
        if existing == root.as_path() { String::new() } else { "does not exist yet (the first backup creates it, 0700); ".to_string() };
    if free < cfg.min_free_space {
        return Check::fail(
            what,
            format!(
                "{}: {state}{} free, below min_free_space ({})",
                root.display(),
                crate::ui::human_size(free),
                crate::ui::human_size(cfg.min_free_space)
            ),
            "free space there, move backup_root, or lower min_free_space",
        );
    }
    if existing == root.as_path() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(root).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o700);
        if mode & 0o077 != 0 {
            return Check::warn(
                what,
                format!("{}: writable, {} free, but mode {mode:04o} lets others in", root.display(), crate::ui::human_size(free)),
                format!("chmod 700 {}", root.display()),
            );
        }
    }
    Check::ok(what, format!("{}: {state}writable, {} free", root.display(), crate::ui::human_size(free)))
}

/// Connection, pg_dump, privileges and an exported snapshot: what `pg_dump` needs.
fn database(cfg: &Config, p: &Project, env: &str, db: &str) -> Vec<Check> {
    let what = format!("{}/{env} database", p.name);
    let where_ = match (&p.connection.container, &p.connection.host, p.connection.port) {
        (Some(c), _, _) => format!("in container {c}"),
        (None, h, port) => format!("at {}:{}", h.as_deref().unwrap_or("localhost"), port.map_or("5432".into(), |n| n.to_string())),
    };
    let fix_conn = format!(
        "check the database: block of {} in {} (host, port, user, password_file), and that the server runs",
        p.name,
        cfg.projects_file.display()
    );
    let pg = match Pg::connect(&p.connection, cfg.pg_bindir.as_deref(), db) {
        Ok(pg) => pg,
        Err(e) => return vec![Check::fail(what, format!("{db:?} {where_} as {}: {e}", p.connection.user), fix_conn)],
    };
    let mut out = vec![Check::ok(
        &what,
        format!("{db:?} {where_} as {}: PostgreSQL {}, pg_dump {}", pg.user(), pg.server_version(), pg.pg_dump_version()),
    )];
    out.push(tools(cfg, p, env, &pg));
    let mut session = match Session::start(&pg, db) {
        Ok(s) => s,
        Err(e) => {
            out.push(Check::fail(format!("{}/{env} privileges", p.name), e.to_string(), fix_conn));
            return out;
        }
    };
    out.push(privileges(&mut session, &format!("{}/{env} privileges", p.name), pg.user(), db));
    out.push(snapshot(&mut session, &format!("{}/{env} snapshot", p.name)));
    let _ = session.close();
    out
}

/// Which tools the backup, the restores and the drills of this env use, and whether each can
/// work: the backups this host writes, and the newest one here if another pg_dump wrote it.
fn tools(cfg: &Config, p: &Project, env: &str, pg: &Pg) -> Check {
    use crate::postgres::tools::{major_of, written_by};
    let what = format!("{}/{env} tools", p.name);
    let mut writers = vec![pg.pg_dump_version().major];
    let dir = cfg.env_dir(&p.name, env);
    if let Ok(listing) = crate::records::listing::Listing::scan(&dir, &p.name, env)
        && let Some(major) = listing.latest().and_then(|b| b.manifest.pg_dump_version.as_deref()).and_then(major_of)
        && !writers.contains(&major)
    {
        writers.push(major);
    }
    let mut said = vec![format!("backup: pg_dump {}", pg.pg_dump_version())];
    for w in writers {
        match pg.restore_tool(written_by(w)) {
            Ok(t) => said.push(format!("restore and drill of pg_dump {w}'s backups: {}", t.describe())),
            Err(e) => {
                return Check::fail(
                    what,
                    format!("restores and drills of pg_dump {w}'s backups cannot run here: {e}"),
                    "install the client tools named above",
                );
            }
        }
    }
    Check::ok(what, said.join("; "))
}

/// The room in the scratch folder the newest backup's restore (and a parallel dump) needs: a
/// directory-format dump is unpacked there as it arrives (its files compressed, at most about
/// its stored size); a custom archive streams into pg_restore (with `--jobs` it is
/// spooled there decoded, larger than stored).
fn room(cfg: &Config, p: &Project, env: &str) -> Check {
    let what = format!("{}/{env} scratch room", p.name);
    let scratch = &cfg.scratch_dir;
    let existing = scratch.ancestors().find(|d| d.exists()).unwrap_or(Path::new("/"));
    let free = crate::fsutil::free_space(existing).unwrap_or(u64::MAX);
    let listing = crate::records::listing::Listing::scan(&cfg.env_dir(&p.name, env), &p.name, env).ok();
    let newest = listing.as_ref().and_then(|l| l.latest()).map(|b| &b.manifest);
    let (needed, why) = match newest {
        Some(m) if m.format == "directory" => (
            m.size + crate::scratch::unpack_margin(m.size),
            format!("restoring the newest backup unpacks its dump folder there first: about {} needed", crate::ui::human_size(m.size)),
        ),
        Some(m) if p.backup_jobs > 1 => (
            m.size,
            format!(
                "pg_dump -j {} writes its files there before they are archived: about {} needed (the newest backup's size)",
                p.backup_jobs,
                crate::ui::human_size(m.size)
            ),
        ),
        Some(m) => (0, format!("the newest backup ({}) streams into pg_restore: no room needed unless --jobs spools it", m.format)),
        None => (0, "no backup here yet to size".to_string()),
    };
    let detail = format!("{}: {} free; {why}", scratch.display(), crate::ui::human_size(free));
    if free < needed {
        return Check::fail(what, detail, "free space there, or set scratch_dir in pgtier.yml to a folder with room");
    }
    Check::ok(what, detail)
}

/// Whether the role can read everything pg_dump reads.
fn privileges(s: &mut Session, what: &str, user: &str, db: &str) -> Check {
    let superuser = s.query_value("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").unwrap_or_default() == "t";
    if superuser {
        return Check::ok(what, format!("{user} is a superuser: it reads every table"));
    }
    let unreadable = s.query_lines(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'm', 'S') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
         AND (NOT has_schema_privilege(n.oid, 'USAGE') OR NOT has_table_privilege(c.oid, 'SELECT')) ORDER BY 1",
    );
    match unreadable {
        Err(e) => Check::fail(what, format!("cannot read the catalog: {e}"), "grant the backup role CONNECT on the database"),
        Ok(rows) if rows.is_empty() => Check::ok(what, format!("{user} can read every table and sequence of {db:?}")),
        Ok(rows) => {
            let shown: Vec<&str> = rows.iter().take(5).map(String::as_str).collect();
            let more = if rows.len() > 5 { format!(" and {} more", rows.len() - 5) } else { String::new() };
            Check::fail(
                what,
                format!("{user} cannot read {} table(s) or sequence(s): {}{more}", rows.len(), shown.join(", ")),
                format!(
                    "grant it pg_read_all_data (GRANT pg_read_all_data TO {user}), or SELECT on those tables and USAGE on their schemas"
                ),
            )
        }
    }
}

/// pg_dump exports a snapshot to dump in parallel and consistently.
fn snapshot(s: &mut Session, what: &str) -> Check {
    let result = (|| {
        s.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let id = s.query_value("SELECT pg_export_snapshot()");
        s.exec("ROLLBACK")?;
        id
    })();
    match result {
        Ok(_) => Check::ok(what, "can export a snapshot (consistent and parallel dumps)"),
        Err(e) => Check::fail(
            what,
            format!("cannot export a snapshot: {e}"),
            "check the server's state (a standby must be in hot standby) and the role's rights",
        ),
    }
}

/// A writer into shared memory, for the test message.
struct Collect(Arc<Mutex<Vec<u8>>>);

impl Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FinishWrite for Collect {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encrypts a test message to the configured recipients and, where this host holds an identity
/// or passphrase, opens it again: a wrong identity file is found now, not at 3 a.m.
fn encryption(project: &str, enc: &EncryptionConfig) -> Check {
    let what = format!("{project} encryption");
    const MESSAGE: &[u8] = b"pgtier doctor: test message\n";
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sealed = (|| {
        let (mut w, info) = crate::crypto::encryptor(enc, Box::new(Collect(buf.clone())))?;
        w.write_all(MESSAGE).and_then(|_| w.finish()).map_err(|e| crate::failed!("cannot encrypt: {e}"))?;
        Ok::<_, crate::Error>(info)
    })();
    let info = match sealed {
        Ok(i) => i,
        Err(e) => return Check::fail(what, e.to_string(), "check the recipients (or recipient_keys) of this project's encryption block"),
    };
    let to = if info.recipients.iter().any(|r| r == "passphrase") {
        "a passphrase".to_string()
    } else {
        format!("{} recipient(s)", info.recipients.len())
    };
    let keys = match Keys::for_block(Some(enc)) {
        Ok(k) => k,
        Err(e) => return Check::fail(what, e.to_string(), "check the identity or secret key file and its permissions"),
    };
    if keys.is_empty() {
        return Check::ok(
            what,
            format!("{} to {to}; no identity on this host (restores need the private key from elsewhere)", info.scheme),
        );
    }
    let bytes = buf.lock().expect("not poisoned").clone();
    let layer = crate::pipeline::sniff(&bytes);
    let opened = keys.decryptor(layer, Box::new(std::io::Cursor::new(bytes)), "the test message").and_then(|mut r| {
        let mut plain = Vec::new();
        r.read_to_end(&mut plain).map_err(|e| crate::failed!("{e}"))?;
        Ok(plain)
    });
    match opened {
        Ok(plain) if plain == MESSAGE => Check::ok(what, format!("{} to {to}; this host's key opens what it writes", info.scheme)),
        Ok(_) => Check::fail(what, "the test message came back different", "report this as a bug"),
        Err(e) => Check::fail(
            what,
            format!("{}: a test message to the recipients does not open with this host's key: {e}", info.scheme),
            "the identity (or secret key) does not belong to the recipients: fix identity_file or the recipients so they are one key pair",
        ),
    }
}

/// Reachable with credentials, bucket present, a scratch object written, read and deleted,
/// versioning and Object Lock as the tiers it holds need.
fn destination(cfg: &Config, world: &Context, rc: &RemoteConfig) -> Vec<Check> {
    let what = format!("remote {}", rc.name);
    let r: &Remote = match world.destination(&rc.name) {
        Ok(r) => r,
        Err(e) => return vec![Check::fail(what, e.to_string(), format!("check {} in {}", rc.key, cfg.file.display()))],
    };
    let url = r.store.describe();
    let locked_tiers: Vec<String> = cfg
        .policies
        .values()
        .flat_map(|p| p.tiers.iter())
        .filter(|t| t.object_lock.is_some() && t.lives(Location::Remote) && rc.holds(t.name))
        .map(|t| t.name.to_string())
        .collect();
    let mut out = Vec::new();
    if let Some(locks) = r.store.locks() {
        match locks.bucket() {
            Err(e) => {
                return vec![Check::fail(what, format!("{url}: {e}"), fix_store(&e))];
            }
            Ok(b) if !b.exists => {
                return vec![Check::fail(
                    what,
                    format!("{url}: the bucket does not exist"),
                    "create it with `pgtier remote init` (or check the bucket name in the url)",
                )];
            }
            Ok(b) => {
                let lock_what = format!("{what} object lock");
                if !locked_tiers.is_empty() && !b.object_lock {
                    out.push(Check::fail(
                        lock_what,
                        format!("{url}: Object Lock is off, but the policy locks {}", locked_tiers.join(", ")),
                        "run `pgtier remote init` (a bucket made without Object Lock may need to be recreated)",
                    ));
                } else if !b.versioning {
                    out.push(Check::warn(
                        lock_what,
                        format!("{url}: versioning is off: an overwritten or deleted object cannot be recovered"),
                        "run `pgtier remote init` to turn it on with lifecycle rules",
                    ));
                } else {
                    let lock = if b.object_lock { "Object Lock on" } else { "no Object Lock (no tier is locked)" };
                    out.push(Check::ok(lock_what, format!("versioning on, {lock}")));
                }
            }
        }
    }
    out.insert(0, scratch_object(&what, r, rc));
    out.push(match crate::remote::lease::probe(&*r.store) {
        Ok(crate::remote::lease::Conditional::Honoured) => {
            Check::ok(format!("{what} lease"), "conditional writes honoured: agents on several hosts take turns")
        }
        Ok(crate::remote::lease::Conditional::Ignored(why)) => Check::warn(
            format!("{what} lease"),
            format!("conditional writes are not honoured ({why}): agents on several hosts cannot be kept apart, only runs on this host"),
            "use a store that honours If-None-Match and If-Match (AWS S3 does), or run one agent per project/env",
        ),
        Err(e) => Check::fail(format!("{what} lease"), format!("cannot try conditional writes: {e}"), fix_store(&e)),
    });
    out
}

/// Writes, reads back and deletes a scratch object: credentials and rights, end to end.
fn scratch_object(what: &str, r: &Remote, rc: &RemoteConfig) -> Check {
    let key = format!(".pgtier-doctor-{}-{}", crate::tell::alerts::hostname(), std::process::id());
    let url = r.url(&key);
    let body = b"pgtier doctor scratch object: safe to delete\n";
    if let Err(e) = r.store.put_bytes(&key, body, &PutOptions::standard()) {
        return Check::fail(what, format!("cannot write {url}: {e}"), fix_store(&e));
    }
    let back = r.store.get(&key).and_then(|rd| {
        let mut v = Vec::new();
        rd.take(body.len() as u64 + 1).read_to_end(&mut v).map_err(|e| StoreError::Unreachable(format!("{url}: {e}")))?;
        Ok(v)
    });
    let deleted = r.store.delete(&key);
    match back {
        Err(e) => return Check::fail(what, format!("wrote {url} but cannot read it back: {e}"), fix_store(&e)),
        Ok(v) if v != body => {
            return Check::fail(what, format!("{url} read back different bytes"), "check the store: it does not return what was written");
        }
        Ok(_) => {}
    }
    let place = match &rc.url {
        RemoteUrl::S3 { .. } => r.store.describe(),
        RemoteUrl::File(dir) => format!("folder {}", dir.display()),
    };
    match deleted {
        Ok(()) => Check::ok(what, format!("{place}: wrote, read back and deleted a scratch object")),
        Err(e) if !rc.prune => Check::warn(
            what,
            format!("{place}: wrote and read a scratch object; cannot delete it ({e}), as expected with prune: false"),
            format!("remove {url} with the pruning identity"),
        ),
        Err(e) => Check::fail(
            what,
            format!("{place}: wrote and read a scratch object but cannot delete it: {e}"),
            "give these credentials the delete right, or set prune: false on this destination and prune from another identity",
        ),
    }
}

/// What to do about a store's refusal, by its kind.
fn fix_store(error: &StoreError) -> String {
    match error {
        StoreError::NoCredentials(_) => {
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE with ~/.aws/credentials) in the environment pgtier runs in"
                .into()
        }
        StoreError::NoSuchBucket(_) => "create it with `pgtier remote init` (or check the bucket name in the url)".into(),
        StoreError::AccessDenied(_) => {
            "check the credentials and the bucket policy: pgtier needs list, get, put and delete under its prefix".into()
        }
        StoreError::Locked(_) => {
            "run `pgtier remote init` to turn Object Lock on (a bucket made without it may need to be recreated)".into()
        }
        _ => "check endpoint_url, region and the network path to the store".into(),
    }
}

fn alerts(cfg: &Config, send: bool) -> Check {
    let what = "alerts";
    let a = &cfg.alerts;
    let mut channels: Vec<&str> =
        [a.webhook.as_ref().map(|_| "webhook"), a.command.as_ref().map(|_| "command")].into_iter().flatten().collect();
    channels.extend(a.channels.iter().map(|c| c.kind()));
    if channels.is_empty() {
        return Check::warn(
            what,
            "no alert channel: a failed night shows only in the job's own mail or log",
            "set a channel under alerts: in pgtier.yml (slack, email, ntfy, webhook, ...)",
        );
    }
    let hc = if a.healthchecks.is_some() { " (and healthchecks pings for each run)" } else { "" };
    if !send {
        return Check::ok(what, format!("{} configured{hc} (not contacted; a test alert checks delivery)", channels.join(", ")));
    }
    let text = "test alert from pgtier doctor: delivery works, nothing is wrong";
    let alert = crate::tell::alerts::Alert::warning(None, None, "doctor", text);
    let mut results: Vec<(String, Result<(), String>)> =
        crate::tell::alerts::Alerter::new(a).deliver(&alert).into_iter().map(|(c, r)| (c.to_string(), r)).collect();
    let digest = crate::tell::notify::Digest {
        subject: format!("pgtier: test alert from doctor on {}", crate::tell::alerts::hostname()),
        body: format!("{text}.\nA failed night arrives here as one message like this one.\n"),
        failed: false,
    };
    results.extend(crate::tell::notify::send(a, &digest));
    let failures: Vec<String> = results.iter().filter_map(|(ch, r)| r.as_ref().err().map(|e| format!("{ch}: {e}"))).collect();
    if failures.is_empty() {
        Check::ok(what, format!("test alert delivered to the {}", channels.join(", ")))
    } else {
        Check::fail(
            what,
            format!("test alert not delivered: {}", failures.join("; ")),
            "check the alerts: block in pgtier.yml and that the receiver is up",
        )
    }
}
