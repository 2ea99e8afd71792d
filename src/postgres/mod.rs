//! Talking to PostgreSQL through its own tools (psql, pg_dump, pg_restore, pg_dumpall), either
//! directly with libpq settings or through `docker exec` into the configured container.
//! Passwords travel in the tool's environment (`PGPASSWORD`), never in argv or a file that a
//! killed pgtier could leave behind.

mod admin;
pub mod archive;
pub mod canonical;
pub mod directory;
mod entry;
pub mod rows;
mod session;
pub mod tools;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub use crate::vocab::DbInfo;
pub use admin::{count_rows_sql, first_ident, quote_ident, quote_literal};
pub use session::Session;

use crate::error::{Error, Result};
use crate::vocab::Connection;

/// A PostgreSQL version as reported by a server or a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Version {
    /// Parses `server_version_num` (150018 -> 15.18).
    pub fn from_num(n: u32) -> Version {
        Version { major: n / 10000, minor: n % 10000 }
    }

    /// Parses the first version number in a tool's `--version` line.
    pub fn from_tool_output(s: &str) -> Option<Version> {
        let word = s.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
        let mut parts = word.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Version { major, minor })
    }
}

/// The folders where Debian-style installs keep each major version's tools.
const VERSIONED_BINDIRS: &str = "/usr/lib/postgresql";

/// A way to run PostgreSQL tools against one server, with its credentials set up.
#[derive(Clone)]
pub struct Pg {
    conn: Connection,
    /// Folder of the tools matching the server (direct mode); None means PATH.
    bindir: Option<PathBuf>,
    /// Whether the folder is the configured `pg_bindir` (then only its tools are used).
    fixed_bindir: bool,
    server: Version,
    pg_dump: Version,
    /// The password from `password_file`, passed in the tool's environment.
    password: Option<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("container", &self.conn.container)
            .field("bindir", &self.bindir)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// The databases every cluster has for connecting without a particular one.
const MAINTENANCE_DBS: [&str; 2] = ["postgres", "template1"];

impl Pg {
    /// Sets up credentials, asks the server its version (through `admin_db`), and picks a
    /// pg_dump that is not older than the server.
    pub fn connect(conn: &Connection, pg_bindir: Option<&Path>, admin_db: &str) -> Result<Pg> {
        let mut pg = Pg {
            conn: conn.clone(),
            bindir: pg_bindir.map(Path::to_path_buf).or_else(newest_bindir),
            fixed_bindir: pg_bindir.is_some(),
            server: Version { major: 0, minor: 0 },
            pg_dump: Version { major: 0, minor: 0 },
            password: None,
        };
        if let Some(pf) = &conn.password_file {
            crate::fsutil::warn_if_loose(pf, "password_file");
            pg.password = Some(crate::fsutil::read_secret_line(pf)?);
        }
        let mut s = pg.session(admin_db)?;
        let num: String = s.query_value("SELECT current_setting('server_version_num')")?;
        s.close()?;
        pg.server = Version::from_num(num.trim().parse().map_err(|_| crate::failed!("server answered server_version_num {num:?}"))?);
        if conn.container.is_none() && pg_bindir.is_none() {
            pg.bindir = matching_bindir(pg.server.major);
        }
        pg.pg_dump = pg.tool_version("pg_dump")?;
        if pg.pg_dump.major < pg.server.major {
            return Err(Error::Unsupported(format!(
                "pg_dump {} ({}) is older than the server ({}): it cannot dump (or check a restore into) this server. Install the PostgreSQL {} client tools{}",
                pg.pg_dump,
                pg.tool_path("pg_dump").display(),
                pg.server,
                pg.server.major,
                pg.where_to_install()
            )));
        }
        Ok(pg)
    }

