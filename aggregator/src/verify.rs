//! The offline verifier: recomputes every step of a [`Proof`] and trusts
//! nothing in it that it can recompute.
//!
//! leaf preimage → leaf hash → Merkle path → root → OP_RETURN payload in the
//! transaction → txid → transaction Merkle branch → header Merkle root →
//! header hash, difficulty floor and proof of work → headers after it
//! (linkage, floor, work, difficulty) → checkpoints → how far to trust it.

use std::fmt;

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{BlockHash, Transaction, TxMerkleNode, Txid};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::chain::AnchorNetwork;
use crate::headers::{check_next, check_work, HeaderError};
use crate::leaf;
use crate::merkle::{path_sides, root_from_path};
use crate::payload::{Payload, Tag};
use crate::proof::{AnchorEvidence, Proof};
use crate::trust::{Checkpoint, NetworkAnchors, Trust, TrustAnchors, WorkProven};
use crate::types::{BatchSeq, LeafHash, MerkleRoot, Record};

/// The step of verification that failed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The leaf preimage, its hash and the record.
    Leaf,
    /// The Merkle path from the leaf to the root.
    Path,
    /// The anchor network and its proof-of-work function.
    Network,
    /// Decoding the transaction and its txid.
    Transaction,
    /// The OP_RETURN payload: layout, tag, batch and root.
    Payload,
    /// The transaction's inclusion in the block (Merkle branch).
    Inclusion,
    /// The block header and its hash.
    Header,
    /// The block header's proof of work and difficulty floor.
    ProofOfWork,
    /// The headers after the block: linkage, floor, work and difficulty.
    HeadersAfter,
    /// The proof's blocks against the verifier's checkpoints.
    Checkpoint,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Step::Leaf => "leaf",
            Step::Path => "merkle path",
            Step::Network => "network",
            Step::Transaction => "transaction",
            Step::Payload => "op_return payload",
            Step::Inclusion => "transaction inclusion",
            Step::Header => "block header",
            Step::ProofOfWork => "proof of work",
            Step::HeadersAfter => "headers after the block",
            Step::Checkpoint => "checkpoint",
        };
        f.write_str(name)
    }
}

/// A failed verification: which step, and why.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error, Serialize)]
#[error("{step}: {detail}")]
pub struct VerifyError {
    /// The step that failed.
    pub step: Step,
    /// What was wrong, in words.
    pub detail: String,
}

fn fail<T>(step: Step, detail: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError {
        step,
        detail: detail.into(),
    })
}

/// What the verifier is told to expect beyond the document itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Expect {
    /// Require the anchor to be on this network.
    pub network: Option<AnchorNetwork>,
    /// Require this deployment tag.
    pub tag: Option<Tag>,
}

/// What a valid proof shows.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct Verified {
    /// The timestamped record.
    pub record: Record,
    /// Its leaf hash (the record id).
    pub leaf: LeafHash,
    /// Its batch.
    pub batch: BatchSeq,
    /// The batch root.
    pub root: MerkleRoot,
    /// The anchor, if the proof has one.
    pub anchor: Option<VerifiedAnchor>,
}

/// The Bitcoin facts a valid anchored proof shows.
#[derive(Clone, Copy, PartialEq, Debug, Serialize)]
pub struct VerifiedAnchor {
    /// The anchor chain.
    pub network: AnchorNetwork,
    /// The anchor transaction.
    pub txid: Txid,
    /// The block holding it.
    pub block_hash: BlockHash,
    /// That block's height as the proof states it (not committed by the header).
    pub block_height: u32,
    /// That block's header timestamp (Unix seconds).
    pub block_time: u32,
    /// Confirmations the proof itself demonstrates: 1 + headers after the block.
    pub confirmations: u32,
    /// How far to believe it: `test-network`, `checkpointed` or `work-only`
    /// here; a verifier that asks its own node makes it `node-checked`.
    pub trust: Trust,
    /// The checkpoint one of the proof's headers is, if any.
    pub checkpoint: Option<Checkpoint>,
    /// The work of the anchor block and the headers after it.
    pub work: WorkProven,
}

/// Verifies every step of `proof` against the trust anchors compiled into
/// this release (see [`verify_with`]).
pub fn verify(proof: &Proof, expect: &Expect) -> Result<Verified, VerifyError> {
    verify_with(proof, expect, TrustAnchors::shared())
}

