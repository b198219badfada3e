//! `btcts feed`: the flags of the feeder, its token (from `--token-file` or
//! `BTCTS_FEED_TOKEN`, never from argv), and a runtime for
//! [`btcts_feeder::run`]; `--status` prints the cursor and the chain's lag.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use btcts_feeder::{Options, Start, Token, DEFAULT_BATCH};

/// The environment variable holding the chain's token when there is no
/// `--token-file`.
const TOKEN_VAR: &str = "BTCTS_FEED_TOKEN";

/// Arguments of `btcts feed`.
#[derive(Debug, clap::Args)]
pub struct FeedArgs {
    /// The chain's id at btcts (the `{chain_id}` it submits under).
    #[arg(long)]
    chain_id: String,
    /// The chain id the node reports, if not the same as --chain-id.
    #[arg(long)]
    node_chain_id: Option<String>,
    /// The node's Cosmos SDK gRPC endpoint (`http://` or `https://`).
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    grpc: String,
    /// A PEM file of CA certificates to trust for an https:// --grpc,
    /// besides the webpki and system roots.
    #[arg(long, value_name = "PEM")]
    grpc_ca: Option<PathBuf>,
    /// btcts's base URL (`http://` or `https://`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    btcts: String,
    /// A PEM file of CA certificates to trust for an https:// --btcts,
    /// besides the system roots.
    #[arg(long, value_name = "PEM")]
    btcts_ca: Option<PathBuf>,
    /// A file holding the chain's submit token (else BTCTS_FEED_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The directory of the cursor file (`<chain id>.cursor`).
    #[arg(long, required_unless_present = "cursor_file")]
    state_dir: Option<PathBuf>,
    /// The cursor file itself, instead of --state-dir.
    #[arg(long, conflicts_with = "state_dir")]
    cursor_file: Option<PathBuf>,
    /// Where to start without a cursor: a height, or `latest`.
    #[arg(long, value_name = "HEIGHT|latest", default_value = "1")]
    from: Start,
    /// Feed only heights divisible by N (a timestamp of H covers all of
    /// the chain's history up to H).
    #[arg(long, value_name = "N", default_value_t = 1)]
    every: u64,
    /// Records per request: at most the server's
    /// `limits.max_records_per_request`.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// How often to look for new blocks when caught up, ms.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// The longest wait between retries while the chain or btcts is down, s.
    #[arg(long, default_value_t = 60)]
    max_backoff_secs: u64,
    /// Blocks fetched from the node at once.
    #[arg(long, default_value_t = 8)]
    fetch_concurrency: usize,
    /// Print the cursor, the chain's latest height and the lag, then exit.
    #[arg(long)]
    status: bool,
}

impl FeedArgs {
    fn options(&self) -> Options {
        Options {
            chain_id: self.chain_id.clone(),
            node_chain_id: self.node_chain_id.clone(),
            grpc: self.grpc.clone(),
            btcts: self.btcts.clone(),
            grpc_ca: self.grpc_ca.clone(),
            btcts_ca: self.btcts_ca.clone(),
            cursor_file: self.cursor_file.clone(),
            state_dir: self.state_dir.clone(),
            from: Some(self.from),
            every: self.every,
            batch: self.batch,
            poll: Duration::from_millis(self.poll_ms),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            fetch_concurrency: self.fetch_concurrency,
        }
    }

    fn token(&self) -> anyhow::Result<Token> {
        if let Some(path) = &self.token_file {
            return Ok(Token::from_file(path)?);
        }
        match std::env::var(TOKEN_VAR) {
            Ok(text) => Token::new(&text).context(TOKEN_VAR),
            Err(_) => bail!("no token: give --token-file or set {TOKEN_VAR}"),
        }
    }
}

/// Runs `btcts feed`.
pub fn run(args: &FeedArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let config = args.options().validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.status {
        let status = runtime.block_on(btcts_feeder::status(&config))?;
        writeln!(out, "chain:       {}", config.chain_id)?;
        writeln!(out, "cursor file: {}", status.cursor_file.display())?;
        match status.cursor {
            Some(h) => writeln!(out, "cursor:      {h}")?,
            None => writeln!(out, "cursor:      none (nothing fed yet)")?,
        }
        match &status.tip {
            Ok(tip) => writeln!(out, "chain tip:   {} ({})", tip.height, tip.chain_id)?,
            Err(e) => writeln!(out, "chain tip:   unknown ({e})")?,
        }
        if let Some(lag) = status.lag() {
            writeln!(out, "lag:         {lag} blocks")?;
        }
        return Ok(());
    }
    let token = args.token()?;
    runtime.block_on(btcts_feeder::run(config, token, crate::shutdown_signal()))?;
    Ok(())
}
