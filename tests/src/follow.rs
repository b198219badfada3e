//! The anchoring loop following the node, against the fake and litecoind:
//! with the poll timer out of the way (10 min), blocks alone move a record
//! to anchored and confirmed, also across an outage of the node.

use std::sync::Arc;
use std::time::Duration;

use aggregator::anchor::AnchorStatus;
use aggregator::clock::FixedClock;
use aggregator::{BatchSeq, Store};
use anyhow::{ensure, Context, Result};
use btc_submitter::Anchorer;

use crate::scenarios::{config, store_with_records, TestChain};

/// How long a block may take to show; far below the 10 min poll.
const WAKE_DEADLINE: Duration = Duration::from_secs(20);

/// Waits until batch 0's anchor has `status`.
async fn until_anchor(store: &Store, status: AnchorStatus) -> Result<()> {
    tokio::time::timeout(WAKE_DEADLINE, async {
        loop {
            if store
                .anchor(BatchSeq(0))?
                .is_some_and(|a| a.status == status)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .with_context(|| format!("batch 0 never {status:?} within {WAKE_DEADLINE:?} (poll 10 min)"))?
}

/// Runs the loop (poll 10 min, k = 3) over `chain`: the anchor goes out at
/// the first step, and each block mined wakes the loop. Between the first
/// block and the next two, `outage` may take the node down and back while
/// the watcher waits on it.
pub fn blocks_wake_the_loop<C: TestChain>(
    chain: &mut C,
    outage: impl FnOnce(&mut C) -> Result<()>,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = store_with_records(dir.path(), 3)?;
    let mut config = config(chain.network());
    config.poll = Duration::from_secs(600);
    config.confirmations = 3;
    let a = Anchorer::new(
        store.clone(),
        chain.node()?,
        config,
        Arc::new(FixedClock::new(1)),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let running = rt.spawn(a.run(stop_rx));
    rt.block_on(until_anchor(&store, AnchorStatus::Broadcast))?;
    chain.mine(1)?;
    rt.block_on(until_anchor(&store, AnchorStatus::Mined))?;
    outage(chain)?;
    chain.mine(2)?;
    rt.block_on(until_anchor(&store, AnchorStatus::Confirmed))?;
    stop.send(true)?;
    let stopped = rt.block_on(async { tokio::time::timeout(WAKE_DEADLINE, running).await })?;
    ensure!(stopped?.is_some(), "the loop returns its state on shutdown");
    Ok(())
}