/// Verifies every step of `proof`, with `anchors` for the difficulty floor
/// and the checkpoints. A proof on any network verifies unless `expect`
/// names one: callers that must not accept a test network say so (or look
/// at [`VerifiedAnchor::trust`]).
pub fn verify_with(
    proof: &Proof,
    expect: &Expect,
    anchors: &TrustAnchors,
) -> Result<Verified, VerifyError> {
    let leaf = check_leaf(proof)?;
    let b = &proof.batch;
    let sides: Vec<_> = proof.path.iter().map(|s| s.side).collect();
    match path_sides(b.index, b.size) {
        Some(expected) if expected == sides => {}
        Some(_) => {
            return fail(
                Step::Path,
                format!("path shape does not fit leaf {} of {}", b.index, b.size),
            )
        }
        None => {
            return fail(
                Step::Path,
                format!("leaf index {} is outside a batch of {}", b.index, b.size),
            )
        }
    }
    let root = root_from_path(&leaf, &proof.path);
    if root != b.root {
        return fail(
            Step::Path,
            format!("path leads to {root}, not to the batch root {}", b.root),
        );
    }
    let anchor = match &proof.anchor {
        None => None,
        Some(a) => Some(check_anchor(a, b.seq, root, expect, anchors)?),
    };
    Ok(Verified {
        record: proof.record.clone(),
        leaf,
        batch: b.seq,
        root,
        anchor,
    })
}

fn check_leaf(proof: &Proof) -> Result<LeafHash, VerifyError> {
    let preimage = &proof.leaf.preimage.0;
    match leaf::decode(preimage) {
        Ok(record) if record == proof.record => {}
        Ok(_) => return fail(Step::Leaf, "the leaf preimage encodes a different record"),
        Err(e) => return fail(Step::Leaf, e.to_string()),
    }
    let hash = LeafHash(Sha256::digest(preimage).into());
    if hash != proof.leaf.hash {
        return fail(
            Step::Leaf,
            format!("preimage hashes to {hash}, not {}", proof.leaf.hash),
        );
    }
    Ok(hash)
}

fn check_anchor(
    a: &AnchorEvidence,
    seq: BatchSeq,
    root: MerkleRoot,
    expect: &Expect,
    anchors: &TrustAnchors,
) -> Result<VerifiedAnchor, VerifyError> {
    if a.pow != a.network.pow() {
        return fail(
            Step::Network,
            format!(
                "{} uses {:?} proof of work, not {:?}",
                a.network,
                a.network.pow(),
                a.pow
            ),
        );
    }
    if let Some(n) = expect.network.filter(|n| *n != a.network) {
        return fail(
            Step::Network,
            format!("anchored on {}, expected {n}", a.network),
        );
    }
    let txid = check_tx(a, seq, root, expect)?;
    let header = parse_header(&a.block.header.0, Step::Header)?;
    let block_hash = header.block_hash();
    if block_hash != a.block.hash {
        return fail(
            Step::Header,
            format!("header hashes to {block_hash}, not {}", a.block.hash),
        );
    }
    let computed = branch_root(txid, a.tx_index, &a.tx_branch)?;
    if computed != header.merkle_root {
        return fail(
            Step::Inclusion,
            format!(
                "branch leads to {computed}, header commits to {}",
                header.merkle_root
            ),
        );
    }
    let net = anchors.get(a.network);
    if let Err(e) = check_work(a.network, net, &header) {
        return fail(Step::ProofOfWork, format!("block {block_hash}: {e}"));
    }
    let mut headers = vec![header];
    for (i, after) in a.headers_after.iter().enumerate() {
        let h = parse_header(&after.header.0, Step::HeadersAfter)?;
        if h.block_hash() != after.hash {
            return fail(
                Step::HeadersAfter,
                format!(
                    "header {} hashes to {}, not {}",
                    i + 1,
                    h.block_hash(),
                    after.hash
                ),
            );
        }
        let prev = headers[headers.len() - 1];
        let height = a.block.height.saturating_add(i as u32 + 1);
        match check_next(a.network, net, height, &prev, &h) {
            Ok(()) => {}
            Err(HeaderError::Link) => {
                return fail(
                    Step::HeadersAfter,
                    format!("header {} does not build on {}", i + 1, prev.block_hash()),
                )
            }
            Err(e) => {
                return fail(
                    Step::HeadersAfter,
                    format!("header {} ({}): {e}", i + 1, h.block_hash()),
                )
            }
        }
        headers.push(h);
    }
    let checkpoint = check_checkpoints(net, a.block.height, &headers)?;
    let confirmations =
        u32::try_from(a.headers_after.len()).map_or(u32::MAX, |n| n.saturating_add(1));
    let trust = if a.network.is_test_network() {
        Trust::TestNetwork
    } else if checkpoint.is_some() {
        Trust::Checkpointed
    } else {
        Trust::WorkOnly
    };
    Ok(VerifiedAnchor {
        network: a.network,
        txid,
        block_hash,
        block_height: a.block.height,
        block_time: header.time,
        confirmations,
        trust,
        checkpoint,
        work: WorkProven::of(&headers, net),
    })
}

