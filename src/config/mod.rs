//! Configuration: pgtier.yml, projects.yml and policies/, read once and validated into `Config`.
//! Nothing downstream re-validates; every error names the file, the key path and what was expected.

pub mod alerts;
mod policy;
pub mod raw;
mod remote;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::vocab::{Compression, Connection, EncryptionConfig};
pub use crate::vocab::{Location, LockMode, StorageClass, TierName};
pub use policy::{BUILTIN_DEFAULT, Policy, Retain, Tier, VerifySchedule};
pub use remote::{Checksums, RemoteConfig, RemoteUrl, from_url as remote_from_url};

use crate::error::{Error, Result};
use crate::names::check_component;

/// The validated configuration of one pgtier agent.
#[derive(Debug)]
pub struct Config {
    /// pgtier.yml itself.
    pub file: PathBuf,
    pub projects_file: PathBuf,
    pub backup_root: PathBuf,
    pub projects: BTreeMap<String, Project>,
    /// Every policy read, by name (with `default` always present).
    pub policies: BTreeMap<String, Arc<Policy>>,
    /// The off-site destinations, in the order configured (empty: none).
    pub remotes: Vec<RemoteConfig>,
    pub alerts: AlertsConfig,
    pub metrics_textfile: Option<PathBuf>,
    pub min_free_space: u64,
    pub pg_bindir: Option<PathBuf>,
    pub lock_wait_timeout: Duration,
    /// How long an agent's lease on a project/env in the bucket lasts without renewal.
    pub lease_ttl: Duration,
    pub max_backup_age_hours: u64,
    pub lock_file: PathBuf,
    /// Where temporary files go (a decrypted archive spooled for a parallel restore):
    /// `{backup_root}/.tmp` unless `scratch_dir:` says otherwise. Swept at every start.
    pub scratch_dir: PathBuf,
    pub globals: GlobalsConfig,
    /// Things worth saying that are not problems (e.g. no remote: remote tiers kept locally).
    pub notes: Vec<String>,
}

/// A project's database settings, from its `database:` block in projects.yml.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub connection: Connection,
    /// env -> database name (with `databases: all`, what the server had when it was asked).
    pub databases: BTreeMap<String, String>,
    /// `databases: all`: every connectable database on the server, each its own env.
    pub every_database: Option<EveryDatabase>,
    pub enabled: bool,
    pub verify_on_restore: bool,
    /// pg_dump connections (`backup.jobs`, else the policy's `backup_jobs`); above 1 the
    /// backup is a directory-format dump stored as one tar stream.
    pub backup_jobs: u32,
    /// The project's policy with `retention_days` applied.
    pub policy: Arc<Policy>,
    pub encryption: Option<Arc<EncryptionConfig>>,
    /// env -> application containers to stop around an in-place restore.
    pub app_containers: BTreeMap<String, Vec<String>>,
}

/// `databases: all` in projects.yml: every connectable, non-template database of the server is
/// backed up as its own env, named after the database.
#[derive(Debug, Clone, Default)]
pub struct EveryDatabase {
    /// `exclude:`: databases left out.
    pub exclude: BTreeSet<String>,
    /// Envs with backups on this host whose database the server no longer has.
    pub gone: BTreeSet<String>,
    /// Databases on the server whose names cannot name an env folder, with why.
    pub unnamable: Vec<(String, String)>,
    /// Why the server's databases could not be listed, when they could not (then the envs are
    /// the ones this host has backups of).
    pub unlisted: Option<String>,
}

/// Whether `db` is a database pgtier made and never backs up: a restore's or drill's temporary
/// database, or the database a restore replaced (kept beside it until dropped by hand).
pub fn made_by_pgtier(db: &str) -> bool {
    db.starts_with("pgtier_tmp_") || db.contains("_pgtier_old_")
}

/// `globals:`: whether `run` saves the cluster's roles (`pg_dumpall --globals-only`), and
/// whether with their password hashes.
#[derive(Debug, Clone, Copy)]
pub struct GlobalsConfig {
    pub enabled: bool,
    pub role_passwords: bool,
}

pub use alerts::{AlertsConfig, Channel};

