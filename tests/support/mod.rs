//! Test harness: a real throwaway PostgreSQL cluster per test binary, a scratch folder with
//! pgtier's config per test, and helpers to run the real binary. Missing parts fail loudly.
#![allow(dead_code)]

pub mod localstack;
pub mod matrix;
pub mod proxy;
pub mod rich;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The PostgreSQL major version tests run against.
pub const PG_MAJOR: u32 = 15;

pub fn pg_bindir() -> PathBuf {
    let dir = std::env::var_os("PGTIER_TEST_PG_BINDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/usr/lib/postgresql/{PG_MAJOR}/bin")));
    assert!(
        dir.join("initdb").is_file(),
        "PostgreSQL server binaries are missing: no initdb in {} (install postgresql-{PG_MAJOR}, or set PGTIER_TEST_PG_BINDIR)",
        dir.display()
    );
    dir
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command run as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A throwaway cluster: initdb in a temporary folder, a free port, trust auth on 127.0.0.1
/// (plus scram for the role `pwuser`). Stopped by a watchdog when the test process exits.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    /// The client tools the tests run against it (psql, pg_dump, pg_restore).
    pub bindir: PathBuf,
    /// Its server's initdb, pg_ctl and postgres.
    pub server_bindir: PathBuf,
    /// Its major version.
    pub major: u32,
}

/// Where `pgmajors/install.sh` put every major's servers and client tools.
pub fn pgmajors() -> PathBuf {
    let root = repo().join(".state/pgmajors");
    assert!(
        root.join("versions/18/bin/pg_dump").is_file() && root.join("servers/13/bin/initdb").is_file(),
        "the PostgreSQL majors 13 to 18 are missing from {} (run scripts/setup --tests, which runs pgmajors/install.sh)",
        root.display()
    );
    root
}

/// The folder of versioned client tools (`N/bin`), for PGTIER_PG_VERSIONED_ROOT.
pub fn versioned_root() -> PathBuf {
    pgmajors().join("versions")
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The test binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start)
}

impl Cluster {
    /// A second, independent cluster (a "new server" for host-loss drills).
    pub fn start_new() -> Cluster {
        Cluster::start()
    }

    /// A cluster of PostgreSQL `major` (13 to 18), with the client tools of that major (14's
    /// for 13, which has none of its own).
    pub fn start_major(major: u32) -> Cluster {
        let root = pgmajors();
        Cluster::start_with(root.join(format!("servers/{major}/bin")), root.join(format!("versions/{}/bin", major.max(14))), major)
    }

    fn start() -> Cluster {
        let bindir = pg_bindir();
        Cluster::start_with(bindir.clone(), bindir, PG_MAJOR)
    }

