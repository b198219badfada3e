//! The anchor state machine: seal pending records into batches, put each
//! batch root into one OP_RETURN transaction, replace it with higher fees
//! while blocks pass it by, follow it into a block, count confirmations and
//! undo all of that on a reorg.
//!
//! Every transition is written to the store *before* the side effect it
//! leads to: a transaction is stored signed before it is broadcast, so a
//! restart re-broadcasts the same bytes instead of funding a second,
//! conflicting anchor. All transactions of one anchor spend the same inputs,
//! so at most one of them can ever confirm — until those inputs are spent by
//! a transaction that is not ours; then the anchor is rebuilt from other
//! coins ([`rebuild`]).
//!
//! [`Anchorer::run`] steps whenever the node's tip changes (the block
//! watcher, [`crate::watch`]) and every `poll` besides.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aggregator::anchor::{AnchorRecord, AnchorStatus, AnchorTx, MinedIn};
use aggregator::clock::Clock;
use aggregator::proof::AnchorEvidence;
use aggregator::types::HexBytes;
use aggregator::{AnchorNetwork, BatchInfo, Payload, Store, StoreError, Tag};
use bitcoin::consensus::serialize;
use bitcoin::{BlockHash, Transaction};
use tracing::{error, info, warn};

use crate::cadence::{AnchoringView, Cadence};
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
    /// With `max_unconfirmed` > 1: a further anchor is started before the
    /// previous one is mined once this many records are pending. Every anchor
    /// commits all records pending when it is built, however many.
    pub early_anchor_at: u64,
    /// At most this many anchors wait for their first confirmation at once.
    pub max_unconfirmed: usize,
    /// How often anchors go out and how long records may wait for one.
    pub cadence: Cadence,
    /// How many of the most recent anchors are re-checked on every new block.
    pub watch: usize,
    /// Fees.
    pub fees: FeePolicy,
    /// How often the loop steps when no block wakes it: the fallback for
    /// a node the block watcher cannot follow, and the pace of time-driven
    /// work (cadence deadlines, broadcasting a built anchor).
    pub poll: Duration,
}