impl Config {
    /// Reads and validates pgtier.yml and everything it points to; fails on the first problem.
    pub fn load(file: &Path) -> Result<Config> {
        let (cfg, mut problems) = Config::check(file);
        match cfg {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems.remove(0)),
        }
    }

    /// Reads everything and reports every problem found (each pgtier.yml key, each policy file,
    /// each project), with the config when it could be built.
    pub fn check(file: &Path) -> (Option<Config>, Vec<Error>) {
        let mut problems = Vec::new();
        let cfg = Config::build(file, &mut problems);
        (cfg, problems)
    }

    fn build(file: &Path, problems: &mut Vec<Error>) -> Option<Config> {
        let text = match yaml::read_text(file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(e);
                return None;
            }
        };
        let raw = raw::Agent::parse_each_key(file, &text, problems)?;
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        let rel = |p: &str| -> PathBuf { resolve(&base, p) };
        let mut notes = Vec::new();
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                problems.push(e);
            }
        };

        let backup_root = rel(raw.backup_root.as_deref().unwrap_or("/opt/backups"));
        let mut remotes = Vec::new();
        keep(remote::destinations(file, raw.remote, raw.remotes).map(|r| remotes = r));
        let mut policy_problems = Vec::new();
        let policies = load_policies(file, &base, raw.policies.as_deref(), &mut notes, &mut policy_problems);
        let mut default_encryption = None;
        if let Some(e) = raw.encryption {
            keep(encryption_config(file, "encryption", e, &rel).map(|e| default_encryption = Some(Arc::new(e))));
        }
        let mut project_encryption: BTreeMap<String, Option<Arc<EncryptionConfig>>> = BTreeMap::new();
        for (name, value) in raw.project_encryption.unwrap_or_default() {
            let key = format!("project_encryption.{name}");
            let enc = match value {
                serde_norway::Value::String(s) if s == "none" => Ok(None),
                serde_norway::Value::Mapping(_) => yaml::from_value::<raw::Encryption>(file, &key, value)
                    .and_then(|e| encryption_config(file, &key, e, &rel))
                    .map(|e| Some(Arc::new(e))),
                _ => Err(Error::config(file, &key, "expected an encryption block or the word none")),
            };
            keep(enc.map(|e| {
                project_encryption.insert(name, e);
            }));
        }

        let projects_file = rel(raw.projects.as_deref().unwrap_or("projects.yml"));
        let mut project_problems = Vec::new();
        let projects = load_projects(&projects_file, &policies, &default_encryption, &project_encryption, &mut project_problems);
        for name in project_encryption.keys() {
            if !projects.contains_key(name)
                && !project_problems.iter().any(|e| matches!(e, Error::Config { key, .. } if key.starts_with(name.as_str())))
            {
                keep(Err(Error::config(
                    file,
                    format!("project_encryption.{name}"),
                    format!("no project {name:?} with a database: block in {}", projects_file.display()),
                )));
            }
        }
        for e in remote::check_policies(file, &remotes, &policies) {
            keep(Err(e));
        }
        if remotes.is_empty() && projects.values().any(|p| p.policy.wants_remote()) {
            notes.push("no remote: configured, so tiers that would live off-site are kept on this host".into());
        }

        let mut alerts = AlertsConfig::default();
        if let Some(a) = raw.alerts {
            let mut found = Vec::new();
            alerts = alerts::resolve(file, &base, a, &mut found);
            for e in found {
                keep(Err(e));
            }
        }
        let mut min_free_space = 10_000_000_000;
        match raw.min_free_space {
            None => {}
            Some(raw::NumOrText::Num(n)) => min_free_space = n,
            Some(raw::NumOrText::Text(t)) => match yaml::parse_size(&t) {
                Some(n) => min_free_space = n,
                None => keep(Err(Error::config(file, "min_free_space", format!("expected a size like 10GB, got {t:?}")))),
            },
        }
        let mut lock_wait_timeout = Duration::from_secs(300);
        match raw.lock_wait_timeout {
            None => {}
            Some(raw::NumOrText::Num(n)) => lock_wait_timeout = Duration::from_secs(n),
            Some(raw::NumOrText::Text(t)) => match yaml::parse_duration(&t) {
                Some(d) if d >= Duration::from_millis(1) => lock_wait_timeout = d,
                _ => keep(Err(Error::config(file, "lock_wait_timeout", format!("expected a duration like 300s or 5m, got {t:?}")))),
            },
        }
        let mut lease_ttl = Duration::from_secs(600);
        let lease_problem = |t: &str| {
            Error::config(
                file,
                "lease_ttl",
                format!("expected a duration from 2s to 24h like 10m, got {t:?} (the lease is renewed every quarter of it)"),
            )
        };
        match raw.lease_ttl {
            None => {}
            Some(raw::NumOrText::Num(n)) if (2..=86_400).contains(&n) => lease_ttl = Duration::from_secs(n),
            Some(raw::NumOrText::Num(n)) => keep(Err(lease_problem(&n.to_string()))),
            Some(raw::NumOrText::Text(t)) => match yaml::parse_duration(&t) {
                Some(d) if d >= Duration::from_secs(2) && d <= Duration::from_secs(86_400) => lease_ttl = d,
                _ => keep(Err(lease_problem(&t))),
            },
        }
        let pg_bindir = raw.pg_bindir.map(|d| rel(&d));
        if let Some(d) = &pg_bindir
            && !d.join("pg_dump").is_file()
        {
            keep(Err(Error::config(file, "pg_bindir", format!("{} holds no pg_dump", d.display()))));
        }
        if let Some(h) = raw.max_backup_age_hours
            && let Err(m) = policy::bounded(h.min(i64::MAX as u64) as i64, policy::MAX_AGE_HOURS)
        {
            keep(Err(Error::config(file, "max_backup_age_hours", m)));
        }
        let lock_file = raw.lock_file.map(|p| rel(&p)).unwrap_or_else(|| backup_root.join(".pgtier.lock"));
        let scratch_dir = raw.scratch_dir.map(|p| rel(&p)).unwrap_or_else(|| backup_root.join(crate::scratch::NAME));
        problems.extend(policy_problems);
        problems.extend(project_problems);
        Some(Config {
            file: file.to_path_buf(),
            projects_file,
            backup_root,
            projects,
            policies,
            remotes,
            alerts,
            metrics_textfile: raw.metrics.map(|m| rel(&m.textfile)),
            min_free_space,
            pg_bindir,
            lock_wait_timeout,
            lease_ttl,
            max_backup_age_hours: raw.max_backup_age_hours.unwrap_or(26),
            lock_file,
            scratch_dir,
            globals: GlobalsConfig {
                enabled: raw.globals.as_ref().and_then(|g| g.enabled).unwrap_or(true),
                role_passwords: raw.globals.as_ref().and_then(|g| g.role_passwords).unwrap_or(false),
            },
            notes,
        })
    }

    /// The project named `name`, or a usage error listing the known ones.
    pub fn project(&self, name: &str) -> Result<&Project> {
        self.projects.get(name).ok_or_else(|| {
            let known: Vec<_> = self.projects.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "unknown project {name:?} (projects with a database: block in {}: {})",
                self.projects_file.display(),
                known.join(", ")
            ))
        })
    }

    /// The (project, env) pairs selected by optional filters, in name order.
    pub fn select(&self, project: Option<&str>, env: Option<&str>) -> Result<Vec<(&Project, String)>> {
        let projects: Vec<&Project> = match project {
            Some(p) => vec![self.project(p)?],
            None => self.projects.values().collect(),
        };
        let mut out = Vec::new();
        for p in projects {
            match env {
                Some(e) => {
                    p.database(e)?;
                    out.push((p, e.to_string()));
                }
                None => out.extend(p.databases.keys().map(|e| (p, e.clone()))),
            }
        }
        Ok(out)
    }

    /// What keeps databases of the enabled `databases: all` projects from being backed up (a
    /// server that could not be asked, a name that cannot name an env). Only the projects whose
    /// servers were asked have any, so a project with no env at all is not left out.
    pub fn database_findings(&self) -> Vec<crate::vocab::Finding> {
        self.projects.values().filter(|p| p.enabled).flat_map(Project::database_findings).collect()
    }

    /// The local folder holding one project/env's backups.
    pub fn env_dir(&self, project: &str, env: &str) -> PathBuf {
        self.backup_root.join(project).join(env).join("database")
    }
}

