//! The feed loop: from the cursor to the chain's tip, fetch the selected
//! heights (every block, or every Nth), submit them in height order in
//! batches of at most the server's per-request limit, and move the cursor
//! only after btcts acknowledged the batch. [`Feeder::step`] does one batch
//! (tests call it); [`Feeder::run`] loops it with backoff until shutdown.
//!
//! Transient failures (chain or btcts unreachable, 429/503) are retried:
//! after `Retry-After` when btcts gives one, else with an exponential delay
//! capped at `max_backoff`. Anything else stops the feeder with the reason.

use std::future::Future;
use std::time::Duration;

use aggregator::{ChainId, Height};
use futures_util::{StreamExt, TryStreamExt};
use tracing::{info, warn};

use crate::config::{Config, Start};
use crate::cursor::{Cursor, CursorError};
use crate::sink::{Sink, SinkError};
use crate::source::{BlockSource, ChainBlock, SourceError};

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The chain's node.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// btcts.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The cursor file.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The node serves another chain than the one configured.
    #[error("the node at the gRPC endpoint serves chain {found:?}, not {expected:?} (see --node-chain-id)")]
    WrongChain {
        /// The chain id expected.
        expected: String,
        /// The chain id the node reports.
        found: String,
    },
}

impl FeedError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            FeedError::Source(e) => e.is_transient(),
            FeedError::Sink(e) => e.is_transient(),
            FeedError::Cursor(_) | FeedError::WrongChain { .. } => false,
        }
    }
}

/// One acknowledged batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Its first height.
    pub from: Height,
    /// Its last height (now the cursor).
    pub to: Height,
    /// Records btcts stored for the first time.
    pub new: usize,
    /// Records btcts already held (re-posts after a crash).
    pub duplicates: usize,
    /// Heights at which btcts holds another block hash of this chain.
    pub conflicts: Vec<Height>,
    /// The chain's tip when the batch was read.
    pub tip: Height,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A batch was submitted and acknowledged.
    Posted(Posted),
    /// Nothing to submit: every selected height up to the tip is in.
    CaughtUp {
        /// The cursor (`None` if nothing was ever submitted).
        cursor: Option<Height>,
        /// The chain's tip.
        tip: Height,
    },
}

/// The next `limit` heights from `next` up to `tip` that are multiples of `every`.
pub(crate) fn selected(next: Height, tip: Height, every: u64, limit: usize) -> Vec<Height> {
    let first = next.max(1).div_ceil(every).saturating_mul(every);
    if first > tip {
        return Vec::new();
    }
    (first..=tip)
        .step_by(usize::try_from(every).unwrap_or(usize::MAX))
        .take(limit)
        .collect()
}

