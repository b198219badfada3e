//! Proof document v1: everything an offline verifier needs, as JSON.
//!
//! The layout is specified field by field in `docs/proof-format.md`; the
//! verifier lives in [`crate::verify`]. btcts's own hashes (leaf, path, root)
//! are hex in natural byte order; Bitcoin identifiers (txid, block hash, the
//! transaction Merkle branch) are hex in the reversed order Bitcoin Core's RPC
//! and the Electrum protocol display.

use bitcoin::block::Header;
use bitcoin::consensus::serialize;
use bitcoin::{Block, BlockHash, Transaction, TxMerkleNode, Txid};
use serde::{Deserialize, Serialize};

use crate::chain::{AnchorNetwork, PowFunction};
use crate::merkle::PathStep;
use crate::payload::{Payload, Tag};
use crate::types::{BatchSeq, HexBytes, LeafHash, MerkleRoot, Record};
use crate::verify::tx_branch;

/// The `format` field of every proof document.
pub const PROOF_FORMAT: &str = "btcts-proof";
/// The `version` this code writes and verifies.
pub const PROOF_VERSION: u32 = 1;

/// A proof document, anchored or not yet.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// Always [`PROOF_FORMAT`].
    pub format: String,
    /// Always [`PROOF_VERSION`] for this layout.
    pub version: u32,
    /// The record, as submitted.
    pub record: Record,
    /// Its leaf encoding.
    pub leaf: LeafEvidence,
    /// Its place in its batch.
    pub batch: BatchEvidence,
    /// The path from the leaf to the batch root, bottom-up.
    pub path: Vec<PathStep>,
    /// The Bitcoin evidence, once the batch is in a block.
    pub anchor: Option<AnchorEvidence>,
}

/// The leaf a record becomes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafEvidence {
    /// `0x00 ‖ kind ‖ payload` ([`crate::leaf`]).
    pub preimage: HexBytes,
    /// `SHA-256(preimage)`: the record id.
    pub hash: LeafHash,
}

/// Where the leaf sits in its batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchEvidence {
    /// The batch sequence number, also in the OP_RETURN payload.
    pub seq: BatchSeq,
    /// How many leaves the batch has.
    pub size: u64,
    /// The leaf's index in the batch, from 0.
    pub index: u64,
    /// The batch root.
    pub root: MerkleRoot,
}

/// The Bitcoin side: transaction, its inclusion in a block, and the block's work.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorEvidence {
    /// The chain the anchor is in.
    pub network: AnchorNetwork,
    /// The chain's proof-of-work function (must agree with `network`).
    pub pow: PowFunction,
    /// The deployment tag in the payload.
    pub tag: Tag,
    /// The anchor transaction, non-witness serialization.
    pub tx: HexBytes,
    /// `SHA-256d(tx)`, display order.
    pub txid: Txid,
    /// Index of the OP_RETURN output in `tx`.
    pub output_index: u32,
    /// Index of `tx` in its block.
    pub tx_index: u32,
    /// Siblings from the txid up to the header's Merkle root, display order.
    pub tx_branch: Vec<TxMerkleNode>,
    /// The block holding `tx`.
    pub block: BlockEvidence,
    /// The blocks built on it, in order: each one more confirmation.
    pub headers_after: Vec<HeaderEvidence>,
}

/// A block header and its hash.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEvidence {
    /// `SHA-256d(header)`, display order.
    pub hash: BlockHash,
    /// The 80-byte header.
    pub header: HexBytes,
}

/// The block holding the anchor transaction.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockEvidence {
    /// Its height (informational: the header does not commit to it).
    pub height: u32,
    /// `SHA-256d(header)`, display order.
    pub hash: BlockHash,
    /// The 80-byte header.
    pub header: HexBytes,
}

/// Why text is not a proof document this code understands.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// Not JSON, truncated, or a field of the wrong shape.
    #[error("malformed proof document: {0}")]
    Json(#[from] serde_json::Error),
    /// The `format` field is missing or not `btcts-proof`.
    #[error("not a btcts proof document (format field is {0:?})")]
    Format(Option<String>),
    /// A version this code does not know.
    #[error("unsupported proof version {0} (this verifier reads version 1)")]
    Version(u64),
}

impl AnchorEvidence {
    /// Assembles the evidence for anchor transaction `txid` in `block` (at
    /// `height`), followed by `after`. `None` if the block does not contain
    /// the transaction or the transaction has no OP_RETURN payload output.
    pub fn from_block(
        network: AnchorNetwork,
        tag: Tag,
        txid: Txid,
        block: &Block,
        height: u32,
        after: &[Header],
    ) -> Option<AnchorEvidence> {
        let txids: Vec<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
        let tx_index = txids.iter().position(|t| *t == txid)?;
        let mut tx = block.txdata[tx_index].clone();
        let output_index = tx
            .output
            .iter()
            .position(|o| Payload::from_script(&o.script_pubkey).is_ok_and(|p| p.tag == tag))?;
        for input in &mut tx.input {
            input.witness.clear();
        }
        let header = |h: &Header| HeaderEvidence {
            hash: h.block_hash(),
            header: HexBytes(serialize(h)),
        };
        Some(AnchorEvidence {
            network,
            pow: network.pow(),
            tag,
            tx: HexBytes(serialize(&tx)),
            txid,
            output_index: u32::try_from(output_index).ok()?,
            tx_index: u32::try_from(tx_index).ok()?,
            tx_branch: tx_branch(&txids, tx_index),
            block: BlockEvidence {
                height,
                hash: block.block_hash(),
                header: header(&block.header).header,
            },
            headers_after: after.iter().map(header).collect(),
        })
    }
}

impl Proof {
    /// This proof with `anchor` as its Bitcoin evidence.
    pub fn with_anchor(mut self, anchor: AnchorEvidence) -> Proof {
        self.anchor = Some(anchor);
        self
    }

    /// Parses a proof document, checking format and version before the layout
    /// so that a newer document gets a version error, not a field error.
    pub fn from_json(text: &str) -> Result<Proof, ProofError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let format = value.get("format").and_then(|f| f.as_str());
        if format != Some(PROOF_FORMAT) {
            return Err(ProofError::Format(format.map(str::to_owned)));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(PROOF_VERSION) => Ok(serde_json::from_value(value)?),
            Some(v) => Err(ProofError::Version(v)),
            None => Err(ProofError::Version(0)),
        }
    }

    /// The canonical text: pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing these plain types cannot fail.
        let mut s = serde_json::to_string_pretty(self).expect("proof serializes");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_format_are_checked_first() {
        assert!(matches!(Proof::from_json("{"), Err(ProofError::Json(_))));
        assert!(matches!(
            Proof::from_json("[]"),
            Err(ProofError::Format(None))
        ));
        assert!(matches!(
            Proof::from_json(r#"{"format":"ots"}"#),
            Err(ProofError::Format(Some(f))) if f == "ots"
        ));
        assert!(matches!(
            Proof::from_json(r#"{"format":"btcts-proof","version":2,"anything":1}"#),
            Err(ProofError::Version(2))
        ));
        assert!(matches!(
            Proof::from_json(r#"{"format":"btcts-proof","version":1}"#),
            Err(ProofError::Json(_))
        ));
    }
}
