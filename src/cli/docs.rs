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
    Ok(0)
}

pub fn man(a: ManArgs) -> Result<i32> {
    let cmd = super::Cli::command();
    match a.dir {
        None => {
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| Error::Failed(format!("cannot print the man page: {e}")))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Failed(format!("{}: cannot create the folder: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| Error::Failed(format!("{}: cannot write the man pages: {e}", dir.display())))?;
        }
    }
    Ok(0)
}
