//! The `btcts` command line and the HTTP daemon. The binary's `main` only
//! sets up logging and metrics and calls [`run`].

pub mod auth;
mod calendar;
pub mod config;
mod dev;
pub mod error;
pub mod events;
mod feed_cmd;
pub mod ibc;
pub mod listener;
pub mod logging;
mod manual;
pub mod metrics_catalog;
mod proof_cmd;
pub mod ratelimit;
mod reads;
mod ready;
mod routes;
pub use routes::parse_submission;
pub mod server;
pub mod status;
mod verify_cmd;
mod webhooks;

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
    /// Also verifies OpenTimestamps `.ots` files against a block header from
    /// a proof document, a headers file or a node.
    ///
    /// Without --network only mainnet proofs (bitcoin, litecoin) verify; a
    /// test network's proof needs its name and is printed with a warning.
    /// Headers must be at or above the network's difficulty floor; the
    /// result says how far to trust it: checkpointed, node-checked (--node),
    /// work-only or test-network.
    ///
    /// Exit status: 0 verified, 1 not verified (the reason names the step),
    /// 2 the file could not be read (or an `.ots` file has no header source,
    /// or the node cannot be asked).
    Verify(verify_cmd::VerifyArgs),
    /// Run the daemon: HTTP API, durable store, anchoring loop.
    ///
    /// Configuration comes from the file, then BTCTS_* environment
    /// variables, then these flags. It is checked before anything starts;
    /// a node on another chain than `network` is refused.
    Serve(ServeArgs),
    /// Run the local demo: a regtest node, a funded wallet, the service on
    /// localhost with a fresh token, and a block mined every few seconds.
    Dev(dev::DevArgs),
    /// Download a record's proof document from a btcts server.
    Proof(proof_cmd::ProofArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// IBC delivery to consumer chains: set up a chain's client, connection
    /// and channel; show its delivery status.
    #[command(subcommand)]
    Ibc(ibc::IbcCommand),
    /// Feed a Cosmos chain's blocks to btcts: follow its node over gRPC and
    /// submit each block (height, header hash, validators hash), resuming
    /// from a cursor file; `--status` shows the cursor and the lag.
    Feed(feed_cmd::FeedArgs),
    /// Print a shell completion script: `btcts completions bash >
    /// /etc/bash_completion.d/btcts` (also zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Print the man page `btcts(1)`, or with --dir write one page per
    /// command there (`man -l btcts.1`, or install into a man1 directory).
    Man(manual::ManArgs),
}

/// Arguments of `btcts serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The TOML configuration file (`btcts config example` prints one).
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
    /// Override `listen`.
    #[arg(long)]
    listen: Option<String>,
    /// Override `data_dir`.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Override any key: `--set limits.max_body_bytes=2048` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new random token and the SHA-256 hash to put in the configuration.
    New {
        /// The chain the token will submit for (printed as a config line).
        #[arg(long)]
        chain: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a commented example configuration with every key.
    Example,
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
    if !matches!(cli.command, Command::Serve(_) | Command::Dev(_)) {
        logging::init(config::LogFormat::Text);
    }
    match cli.command {
        Command::Verify(args) => verify_cmd::run(&args, out, err),
        Command::Serve(args) => report(serve(&args), err),
        Command::Dev(args) => report(dev::run(&args, out), err),
        Command::Proof(args) => report(proof_cmd::run(&args, out), err),
        Command::Ibc(command) => report(ibc::run(&command, out), err),
        Command::Feed(args) => report(feed_cmd::run(&args, out), err),
        Command::Completions(args) => report(manual::completions(&args, out), err),
        Command::Man(args) => report(manual::man(&args, out), err),
        Command::Token(TokenCommand::New { chain }) => {
            report(token_new(chain.as_deref(), out), err)
        }
        Command::Config(ConfigCommand::Example) => {
            report(write!(out, "{}", config::EXAMPLE).map_err(Into::into), err)
        }
    }
}

fn report(result: anyhow::Result<()>, err: &mut impl Write) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(err, "btcts: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn token_new(chain: Option<&str>, out: &mut impl Write) -> anyhow::Result<()> {
    if let Some(c) = chain {
        aggregator::ChainId::new(c)?;
    }
    let (token, hash) = auth::new_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    use bitcoin::hex::DisplayHex;
    let hash = hash.0.to_lower_hex_string();
    writeln!(out, "token:  {token}")?;
    writeln!(out, "sha256: {hash}")?;
    match chain {
        Some(c) => writeln!(out, "config: [auth.chains] \"{c}\" = [\"{hash}\"]")?,
        None => writeln!(out, "config: [auth] admin_token_sha256 = \"{hash}\"")?,
    }
    Ok(())
}

/// Loads and checks the configuration of `btcts serve`.
pub fn load_settings(args: &ServeArgs) -> anyhow::Result<config::Settings> {
    let mut vars: Vec<(String, String)> = env_vars().collect();
    vars.extend(config::flag_overrides(&args.set)?);
    let (mut cfg, ignored) = config::Config::load_reporting(args.config.as_deref(), vars)?;
    logging::init(cfg.log.format);
    config::warn_ignored(&ignored);
    if let Some(l) = &args.listen {
        cfg.listen = l.clone();
    }
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    Ok(cfg.validate()?)
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = load_settings(args)?;
    let (runtime, metrics) = daemon_runtime()?;
    runtime.block_on(server::serve(settings, metrics, shutdown_signal()))
}

/// The runtime a daemon runs on, and the Prometheus recorder its `/metrics`
/// renders (`None` if a recorder was already installed in this process).
pub(crate) fn daemon_runtime() -> std::io::Result<(
    tokio::runtime::Runtime,
    Option<metrics_exporter_prometheus::PrometheusHandle>,
)> {
    let metrics = metrics_catalog::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok((runtime, metrics))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}

/// The environment as text: a variable whose name or value is not UTF-8
/// (`std::env::vars` would panic on it) cannot be one of ours, so it is
/// left out.
pub(crate) fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}
