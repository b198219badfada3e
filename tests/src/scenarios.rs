//! Anchoring scenarios written once and run against both the in-memory
//! `FakeNode` and a real litecoind regtest node, so the fake cannot drift.

use std::sync::Arc;

use aggregator::anchor::AnchorStatus;
use aggregator::clock::{Clock, FixedClock};
use aggregator::leaf::leaf_hash;
use aggregator::types::RawDigest;
use aggregator::{
    verify, AnchorNetwork, BatchSeq, ChainId, Expect, LeafHash, PosBlock, PosBlockHash, Record,
    StakerSetDigest, Store,
};
use anyhow::{bail, ensure, Context, Result};
use bitcoin::{BlockHash, Transaction, Txid};
use btc_submitter::fake::{Event, FakeNode, Hooked};
use btc_submitter::node::{BitcoinNode, NodeError, TxStatus};
use btc_submitter::{
    complete_proof, AnchorConfig, Anchorer, CoreRpcNode, FeePolicy, RpcAuth, RpcConfig,
};

use crate::node::RegtestNode;

/// A chain the scenarios can drive: the node btcts talks to, plus the
/// operator's powers over it.
pub trait TestChain {
    /// The node type btcts uses.
    type Node: BitcoinNode + 'static;
    /// A fresh client for btcts.
    fn node(&self) -> Result<Self::Node>;
    /// The chain's profile.
    fn network(&self) -> AnchorNetwork;
    /// Mines `n` blocks with the mempool.
    fn mine(&self, n: u32) -> Result<Vec<BlockHash>>;
    /// Mines `n` blocks that leave the mempool out.
    fn mine_without_mempool(&self, n: u32) -> Result<Vec<BlockHash>>;
    /// Takes `block` and every block after it out of the best chain and mines
    /// `n` mempool-free blocks instead.
    fn reorg_from(&self, block: BlockHash, n: u32) -> Result<()>;
    /// The mempool's transactions.
    fn mempool(&self) -> Result<Vec<Txid>>;
}

/// [`FakeNode`] as a test chain.
#[derive(Debug, Default)]
pub struct FakeChain(pub Arc<FakeNode>);

impl TestChain for FakeChain {
    type Node = Arc<FakeNode>;
    fn node(&self) -> Result<Arc<FakeNode>> {
        Ok(self.0.clone())
    }
    fn network(&self) -> AnchorNetwork {
        AnchorNetwork::Regtest
    }
    fn mine(&self, n: u32) -> Result<Vec<BlockHash>> {
        Ok(self.0.mine(n))
    }
    fn mine_without_mempool(&self, n: u32) -> Result<Vec<BlockHash>> {
        Ok(self.0.mine_empty(n))
    }
    fn reorg_from(&self, block: BlockHash, n: u32) -> Result<()> {
        let blocks = self.0.blocks();
        let at = blocks
            .iter()
            .position(|b| b.block_hash() == block)
            .context("block in best chain")?;
        self.0.reorg((blocks.len() - at) as u32, n);
        Ok(())
    }
    fn mempool(&self) -> Result<Vec<Txid>> {
        Ok(self
            .0
            .mempool()
            .iter()
            .map(Transaction::compute_txid)
            .collect())
    }
}

impl TestChain for RegtestNode {
    type Node = CoreRpcNode;
    fn node(&self) -> Result<CoreRpcNode> {
        let (user, pass) = self.credentials();
        let config = RpcConfig {
            url: format!("{}/wallet/btcts", self.rpc_url()),
            auth: RpcAuth::UserPass(user, pass),
        };
        Ok(CoreRpcNode::new(&config)?)
    }
    fn network(&self) -> AnchorNetwork {
        AnchorNetwork::LitecoinRegtest
    }
    fn mine(&self, n: u32) -> Result<Vec<BlockHash>> {
        RegtestNode::mine(self, u64::from(n))
    }
    fn mine_without_mempool(&self, n: u32) -> Result<Vec<BlockHash>> {
        RegtestNode::mine_without_mempool(self, n)
    }
    fn reorg_from(&self, block: BlockHash, n: u32) -> Result<()> {
        RegtestNode::reorg_from(self, &block, n).map(drop)
    }
    fn mempool(&self) -> Result<Vec<Txid>> {
        Ok(serde_json::from_value(self.call("getrawmempool", &[])?)?)
    }
}