impl Project {
    /// The decryption keys of the project's encryption block (see `crypto::Keys::for_block`).
    pub fn keys(&self) -> Result<crate::crypto::Keys> {
        crate::crypto::Keys::for_block(self.encryption.as_deref())
    }

    /// The database name of `env`, or a usage error listing the known envs. With
    /// `databases: all` any env not excluded names its own database (after a host loss the server
    /// may not have it yet).
    pub fn database<'a>(&'a self, env: &'a str) -> Result<&'a str> {
        if let Some(db) = self.databases.get(env) {
            return Ok(db);
        }
        if let Some(every) = &self.every_database {
            if every.exclude.contains(env) {
                return Err(Error::Usage(format!("project {:?} excludes database {env:?} (exclude: in projects.yml)", self.name)));
            }
            if check_component(env).is_ok() && !made_by_pgtier(env) {
                return Ok(env);
            }
        }
        let known: Vec<_> = self.databases.keys().map(String::as_str).collect();
        Err(Error::Usage(format!("project {:?} has no env {env:?} (known: {})", self.name, known.join(", "))))
    }

    /// With `databases: all`: a server that could not be asked for its databases, or databases
    /// whose names cannot name an env. Either way some database is not backed up.
    pub fn database_findings(&self) -> Vec<crate::vocab::Finding> {
        let Some(every) = &self.every_database else { return Vec::new() };
        let mut out = Vec::new();
        if let Some(why) = &every.unlisted {
            out.push(crate::vocab::Finding::new(
                "databases",
                &self.name,
                format!("{why}: databases created since the last listing are not backed up"),
            ));
        }
        for (db, m) in &every.unnamable {
            out.push(crate::vocab::Finding::new(
                "databases",
                &self.name,
                format!("database {db:?} is not backed up: its name {m}, so it cannot name an env folder; add it to exclude:, or list it under databases: of a project with an env name of its own"),
            ));
        }
        out
    }