/// Exponential delays between retries, reset by a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt: `retry_after` when the server
    /// named one, else the current delay, which then doubles up to the cap.
    pub(crate) fn delay(&mut self, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Feeds one chain's blocks from a [`BlockSource`] to a [`Sink`].
#[derive(Debug)]
pub struct Feeder<S, K> {
    source: S,
    sink: K,
    cursor: Cursor,
    config: Config,
    /// The next height to consider; read from the cursor on the first step.
    next: Option<Height>,
    /// Behind the tip since the last "caught up" line.
    lagging: bool,
}

impl<S: BlockSource, K: Sink> Feeder<S, K> {
    /// A feeder with `config`'s chain, cursor file and batching.
    pub fn new(source: S, sink: K, config: Config) -> Feeder<S, K> {
        Feeder {
            source,
            sink,
            cursor: Cursor::new(&config.cursor_file, config.chain_id.clone()),
            config,
            next: None,
            lagging: true,
        }
    }

    /// The chain being fed.
    pub fn chain(&self) -> &ChainId {
        &self.config.chain_id
    }

    /// Submits the next batch, if there is one.
    pub async fn step(&mut self) -> Result<Step, FeedError> {
        let tip = self.source.tip().await?;
        if tip.chain_id != self.config.node_chain_id {
            return Err(FeedError::WrongChain {
                expected: self.config.node_chain_id.clone(),
                found: tip.chain_id,
            });
        }
        metrics::gauge!("btcts_feeder_chain_height").set(tip.height as f64);
        let next = match self.next {
            Some(n) => n,
            None => match self.cursor.load()? {
                Some(c) => c.saturating_add(1),
                None => match self.config.start {
                    Start::Height(h) => h,
                    Start::Latest => tip.height,
                },
            },
        };
        self.next = Some(next);
        let heights = selected(next, tip.height, self.config.every, self.config.batch);
        let (Some(&from), Some(&to)) = (heights.first(), heights.last()) else {
            let cursor = next.checked_sub(1).filter(|&c| c > 0);
            let lag = tip.height.saturating_sub(cursor.unwrap_or(0));
            metrics::gauge!("btcts_feeder_lag_blocks").set(lag as f64);
            if std::mem::take(&mut self.lagging) {
                info!(chain = %self.config.chain_id, cursor, tip = tip.height, "caught up");
            }
            return Ok(Step::CaughtUp {
                cursor,
                tip: tip.height,
            });
        };
        let blocks: Vec<ChainBlock> = futures_util::stream::iter(heights)
            .map(|h| self.source.block(h))
            .buffered(self.config.fetch_concurrency)
            .try_collect()
            .await?;
        let acks = self.sink.submit(&self.config.chain_id, &blocks).await?;
        self.cursor.store(to)?;
        self.next = Some(to.saturating_add(1));
        let duplicates = acks.iter().filter(|a| a.duplicate).count();
        let new = acks.len() - duplicates;
        let conflicts: Vec<Height> = blocks
            .iter()
            .zip(&acks)
            .filter(|(_, a)| a.conflict)
            .map(|(b, _)| b.height)
            .collect();
        let lag = tip.height.saturating_sub(to);
        self.lagging |= lag > 0;
        metrics::counter!("btcts_feeder_records_new_total").increment(new as u64);
        metrics::counter!("btcts_feeder_records_duplicate_total").increment(duplicates as u64);
        metrics::counter!("btcts_feeder_conflicts_total").increment(conflicts.len() as u64);
        metrics::gauge!("btcts_feeder_cursor_height").set(to as f64);
        metrics::gauge!("btcts_feeder_lag_blocks").set(lag as f64);
        info!(chain = %self.config.chain_id, from, to, new, duplicates, lag, "batch posted");
        if !conflicts.is_empty() {
            warn!(
                chain = %self.config.chain_id,
                heights = ?conflicts,
                "btcts holds another block hash of this chain at these heights: a fork or a \
                 wrong submission under this chain's token (GET /v1/chains/{{id}}/conflicts)"
            );
        }
        Ok(Step::Posted(Posted {
            from,
            to,
            new,
            duplicates,
            conflicts,
            tip: tip.height,
        }))
    }

    /// Feeds until `shutdown` resolves (`Ok`) or a permanent error (`Err`).
    /// A batch interrupted by shutdown is posted again by the next run.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), FeedError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = Backoff::new(self.config.min_backoff, self.config.max_backoff);
        loop {
            let result = tokio::select! {
                () = &mut shutdown => return Ok(()),
                r = self.step() => r,
            };
            let wait = match result {
                Ok(Step::Posted(_)) => {
                    backoff.reset();
                    continue;
                }
                Ok(Step::CaughtUp { .. }) => {
                    backoff.reset();
                    self.config.poll
                }
                Err(e) if e.is_transient() => {
                    let retry_after = match &e {
                        FeedError::Sink(s) => s.retry_after(),
                        _ => None,
                    };
                    let wait = backoff.delay(retry_after);
                    metrics::counter!("btcts_feeder_retries_total").increment(1);
                    warn!(chain = %self.config.chain_id, error = %e, retry_in_ms = wait.as_millis() as u64, "retrying");
                    wait
                }
                Err(e) => return Err(e),
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
