//! `pgtier config init [DIR]`: a commented pgtier.yml and projects.yml to start from, that
//! `config check` accepts as written. At a terminal it asks for what it needs to know; flags
//! give the same without one.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use super::Ctx;
use crate::error::{Error, Result};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier config init /etc/pgtier      asks for the database and the bucket at a terminal\n  pgtier config init . --host db1 --port 5432 --user backup --database shop --bucket my-backups"
)]
pub struct InitArgs {
    /// The folder to write pgtier.yml and projects.yml into (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The PostgreSQL server's host.
    #[arg(long)]
    pub host: Option<String>,
    /// Its port.
    #[arg(long)]
    pub port: Option<u16>,
    /// The role pgtier connects as.
    #[arg(long)]
    pub user: Option<String>,
    /// The database to back up (the env `production` of the project).
    #[arg(long)]
    pub database: Option<String>,
    /// The project's name in projects.yml.
    #[arg(long)]
    pub project: Option<String>,
    /// An S3 bucket for the off-site tiers (none: they stay on this host until you add one).
    #[arg(long)]
    pub bucket: Option<String>,
    /// The bucket's region.
    #[arg(long)]
    pub region: Option<String>,
    /// Replace files that exist.
    #[arg(long)]
    pub force: bool,
}

/// What the files are written from.
struct Answers {
    host: String,
    port: u16,
    user: String,
    database: String,
    project: String,
    bucket: Option<String>,
    region: String,
}

pub fn run(ctx: &Ctx, a: InitArgs) -> Result<i32> {
    let agent = a.dir.join("pgtier.yml");
    let projects = a.dir.join("projects.yml");
    for f in [&agent, &projects] {
        if f.exists() && !a.force {
            return Err(crate::usage!("{} exists; pgtier config init does not replace it (--force does)", f.display()));
        }
    }
    let ask = std::io::stdin().is_terminal() && !ctx.ui.json;
    let answers = answers(&a, ask)?;
    crate::fsutil::ensure_private_dir(&a.dir).or_else(|e| if a.dir.is_dir() { Ok(()) } else { Err(e) })?;
    write_new(&agent, &pgtier_yml(&answers))?;
    write_new(&projects, &projects_yml(&answers))?;
    let (cfg_ok, problems) = crate::config::Config::check(&agent);
    if cfg_ok.is_none() || !problems.is_empty() {
        // What this wrote must load; say so loudly if it does not.
        return Err(Error::Failed(format!(
            "the files written do not pass config check: {}",
            problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")
        )));
    }
    if ctx.ui.json {
        ctx.print_json(&serde_json::json!({ "written": [agent, projects] }));
    } else {
        crate::outln!("wrote {} and {}", agent.display(), projects.display());
        crate::outln!("next: read them (every key is commented), then");
        crate::outln!("  pgtier --config {} config check", agent.display());
        crate::outln!("  pgtier --config {} doctor", agent.display());
    }
    Ok(crate::error::EXIT_OK)
}

