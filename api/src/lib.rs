//! The `btcts` command line and (in later issues) the HTTP daemon.
//!
//! Today it offers `btcts verify`, the offline proof verifier. The binary's
//! `main` only calls [`run`].

mod verify_cmd;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// btcts — a self-hosted Bitcoin timestamping aggregator.
#[derive(Debug, Parser)]
#[command(name = "btcts", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a proof document offline: leaf, Merkle path, root, OP_RETURN,
    /// transaction, block inclusion, proof of work and the headers after it.
    ///
    /// Exit status: 0 verified, 1 not verified (the reason names the step),
    /// 2 the file could not be read.
    Verify(verify_cmd::VerifyArgs),
}

/// Runs the command line `args` (program name first), writing to `out` and `err`.
pub fn run<I, T>(args: I, out: &mut impl Write, err: &mut impl Write) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    write!(out, "{e}")
                }
                _ => write!(err, "{e}"),
            };
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match cli.command {
        Command::Verify(args) => verify_cmd::run(&args, out, err),
    }
}
