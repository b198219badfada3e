//! Serving proofs: the stored evidence plus the best-chain headers after
//! the anchor block, never from a block that left the best chain.

use aggregator::proof::HeaderEvidence;
use aggregator::types::HexBytes;
use aggregator::Proof;
use bitcoin::consensus::serialize;

use crate::node::{BitcoinNode, NodeError};

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