    /// Whether `env`'s database is gone from the server (`databases: all`): its backups are
    /// kept, and it is not stale.
    pub fn gone(&self, env: &str) -> bool {
        self.every_database.as_ref().is_some_and(|e| e.gone.contains(env))
    }

    /// With `databases: all`: takes the server's databases (or why they could not be listed)
    /// and the envs this host has backups of as the project's envs. A database that cannot
    /// name an env is set aside with why; an env whose database the server no longer has is
    /// kept, marked gone.
    pub fn adopt_databases(&mut self, on_server: std::result::Result<Vec<String>, String>, local_envs: &[String]) {
        let Some(every) = self.every_database.as_mut() else { return };
        let wanted = |db: &str| !every.exclude.contains(db) && !made_by_pgtier(db);
        match on_server {
            Ok(dbs) => {
                for db in dbs.into_iter().filter(|d| wanted(d)) {
                    match check_component(&db) {
                        Ok(()) => {
                            self.databases.insert(db.clone(), db);
                        }
                        Err(m) => every.unnamable.push((db, m)),
                    }
                }
                for env in local_envs.iter().filter(|e| wanted(e)) {
                    if self.databases.contains_key(env) {
                        continue;
                    }
                    every.gone.insert(env.clone());
                    self.databases.insert(env.clone(), env.clone());
                }
            }
            Err(why) => {
                every.unlisted = Some(why);
                for env in local_envs.iter().filter(|e| wanted(e)) {
                    self.databases.insert(env.clone(), env.clone());
                }
            }
        }
    }
}

/// Resolves `p` against the folder of pgtier.yml unless it is absolute.
fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