/// A store in `dir` holding `n` records (PoS blocks of three chains and digests).
pub fn store_with_records(dir: &std::path::Path, n: u64) -> Result<(Store, Vec<LeafHash>)> {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(1_764_000_000_000));
    let store = Store::open(dir.join("btcts.redb"), clock)?;
    let records: Vec<(LeafHash, Record)> = (0..n)
        .map(|i| {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&i.to_be_bytes());
            let r = if i % 10 == 9 {
                Record::Digest {
                    digest: RawDigest(h),
                }
            } else {
                Record::PosBlock(PosBlock {
                    chain_id: ChainId::new(format!("chain-{}", i % 3)).expect("valid"),
                    height: i,
                    block_hash: PosBlockHash(h),
                    staker_set_digest: StakerSetDigest([7; 32]),
                })
            };
            (leaf_hash(&r), r)
        })
        .collect();
    store.submit(&records)?;
    Ok((store, records.into_iter().map(|(id, _)| id).collect()))
}

/// The anchoring configuration the scenarios use.
pub fn config(network: AnchorNetwork) -> AnchorConfig {
    let mut c = AnchorConfig::new(network);
    c.fees = FeePolicy {
        conf_target: 2,
        fallback: 2,
        floor: 1,
        cap: 50,
        bump_percent: 150,
        min_bump: 1,
        ..FeePolicy::default()
    };
    c
}

fn anchorer<C: TestChain>(
    chain: &C,
    store: &Store,
    config: AnchorConfig,
) -> Result<Anchorer<C::Node>> {
    Ok(Anchorer::new(
        store.clone(),
        chain.node()?,
        config,
        Arc::new(FixedClock::new(1)),
    ))
}

/// Every proof of batch `batch` verifies offline and names `txid` in `block`.
pub fn check_proofs<C: TestChain>(
    chain: &C,
    store: &Store,
    ids: &[LeafHash],
    txid: Txid,
    block: BlockHash,
) -> Result<()> {
    let node = chain.node()?;
    let expect = Expect {
        network: Some(chain.network()),
        tag: None,
    };
    for id in ids {
        let proof = store.proof(id)?.context("sealed")?;
        let proof = complete_proof(&node, proof, 10)?;
        let v = verify(&proof, &expect).map_err(|e| anyhow::anyhow!("record {id}: {e}"))?;
        let a = v.anchor.context("anchored")?;
        ensure!(
            a.txid == txid && a.block_hash == block,
            "proof names {} in {}",
            a.txid,
            a.block_hash
        );
    }
    Ok(())
}

/// Scenario 1: records → one batch → one transaction → mined → proofs verify.
/// Returns the anchor transaction's vsize.
pub fn happy_path<C: TestChain>(chain: &C) -> Result<u64> {
    let dir = tempfile::tempdir()?;
    let (store, ids) = store_with_records(dir.path(), 1000)?;
    let mut a = anchorer(chain, &store, config(chain.network()))?;
    a.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(
        record.status == AnchorStatus::Broadcast,
        "status {:?}",
        record.status
    );
    ensure!(store.pending_count()? == 0 && store.batch(BatchSeq(0))?.map(|b| b.size) == Some(1000));
    let txid = record.txs[0].txid;
    ensure!(
        chain.mempool()?.contains(&txid),
        "anchor not in the mempool"
    );
    a.step()?;
    ensure!(
        store.anchor(BatchSeq(0))?.map(|r| r.txs.len()) == Some(1),
        "no block passed: no replacement"
    );
    let block = chain.mine(1)?[0];
    a.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(
        record.status == AnchorStatus::Mined,
        "status {:?}",
        record.status
    );
    ensure!(
        record
            .mined
            .as_ref()
            .map(|m| (m.txid, m.block_hash, m.confirmations))
            == Some((txid, block, 1))
    );
    check_proofs(chain, &store, &ids, txid, block)?;
    chain.mine(5)?;
    a.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(
        record.status == AnchorStatus::Confirmed
            && record.mined.map(|m| m.confirmations) == Some(6)
    );
    ensure!(
        store.anchor(BatchSeq(1))?.is_none(),
        "nothing more to anchor"
    );
    Ok(record.txs[0].vsize)
}