impl AnchorConfig {
    /// Defaults for `network`: k = 6, one unconfirmed anchor (about one
    /// anchor per block).
    pub fn new(network: AnchorNetwork) -> Self {
        AnchorConfig {
            network,
            tag: Tag::DEFAULT,
            confirmations: 6,
            early_anchor_at: 100_000,
            max_unconfirmed: 1,
            cadence: Cadence::every_block(),
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
    /// Shared with the block watcher while [`Anchorer::run`] runs.
    node: Arc<N>,
    config: AnchorConfig,
    clock: Arc<dyn Clock>,
    last_tip: Option<BlockHash>,
    failing: bool,
    /// Stuck anchors already logged, and what was logged (see [`rebuild`]).
    stuck_logged: BTreeSet<(aggregator::BatchSeq, &'static str)>,
    /// When the next anchor goes out: what the cadence rules last saw.
    timing: Timing,
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
            node: Arc::new(node),
            config,
            clock,
            last_tip: None,
            failing: false,
            stuck_logged: BTreeSet::new(),
            timing: Timing::default(),
        }
    }

    /// What the loop last saw, kept current while it runs (`GET /v1/anchoring`).
    pub fn view(&self) -> AnchoringView {
        self.timing.view.clone()
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
    /// down), reconcile recent anchors with the node, then seal again (the
    /// block just seen may have freed the slot) and anchor the next sealed
    /// batch if the policy allows.
    pub fn step(&mut self) -> Result<(), AnchorError> {
        self.seal_if_due(false)?;
        let tip = self.node.best_block_hash()?;
        let new_block = self.last_tip != Some(tip);
        if new_block {
            self.timing.tip_height = self.node.block_status(&tip)?.map(|s| u64::from(s.height));
            self.timing.fee_estimate = None;
        }
        for record in self.store.recent_anchors(self.config.watch)? {
            self.reconcile(record, new_block)?;
        }
        self.seal_if_due(true)?;
        self.anchor_next()?;
        self.last_tip = Some(tip);
        if new_block {
            self.refresh_spending()?;
            let balance = self.node.wallet_balance_sat()?;
            metrics::gauge!("btcts_wallet_balance_sat").set(balance as f64);
        }
        self.publish_gauges()?;
        self.publish_view()?;
        Ok(())
    }

    /// Pending records and anchors by state, for `/metrics`.
    fn publish_gauges(&self) -> Result<(), StoreError> {
        metrics::gauge!("btcts_store_pending_records").set(self.store.pending_count()? as f64);
        let recent = self.store.recent_anchors(self.config.watch)?;
        for (status, name) in [
            (AnchorStatus::Built, "built"),
            (AnchorStatus::Broadcast, "broadcast"),
            (AnchorStatus::Mined, "mined"),
            (AnchorStatus::Confirmed, "confirmed"),
        ] {
            let n = recent.iter().filter(|a| a.status == status).count();
            metrics::gauge!("btcts_anchor_recent", "status" => name).set(n as f64);
        }
        let at_cap = recent.iter().filter(|a| a.at_fee_cap).count();
        metrics::gauge!("btcts_anchor_at_fee_cap").set(at_cap as f64);
        if let Some(time) = latest_confirmed_block_time(&recent) {
            metrics::gauge!("btcts_anchor_last_confirmed_timestamp_seconds").set(f64::from(time));
        }
        Ok(())
    }

    /// [`Anchorer::step`], logging a failure once per outage (not per poll)
    /// and the recovery when it ends.
    pub fn step_logged(&mut self) -> StepOutcome {
        let outcome = match (self.step(), self.failing) {
            (Ok(()), false) => StepOutcome::Ok,
            (Ok(()), true) => {
                self.failing = false;
                info!("anchoring step succeeded again; anchoring resumes");
                StepOutcome::Recovered
            }
            (Err(e), false) => {
                self.failing = true;
                error!(error = %e, "anchoring step failed; retrying every poll, logged again only once it recovers");
                metrics::counter!("btcts_anchor_outages_total").increment(1);
                StepOutcome::FirstFailure
            }
            (Err(_), true) => StepOutcome::StillFailing,
        };
        metrics::gauge!("btcts_anchoring_failing").set(f64::from(u8::from(self.failing)));
        outcome
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

    fn anchor_next(&mut self) -> Result<(), AnchorError> {
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
        metrics::counter!("btcts_anchor_transactions_total", "kind" => "first").increment(1);
        metrics::histogram!("btcts_anchor_batch_records").record(batch.size as f64);
        self.broadcast_current(&mut record, false)
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
    /// A first transaction the node refuses is rebuilt from other coins when
    /// `may_rebuild` (once per block), else left for the next block.
    fn broadcast_current(
        &mut self,
        record: &mut AnchorRecord,
        may_rebuild: bool,
    ) -> Result<(), AnchorError> {
        let Some(current) = record.current().cloned() else {
            return Ok(());
        };
        let tx = decode(record, &current)?;
        match self.node.broadcast(&tx) {
            Ok(txid) => {
                info!(batch = %record.batch, %txid, "anchor broadcast");
                self.unstuck(record.batch, txid);
                record.status = AnchorStatus::Broadcast;
            }
            Err(NodeError::Permanent(reason)) if is_replacement(record)? => {
                // A refused replacement never reached the network: forget it
                // and keep the one before it.
                warn!(batch = %record.batch, txid = %current.txid, %reason, "replacement refused");
                record.txs.pop();
                record.status = AnchorStatus::Broadcast;
            }
            Err(NodeError::Permanent(reason)) => {
                return self.refused(record.clone(), &current, &reason, may_rebuild)
            }
            Err(e) => return Err(e.into()),
        }
        record.updated_unix_ms = self.clock.now_unix_ms();
        self.store.put_anchor(record)?;
        Ok(())
    }

    fn reconcile(&mut self, mut record: AnchorRecord, new_block: bool) -> Result<(), AnchorError> {
        if record.status == AnchorStatus::Built {
            return self.broadcast_current(&mut record, new_block);
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
            if let Some(tx) = record.txs.iter().find(|t| t.txid == txid) {
                metrics::counter!("btcts_anchor_fees_paid_sat_total").increment(tx.fee_sat);
            }
            let waited = self
                .clock
                .now_unix_ms()
                .saturating_sub(record.txs.first().map_or(0, |t| t.built_unix_ms));
            metrics::histogram!("btcts_anchor_time_to_first_confirmation_seconds")
                .record(waited as f64 / 1e3);
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

    fn update_unmined(&mut self, mut record: AnchorRecord) -> Result<(), AnchorError> {
        if let Some(m) = record.mined.take() {
            warn!(batch = %record.batch, block = %m.block_hash, "anchor block left the best chain; depth is 0 again");
            metrics::counter!("btcts_anchor_reorgs_total").increment(1);
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
                self.broadcast_current(&mut record, false)
            }
            // Spent by a transaction in the best chain that is not one of ours
            // (`find_in_chain` found none of ours there).
            TxStatus::Conflicted => self.rebuild(
                record,
                &current,
                Rebuild::Conflicted,
                "inputs spent elsewhere",
            ),
        }
    }

    /// A block passed the anchor by: replace it with a higher fee, same inputs.
    fn bump(&mut self, mut record: AnchorRecord, current: &AnchorTx) -> Result<(), AnchorError> {
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
        metrics::counter!("btcts_anchor_transactions_total", "kind" => "replacement").increment(1);
        record
            .txs
            .push(self.anchor_tx(&funded.tx, funded.fee_sat, rate));
        record.status = AnchorStatus::Built;
        record.updated_unix_ms = self.clock.now_unix_ms();
        self.store.put_anchor(&record)?;
        self.broadcast_current(&mut record, false)
    }
}

/// The stored transaction `tx` of `record`, decoded.
/// The block time (header bytes 68..72) of the highest confirmed anchor
/// among `recent`, for `btcts_anchor_last_confirmed_timestamp_seconds`.
fn latest_confirmed_block_time(recent: &[AnchorRecord]) -> Option<u32> {
    let mined = recent
        .iter()
        .filter(|a| a.status == AnchorStatus::Confirmed)
        .filter_map(|a| a.mined.as_ref())
        .max_by_key(|m| m.height)?;
    let time = mined.evidence.block.header.0.get(68..72)?;
    Some(u32::from_le_bytes(time.try_into().ok()?))
}

fn decode(record: &AnchorRecord, tx: &AnchorTx) -> Result<Transaction, StoreError> {
    bitcoin::consensus::deserialize(&tx.raw.0)
        .map_err(|e| StoreError::Corrupt(format!("anchor of batch {}: {e}", record.batch)))
}

/// Whether the current transaction of `record` replaces an earlier one with
/// the same inputs (rather than being the first of a rebuilt anchor).
fn is_replacement(record: &AnchorRecord) -> Result<bool, StoreError> {
    let Some(before) = record
        .txs
        .len()
        .checked_sub(2)
        .and_then(|i| record.txs.get(i))
    else {
        return Ok(false);
    };
    let inputs = decode(record, before)?
        .input
        .into_iter()
        .map(|i| i.previous_output);
    Ok(inputs.eq(record.inputs.iter().copied()))
}

/// The longest wait between two steps while the node keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[path = "anchor_run.rs"]
mod run;

#[path = "anchor_timing.rs"]
mod timing;
use timing::Timing;

#[path = "anchor_rebuild.rs"]
mod rebuild;
use rebuild::Rebuild;

#[cfg(test)]
#[path = "anchor_tests.rs"]
pub(crate) mod tests;
