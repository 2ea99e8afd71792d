//! `pgtier completions SHELL` and `pgtier man`: generated from the same definitions clap parses,
//! so they cannot drift from the flags the binary accepts.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::error::{Error, Result};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier completions bash > /etc/bash_completion.d/pgtier\n  pgtier completions zsh > \"${fpath[1]}/_pgtier\"\n  pgtier completions fish > ~/.config/fish/completions/pgtier.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier man | man -l -                  read pgtier(1) now\n  pgtier man --dir /usr/local/share/man/man1   one page per command: pgtier-restore(1), ..."
)]
pub struct ManArgs {
    /// Write pgtier.1 and one pgtier-COMMAND.1 page per command into this folder instead of
    /// printing pgtier(1) on stdout.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn completions(a: CompletionsArgs) -> Result<i32> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "pgtier", &mut std::io::stdout());
    Ok(crate::error::EXIT_OK)
}

pub fn man(a: ManArgs) -> Result<i32> {
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    match a.dir {
        None => {
            let page = page(&cmd).map_err(|e| Error::Failed(format!("cannot print the man page: {e}")))?;
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&page);
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Failed(format!("{}: cannot create the folder: {e}", dir.display())))?;
            write_pages(&cmd, &dir).map_err(|e| Error::Failed(format!("{}: cannot write the man pages: {e}", dir.display())))?;
        }
    }
    Ok(crate::error::EXIT_OK)
}

/// pgtier.1 and one page per command (`pgtier-restore.1`, `pgtier-policy-simulate.1`, …).
fn write_pages(cmd: &clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    std::fs::write(dir.join(format!("{name}.1")), page(cmd)?)
}

/// One man page: clap's name, synopsis, description, options and commands, then the sections a
/// man page is expected to have: EXAMPLES (from the help's examples), EXIT STATUS, ENVIRONMENT
/// and FILES.
fn page(cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    use clap_mangen::roff::{Roff, bold, roman};
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::new();
    // Commands and flags are not to be hyphenated where they wrap.
    roff.control("nh", []);
    let examples = examples(cmd);
    if !examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for (command, what) in examples {
            roff.control("TP", []).text([bold(command)]).text([roman(what)]);
        }
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in EXIT_STATUS {
        roff.control("TP", []).text([bold(code.to_string())]).text([roman(*what)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, what) in ENVIRONMENT {
        roff.control("TP", []).text([bold(*name)]).text([roman(*what)]);
    }
    roff.control("SH", ["FILES"]);
    for (path, what) in FILES {
        roff.control("TP", []).text([bold(*path)]).text([roman(*what)]);
    }
    roff.to_writer(&mut out)?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// The examples of a command's help (`Examples:` then one `command   what it does` a line).
fn examples(cmd: &clap::Command) -> Vec<(String, String)> {
    let Some(help) = cmd.get_after_help().map(|h| h.to_string()) else { return Vec::new() };
    let Some((_, list)) = help.split_once("Examples:") else { return Vec::new() };
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.find("  ") {
            Some(at) => (l[..at].trim().to_string(), l[at..].trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// The exit codes (the table of src/error.rs), for man pages.
const EXIT_STATUS: &[(i32, &str)] = &[
    (0, "Success: what was asked happened."),
    (
        crate::error::EXIT_FAILED,
        "The operation failed, or an audit or drill found a problem (a drill that could not run is not verified, and exits 1 too).",
    ),
    (
        crate::error::EXIT_USAGE,
        "Bad usage or invalid configuration, or what this host cannot do as asked (no fitting PostgreSQL tools, a restore onto an older major); nothing was changed.",
    ),
    (
        crate::error::EXIT_LOCKED,
        "Another pgtier run holds the run lock, or another agent the lease in the bucket (--wait-lock waits for either).",
    ),
    (
        crate::error::EXIT_THAW_PENDING,
        "A Glacier or Deep Archive thaw was requested or is under way: run the same command again later (or add --wait).",
    ),
    (crate::error::EXIT_INTERRUPTED, "Interrupted by SIGINT or SIGTERM, after cleaning up; nothing was deleted after the signal."),
];

/// The environment variables pgtier reads.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("PGTIER_CONFIG", "The agent file, like --config (default ./pgtier.yml)."),
    ("PGTIER_LOG", "A tracing filter for stderr, such as pgtier=debug; -q wins over it."),
    ("PGTIER_S3_MAX_ATTEMPTS", "Tries per S3 request, for every destination (default: each destination's attempts, 6)."),
    ("PGTIER_PG_VERSIONED_ROOT", "Where the versioned PostgreSQL tool folders N/bin are (default /usr/lib/postgresql)."),
    ("PGTIER_REPORT_PEAK_RSS", "At exit, print pgtier's own peak memory and bytes read to stderr."),
    (
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_REGION, AWS_WEB_IDENTITY_TOKEN_FILE, ...",
        "The standard AWS credential chain (environment, shared files, web identity, instance role).",
    ),
];

/// The files pgtier reads and writes.
const FILES: &[(&str, &str)] = &[
    ("/etc/pgtier/pgtier.yml", "The agent's configuration (or ./pgtier.yml); pgtier config init writes a commented one."),
    ("projects.yml", "Each project's database: block, beside pgtier.yml unless projects: says otherwise."),
    ("policies/NAME.yml", "Retention policies; default.yml is built in."),
    (
        "BACKUP_ROOT/PROJECT/ENV/database/",
        "The backups (db_YYYYMMDD_HHMMSS.dump.gz[.age|.gpg]) and their manifests (.json); files 0600, folders 0700.",
    ),
    ("BACKUP_ROOT/.pgtier.lock", "The run lock: one pgtier run at a time."),
    ("BACKUP_ROOT/.tmp/", "Temporary files (scratch_dir), swept of what killed runs left when any command starts."),
    (
        "/usr/share/doc/pgtier/",
        "The README, the documentation (docs/: configuration, operations, off-site copies, reliability, the --json contract) and contrib/ (example configuration, cron.d file, dashboards).",
    ),
];