/// The flags, and at a terminal the questions for what they left out.
fn answers(a: &InitArgs, ask: bool) -> Result<Answers> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut question = |what: &str, default: &str| -> Result<String> {
        if !ask {
            return Ok(default.to_string());
        }
        eprint!("{what} [{default}]: ");
        let _ = std::io::stderr().flush();
        match lines.next() {
            Some(Ok(l)) if !l.trim().is_empty() => Ok(l.trim().to_string()),
            Some(Err(e)) => Err(Error::Failed(format!("reading the answer: {e}"))),
            _ => Ok(default.to_string()),
        }
    };
    let host = match &a.host {
        Some(h) => h.clone(),
        None => question("PostgreSQL host", "127.0.0.1")?,
    };
    let port = match a.port {
        Some(p) => p,
        None => question("port", "5432")?.parse().map_err(|_| crate::usage!("the port is a number from 1 to 65535"))?,
    };
    let user = match &a.user {
        Some(u) => u.clone(),
        None => question("role pgtier connects as", "backup")?,
    };
    let database = match &a.database {
        Some(d) => d.clone(),
        None => question("database to back up", "app")?,
    };
    let project = match &a.project {
        Some(p) => p.clone(),
        None => question("project name", &database)?,
    };
    let bucket = match &a.bucket {
        Some(b) => Some(b.clone()),
        None if ask => Some(question("S3 bucket for the off-site tiers (empty: none yet)", "")?).filter(|b| !b.is_empty()),
        None => None,
    };
    let region = match &a.region {
        Some(r) => r.clone(),
        None if bucket.is_some() => question("its region", "eu-central-1")?,
        None => "eu-central-1".into(),
    };
    for (what, v) in [("host", &host), ("user", &user), ("database", &database)] {
        if v.is_empty() || v.contains(['\n', '"']) {
            return Err(crate::usage!("--{what}: {v:?} is not a {what}"));
        }
    }
    crate::names::check_component(&project).map_err(|m| crate::usage!("--project: {m}"))?;
    if let Some(b) = &bucket
        && (b.is_empty() || b.contains(['/', ' ', '"']))
    {
        return Err(crate::usage!("--bucket: {b:?} is not a bucket name (give the name, not s3://…)"));
    }
    Ok(Answers { host, port, user, database, project, bucket, region })
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    crate::fsutil::write_atomic(path, text.as_bytes())?;
    crate::fsutil::ensure_private_file(path)
}

fn pgtier_yml(a: &Answers) -> String {
    let remote = match &a.bucket {
        Some(b) => format!(
            "remote:                         # where the off-site tiers go (docs/offsite.md)\n  url: s3://{b}/pgtier\n  region: {}\n  # request_checksum_calculation: when_required   # for R2, B2, GCS, Hetzner and other stores that reject the newer checksum headers\n",
            a.region
        ),
        None => "# remote:                       # where the off-site tiers go; without it they stay on this host\n#   url: s3://my-backup-bucket/pgtier\n#   region: eu-central-1\n".into(),
    };
    format!(
        "# pgtier's agent configuration, written by `pgtier config init`. Every key is described in
# docs/configuration.md (/usr/share/doc/pgtier/docs/configuration.md from the Debian package).
# `pgtier config check` validates it offline; `pgtier doctor` checks online what it points at.

projects: projects.yml          # each project's database: block
policies: policies              # a folder of NAME.yml retention policies; without it, the built-in default:
                                # daily 30 days here and off-site, weekly 12 off-site, monthly 12 in Glacier
backup_root: /opt/backups       # backups live in backup_root/PROJECT/ENV/database (0700, files 0600)

{remote}
# encryption:                   # encrypt every backup as it is written (docs/encryption.md)
#   type: age
#   recipients: [age1...]       # the public key; keep the identity where restores run

# alerts:                       # one message per run that failed or warned (docs/operations.md)
#   slack: env:PGTIER_SLACK_URL
#   healthchecks: https://hc-ping.com/UUID

min_free_space: 10GB            # below it, the nightly run warns
max_backup_age_hours: 26        # audit and status: the newest backup must be younger
"
    )
}

fn projects_yml(a: &Answers) -> String {
    format!(
        "# The projects pgtier backs up, written by `pgtier config init`. pgtier reads only each
# project's database: block; a platform's other keys can live beside it.

{project}:
  database:
    type: postgresql
    host: {host}
    port: {port}
    user: {user}                  # reads every table (GRANT pg_read_all_data TO {user}); CREATEDB for drills and restores
    # password_file: /etc/pgtier/{project}.pass   # first line; or PGPASSWORD/.pgpass of the user running pgtier
    databases:                    # env: database
      production: {database}
    # policy: default             # a file in policies/ (default: the built-in default)
    # backup: {{enabled: true, retention_days: 30}}
",
        project = a.project,
        host = a.host,
        port = a.port,
        user = a.user,
        database = a.database
    )
}