    fn start_with(server_bindir: PathBuf, bindir: PathBuf, major: u32) -> Cluster {
        let dir = std::env::temp_dir().join(format!("pgtier-test-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        if is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap().success();
            assert!(ok, "cannot chown the test cluster folder to the postgres user (does the user exist?)");
        }
        let out = as_server_user(&server_bindir.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        // A scram-authenticated role for password_file tests, ahead of the trust lines.
        let hba = data.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("host all pwuser 127.0.0.1/32 scram-sha-256\n{rest}")).unwrap();
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=off -c max_connections=200 -c shared_buffers=64MB",
                dir.display()
            );
            let out = as_server_user(&server_bindir.join("pg_ctl"))
                .args(["-D"])
                .arg(&data)
                .args(["-o", &opts, "-l"])
                .arg(dir.join("log"))
                .args(["-w", "-t", "60", "start"])
                .stdout(Stdio::null())
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                spawn_watchdog(&server_bindir, &dir, &data);
                let c = Cluster { dir, port, bindir, server_bindir, major };
                c.psql("postgres", "CREATE ROLE pwuser LOGIN PASSWORD 'pw:with\\odd''chars' SUPERUSER");
                return c;
            }
            last_err = format!("{}{}", String::from_utf8_lossy(&out.stderr), std::fs::read_to_string(dir.join("log")).unwrap_or_default());
        }
        panic!("could not start a PostgreSQL test cluster: {last_err}");
    }

    /// Runs SQL with psql as the superuser and returns stdout (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_output(db, sql);
        assert!(out.status.success(), "psql -d {db} failed on {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Runs SQL and returns the whole output, for tests expecting a failure.
    pub fn psql_output(&self, db: &str, sql: &str) -> Output {
        Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", db, "-c", sql])
            .output()
            .expect("run psql")
    }

    pub fn db_exists(&self, db: &str) -> bool {
        self.psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")) == "1"
    }

    /// Databases whose name starts with `prefix`.
    pub fn dbs_like(&self, prefix: &str) -> Vec<String> {
        self.psql("postgres", &format!("SELECT datname FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1"))
            .lines()
            .map(str::to_string)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// pgtier's temporary databases made for restoring into `target` (names end with it).
    pub fn temp_dbs_for(&self, target: &str) -> Vec<String> {
        self.dbs_like("pgtier_tmp_").into_iter().filter(|d| d.ends_with(&format!("_{target}"))).collect()
    }

    /// A fingerprint of a database's data: every user table's name, row count and content hash.
    pub fn fingerprint(&self, db: &str) -> String {
        self.psql(
            db,
            "SELECT string_agg(t, ' | ' ORDER BY t) FROM (
               SELECT format('%I.%I', schemaname, tablename) || '=' ||
                 (xpath('/row/h/text()', query_to_xml(format('SELECT md5(coalesce(string_agg(x::text, '','' ORDER BY x::text), '''')) AS h FROM %I.%I x', schemaname, tablename), false, true, '')))[1]::text AS t
               FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) s",
        )
    }

    /// Creates `db` with sample data: several schemas, text, jsonb, an empty table, a quoted name.
    pub fn create_sample_db(&self, db: &str, rows: u32) {
        self.psql("postgres", &format!("CREATE DATABASE \"{db}\""));
        self.psql(
            db,
            &format!(
                "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz DEFAULT now());
                 INSERT INTO users (name, email) SELECT 'user ' || i, 'u' || i || '@example.com' FROM generate_series(1, {rows}) i;
                 CREATE TABLE events (id bigserial PRIMARY KEY, user_id int REFERENCES users(id), payload jsonb);
                 INSERT INTO events (user_id, payload) SELECT 1 + (i % {rows}), jsonb_build_object('kind', 'click', 'n', i, 'tags', jsonb_build_array('a', i % 7)) FROM generate_series(1, {rows} * 3) i;
                 CREATE TABLE empty_table (x int);
                 CREATE SCHEMA billing;
                 CREATE TABLE billing.\"Invoices 2024\" (id int, amount numeric(10,2));
                 INSERT INTO billing.\"Invoices 2024\" SELECT i, i * 1.5 FROM generate_series(1, 17) i;
                 CREATE VIEW active_users AS SELECT * FROM users WHERE id % 2 = 0;"
            ),
        );
    }

    /// A `database:` block connecting directly to this cluster as the superuser.
    pub fn database_block(&self, envs: &[(&str, &str)]) -> String {
        let mut s = format!(
            "  database:\n    type: postgresql\n    host: 127.0.0.1\n    port: {}\n    user: postgres\n    databases:\n",
            self.port
        );
        for (env, db) in envs {
            s += &format!("      {env}: {db}\n");
        }
        s
    }
}

fn spawn_watchdog(bindir: &Path, dir: &Path, data: &Path) {
    let pg_ctl = bindir.join("pg_ctl");
    let stop = if is_root() {
        format!("runuser -u postgres -- '{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display())
    } else {
        format!("'{}' -D '{}' -m immediate stop", pg_ctl.display(), data.display())
    };
    let script =
        format!("while kill -0 {} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{}'", std::process::id(), dir.display());
    // `setsid -f` forks the watchdog into its own session and returns at once.
    let ok = Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run setsid");
    assert!(ok.success(), "could not start the cluster watchdog");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A number unique within this test process.
pub fn unique() -> u32 {
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}

/// A database name unique to this test process and call.
pub fn db_name(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), unique())
}

/// A scratch folder with pgtier.yml, projects.yml and a policies folder (copied from the repo).
pub struct Scratch {
    pub tmp: tempfile::TempDir,
    /// Environment variables every pgtier command of this scratch gets.
    pub env: std::cell::RefCell<Vec<(String, String)>>,
}

impl Scratch {
    /// A scratch folder whose backup_root is inside it; `agent_extra` is appended to pgtier.yml.
    pub fn new(projects_yml: &str, agent_extra: &str) -> Scratch {
        let tmp = tempfile::Builder::new().prefix("pgtier-test-").tempdir().unwrap();
        let s = Scratch { tmp, env: Default::default() };
        std::fs::create_dir_all(s.path().join("policies")).unwrap();
        std::fs::copy(repo().join("policies/default.yml"), s.path().join("policies/default.yml")).unwrap();
        s.write("projects.yml", projects_yml);
        s.write("pgtier.yml", &format!("projects: projects.yml\npolicies: policies\nbackup_root: backups\n{agent_extra}"));
        s
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn backup_root(&self) -> PathBuf {
        self.path().join("backups")
    }

    pub fn env_dir(&self, project: &str, env: &str) -> PathBuf {
        self.backup_root().join(project).join(env).join("database")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A pgtier command with --config set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgtier"));
        c.arg("--config").arg(self.path().join("pgtier.yml")).args(args);
        c.env_remove("PGTIER_CONFIG").env("PGTIER_LOG", "pgtier=info");
        localstack::aws_env(&mut c);
        for (k, v) in self.env.borrow().iter() {
            c.env(k, v);
        }
        c
    }

    /// Sets an environment variable for every later command of this scratch.
    pub fn set_env(&self, key: &str, value: impl Into<String>) {
        self.env.borrow_mut().push((key.to_string(), value.into()));
    }

    /// Runs pgtier and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().expect("run pgtier")
    }

    /// Runs pgtier and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pgtier {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs pgtier and asserts it exited with `code`; returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "pgtier {args:?}: expected exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Files in an env folder, sorted (names only).
    pub fn files(&self, project: &str, env: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.env_dir(project, env))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The env folder's files but its lock file (pgtier's own, taken before a backup starts
    /// and kept across runs): what a failed backup may not leave.
    pub fn left_behind(&self, project: &str, env: &str) -> Vec<String> {
        self.files(project, env).into_iter().filter(|f| f != ".pgtier-lock").collect()
    }
}

/// The repository root.
/// The arguments after the pgtier binary on a shipped unit's `ExecStart=` or a cron line.
pub fn command_after_binary(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let bin = words.iter().position(|w| w.ends_with("/pgtier")).unwrap_or_else(|| panic!("no pgtier binary in {line:?}"));
    words[bin + 1..].iter().map(|w| w.to_string()).collect()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Requires a command-line tool, failing with what is missing.
pub fn require_tool(tool: &str, hint: &str) -> PathBuf {
    let out = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
    assert!(out.status.success(), "required tool `{tool}` is not installed: {hint}");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Runs a shell pipeline, asserting success; returns stdout.
pub fn sh(script: &str) -> String {
    let out = Command::new("bash").args(["-o", "pipefail", "-c", script]).output().unwrap();
    assert!(out.status.success(), "`{script}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `cond` holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `result` of a command's `--json` output, after checking the envelope every `--json`
/// output shares: one object with `schema_version` 1, the command's name and its result.
pub fn json<T: AsRef<[u8]> + ?Sized>(stdout: &T) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout.as_ref());
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("--json output does not parse ({e}):\n{text}"));
    assert_eq!(v["schema_version"], 1, "--json output without schema_version 1:\n{text}");
    assert!(v["command"].as_str().is_some_and(|c| !c.is_empty()), "--json output without its command:\n{text}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(3), "the envelope has schema_version, command and result only:\n{text}");
    v["result"].take()
}

/// One HTTP request a `Recorder` received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request line's target: path and query.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// An HTTP receiver on loopback that records every request (answering 200), or, with `hang`,
/// accepts connections and never answers.
pub struct Recorder {
    pub base: String,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Recorder {
    pub fn start(hang: bool) -> Recorder {
        use std::io::{BufRead, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if hang {
                    held.push(conn);
                    continue;
                }
                let mut r = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                if r.read_line(&mut first).unwrap_or(0) == 0 {
                    continue;
                }
                let target = first.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                g.lock().unwrap().push(Received { target, headers, body: String::from_utf8_lossy(&body).into_owned() });
                let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            }
        });
        Recorder { base, got }
    }

    /// The requests whose target starts with `prefix`.
    pub fn to(&self, prefix: &str) -> Vec<Received> {
        self.got.lock().unwrap().iter().filter(|r| r.target.starts_with(prefix)).cloned().collect()
    }

    pub fn clear(&self) {
        self.got.lock().unwrap().clear();
    }
}

/// A real SMTP server (the pinned aiosmtpd) on a free port, delivering into a Maildir; it stops
/// when this process exits. Returns (port, maildir).
pub fn smtp_server(dir: &Path) -> (u16, PathBuf) {
    let port = free_port();
    let maildir = dir.join("maildir");
    let out = Command::new(repo().join("smtpserver/start.sh"))
        .arg(port.to_string())
        .arg(&maildir)
        .arg("--parent")
        .arg(std::process::id().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aiosmtpd could not be started (scripts/setup --tests installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (port, maildir)
}

/// The messages delivered to a Maildir, as text.
pub fn maildir_messages(maildir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.filter_map(|e| e.ok()).filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Processes below `root` (children, grandchildren…): (pid, command name).
pub fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = stat[open + 1..close].to_string();
        let ppid: u32 = stat[close + 2..].split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        parent.insert(pid, (ppid, comm));
    }
    let mut out = Vec::new();
    for (pid, (_, comm)) in &parent {
        let mut p = *pid;
        for _ in 0..8 {
            let Some((pp, _)) = parent.get(&p) else { break };
            if *pp == root {
                out.push((*pid, comm.clone()));
                break;
            }
            p = *pp;
        }
    }
    out
}

/// The PostgreSQL tools pgtier runs.
pub const PG_TOOLS: [&str; 4] = ["pg_dump", "pg_dumpall", "pg_restore", "psql"];

/// Kills (SIGKILL) one PostgreSQL tool running below `root`, if one is; returns its name.
pub fn kill_a_pg_tool(root: u32) -> Option<String> {
    let (pid, comm) = descendants(root).into_iter().find(|(_, c)| PG_TOOLS.contains(&c.as_str()))?;
    // SAFETY: SIGKILL to a process of this test's own tree.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    Some(comm)
}

/// A tmpfs of `size` at a fresh folder (root only; CI runs as root).
pub struct Mount(tempfile::TempDir);

impl Mount {
    pub fn tmpfs(size: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs failed: the disk-full tests need root (CI runs as root)");
        Mount(dir)
    }

    pub fn read_only_bind(dir: &Path) -> Mount {
        let m = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount").arg("--bind").arg(dir).arg(m.path()).status().unwrap().success()
            && std::process::Command::new("mount").args(["-o", "remount,ro,bind"]).arg(m.path()).status().unwrap().success();
        assert!(ok, "a read-only bind mount failed: these tests need root (CI runs as root)");
        Mount(m)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}
