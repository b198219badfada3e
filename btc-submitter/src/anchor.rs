//! The anchor state machine: seal pending records into batches, put each
//! batch root into one OP_RETURN transaction, replace it with higher fees
//! while blocks pass it by, follow it into a block, count confirmations and
//! undo all of that on a reorg.
//!
//! Every transition is written to the store *before* the side effect it
//! leads to: a transaction is stored signed before it is broadcast, so a
//! restart re-broadcasts the same bytes instead of funding a second,
//! conflicting anchor. All transactions of one anchor spend the same inputs,
//! so at most one of them can ever confirm.

use std::sync::Arc;
use std::time::Duration;

use aggregator::anchor::{AnchorRecord, AnchorStatus, AnchorTx, MinedIn};
use aggregator::clock::Clock;
use aggregator::proof::{AnchorEvidence, HeaderEvidence};
use aggregator::types::HexBytes;
use aggregator::{AnchorNetwork, BatchInfo, Payload, Proof, Store, StoreError, Tag};
use bitcoin::consensus::serialize;
use bitcoin::{BlockHash, Transaction};
use tracing::{error, info, warn};

use crate::fees::FeePolicy;
use crate::node::{BitcoinNode, ChainInfo, NodeError, TxStatus};

/// What the anchoring loop is told.
#[derive(Clone, Debug)]
pub struct AnchorConfig {
    /// The chain anchors go into.
    pub network: AnchorNetwork,
    /// The deployment tag of every payload.
    pub tag: Tag,
    /// Confirmations after which an anchor counts as confirmed (k).
    pub confirmations: u32,
    /// A batch is sealed early once this many records are pending.
    pub max_records_per_batch: u64,
    /// At most this many anchors wait for their first confirmation at once.
    pub max_unconfirmed: usize,
    /// How many of the most recent anchors are re-checked on every new block.
    pub watch: usize,
    /// Fees.
    pub fees: FeePolicy,
    /// How often the tip is polled (`getbestblockhash` is cheap).
    pub poll: Duration,
}

impl AnchorConfig {
    /// Defaults for `network`: k = 6, one unconfirmed anchor, 100k records per batch.
    pub fn new(network: AnchorNetwork) -> Self {
        AnchorConfig {
            network,
            tag: Tag::DEFAULT,
            confirmations: 6,
            max_records_per_batch: 100_000,
            max_unconfirmed: 1,
            watch: 32,
            fees: FeePolicy::default(),
            poll: Duration::from_secs(1),
        }
    }
}

/// Why the anchoring loop cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The node is on another chain.
    #[error(transparent)]
    WrongChain(#[from] WrongChain),
    /// The node could not be asked.
    #[error("cannot reach the node to check its chain: {0}")]
    Node(#[from] NodeError),
    /// The fee policy is unusable.
    #[error("invalid fee policy: {0}")]
    Fees(#[from] crate::fees::FeePolicyError),
}

/// A failure of one step.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The node failed; transient ones are retried on the next step.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The node is on another chain than configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the node is on chain {chain:?} with genesis {genesis}, but btcts is configured for {network} \
     (chain {expected_chain:?}, genesis {expected_genesis}); point it at the right node or fix `network`"
)]
pub struct WrongChain {
    /// Configured network.
    pub network: AnchorNetwork,
    /// The node's chain name.
    pub chain: String,
    /// The node's genesis.
    pub genesis: BlockHash,
    /// Expected chain name.
    pub expected_chain: &'static str,
    /// Expected genesis.
    pub expected_genesis: BlockHash,
}

/// Checks that `info` (from the node) matches `network`.
pub fn check_chain(network: AnchorNetwork, info: &ChainInfo) -> Result<(), WrongChain> {
    if info.chain == network.node_chain_name() && info.genesis == network.genesis_hash() {
        return Ok(());
    }
    Err(WrongChain {
        network,
        chain: info.chain.clone(),
        genesis: info.genesis,
        expected_chain: network.node_chain_name(),
        expected_genesis: network.genesis_hash(),
    })
}

