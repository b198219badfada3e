//! The persisted state of each batch's anchor: every transaction built for
//! it (the first and each fee replacement), where it stands, and once it is
//! in a block the evidence its proofs need.
//!
//! The state machine that moves these records lives in `btc-submitter`; the
//! store only keeps them, one write transaction per transition.

use bitcoin::{BlockHash, OutPoint, Txid};
use serde::{Deserialize, Serialize};

use crate::proof::AnchorEvidence;
use crate::types::{BatchSeq, HexBytes};

/// Where an anchor stands.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorStatus {
    /// A signed transaction is stored and about to be broadcast.
    Built,
    /// Broadcast; not in a block of the best chain.
    Broadcast,
    /// In a block of the best chain with fewer than the required confirmations.
    Mined,
    /// At least the required confirmations deep.
    Confirmed,
}

/// One transaction built for an anchor.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorTx {
    /// Its txid.
    pub txid: Txid,
    /// The signed transaction as broadcast (witness included).
    pub raw: HexBytes,
    /// The fee rate it pays, sat/vB.
    pub fee_rate_sat_vb: u64,
    /// The absolute fee, sat.
    pub fee_sat: u64,
    /// Its virtual size.
    pub vsize: u64,
    /// When it was built (Unix ms).
    pub built_unix_ms: u64,
}

/// The block an anchor transaction is in, and the evidence for its proofs.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinedIn {
    /// The transaction that made it into the block.
    pub txid: Txid,
    /// The block.
    pub block_hash: BlockHash,
    /// Its height.
    pub height: u32,
    /// Confirmations when last checked (1 = in the tip block).
    pub confirmations: u32,
    /// Everything a proof needs except the headers after the block.
    pub evidence: AnchorEvidence,
}

/// The anchor of one batch.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorRecord {
    /// The batch.
    pub batch: BatchSeq,
    /// Where it stands.
    pub status: AnchorStatus,
    /// The inputs every transaction of this anchor spends: replacements reuse
    /// them, so at most one of them can ever confirm.
    pub inputs: Vec<OutPoint>,
    /// Every transaction built, oldest first; the last is the current one.
    pub txs: Vec<AnchorTx>,
    /// The block holding one of `txs`, while it is in the best chain.
    pub mined: Option<MinedIn>,
    /// The fee cap was reached and the transaction is still unconfirmed.
    pub at_fee_cap: bool,
    /// When this record last changed (Unix ms).
    pub updated_unix_ms: u64,
}

impl AnchorRecord {
    /// The transaction most recently built (the one to broadcast).
    pub fn current(&self) -> Option<&AnchorTx> {
        self.txs.last()
    }

    /// Whether `txid` is one of this anchor's transactions.
    pub fn owns(&self, txid: &Txid) -> bool {
        self.txs.iter().any(|t| t.txid == *txid)
    }

    /// Whether the anchor still waits for its first confirmation.
    pub fn is_unconfirmed(&self) -> bool {
        matches!(self.status, AnchorStatus::Built | AnchorStatus::Broadcast)
    }
}
