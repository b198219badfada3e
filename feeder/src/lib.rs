//! `btcts feed`: follows a CometBFT/Cosmos chain over gRPC
//! (`cosmos.base.tendermint.v1beta1.Service`) and submits each new block to
//! btcts (`POST /v1/chains/{chain_id}/blocks`): `height`, `block_hash` = the
//! CometBFT header hash (`block_id.hash`), `staker_set_digest` = the
//! header's `validators_hash`.
//!
//! The chain's node is a [`BlockSource`], btcts a [`Sink`]; [`Feeder`] moves
//! blocks from one to the other behind a durable [`Cursor`]. [`run`] and
//! [`status`] wire the real ones ([`GrpcSource`], [`HttpSink`]) from a
//! [`Config`]. The library never reads the environment; the caller sets up
//! logging (`tracing`) and, if it wants them, a metrics recorder for the
//! `btcts_feeder_*` metrics.

mod config;
mod cursor;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
mod feeder;
mod grpc;
mod http;
mod sink;
mod source;

use std::future::Future;

pub use aggregator::Height;
pub use config::{CaFile, Config, ConfigError, Options, Start, Token, DEFAULT_BATCH};
pub use cursor::{Cursor, CursorError};
pub use feeder::{FeedError, Feeder, Posted, Step};
pub use grpc::GrpcSource;
pub use http::causes;
pub use http::{client_builder, HttpSink, TlsSetupError};
pub use sink::{RecordAck, Sink, SinkError};
pub use source::{BlockSource, ChainBlock, ChainTip, SourceError};

/// Feeds `config`'s chain to btcts with `token` until `shutdown` resolves
/// (`Ok`) or a permanent error stops it (`Err`, with the reason).
/// Needs a Tokio runtime with time and I/O enabled.
pub async fn run(
    config: Config,
    token: Token,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FeedError> {
    let source = GrpcSource::new(&config.grpc, config.grpc_ca.as_ref())?;
    let sink = HttpSink::new(&config.btcts, token, config.btcts_ca.as_ref())?;
    tracing::info!(
        chain = %config.chain_id,
        grpc = %config.grpc,
        btcts = %config.btcts,
        cursor = %config.cursor_file.display(),
        every = config.every,
        batch = config.batch,
        "feeding"
    );
    Feeder::new(source, sink, config).run(shutdown).await
}

/// Where a feed stands: its cursor and, if the node answered, the chain's tip.
#[derive(Debug)]
pub struct Status {
    /// The cursor file.
    pub cursor_file: std::path::PathBuf,
    /// The highest height acknowledged, `None` before the first batch.
    pub cursor: Option<Height>,
    /// The chain's tip, or why the node did not say.
    pub tip: Result<ChainTip, SourceError>,
}

impl Status {
    /// Blocks from the cursor to the tip, when both are known.
    pub fn lag(&self) -> Option<u64> {
        let tip = self.tip.as_ref().ok()?;
        Some(tip.height.saturating_sub(self.cursor.unwrap_or(0)))
    }
}

/// Reads the cursor of `config`'s chain and asks its node for the tip.
pub async fn status(config: &Config) -> Result<Status, CursorError> {
    let cursor = Cursor::new(&config.cursor_file, config.chain_id.clone()).load()?;
    let tip = match GrpcSource::new(&config.grpc, config.grpc_ca.as_ref()) {
        Ok(source) => source.tip().await,
        Err(e) => Err(e),
    };
    Ok(Status {
        cursor_file: config.cursor_file.clone(),
        cursor,
        tip,
    })
}
