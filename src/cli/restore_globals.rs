//! `pgtier restore-globals PROJECT ENV [BACKUP] [--from remote]`: roles and tablespaces first,
//! so a host-loss restore keeps its owners and grants.

use clap::Args;

use super::Ctx;
use super::Target;
use super::restore::SourceArgs;
use crate::error::Result;
use crate::ops::restore::Input;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  pgtier restore-globals shop production                roles and tablespaces, before a restore on a new server\n  pgtier restore-globals shop production --from remote  after a host loss"
)]
pub struct RestoreGlobalsArgs {
    #[command(flatten)]
    pub target: Target,
    /// A globals backup name (globals_YYYYMMDD_HHMMSS) or file. Default: the newest.
    pub backup: Option<String>,
    /// An extra decryption key: an age identity file or an OpenPGP secret key.
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(ctx: &Ctx, a: RestoreGlobalsArgs) -> Result<i32> {
    let cfg = ctx.config()?;
    let project = cfg.project(&a.target.project)?;
    project.database(&a.target.env)?;
    let mut keys = project.keys()?;
    for f in &a.identities {
        keys.add_key_file(f)?;
    }
    let input = match a.backup.as_deref() {
        None => Input::Latest,
        Some("-") => Input::Stdin,
        Some(s) => Input::Named(s.to_string()),
    };
    let world = crate::context::Context::new(&cfg);
    let mut e = world.env(project, &a.target.env);
    let rep = crate::ops::restore::globals::restore_globals(&mut e, &a.source.source(input), &keys, &ctx.ui).map_err(|err| {
        match &project.every_database {
            // One server, one set of roles: saved with the first database in name order.
            Some(_) if matches!(err, crate::error::Error::NotFound(_)) => crate::error::Error::NotFound(format!(
                "{err}. Project {} backs up every database of its server and saves the roles once a night, with its first database in name order: name that env",
                project.name
            )),
            _ => err,
        }
    })?;
    if ctx.ui.json {
        ctx.print_json(&rep);
    } else {
        crate::outln!("applied {} ({})", rep.source, rep.from);
        crate::outln!("created roles: {}", if rep.created_roles.is_empty() { "-".into() } else { rep.created_roles.join(", ") });
        crate::outln!("already there (skipped): {}", if rep.skipped_roles.is_empty() { "-".into() } else { rep.skipped_roles.join(", ") });
    }
    Ok(crate::error::EXIT_OK)
}
