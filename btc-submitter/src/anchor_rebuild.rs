//! Stuck anchors: an anchor whose inputs were spent by a transaction that is
//! not ours (`Conflicted`), or whose first transaction the node refuses for
//! good, is rebuilt — same batch, same payload — from other coins of the
//! wallet, so that one stuck anchor cannot stop anchoring.
//!
//! The rebuilt transaction is written to the store (`built`) before it is
//! broadcast, like every other. The earlier transactions stay in the record:
//! should the spend that killed them leave the chain in a reorg, one of them
//! may still confirm, and the proof names whichever did (both carry the same
//! payload). A refused anchor is rebuilt at most once per block, and only
//! when the wallet funds it from other coins (if it picks the same ones,
//! the refusal is not about the inputs and rebuilding cannot help). Each
//! stuck anchor is logged once, and once more when it is accepted again.

use aggregator::anchor::{AnchorRecord, AnchorStatus, AnchorTx};
use aggregator::{BatchSeq, StoreError};
use bitcoin::{OutPoint, Txid};
use tracing::{debug, info, warn};

use super::{AnchorError, Anchorer};
use crate::node::BitcoinNode;

/// Why an anchor is rebuilt: the `reason` label of `btcts_anchor_rebuilds_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rebuild {
    /// A transaction that is not ours spent the anchor's inputs in the best chain.
    Conflicted,
    /// The node refuses the anchor's first transaction for good.
    Refused,
}

impl Rebuild {
    fn label(self) -> &'static str {
        match self {
            Rebuild::Conflicted => "conflicted",
            Rebuild::Refused => "refused",
        }
    }
}

impl<N: BitcoinNode> Anchorer<N> {
    /// The node refused `current`, the first transaction of `record` with its
    /// inputs, for good. Ours in the chain after all (broadcast before a
    /// crash, its change spent since): follow it. Otherwise rebuild it if
    /// `may_rebuild` (a `built` anchor on a new block), or log once and wait.
    pub(super) fn refused(
        &mut self,
        record: AnchorRecord,
        current: &AnchorTx,
        reason: &str,
        may_rebuild: bool,
    ) -> Result<(), AnchorError> {
        if let Some((txid, hash, height, confirmations)) = self.find_in_chain(&record)? {
            return self.update_mined(record, txid, hash, height, confirmations);
        }
        if may_rebuild {
            return self.rebuild(record, current, Rebuild::Refused, reason);
        }
        if !self.stuck_logged.insert((record.batch, "refused")) {
            return Ok(());
        }
        if record.status == AnchorStatus::Built {
            warn!(batch = %record.batch, txid = %current.txid, %reason, "node refuses the anchor; it is rebuilt from other coins on the next block");
        } else {
            // Not in the mempool and refused again (evicted, or a double-spend
            // waits in the mempool): once a spend of its inputs is mined the
            // anchor is `Conflicted` and rebuilt; rebuilding earlier could put
            // the batch into the chain twice.
            warn!(batch = %record.batch, txid = %current.txid, %reason, "node refuses to re-broadcast the anchor; it is rebuilt once a spend of its inputs is mined");
        }
        Ok(())
    }

    /// Funds a new transaction for the batch of `record` from other coins,
    /// at no less than the fee rate `current` paid, stores it and broadcasts it.
    pub(super) fn rebuild(
        &mut self,
        mut record: AnchorRecord,
        current: &AnchorTx,
        why: Rebuild,
        reason: &str,
    ) -> Result<(), AnchorError> {
        let batch = self.store.batch(record.batch)?.ok_or_else(|| {
            StoreError::Corrupt(format!("anchored batch {} missing", record.batch))
        })?;
        let estimate = self.node.estimate_fee_rate(self.config.fees.conf_target)?;
        let rate = self
            .config
            .fees
            .initial(estimate)
            .max(current.fee_rate_sat_vb);
        let funded = self
            .node
            .fund_and_sign(&self.payload(&batch).script_pubkey(), rate, None)?;
        let inputs: Vec<OutPoint> = funded.tx.input.iter().map(|i| i.previous_output).collect();
        if inputs.iter().any(|i| record.inputs.contains(i)) {
            if self.stuck_logged.insert((record.batch, "same coins")) {
                warn!(batch = %record.batch, txid = %current.txid, %reason, "anchor stuck: the wallet still holds its coins, so rebuilding cannot help; needs operator attention");
            }
            return Ok(());
        }
        let txid = funded.tx.compute_txid();
        if self.stuck_logged.insert((record.batch, "rebuilt")) {
            warn!(batch = %record.batch, old = %current.txid, %txid, %reason, why = why.label(), fee_rate = rate, "anchor rebuilt from other coins");
        } else {
            debug!(batch = %record.batch, old = %current.txid, %txid, %reason, why = why.label(), "anchor rebuilt again");
        }
        metrics::counter!("btcts_anchor_rebuilds_total", "reason" => why.label()).increment(1);
        metrics::counter!("btcts_anchor_transactions_total", "kind" => "rebuild").increment(1);
        record.inputs = inputs;
        record
            .txs
            .push(self.anchor_tx(&funded.tx, funded.fee_sat, rate));
        record.status = AnchorStatus::Built;
        record.at_fee_cap = false;
        record.updated_unix_ms = self.clock.now_unix_ms();
        self.store.put_anchor(&record)?;
        self.broadcast_current(&mut record, false)
    }

    /// `txid` of batch `batch` was accepted: a stuck anchor is moving again.
    pub(super) fn unstuck(&mut self, batch: BatchSeq, txid: Txid) {
        let before = self.stuck_logged.len();
        self.stuck_logged.retain(|(b, _)| *b != batch);
        if self.stuck_logged.len() != before {
            info!(%batch, %txid, "stuck anchor accepted by the node; anchoring goes on");
        }
    }
}