    /// Connects through a maintenance database (postgres, else template1, else `fallback`), so
    /// no particular database needs to exist; the first failure is the one reported.
    pub fn connect_admin(conn: &Connection, pg_bindir: Option<&Path>, fallback: Option<&str>) -> Result<Pg> {
        let mut first = None;
        for db in MAINTENANCE_DBS.into_iter().chain(fallback) {
            match Pg::connect(conn, pg_bindir, db) {
                Ok(pg) => return Ok(pg),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.expect("at least one database tried"))
    }

    /// A session on a maintenance database (postgres, else template1).
    pub fn admin_session(&self) -> Result<Session> {
        self.session(MAINTENANCE_DBS[0]).or_else(|e| self.session(MAINTENANCE_DBS[1]).map_err(|_| e))
    }

    /// The server's version.
    pub fn server_version(&self) -> Version {
        self.server
    }

    /// The version of the pg_dump that will be used.
    pub fn pg_dump_version(&self) -> Version {
        self.pg_dump
    }

    /// The connecting role.
    pub fn user(&self) -> &str {
        &self.conn.user
    }

    fn tool_path(&self, tool: &str) -> PathBuf {
        match (&self.conn.container, &self.bindir) {
            (None, Some(dir)) => dir.join(tool),
            _ => PathBuf::from(tool),
        }
    }

    pub(crate) fn tool_version(&self, tool: &str) -> Result<Version> {
        let out = self
            .command(tool, None)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error(&self.tool_path(tool), &self.conn, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Version::from_tool_output(&text)
            .ok_or_else(|| crate::failed!("{} --version printed {:?}", self.tool_path(tool).display(), text.trim()))
    }

    /// A command running `tool` against the server (`docker exec -i` in container mode), with
    /// the connection settings in its environment.
    /// The database goes in PGDATABASE, where libpq never reads it as a connection string.
    pub fn command(&self, tool: &str, database: Option<&str>) -> Command {
        let mut vars: Vec<(&str, String)> =
            vec![("PGUSER", self.conn.user.clone()), ("PGAPPNAME", "pgtier".into()), ("PGCONNECT_TIMEOUT", "10".into())];
        if let Some(db) = database {
            vars.push(("PGDATABASE", db.to_string()));
        }
        vars.push(("PGOPTIONS", self.session_options()));
        if let Some(h) = &self.conn.host {
            vars.push(("PGHOST", h.clone()));
        }
        if let Some(p) = self.conn.port {
            vars.push(("PGPORT", p.to_string()));
        }
        match &self.conn.container {
            Some(container) => {
                let mut cmd = Command::new("docker");
                tool_env(&mut cmd);
                cmd.args(["exec", "-i"]);
                for (k, v) in &vars {
                    cmd.arg("-e").arg(format!("{k}={v}"));
                }
                if let Some(pw) = &self.password {
                    // `-e NAME` without a value copies NAME from docker's own environment.
                    cmd.args(["-e", "PGPASSWORD"]);
                    cmd.env("PGPASSWORD", pw.as_str());
                }
                cmd.arg(container).arg(tool);
                cmd
            }
            None => {
                let mut cmd = Command::new(self.tool_path(tool));
                tool_env(&mut cmd);
                for (k, v) in vars {
                    cmd.env(k, v);
                }
                if let Some(pw) = &self.password {
                    cmd.env("PGPASSWORD", pw.as_str());
                }
                cmd
            }
        }
    }

    /// Startup options that lift the guards a database or role may set (`ALTER DATABASE … SET
    /// statement_timeout`, say) for pgtier's own sessions, as pg_dump lifts them for itself:
    /// a backup or restore must never be cancelled by a timeout meant for the application.
    fn session_options(&self) -> String {
        let mut o = String::from("-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c lock_timeout=0");
        if self.server.major >= 17 {
            o += " -c transaction_timeout=0";
        }
        o
    }

    /// Starts `tool` on `database` with `args`, stdout piped, stderr collected (last 64 KiB)
    /// for error messages.
    pub fn spawn(&self, tool: &str, database: Option<&str>, args: &[String], stdin: Stdio) -> Result<Running> {
        let mut cmd = self.command(tool, database);
        cmd.args(args).stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        tracing::debug!("running {tool} {}", args.join(" "));
        let mut child = cmd.spawn().map_err(|e| spawn_error(&self.tool_path(tool), &self.conn, e))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = Arc::new(Mutex::new(Vec::new()));
        let collector = spawn_stderr_collector(tool.to_string(), stderr, Arc::clone(&tail));
        crate::signals::track_child(child.id());
        Ok(Running { tool: tool.to_string(), child, stderr: tail, collector: Some(collector) })
    }

    /// Opens a psql session on `database`.
    pub fn session(&self, database: &str) -> Result<Session> {
        Session::start(self, database)
    }
}

/// Gives a tool only the environment it needs: the locale, PATH and HOME, libpq's own `PG*`
/// settings and docker's `DOCKER_*`. Nothing else of pgtier's environment (AWS credentials,
/// say) reaches pg_dump, psql, pg_restore or docker.
fn tool_env(cmd: &mut Command) {
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        let keep = matches!(name, "PATH" | "HOME" | "USER" | "LOGNAME" | "LANG" | "TZ" | "TMPDIR")
            || name.starts_with("LC_")
            || (name.starts_with("PG") && !name.starts_with("PGTIER_"))
            || name.starts_with("DOCKER_");
        if keep {
            cmd.env(&k, &v);
        }
    }
}

/// A running tool whose stderr is being collected.
pub struct Running {
    pub tool: String,
    pub child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    collector: Option<std::thread::JoinHandle<()>>,
}

/// How a PostgreSQL tool ended when it did not succeed: its exit status (None: a signal killed
/// it) and what it said on stderr.
#[derive(Debug, Clone)]
pub struct ToolFailure {
    pub tool: String,
    pub code: Option<i32>,
    pub stderr: String,
}

impl ToolFailure {
    /// Whether a signal ended it (pgtier stopping it, the OOM killer, an operator): it then
    /// says nothing about the data it was handling.
    pub fn killed(&self) -> bool {
        self.code.is_none()
    }
}

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "{} exited with status {c}", self.tool)?,
            None => write!(f, "{} was killed by a signal", self.tool)?,
        }
        if !self.stderr.is_empty() {
            write!(f, ": {}", self.stderr)?;
        }
        Ok(())
    }
}