fn encryption_config(file: &Path, key: &str, e: raw::Encryption, rel: &dyn Fn(&str) -> PathBuf) -> Result<EncryptionConfig> {
    let existing = |k: &str, p: Option<String>| -> Result<Option<PathBuf>> {
        match p {
            None => Ok(None),
            Some(p) => {
                let path = rel(&p);
                std::fs::File::open(&path)
                    .map_err(|err| Error::config(file, format!("{key}.{k}"), format!("cannot read {}: {err}", path.display())))?;
                Ok(Some(path))
            }
        }
    };
    let only = |allowed: &[&str]| -> Result<()> {
        let given = [
            ("recipients", e.recipients.is_some()),
            ("recipients_file", e.recipients_file.is_some()),
            ("identity_file", e.identity_file.is_some()),
            ("passphrase_file", e.passphrase_file.is_some()),
            ("recipient_keys", e.recipient_keys.is_some()),
            ("secret_key_file", e.secret_key_file.is_some()),
            ("secret_key_passphrase_file", e.secret_key_passphrase_file.is_some()),
        ];
        match given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            Some((k, _)) => Err(Error::config(file, format!("{key}.{k}"), format!("is not a key of type: {}", e.kind))),
            None => Ok(()),
        }
    };
    let cfg = match e.kind.as_str() {
        "age" => {
            only(&["recipients", "recipients_file", "identity_file", "passphrase_file"])?;
            EncryptionConfig::Age {
                recipients: e.recipients.clone().unwrap_or_default(),
                recipients_file: existing("recipients_file", e.recipients_file.clone())?,
                identity_file: existing("identity_file", e.identity_file.clone())?,
                passphrase_file: existing("passphrase_file", e.passphrase_file.clone())?,
            }
        }
        "gpg" => {
            only(&["passphrase_file", "recipient_keys", "secret_key_file", "secret_key_passphrase_file"])?;
            let mut keys = Vec::new();
            for (i, k) in e.recipient_keys.clone().unwrap_or_default().into_iter().enumerate() {
                keys.push(existing(&format!("recipient_keys[{i}]"), Some(k))?.unwrap_or_default());
            }
            EncryptionConfig::Gpg {
                passphrase_file: existing("passphrase_file", e.passphrase_file.clone())?,
                recipient_keys: keys,
                secret_key_file: existing("secret_key_file", e.secret_key_file.clone())?,
                secret_key_passphrase_file: existing("secret_key_passphrase_file", e.secret_key_passphrase_file.clone())?,
            }
        }
        other => return Err(Error::config(file, format!("{key}.type"), format!("unknown encryption type {other:?}; expected age or gpg"))),
    };
    crate::crypto::check_config(file, key, &cfg)?;
    Ok(cfg)
}

/// Reads every policy in the folder; a broken policy is reported and left out.
fn load_policies(
    file: &Path,
    base: &Path,
    dir: Option<&str>,
    notes: &mut Vec<String>,
    problems: &mut Vec<Error>,
) -> BTreeMap<String, Arc<Policy>> {
    let mut out = BTreeMap::new();
    let folder = resolve(base, dir.unwrap_or("policies"));
    match std::fs::read_dir(&folder) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
                let Some(stem) = name.strip_suffix(".yml").or_else(|| name.strip_suffix(".yaml")) else { continue };
                if stem.starts_with('.') {
                    continue;
                }
                let policy = check_component(stem)
                    .map_err(|m| Error::config(&path, "(file name)", format!("policy name {m}")))
                    .and_then(|_| yaml::read_text(&path))
                    .and_then(|text| yaml::parse::<raw::Policy>(&path, &text))
                    .and_then(|raw| Policy::from_raw(stem, Some(&path), raw));
                match policy {
                    Ok(p) => {
                        out.insert(stem.to_string(), Arc::new(p));
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
        // No folder is no policy of one's own: the built-in default applies (said below), and
        // a project naming another policy is reported with its key.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(Error::config(file, "policies", format!("cannot read folder {}: {e}", folder.display()))),
    }
    if !out.contains_key("default")
        && !problems.iter().any(|e| matches!(e, Error::Config { file, .. } if file.file_stem().is_some_and(|s| s == "default")))
    {
        let builtin = Path::new("(built-in default policy)");
        let raw: raw::Policy = yaml::parse(builtin, BUILTIN_DEFAULT).expect("the built-in policy parses");
        out.insert("default".into(), Arc::new(Policy::from_raw("default", None, raw).expect("the built-in policy is valid")));
        notes.push(if folder.is_dir() {
            format!("{} has no default.yml: using the built-in default policy", folder.display())
        } else {
            format!("there is no folder {}: using the built-in default policy", folder.display())
        });
    }
    out
}

/// Reads every project's database: block; a broken project is reported and left out.
fn load_projects(
    file: &Path,
    policies: &BTreeMap<String, Arc<Policy>>,
    default_encryption: &Option<Arc<EncryptionConfig>>,
    project_encryption: &BTreeMap<String, Option<Arc<EncryptionConfig>>>,
    problems: &mut Vec<Error>,
) -> BTreeMap<String, Project> {
    let entries: BTreeMap<String, Option<raw::ProjectEntry>> = match yaml::read_text(file) {
        Ok(text) if text.trim().is_empty() => BTreeMap::new(),
        Ok(text) => match yaml::parse(file, &text) {
            Ok(e) => e,
            Err(e) => {
                problems.push(e);
                return BTreeMap::new();
            }
        },
        Err(e) => {
            problems.push(e);
            return BTreeMap::new();
        }
    };
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, entry) in entries {
        let Some(value) = entry.and_then(|e| e.database) else { continue };
        match load_project(file, &base, &name, value, policies, default_encryption, project_encryption) {
            Ok(p) => {
                out.insert(name, p);
            }
            Err(e) => problems.extend(e),
        }
    }
    out
}

