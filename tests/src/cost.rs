//! Anchoring cost scenarios (docs/anchoring.md, Cost): the cadence, a
//! chain's latency budget, fee patience and the daily fee budget. The
//! cadence runs against both `FakeNode` and litecoind; the rest set fee
//! estimates and clocks only the fake can.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use aggregator::anchor::AnchorStatus;
use aggregator::clock::{Clock, FixedClock};
use aggregator::leaf::leaf_hash;
use aggregator::{
    BatchSeq, ChainId, Height, LeafHash, PosBlock, PosBlockHash, Record, StakerSetDigest, Store,
};
use anyhow::{ensure, Context, Result};
use btc_submitter::node::BitcoinNode;
use btc_submitter::{AnchorConfig, Anchorer};

use crate::scenarios::{config, store_with_records, FakeChain, TestChain};

/// 2026-12-01T10:00:00Z.
pub const DEC_1_10H: u64 = 1_796_119_200_000;

fn anchorer<C: TestChain>(
    chain: &C,
    store: &Store,
    config: AnchorConfig,
    clock: Arc<dyn Clock>,
) -> Result<Anchorer<C::Node>> {
    Ok(Anchorer::new(store.clone(), chain.node()?, config, clock))
}

fn tip<C: TestChain>(chain: &C) -> Result<u64> {
    Ok(u64::from(chain.node()?.chain_info()?.tip_height))
}

/// Submits one block of `chain` at `height`; returns its record id.
pub fn submit(store: &Store, chain: &str, height: u64) -> Result<LeafHash> {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&height.to_be_bytes());
    hash[8..8 + chain.len().min(24)].copy_from_slice(&chain.as_bytes()[..chain.len().min(24)]);
    let r = Record::PosBlock(PosBlock {
        chain_id: ChainId::new(chain.to_owned()).context("chain id")?,
        height: Height::from(height),
        block_hash: PosBlockHash(hash),
        staker_set_digest: StakerSetDigest([9; 32]),
    });
    let id = leaf_hash(&r);
    store.submit(&[(id, r)])?;
    Ok(id)
}

/// Heights of the blocks holding anchors, in batch order.
pub fn anchor_blocks(store: &Store) -> Result<Vec<u64>> {
    Ok(store
        .recent_anchors(10_000)?
        .iter()
        .filter_map(|a| a.mined.as_ref().map(|m| u64::from(m.height)))
        .collect())
}

/// With `min_blocks_between_anchors = 6`, 60 blocks of steady submissions
/// produce about 10 anchors, every one at least 6 blocks after the one
/// before, and every record ends up confirmed. Returns the number of
/// anchors mined in those 60 blocks.
pub fn cadence_six<C: TestChain>(chain: &C) -> Result<usize> {
    let dir = tempfile::tempdir()?;
    let (store, mut ids) = store_with_records(dir.path(), 5)?;
    let mut cfg = config(chain.network());
    cfg.cadence.min_blocks_between_anchors = 6;
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(DEC_1_10H));
    let mut a = anchorer(chain, &store, cfg, clock)?;
    let start = tip(chain)?;
    for block in 0..60u64 {
        for i in 0..2 {
            ids.push(submit(&store, "steady-1", block * 2 + i)?);
            a.step()?;
        }
        chain.mine(1)?;
    }
    a.step()?;
    let end = tip(chain)?;
    let blocks = anchor_blocks(&store)?;
    let in_window = blocks.iter().filter(|&&h| h > start && h <= end).count();
    for pair in blocks.windows(2) {
        ensure!(
            pair[1] >= pair[0] + 6,
            "anchors in blocks {} and {}: closer than the cadence ({blocks:?})",
            pair[0],
            pair[1]
        );
    }
    // Then the tail: the last records wait for the cadence and k blocks.
    for _ in 0..20 {
        if all_confirmed(&store, &ids)? {
            return Ok(in_window);
        }
        chain.mine(1)?;
        a.step()?;
    }
    anyhow::bail!("records still unconfirmed 20 blocks after the stream ended")
}

fn all_confirmed(store: &Store, ids: &[LeafHash]) -> Result<bool> {
    for id in ids {
        let r = store.record(id)?.context("stored")?;
        let Some((batch, _)) = r.batch else {
            return Ok(false);
        };
        if store.anchor(batch)?.map(|a| a.status) != Some(AnchorStatus::Confirmed) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Cadence 6; chain `fast` has a 2-block budget. A record of another chain
/// waits for the cadence; a `fast` record arriving at tip T brings the next
/// anchor forward: built at T + 1, in block T + 2.
pub fn latency_budget<C: TestChain>(chain: &C) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = store_with_records(dir.path(), 3)?;
    let mut cfg = config(chain.network());
    cfg.cadence.min_blocks_between_anchors = 6;
    cfg.cadence
        .chain_delay_blocks
        .insert(ChainId::new("fast".to_owned()).context("id")?, 2);
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(DEC_1_10H));
    let mut a = anchorer(chain, &store, cfg, clock)?;
    a.step()?;
    ensure!(store.anchor(BatchSeq(0))?.is_some(), "first anchor at once");
    chain.mine(1)?;
    a.step()?;
    let h0 = *anchor_blocks(&store)?.first().context("mined")?;
    submit(&store, "slow", 1)?;
    a.step()?;
    chain.mine(1)?;
    a.step()?;
    ensure!(
        store.anchor(BatchSeq(1))?.is_none(),
        "a record without a budget of its own waits for the cadence"
    );
    let arrival = tip(chain)?;
    ensure!(arrival == h0 + 1);
    submit(&store, "fast", 1)?;
    a.step()?;
    ensure!(store.anchor(BatchSeq(1))?.is_none(), "not yet due");
    chain.mine(1)?;
    a.step()?;
    ensure!(
        store.anchor(BatchSeq(1))?.is_some(),
        "the fast chain's budget brings the anchor forward"
    );
    chain.mine(1)?;
    a.step()?;
    let blocks = anchor_blocks(&store)?;
    ensure!(
        blocks.get(1) == Some(&(arrival + 2)),
        "anchor in {blocks:?}, the record arrived at tip {arrival}; the cadence alone gives {}",
        h0 + 6
    );
    ensure!(
        store.batch(BatchSeq(1))?.map(|b| b.size) == Some(2),
        "both records in it"
    );
    Ok(())
}

