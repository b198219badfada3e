//! `btcts completions SHELL` and `btcts man`: shell completion scripts
//! (clap_complete) and man pages (clap_mangen), both generated from the
//! same command-line definition the binary parses, so they never drift.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// Arguments of `btcts completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `btcts man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write one page per command (`btcts.1`, `btcts-serve.1`, …) into this
    /// directory instead of the main page to stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "btcts", out);
    Ok(())
}

/// Prints the `btcts(1)` page, or writes every page into `args.dir`.
pub fn man(args: &ManArgs, out: &mut impl Write) -> anyhow::Result<()> {
    // `btcts help` is left out, as it is of the per-command pages.
    let cmd = crate::Cli::command().disable_help_subcommand(true);
    match &args.dir {
        Some(dir) => write_pages(cmd, dir),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            out.write_all(&page)?;
            Ok(())
        }
    }
}

fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .map_err(|e| anyhow::anyhow!("cannot write pages to {}: {e}", dir.display()))
}