fn load_project(
    file: &Path,
    base: &Path,
    name: &str,
    value: serde_norway::Value,
    policies: &BTreeMap<String, Arc<Policy>>,
    default_encryption: &Option<Arc<EncryptionConfig>>,
    project_encryption: &BTreeMap<String, Option<Arc<EncryptionConfig>>>,
) -> std::result::Result<Project, Vec<Error>> {
    let name = name.to_string();
    let prefix = format!("{name}.database");
    check_component(&name).map_err(|m| vec![Error::config(file, &name, format!("project name {m}"))])?;
    let db: raw::Database = yaml::from_value(file, &prefix, value).map_err(|e| vec![e])?;
    let err = |k: &str, m: String| Error::config(file, format!("{prefix}.{k}"), m);
    // Every problem of the block is reported, not only the first.
    let mut problems = Vec::new();
    if db.kind != "postgresql" {
        problems.push(err("type", format!("only postgresql is supported, got {:?}", db.kind)));
    }
    let (databases, every_database) = match db.databases {
        serde_norway::Value::String(s) if s == "all" => {
            let mut exclude = BTreeSet::new();
            for (i, d) in db.exclude.clone().unwrap_or_default().into_iter().enumerate() {
                if d.is_empty() || d.len() > 63 || d.chars().any(|c| c.is_control()) {
                    problems.push(err(&format!("exclude[{i}]"), format!("expected a PostgreSQL database name (1 to 63 bytes), got {d:?}")));
                }
                exclude.insert(d);
            }
            (BTreeMap::new(), Some(EveryDatabase { exclude, ..EveryDatabase::default() }))
        }
        v @ serde_norway::Value::Mapping(_) => {
            match yaml::from_value::<BTreeMap<String, String>>(file, &format!("{prefix}.databases"), v) {
                Ok(m) => (m, None),
                Err(e) => {
                    problems.push(e);
                    (BTreeMap::new(), None)
                }
            }
        }
        other => {
            let got = match other {
                serde_norway::Value::String(s) => format!("{s:?}"),
                serde_norway::Value::Null => "nothing".into(),
                _ => "a list or a value".into(),
            };
            problems.push(err("databases", format!("expected a map env: database name, or all (every database on the server); got {got}")));
            (BTreeMap::new(), None)
        }
    };
    if db.exclude.is_some() && every_database.is_none() {
        problems.push(err("exclude", "only goes with databases: all (a map of databases lists what it backs up)".into()));
    }
    if databases.is_empty() && every_database.is_none() && problems.is_empty() {
        problems.push(err("databases", "needs at least one env: database name".into()));
    }
    for (env, dbname) in &databases {
        if let Err(m) = check_component(env) {
            problems.push(err(&format!("databases.{env}"), format!("env name {m}")));
        }
        if dbname.is_empty() || dbname.len() > 63 || dbname.chars().any(|c| c.is_control()) {
            problems.push(err(&format!("databases.{env}"), "expected a PostgreSQL database name (1 to 63 bytes)".into()));
        }
    }
    if db.user.is_empty() {
        problems.push(err("user", "must not be empty".into()));
    }
    if let Some(c) = &db.container
        && (c.is_empty() || c.starts_with('-'))
    {
        problems.push(err("container", format!("{c:?} is not a container name")));
    }
    let password_file = db.password_file.as_ref().map(|p| resolve(base, p));
    if let Some(path) = &password_file
        && let Err(e) = std::fs::File::open(path)
    {
        problems.push(err("password_file", format!("cannot read {}: {e}", path.display())));
    }
    let policy_name = db.policy.clone().unwrap_or_else(|| "default".into());
    let backup = db.backup.unwrap_or(raw::Backup { enabled: None, retention_days: None, verify_on_restore: None, jobs: None });
    let policy = match policies.get(&policy_name) {
        None => {
            let known: Vec<_> = policies.keys().map(String::as_str).collect();
            problems.push(err("policy", format!("unknown policy {policy_name:?} (known: {})", known.join(", "))));
            None
        }
        Some(policy) => match backup.retention_days {
            Some(0) => {
                problems.push(err("backup.retention_days", "must be positive".into()));
                None
            }
            Some(days) => Some(Arc::new((**policy).clone().with_daily_days(days))),
            None => Some(policy.clone()),
        },
    };
    let encryption = match project_encryption.get(&name) {
        Some(e) => e.clone(),
        None => default_encryption.clone(),
    };
    if policy.as_ref().is_some_and(|p| p.encryption_required) && encryption.is_none() {
        problems
            .push(err("policy", format!("policy {policy_name:?} requires encryption but no encryption: is configured for this project")));
    }
    let app_containers = match db.app_containers {
        None => BTreeMap::new(),
        Some(v @ serde_norway::Value::Sequence(_)) => match yaml::from_value::<Vec<String>>(file, &format!("{prefix}.app_containers"), v) {
            Ok(all) if every_database.is_some() => BTreeMap::from([(String::new(), all)]),
            Ok(all) => databases.keys().map(|e| (e.clone(), all.clone())).collect(),
            Err(e) => {
                problems.push(e);
                BTreeMap::new()
            }
        },
        Some(v @ serde_norway::Value::Mapping(_)) => {
            match yaml::from_value::<BTreeMap<String, Vec<String>>>(file, &format!("{prefix}.app_containers"), v) {
                Ok(per) => {
                    if let Some(e) = per.keys().find(|e| every_database.is_none() && !databases.contains_key(*e)) {
                        problems.push(err(&format!("app_containers.{e}"), "is not an env of databases:".into()));
                    }
                    per
                }
                Err(e) => {
                    problems.push(e);
                    BTreeMap::new()
                }
            }
        }
        Some(_) => {
            problems.push(err("app_containers", "expected a list of container names, or a map env -> list".into()));
            BTreeMap::new()
        }
    };
    let jobs = match backup.jobs {
        None => policy.as_ref().map_or(1, |p| p.backup_jobs),
        Some(n) => policy::bounded(n, policy::MAX_JOBS).unwrap_or_else(|m| {
            problems.push(err("backup.jobs", m));
            1
        }),
    };
    if jobs > 1
        && let Some(c) = &db.container
    {
        problems.push(err(
            "backup.jobs",
            format!("a parallel dump ({jobs} jobs) writes a folder of files, which pg_dump inside container {c:?} would write in the container: use a direct connection (host/port) or jobs: 1"),
        ));
    }
    let Some(policy) = policy.filter(|_| problems.is_empty()) else { return Err(problems) };
    let connection = Connection { container: db.container, host: db.host, port: db.port, user: db.user, password_file };
    Ok(Project {
        name,
        connection,
        databases,
        every_database,
        enabled: backup.enabled.unwrap_or(true),
        verify_on_restore: backup.verify_on_restore.unwrap_or(true),
        backup_jobs: jobs,
        policy,
        encryption,
        app_containers,
    })
}