/// The proof's blocks (the anchor at `height`, then the headers after it)
/// against the checkpoints: a checkpoint's hash must sit at the
/// checkpoint's height, and a block at a checkpoint's height must be the
/// checkpoint. Returns the highest checkpoint the proof reaches.
fn check_checkpoints(
    net: &NetworkAnchors,
    height: u32,
    headers: &[Header],
) -> Result<Option<Checkpoint>, VerifyError> {
    let mut reached = None;
    for (i, h) in headers.iter().enumerate() {
        let at = height.saturating_add(i as u32);
        let hash = h.block_hash();
        if let Some(c) = net.checkpoint(&hash) {
            if c.height != at {
                return fail(
                    Step::Checkpoint,
                    format!(
                        "block {hash} is the checkpoint at height {}, the proof puts it at {at}",
                        c.height
                    ),
                );
            }
            reached = Some(c);
        } else if let Some(c) = net.checkpoint_at(at) {
            return fail(
                Step::Checkpoint,
                format!(
                    "the proof's block at height {at} is {hash}, the checkpoint there is {}",
                    c.hash
                ),
            );
        }
    }
    Ok(reached)
}

fn check_tx(
    a: &AnchorEvidence,
    seq: BatchSeq,
    root: MerkleRoot,
    expect: &Expect,
) -> Result<Txid, VerifyError> {
    let raw = &a.tx.0;
    // A 64-byte "transaction" could pose as an inner node of the block tree.
    if raw.len() == 64 {
        return fail(Step::Transaction, "a 64-byte transaction is not accepted");
    }
    let tx: Transaction = match deserialize(raw) {
        Ok(tx) => tx,
        Err(e) => return fail(Step::Transaction, format!("cannot decode: {e}")),
    };
    if serialize(&tx) != *raw || tx.input.iter().any(|i| !i.witness.is_empty()) {
        return fail(Step::Transaction, "not in non-witness serialization");
    }
    let txid = Txid::from_raw_hash(sha256d::Hash::hash(raw));
    if txid != a.txid {
        return fail(
            Step::Transaction,
            format!("transaction hashes to {txid}, not {}", a.txid),
        );
    }
    let payloads = tx
        .output
        .iter()
        .filter(|o| Payload::is_payload_script(&o.script_pubkey))
        .count();
    if payloads > 1 {
        return fail(
            Step::Payload,
            format!(
                "the transaction has {payloads} btcts payload outputs; a v1 anchor has exactly one"
            ),
        );
    }
    let Some(output) = tx.output.get(a.output_index as usize) else {
        return fail(
            Step::Payload,
            format!("transaction has no output {}", a.output_index),
        );
    };
    let payload = match Payload::from_script(&output.script_pubkey) {
        Ok(p) => p,
        Err(e) => return fail(Step::Payload, e.to_string()),
    };
    if payload.tag != a.tag {
        return fail(
            Step::Payload,
            format!(
                "payload tag {} differs from the proof's {}",
                payload.tag, a.tag
            ),
        );
    }
    if let Some(t) = expect.tag.filter(|t| *t != payload.tag) {
        return fail(
            Step::Payload,
            format!("payload tag {}, expected {t}", payload.tag),
        );
    }
    if payload.batch != seq {
        return fail(
            Step::Payload,
            format!(
                "payload commits batch {}, the proof is for batch {seq}",
                payload.batch
            ),
        );
    }
    if payload.root != root {
        return fail(
            Step::Payload,
            format!(
                "payload commits root {}, the path leads to {root}",
                payload.root
            ),
        );
    }
    Ok(txid)
}