/// Scenario 2: blocks pass the anchor by; each replaces it with a higher fee
/// up to the cap; the proof names the replacement that confirmed.
pub fn rbf<C: TestChain>(chain: &C) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, ids) = store_with_records(dir.path(), 50)?;
    let mut cfg = config(chain.network());
    cfg.fees = FeePolicy {
        conf_target: 2,
        fallback: 1,
        floor: 1,
        cap: 6,
        bump_percent: 150,
        min_bump: 1,
        ..FeePolicy::default()
    };
    let mut a = anchorer(chain, &store, cfg)?;
    a.step()?;
    for _ in 0..6 {
        chain.mine_without_mempool(1)?;
        a.step()?;
    }
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    let rates: Vec<u64> = record.txs.iter().map(|t| t.fee_rate_sat_vb).collect();
    ensure!(rates == [1, 2, 3, 4, 6], "fee rates {rates:?}");
    ensure!(record.at_fee_cap, "cap reached and flagged");
    let last = record.txs.last().context("txs")?.txid;
    let mempool = chain.mempool()?;
    ensure!(
        mempool.contains(&last)
            && record
                .txs
                .iter()
                .filter(|t| mempool.contains(&t.txid))
                .count()
                == 1
    );
    let block = chain.mine(1)?[0];
    a.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(
        record.mined.as_ref().map(|m| m.txid) == Some(last),
        "the replacement confirmed"
    );
    let node = chain.node()?;
    let in_chain = record
        .txs
        .iter()
        .filter(|t| matches!(node.tx_status(&t.txid), Ok(TxStatus::InBlock(_))))
        .count();
    ensure!(
        in_chain == 1,
        "{in_chain} transactions of one batch in the chain"
    );
    check_proofs(chain, &store, &ids, last, block)
}

/// After a step, the stored depth of batch 0 is never more than the node's.
fn depth_is_honest<C: TestChain>(chain: &C, store: &Store) -> Result<()> {
    if let Some(m) = store.anchor(BatchSeq(0))?.and_then(|r| r.mined) {
        let real = chain
            .node()?
            .block_status(&m.block_hash)?
            .map_or(0, |s| s.confirmations);
        ensure!(
            i64::from(m.confirmations) <= real,
            "stored depth {} > real {real}",
            m.confirmations
        );
    }
    Ok(())
}

/// Scenario 3: the anchor's block is reorged out after 2 confirmations;
/// depth drops to 0 at once, the transaction is mined again, the proof is
/// rebuilt from the new block.
pub fn reorg<C: TestChain>(chain: &C) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, ids) = store_with_records(dir.path(), 20)?;
    let mut a = anchorer(chain, &store, config(chain.network()))?;
    a.step()?;
    let first = chain.mine(2)?[0];
    a.step()?;
    let mined = store
        .anchor(BatchSeq(0))?
        .and_then(|r| r.mined)
        .context("mined")?;
    ensure!(mined.block_hash == first && mined.confirmations == 2);
    depth_is_honest(chain, &store)?;
    chain.reorg_from(first, 3)?;
    // Until the next poll the stored depth lags the chain, so proofs are
    // checked against the best chain when served.
    let stale = store.proof(&ids[0])?.context("sealed")?;
    ensure!(
        stale.anchor.is_some(),
        "the store has not seen the reorg yet"
    );
    ensure!(
        complete_proof(&chain.node()?, stale, 10)?.anchor.is_none(),
        "never served from a stale block"
    );
    a.step()?;
    depth_is_honest(chain, &store)?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(
        record.mined.is_none() && record.status == AnchorStatus::Broadcast,
        "depth must drop to 0 at once"
    );
    ensure!(
        store.proof(&ids[0])?.context("sealed")?.anchor.is_none(),
        "no proof from a stale block"
    );
    let second = chain.mine(1)?[0];
    a.step()?;
    depth_is_honest(chain, &store)?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    let mined = record.mined.context("mined again")?;
    ensure!(mined.block_hash == second && mined.confirmations == 1);
    check_proofs(chain, &store, &ids, mined.txid, second)
}

/// `node`, "crashing" its caller right after each broadcast reached the
/// network: the broadcast happens, the caller sees an error and stops.
pub fn crash_after_broadcast_node<N: BitcoinNode>(node: N) -> Hooked<N> {
    Hooked::new(node, |e| match e {
        Event::Broadcast(_) => Err(NodeError::Transient("crashed right after broadcast".into())),
        Event::Call(_) => Ok(()),
    })
}