impl From<ToolFailure> for Error {
    fn from(t: ToolFailure) -> Error {
        Error::Failed(t.to_string())
    }
}

impl Running {
    /// Waits for the tool; a non-zero exit becomes an error carrying its stderr.
    pub fn wait(self) -> Result<()> {
        self.finish().map_err(Error::from)
    }

    /// Waits for the tool and says how it ended.
    pub fn finish(mut self) -> std::result::Result<(), ToolFailure> {
        let status = self.child.wait();
        crate::signals::untrack_child(self.child.id());
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
        let stderr = self.stderr_text();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(ToolFailure { tool: self.tool.clone(), code: s.code(), stderr }),
            Err(e) => Err(ToolFailure { tool: self.tool.clone(), code: Some(-1), stderr: format!("waiting for it: {e}") }),
        }
    }

    /// Kills the tool (after a failure elsewhere in the pipeline) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::signals::untrack_child(self.child.id());
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
    }

    /// What the tool printed on stderr (the last 64 KiB), trimmed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).trim().to_string()
    }
}

fn spawn_stderr_collector(tool: String, mut stderr: impl Read + Send + 'static, tail: Arc<Mutex<Vec<u8>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    tracing::trace!("{tool}: {}", String::from_utf8_lossy(&buf[..n]).trim_end());
                    let mut t = tail.lock().expect("stderr buffer");
                    t.extend_from_slice(&buf[..n]);
                    let len = t.len();
                    if len > 64 * 1024 {
                        t.drain(..len - 64 * 1024);
                    }
                }
            }
        }
    })
}

fn spawn_error(path: &Path, conn: &Connection, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        if conn.container.is_some() {
            return crate::failed!("cannot run docker (needed for container: {}): {e}", conn.container.as_deref().unwrap_or(""));
        }
        return crate::failed!(
            "cannot run {}: not found; install the PostgreSQL client tools or set pg_bindir in pgtier.yml",
            path.display()
        );
    }
    crate::failed!("cannot run {}: {e}", path.display())
}

/// Installed versioned tool folders (`/usr/lib/postgresql/N/bin`), by major version.
pub(crate) fn versioned_bindirs() -> Vec<(u32, PathBuf)> {
    let root = std::env::var_os("PGTIER_PG_VERSIONED_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(VERSIONED_BINDIRS));
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_dump").is_file().then_some((major, bin))
        })
        .collect();
    out.sort();
    out
}

fn newest_bindir() -> Option<PathBuf> {
    versioned_bindirs().pop().map(|(_, d)| d)
}

/// The tools folder for a server of `major`: the same major if installed, else the oldest newer
/// one, else none (PATH), so the version check can name what is missing.
fn matching_bindir(major: u32) -> Option<PathBuf> {
    let dirs = versioned_bindirs();
    dirs.iter().find(|(m, _)| *m == major).or_else(|| dirs.iter().find(|(m, _)| *m > major)).map(|(_, d)| d.clone())
}