fn parse_header(raw: &[u8], step: Step) -> Result<Header, VerifyError> {
    if raw.len() != 80 {
        return fail(step, format!("a header is 80 bytes, got {}", raw.len()));
    }
    deserialize(raw).or_else(|e| fail(step, format!("cannot decode header: {e}")))
}

/// Bitcoin's transaction Merkle branch: at each level the running hash is on
/// the left if that bit of `index` is 0.
fn branch_root(
    txid: Txid,
    index: u32,
    branch: &[TxMerkleNode],
) -> Result<TxMerkleNode, VerifyError> {
    if branch.len() < 32 && index >> branch.len() != 0 {
        return fail(
            Step::Inclusion,
            format!(
                "transaction index {index} needs more than {} branch steps",
                branch.len()
            ),
        );
    }
    if branch.len() > 32 {
        return fail(Step::Inclusion, "branch longer than 32 steps");
    }
    let mut current = txid.to_byte_array();
    for (level, sibling) in branch.iter().enumerate() {
        let mut buf = [0u8; 64];
        let sibling = sibling.to_byte_array();
        if (index >> level) & 1 == 0 {
            buf[..32].copy_from_slice(&current);
            buf[32..].copy_from_slice(&sibling);
        } else {
            buf[..32].copy_from_slice(&sibling);
            buf[32..].copy_from_slice(&current);
        }
        current = sha256d::Hash::hash(&buf).to_byte_array();
    }
    Ok(TxMerkleNode::from_byte_array(current))
}

/// Builds the Bitcoin Merkle branch of transaction `index` among `txids`
/// (Bitcoin's rule: an odd last node is paired with itself).
pub fn tx_branch(txids: &[Txid], index: usize) -> Vec<TxMerkleNode> {
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    let mut idx = index;
    let mut branch = Vec::new();
    while level.len() > 1 {
        let sibling = (idx ^ 1).min(level.len() - 1);
        branch.push(TxMerkleNode::from_byte_array(level[sibling]));
        level = level
            .chunks(2)
            .map(|c| {
                let right = c.get(1).unwrap_or(&c[0]);
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&c[0]);
                buf[32..].copy_from_slice(right);
                sha256d::Hash::hash(&buf).to_byte_array()
            })
            .collect();
        idx /= 2;
    }
    branch
}

/// A short human summary of a verification result.
pub fn summary(v: &Verified) -> String {
    let what = match &v.record {
        Record::PosBlock(b) => format!(
            "block {} at height {} of chain {} (staker set {})",
            b.block_hash, b.height, b.chain_id, b.staker_set_digest
        ),
        Record::Digest { digest } => format!("digest {digest}"),
    };
    let mut out = format!(
        "timestamped: {what}\nrecord id:   {}\nbatch:       {} (root {})\n",
        v.leaf, v.batch, v.root
    );
    match &v.anchor {
        None => out.push_str("status:      not anchored yet (verified up to the batch root)\n"),
        Some(a) => out.push_str(&format!(
            "anchored:    {} transaction {}\nblock:       {} at height {}, {}\ndepth:       {} confirmation{} shown by this proof (proof of work checked)\n",
            a.network,
            a.txid,
            a.block_hash,
            a.block_height,
            format_unix_utc(a.block_time),
            a.confirmations,
            if a.confirmations == 1 { "" } else { "s" },
        )),
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds (civil-from-days, H. Hinnant).
pub fn format_unix_utc(secs: u32) -> String {
    let secs = i64::from(secs);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_unix_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_utc(1_231_006_505), "2009-01-03 18:15:05 UTC");
        assert_eq!(format_unix_utc(1_709_251_199), "2024-02-29 23:59:59 UTC");
    }

    #[test]
    fn tx_branch_reaches_bitcoin_merkle_root() {
        for n in 1..=9usize {
            let txids: Vec<Txid> = (0..n as u8)
                .map(|i| Txid::from_byte_array([i; 32]))
                .collect();
            let root =
                bitcoin::merkle_tree::calculate_root(txids.iter().copied()).expect("non-empty");
            for i in 0..n {
                let branch = tx_branch(&txids, i);
                let got = branch_root(txids[i], i as u32, &branch).expect("index fits");
                assert_eq!(got, TxMerkleNode::from(root), "{i} of {n}");
            }
        }
    }
}