/// Cadence 1, every record within 3 blocks, patience above 10 sat/vB: at
/// 20 sat/vB the anchor waits until the budget forces it (and pays 20);
/// at 5 sat/vB it goes at once.
pub fn fee_patience(chain: &FakeChain) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = store_with_records(dir.path(), 0)?;
    let mut cfg = config(chain.network());
    cfg.cadence.max_anchor_delay_blocks = 3;
    cfg.fees.patience_above = Some(10);
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(DEC_1_10H));
    let mut a = anchorer(chain, &store, cfg, clock)?;
    // The estimate is asked once per block.
    chain.0.set_fee_estimate(Some(20));
    a.step()?;
    let arrival = tip(chain)?;
    submit(&store, "c", 1)?;
    for n in 0..2 {
        a.step()?;
        ensure!(
            store.anchor(BatchSeq(0))?.is_none(),
            "anchored {n} blocks after arrival at 20 sat/vB"
        );
        ensure!(
            a.view().get().state == "fee_patience",
            "{:?}",
            a.view().get()
        );
        chain.mine(1)?;
    }
    a.step()?;
    ensure!(tip(chain)? == arrival + 2);
    let first = store.anchor(BatchSeq(0))?.context("forced by the budget")?;
    ensure!(first.txs[0].fee_rate_sat_vb == 20, "{:?}", first.txs[0]);
    // Fees fall in the block that mines it; the next record goes at once.
    chain.0.set_fee_estimate(Some(5));
    chain.mine(1)?;
    a.step()?;
    submit(&store, "c", 2)?;
    a.step()?;
    chain.mine(1)?;
    a.step()?;
    let second = store.anchor(BatchSeq(1))?.context("cheap: at once")?;
    ensure!(second.txs[0].fee_rate_sat_vb == 5);
    ensure!(second.mined.is_some());
    Ok(())
}

/// A daily budget of two and a half anchors: two go out, the third waits
/// (state `budget_exhausted`, records still sealed later) until the next
/// UTC day.
pub fn daily_budget(chain: &FakeChain) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = store_with_records(dir.path(), 2)?;
    let fixed = Arc::new(FixedClock::new(DEC_1_10H));
    let clock: Arc<dyn Clock> = fixed.clone();
    // What one anchor costs here.
    let mut a = anchorer(chain, &store, config(chain.network()), clock.clone())?;
    a.step()?;
    chain.mine(1)?;
    a.step()?;
    let fee = store.anchor(BatchSeq(0))?.context("anchored")?.txs[0].fee_sat;
    let mut cfg = config(chain.network());
    cfg.fees.daily_budget_sat = Some(fee * 5 / 2);
    let mut a = anchorer(chain, &store, cfg, clock)?;
    submit(&store, "c", 1)?;
    a.step()?;
    ensure!(store.anchor(BatchSeq(1))?.is_some(), "the second fits");
    chain.mine(1)?;
    a.step()?;
    submit(&store, "c", 2)?;
    for _ in 0..3 {
        a.step()?;
        ensure!(store.anchor(BatchSeq(2))?.is_none(), "over the budget");
        let view = a.view().get();
        ensure!(view.state == "budget_exhausted", "{view:?}");
        ensure!(view.spending.today_sat == 2 * fee && view.spending.today_anchors == 2);
        chain.mine(1)?;
    }
    submit(&store, "c", 3)?;
    fixed.0.store(DEC_1_10H + 86_400_000, Ordering::Relaxed);
    a.step()?;
    let third = store.anchor(BatchSeq(2))?.context("a new day")?;
    ensure!(
        store.batch(third.batch)?.map(|b| b.size) == Some(2),
        "everything that waited"
    );
    ensure!(a.view().get().state != "budget_exhausted");
    Ok(())
}

/// After a restart the loop cannot know how long pending records waited:
/// it counts their budget as spent and anchors them at once, against the
/// cadence. Without the restart the same record waits for the cadence.
pub fn restart_anchors_what_waited<C: TestChain>(chain: &C) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = store_with_records(dir.path(), 1)?;
    let mut cfg = config(chain.network());
    cfg.cadence.min_blocks_between_anchors = 6;
    cfg.cadence.max_anchor_delay_blocks = 3;
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(DEC_1_10H));
    let mut a = anchorer(chain, &store, cfg.clone(), clock.clone())?;
    a.step()?;
    chain.mine(3)?;
    a.step()?;
    ensure!(
        anchor_blocks(&store)?.len() == 1,
        "the first anchor is mined"
    );
    submit(&store, "c", 1)?;
    a.step()?;
    ensure!(
        store.anchor(BatchSeq(1))?.is_none(),
        "running on: the record waits for the cadence"
    );
    drop(a);
    let mut b = anchorer(chain, &store, cfg, clock)?;
    b.step()?;
    ensure!(
        store.anchor(BatchSeq(1))?.is_some(),
        "after a restart the record is anchored at once"
    );
    Ok(())
}