/// The anchoring loop's state. Call [`Anchorer::step`] repeatedly.
pub struct Anchorer<N> {
    store: Store,
    node: N,
    config: AnchorConfig,
    clock: Arc<dyn Clock>,
    last_tip: Option<BlockHash>,
    failing: bool,
}

/// What [`Anchorer::step_logged`] saw, so that a loop logs an outage once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step succeeded, as did the one before.
    Ok,
    /// The step succeeded after failures (logged).
    Recovered,
    /// The step failed after a success (logged).
    FirstFailure,
    /// The step failed again (not logged).
    StillFailing,
}

impl<N> std::fmt::Debug for Anchorer<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anchorer")
            .field("config", &self.config)
            .field("last_tip", &self.last_tip)
            .finish()
    }
}

impl<N: BitcoinNode> Anchorer<N> {
    /// An anchoring loop over `store` and `node`.
    pub fn new(store: Store, node: N, config: AnchorConfig, clock: Arc<dyn Clock>) -> Self {
        Anchorer {
            store,
            node,
            config,
            clock,
            last_tip: None,
            failing: false,
        }
    }

    /// Checks the configuration and that the node is on the configured
    /// chain (name and genesis), then builds the loop. Refuses to start
    /// otherwise, with a message that says what to fix.
    pub fn connect(
        store: Store,
        node: N,
        config: AnchorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        config.fees.validate()?;
        let info = node.chain_info()?;
        check_chain(config.network, &info)?;
        info!(network = %config.network, tip = %info.tip, height = info.tip_height, "node is on the configured chain");
        Ok(Anchorer::new(store, node, config, clock))
    }

    /// The node.
    pub fn node(&self) -> &N {
        &self.node
    }

    /// One pass: seal what is due (store only, so it works while the node is
    /// down), reconcile recent anchors with the node, then anchor the next
    /// sealed batch if the policy allows.
    pub fn step(&mut self) -> Result<(), AnchorError> {
        self.seal_if_due()?;
        let tip = self.node.best_block_hash()?;
        let new_block = self.last_tip != Some(tip);
        for record in self.store.recent_anchors(self.config.watch)? {
            self.reconcile(record, new_block)?;
        }
        self.anchor_next()?;
        self.last_tip = Some(tip);
        Ok(())
    }

    /// [`Anchorer::step`], logging a failure once per outage (not per poll)
    /// and the recovery when it ends.
    pub fn step_logged(&mut self) -> StepOutcome {
        match (self.step(), self.failing) {
            (Ok(()), false) => StepOutcome::Ok,
            (Ok(()), true) => {
                self.failing = false;
                info!("anchoring step succeeded again; anchoring resumes");
                StepOutcome::Recovered
            }
            (Err(e), false) => {
                self.failing = true;
                error!(error = %e, "anchoring step failed; retrying every poll, logged again only once it recovers");
                StepOutcome::FirstFailure
            }
            (Err(_), true) => StepOutcome::StillFailing,
        }
    }

    fn seal_if_due(&self) -> Result<(), StoreError> {
        let max = self.config.max_records_per_batch;
        loop {
            let pending = self.store.pending_count()?;
            let idle =
                self.store.next_unanchored_batch()?.is_none() && self.unconfirmed_count()? == 0;
            if pending == 0 || (pending < max && !idle) {
                return Ok(());
            }
            self.store.seal_batch(max)?;
        }
    }

    fn unconfirmed_count(&self) -> Result<usize, StoreError> {
        Ok(self
            .store
            .recent_anchors(self.config.watch)?
            .iter()
            .filter(|a| a.is_unconfirmed())
            .count())
    }

    fn payload(&self, batch: &BatchInfo) -> Payload {
        Payload {
            tag: self.config.tag,
            batch: batch.seq,
            root: batch.root,
        }
    }