/// Scenario 4 (in process): the submitter dies right after broadcasting the
/// anchor and right after broadcasting a replacement; a restarted submitter
/// broadcasts nothing conflicting and completes the batch.
pub fn crash_after_broadcast<C: TestChain>(chain: &C) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, ids) = store_with_records(dir.path(), 30)?;
    let cfg = config(chain.network());
    let mut crashing = Anchorer::new(
        store.clone(),
        crash_after_broadcast_node(chain.node()?),
        cfg.clone(),
        Arc::new(FixedClock::new(1)),
    );
    if crashing.step().is_ok() {
        bail!("the crash did not happen");
    }
    let record = store
        .anchor(BatchSeq(0))?
        .context("stored before broadcast")?;
    ensure!(record.status == AnchorStatus::Built);
    let mut restarted = anchorer(chain, &store, cfg.clone())?;
    restarted.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(record.status == AnchorStatus::Broadcast && record.txs.len() == 1);
    ensure!(
        chain.mempool()? == vec![record.txs[0].txid],
        "exactly the stored transaction is in the mempool"
    );
    // Crash again, this time right after broadcasting a replacement.
    chain.mine_without_mempool(1)?;
    let mut crashing = Anchorer::new(
        store.clone(),
        crash_after_broadcast_node(chain.node()?),
        cfg.clone(),
        Arc::new(FixedClock::new(2)),
    );
    if crashing.step().is_ok() {
        bail!("the second crash did not happen");
    }
    let mut restarted = anchorer(chain, &store, cfg)?;
    restarted.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    let last = record.txs.last().context("txs")?.txid;
    ensure!(
        record.txs.len() == 2 && chain.mempool()? == vec![last],
        "only the replacement is in the mempool"
    );
    let block = chain.mine(1)?[0];
    restarted.step()?;
    check_proofs(chain, &store, &ids, last, block)
}

/// Scenario 5: the node is unreachable for `outage` polls `pause` apart
/// (`set_down(true/false)` stops and restarts it). Records keep being
/// accepted and sealed, the failure is reported once, anchoring resumes.
pub fn outage<C: TestChain>(
    chain: &mut C,
    set_down: impl Fn(&mut C, bool) -> Result<()>,
    polls: u32,
    pause: std::time::Duration,
) -> Result<()> {
    use btc_submitter::StepOutcome;
    let dir = tempfile::tempdir()?;
    let (store, _) = store_with_records(dir.path(), 10)?;
    let mut a = anchorer(&*chain, &store, config(chain.network()))?;
    set_down(chain, true)?;
    let mut outcomes = Vec::new();
    for i in 0..polls {
        let r = Record::Digest {
            digest: RawDigest([i as u8; 32]),
        };
        store.submit(&[(leaf_hash(&r), r)])?;
        outcomes.push(a.step_logged());
        std::thread::sleep(pause);
    }
    ensure!(
        outcomes[0] == StepOutcome::FirstFailure,
        "first outcome {:?}",
        outcomes[0]
    );
    ensure!(
        outcomes[1..]
            .iter()
            .all(|o| *o == StepOutcome::StillFailing),
        "logged once per outage: {outcomes:?}"
    );
    ensure!(
        store.record_count()? == 10 + u64::from(polls),
        "records accepted during the outage"
    );
    ensure!(
        store.batch(BatchSeq(0))?.is_some(),
        "a batch was sealed during the outage"
    );
    ensure!(
        store.anchor(BatchSeq(0))?.is_none(),
        "nothing could be anchored"
    );
    set_down(chain, false)?;
    ensure!(a.step_logged() == StepOutcome::Recovered);
    let record = store
        .anchor(BatchSeq(0))?
        .context("anchored after the outage")?;
    ensure!(record.status == AnchorStatus::Broadcast);
    chain.mine(1)?;
    ensure!(a.step_logged() == StepOutcome::Ok);
    ensure!(store.anchor(BatchSeq(0))?.map(|r| r.status) == Some(AnchorStatus::Mined));
    // The records that arrived meanwhile go into the next batch.
    a.step()?;
    ensure!(store.anchor(BatchSeq(1))?.is_some() && store.pending_count()? == 0);
    Ok(())
}

/// Scenario 7: a steady stream of records over 10 blocks. Returns the number
/// of anchors mined in those blocks and the largest anchor vsize. (The step
/// after the last block already builds the next anchor, for the records
/// that came meanwhile: it is in the mempool, not counted.)
pub fn steady_stream<C: TestChain>(chain: &C) -> Result<(usize, u64)> {
    let dir = tempfile::tempdir()?;
    let (store, _) = store_with_records(dir.path(), 5)?;
    let mut a = anchorer(chain, &store, config(chain.network()))?;
    for block in 0..10u8 {
        for poll in 0..5u8 {
            let r = Record::Digest {
                digest: RawDigest([
                    block, poll, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 0, 0, 0, 0, 0, 0, 1,
                ]),
            };
            store.submit(&[(leaf_hash(&r), r)])?;
            a.step()?;
        }
        chain.mine(1)?;
    }
    a.step()?;
    let anchors = store.recent_anchors(100)?;
    let vsize = anchors
        .iter()
        .flat_map(|r| r.txs.iter().map(|t| t.vsize))
        .max()
        .unwrap_or(0);
    let mined = anchors.iter().filter(|r| r.mined.is_some()).count();
    ensure!(
        anchors.len() <= mined + 1,
        "{} anchors built, {mined} mined: more than one in flight",
        anchors.len()
    );
    Ok((mined, vsize))
}