    fn anchor_next(&self) -> Result<(), AnchorError> {
        if self.unconfirmed_count()? >= self.config.max_unconfirmed {
            return Ok(());
        }
        let Some(batch) = self.store.next_unanchored_batch()? else {
            return Ok(());
        };
        let estimate = self.node.estimate_fee_rate(self.config.fees.conf_target)?;
        let rate = self.config.fees.initial(estimate);
        let funded = self
            .node
            .fund_and_sign(&self.payload(&batch).script_pubkey(), rate, None)?;
        let mut record = AnchorRecord {
            batch: batch.seq,
            status: AnchorStatus::Built,
            inputs: funded.tx.input.iter().map(|i| i.previous_output).collect(),
            txs: vec![self.anchor_tx(&funded.tx, funded.fee_sat, rate)],
            mined: None,
            at_fee_cap: false,
            updated_unix_ms: self.clock.now_unix_ms(),
        };
        self.store.put_anchor(&record)?;
        info!(batch = %batch.seq, txid = %funded.tx.compute_txid(), fee_rate = rate, records = batch.size, "anchor built");
        self.broadcast_current(&mut record)
    }

    fn anchor_tx(&self, tx: &Transaction, fee_sat: u64, rate: u64) -> AnchorTx {
        AnchorTx {
            txid: tx.compute_txid(),
            raw: HexBytes(serialize(tx)),
            fee_rate_sat_vb: rate,
            fee_sat,
            vsize: tx.vsize() as u64,
            built_unix_ms: self.clock.now_unix_ms(),
        }
    }

    /// Broadcasts the newest transaction; on success the anchor is `Broadcast`.
    fn broadcast_current(&self, record: &mut AnchorRecord) -> Result<(), AnchorError> {
        let Some(current) = record.current() else {
            return Ok(());
        };
        let tx: Transaction = bitcoin::consensus::deserialize(&current.raw.0)
            .map_err(|e| StoreError::Corrupt(format!("anchor of batch {}: {e}", record.batch)))?;
        match self.node.broadcast(&tx) {
            Ok(txid) => {
                info!(batch = %record.batch, %txid, "anchor broadcast");
                record.status = AnchorStatus::Broadcast;
            }
            Err(NodeError::Permanent(reason)) if record.txs.len() > 1 => {
                // A refused replacement never reached the network: forget it
                // and keep the one before it.
                warn!(batch = %record.batch, txid = %current.txid, %reason, "replacement refused");
                record.txs.pop();
                record.status = AnchorStatus::Broadcast;
            }
            Err(e) => return Err(e.into()),
        }
        record.updated_unix_ms = self.clock.now_unix_ms();
        self.store.put_anchor(record)?;
        Ok(())
    }

    fn reconcile(&self, mut record: AnchorRecord, new_block: bool) -> Result<(), AnchorError> {
        if record.status == AnchorStatus::Built {
            return self.broadcast_current(&mut record);
        }
        if !new_block {
            return Ok(());
        }
        match self.find_in_chain(&record)? {
            Some((txid, hash, height, confirmations)) => {
                self.update_mined(record, txid, hash, height, confirmations)
            }
            None => self.update_unmined(record),
        }
    }

    /// The transaction of `record` that is in a best-chain block, if any.
    fn find_in_chain(
        &self,
        record: &AnchorRecord,
    ) -> Result<Option<(bitcoin::Txid, BlockHash, u32, u32)>, AnchorError> {
        for tx in record.txs.iter().rev() {
            if let TxStatus::InBlock(hash) = self.node.tx_status(&tx.txid)? {
                // gettxoutproof and friends still answer for stale blocks:
                // only a block with confirmations ≥ 1 is in the best chain.
                if let Some(status) = self.node.block_status(&hash)? {
                    if let Ok(conf @ 1..) = u32::try_from(status.confirmations) {
                        return Ok(Some((tx.txid, hash, status.height, conf)));
                    }
                }
            }
        }
        Ok(None)
    }

    fn update_mined(
        &self,
        mut record: AnchorRecord,
        txid: bitcoin::Txid,
        hash: BlockHash,
        height: u32,
        confirmations: u32,
    ) -> Result<(), AnchorError> {
        let status = if confirmations >= self.config.confirmations {
            AnchorStatus::Confirmed
        } else {
            AnchorStatus::Mined
        };
        let same_block = record.mined.as_ref().is_some_and(|m| m.block_hash == hash);
        if same_block
            && record.status == status
            && record.mined.as_ref().map(|m| m.confirmations) == Some(confirmations)
        {
            return Ok(());
        }
        if !same_block {
            let block = self.node.block(&hash)?;
            let evidence = AnchorEvidence::from_block(
                self.config.network,
                self.config.tag,
                txid,
                &block,
                height,
                &[],
            )
            .ok_or_else(|| {
                NodeError::Permanent(format!("block {hash} does not hold anchor {txid}"))
            })?;
            info!(batch = %record.batch, %txid, block = %hash, height, "anchor mined");
            record.mined = Some(MinedIn {
                txid,
                block_hash: hash,
                height,
                confirmations,
                evidence,
            });
        }
        if let Some(m) = record.mined.as_mut() {
            m.confirmations = confirmations;
        }
        if status == AnchorStatus::Confirmed && record.status != AnchorStatus::Confirmed {
            info!(batch = %record.batch, %txid, confirmations, "anchor confirmed");
        }
        record.status = status;
        record.at_fee_cap = false;
        record.updated_unix_ms = self.clock.now_unix_ms();
        self.store.put_anchor(&record)?;
        Ok(())
    }

    fn update_unmined(&self, mut record: AnchorRecord) -> Result<(), AnchorError> {
        if let Some(m) = record.mined.take() {
            warn!(batch = %record.batch, block = %m.block_hash, "anchor block left the best chain; depth is 0 again");
            record.status = AnchorStatus::Broadcast;
            record.updated_unix_ms = self.clock.now_unix_ms();
            self.store.put_anchor(&record)?;
        }
        let Some(current) = record.current().cloned() else {
            return Ok(());
        };
        match self.node.tx_status(&current.txid)? {
            TxStatus::InMempool => self.bump(record, &current),
            TxStatus::Unknown | TxStatus::InBlock(_) => {
                warn!(batch = %record.batch, txid = %current.txid, "anchor not in the mempool; re-broadcasting");
                self.broadcast_current(&mut record)
            }
            TxStatus::Conflicted => {
                error!(batch = %record.batch, txid = %current.txid, "anchor inputs were spent elsewhere; needs operator attention");
                Ok(())
            }
        }
    }

    /// A block passed the anchor by: replace it with a higher fee, same inputs.
    fn bump(&self, mut record: AnchorRecord, current: &AnchorTx) -> Result<(), AnchorError> {
        let estimate = self.node.estimate_fee_rate(self.config.fees.conf_target)?;
        let Some(rate) = self.config.fees.bump(current.fee_rate_sat_vb, estimate) else {
            if !record.at_fee_cap {
                warn!(batch = %record.batch, txid = %current.txid, cap = self.config.fees.cap, "anchor unconfirmed at the fee cap");
                record.at_fee_cap = true;
                self.store.put_anchor(&record)?;
            }
            return Ok(());
        };
        let batch = self.store.batch(record.batch)?.ok_or_else(|| {
            StoreError::Corrupt(format!("anchored batch {} missing", record.batch))
        })?;
        let funded = self.node.fund_and_sign(
            &self.payload(&batch).script_pubkey(),
            rate,
            Some(&record.inputs),
        )?;
        info!(batch = %record.batch, replaces = %current.txid, txid = %funded.tx.compute_txid(), fee_rate = rate, "replacing anchor");
        record
            .txs
            .push(self.anchor_tx(&funded.tx, funded.fee_sat, rate));
        record.status = AnchorStatus::Built;
        record.updated_unix_ms = self.clock.now_unix_ms();
        self.store.put_anchor(&record)?;
        self.broadcast_current(&mut record)
    }
}

/// The longest wait between two steps while the node keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl<N: BitcoinNode + 'static> Anchorer<N> {
    /// Steps every `config.poll` until `shutdown` changes, off the async threads
    /// (the node client blocks). After a failure the wait doubles up to
    /// [`MAX_BACKOFF`]; the first success brings it back to `poll`. Returns
    /// the loop's state, or `None` if a step panicked.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) -> Option<Self> {
        let poll = self.config.poll;
        let mut delay = poll;
        loop {
            let joined = tokio::task::spawn_blocking(move || {
                let outcome = self.step_logged();
                (self, outcome)
            })
            .await;
            let outcome;
            (self, outcome) = match joined {
                Ok(done) => done,
                Err(e) => {
                    error!(error = %e, "anchoring step panicked; the anchoring loop stops");
                    return None;
                }
            };
            delay = match outcome {
                StepOutcome::Ok | StepOutcome::Recovered => poll,
                StepOutcome::FirstFailure | StepOutcome::StillFailing => {
                    (delay * 2).min(MAX_BACKOFF)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return Some(self),
            }
        }
    }
}

/// Adds the best-chain headers after the anchor block to `proof`, so it
/// shows its depth by itself. A proof whose block left the best chain is
/// returned without its anchor: it is never served from a stale block.
pub fn complete_proof<N: BitcoinNode>(
    node: &N,
    mut proof: Proof,
    max_headers: u32,
) -> Result<Proof, NodeError> {
    let Some(anchor) = proof.anchor.as_mut() else {
        return Ok(proof);
    };
    let in_best = node
        .block_status(&anchor.block.hash)?
        .is_some_and(|s| s.confirmations >= 1);
    if !in_best {
        proof.anchor = None;
        return Ok(proof);
    }
    anchor.headers_after.clear();
    for height in anchor.block.height + 1..=anchor.block.height.saturating_add(max_headers) {
        let Some(hash) = node.block_hash_at(height)? else {
            break;
        };
        let header = node.header(&hash)?;
        anchor.headers_after.push(HeaderEvidence {
            hash,
            header: HexBytes(serialize(&header)),
        });
    }
    Ok(proof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeNode;
    use aggregator::clock::FixedClock;
    use aggregator::types::RawDigest;
    use aggregator::{BatchSeq, Record};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Counts how often the loop polls the tip.
    struct Counting(Arc<FakeNode>, Arc<AtomicU32>);

    impl BitcoinNode for Counting {
        fn chain_info(&self) -> Result<ChainInfo, NodeError> {
            self.0.chain_info()
        }
        fn best_block_hash(&self) -> Result<BlockHash, NodeError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.best_block_hash()
        }
        fn block_status(
            &self,
            h: &BlockHash,
        ) -> Result<Option<crate::node::BlockStatus>, NodeError> {
            self.0.block_status(h)
        }
        fn block(&self, h: &BlockHash) -> Result<bitcoin::Block, NodeError> {
            self.0.block(h)
        }
        fn header(&self, h: &BlockHash) -> Result<bitcoin::block::Header, NodeError> {
            self.0.header(h)
        }
        fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError> {
            self.0.block_hash_at(height)
        }
        fn estimate_fee_rate(&self, blocks: u16) -> Result<Option<u64>, NodeError> {
            self.0.estimate_fee_rate(blocks)
        }
        fn fund_and_sign(
            &self,
            s: &bitcoin::Script,
            r: u64,
            i: Option<&[bitcoin::OutPoint]>,
        ) -> Result<crate::node::Funded, NodeError> {
            self.0.fund_and_sign(s, r, i)
        }
        fn broadcast(&self, tx: &Transaction) -> Result<bitcoin::Txid, NodeError> {
            self.0.broadcast(tx)
        }
        fn tx_status(&self, txid: &bitcoin::Txid) -> Result<TxStatus, NodeError> {
            self.0.tx_status(txid)
        }
    }

    fn store(dir: &tempfile::TempDir) -> Store {
        let store =
            Store::open(dir.path().join("s.redb"), Arc::new(FixedClock::new(0))).expect("store");
        let r = Record::Digest {
            digest: RawDigest([1; 32]),
        };
        store
            .submit(&[(aggregator::leaf::leaf_hash(&r), r)])
            .expect("stored");
        store
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_backs_off_while_the_node_is_down_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let fake = Arc::new(FakeNode::new());
        let polls = Arc::new(AtomicU32::new(0));
        let node = Counting(fake.clone(), polls.clone());
        let a = Anchorer::new(
            store.clone(),
            node,
            AnchorConfig::new(AnchorNetwork::Regtest),
            Arc::new(FixedClock::new(0)),
        );
        let (tx, rx) = tokio::sync::watch::channel(false);
        fake.set_down(true);
        let handle = tokio::spawn(a.run(rx));
        tokio::time::sleep(Duration::from_secs(120)).await;
        let while_down = polls.load(Ordering::SeqCst);
        // 2, 4, 8, 16, 30, 30, 30 s apart: 7 or 8 polls in 120 s, not 120.
        assert!(
            (5..=9).contains(&while_down),
            "{while_down} polls in 120 s while down"
        );
        assert!(
            store.batch(BatchSeq(0)).expect("query").is_some(),
            "sealed while the node was down"
        );
        fake.set_down(false);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(
            store.anchor(BatchSeq(0)).expect("query").is_some(),
            "anchored once the node is back"
        );
        let before = polls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = polls.load(Ordering::SeqCst);
        assert!(
            (9..=11).contains(&(after - before)),
            "back to one poll a second: {}",
            after - before
        );
        tx.send(true).expect("loop listens");
        assert!(
            handle.await.expect("joins").is_some(),
            "returns its state on shutdown"
        );
    }

    #[test]
    fn a_dropped_anchor_is_broadcast_again_on_the_next_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let fake = Arc::new(FakeNode::new());
        let mut a = Anchorer::new(
            store.clone(),
            fake.clone(),
            AnchorConfig::new(AnchorNetwork::Regtest),
            Arc::new(FixedClock::new(0)),
        );
        a.step().expect("anchors");
        let txid = store
            .anchor(BatchSeq(0))
            .expect("query")
            .expect("anchored")
            .txs[0]
            .txid;
        fake.drop_tx(&txid);
        fake.mine(1);
        a.step().expect("reconciles");
        assert_eq!(
            fake.mempool()
                .iter()
                .map(Transaction::compute_txid)
                .collect::<Vec<_>>(),
            vec![txid]
        );
        fake.mine(1);
        a.step().expect("reconciles");
        let record = store.anchor(BatchSeq(0)).expect("query").expect("anchored");
        assert_eq!(record.mined.map(|m| m.txid), Some(txid));
    }

    /// A transient failure at every call of the first steps in turn: the
    /// batch still ends up with exactly one anchor transaction, mined.
    #[test]
    fn transient_failures_at_any_call_leave_no_trace() {
        for skip in 0..12 {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = store(&dir);
            let fake = Arc::new(FakeNode::new());
            let config = AnchorConfig::new(AnchorNetwork::Regtest);
            let mut a = Anchorer::new(
                store.clone(),
                fake.clone(),
                config,
                Arc::new(FixedClock::new(0)),
            );
            fake.fail_after(skip, 1);
            for _ in 0..3 {
                match a.step() {
                    Ok(()) => {}
                    Err(AnchorError::Node(e)) if e.is_transient() => {}
                    Err(e) => panic!("call {skip}: {e}"),
                }
            }
            fake.mine(1);
            let ok = (0..3).any(|_| a.step().is_ok());
            assert!(ok, "failure at call {skip}: never recovered");
            let record = store.anchor(BatchSeq(0)).expect("query").expect("anchored");
            assert_eq!(
                record.txs.len(),
                1,
                "failure at call {skip}: no second anchor"
            );
            assert!(record.mined.is_some(), "failure at call {skip}: mined");
        }
    }
}
