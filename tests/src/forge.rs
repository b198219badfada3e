//! Forged proofs: what anyone can make on a laptop without a block reward's
//! worth of work. Every forgery here is a well-formed proof document whose
//! every hash, branch and proof-of-work check passes on its own terms; the
//! verifier must still refuse to call it verified (docs/proof-format.md §5).

use aggregator::leaf;
use aggregator::proof::{
    AnchorEvidence, BatchEvidence, BlockEvidence, HeaderEvidence, LeafEvidence, Proof,
    PROOF_FORMAT, PROOF_VERSION,
};
use aggregator::types::{
    BatchSeq, ChainId, HexBytes, MerkleRoot, PosBlock, PosBlockHash, Record, StakerSetDigest,
};
use aggregator::{AnchorNetwork, Payload, Tag};
use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid,
    Witness,
};

/// The header time of every forged block (2025-11-30 00:00:00 UTC) before grinding.
pub const FORGED_TIME: u32 = 1_764_460_800;
/// Bitcoin's difficulty 1 (`bits` of the genesis block).
pub const DIFFICULTY_ONE: u32 = 0x1d00_ffff;
/// The easiest `bits` of both regtest networks.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// What to forge.
#[derive(Debug, Clone, Copy)]
pub struct Forgery {
    /// The network the document claims.
    pub network: AnchorNetwork,
    /// The `bits` of every forged header.
    pub bits: u32,
    /// Headers in the proof: the anchor block and `headers - 1` after it.
    pub headers: usize,
    /// Give the anchor transaction a second btcts payload (another root).
    pub second_payload: bool,
}

/// The record every forgery timestamps.
pub fn forged_record() -> Record {
    Record::PosBlock(PosBlock {
        chain_id: ChainId::new("forged-1").expect("valid chain id"),
        height: 1,
        block_hash: PosBlockHash([0x11; 32]),
        staker_set_digest: StakerSetDigest([0x22; 32]),
    })
}

/// The anchor transaction: one input, the payload output, and with
/// `second_payload` another payload for a root of the forger's choosing.
pub fn forged_tx(root: MerkleRoot, second_payload: bool) -> Transaction {
    let payload = |root| {
        Payload {
            tag: Tag::default(),
            batch: BatchSeq(0),
            root,
        }
        .script_pubkey()
    };
    let mut output = vec![TxOut {
        value: Amount::ZERO,
        script_pubkey: payload(root),
    }];
    if second_payload {
        output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: payload(MerkleRoot([0x66; 32])),
        });
    }
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([0x42; 32]),
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output,
    }
}

/// The unsolved headers of `f`: a one-transaction anchor block, then
/// `f.headers - 1` empty-looking blocks built on it (their Merkle roots are
/// arbitrary: a proof never opens them).
pub fn forged_headers(f: &Forgery, txid: Txid) -> Vec<Header> {
    let mut prev = BlockHash::from_byte_array([0x5a; 32]);
    (0..f.headers)
        .map(|i| {
            let merkle_root = if i == 0 {
                TxMerkleNode::from_byte_array(txid.to_byte_array())
            } else {
                TxMerkleNode::from_byte_array([i as u8; 32])
            };
            let h = Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: prev,
                merkle_root,
                time: FORGED_TIME + 600 * i as u32,
                bits: CompactTarget::from_consensus(f.bits),
                nonce: 0,
            };
            prev = h.block_hash();
            h
        })
        .collect()
}

/// Forges `f`, calling `solve(i, header)` to set the nonce (and time) of
/// header `i` once its `prev_blockhash` is final; `solve` may do nothing
/// (the proof then fails its proof of work, which some tests want).
pub fn forge(f: &Forgery, mut solve: impl FnMut(usize, &mut Header)) -> Proof {
    let record = forged_record();
    let preimage = leaf::encode(&record);
    let leaf_hash = leaf::leaf_hash(&record);
    let root = MerkleRoot(leaf_hash.0);
    let tx = forged_tx(root, f.second_payload);
    let txid = tx.compute_txid();
    let mut headers = forged_headers(f, txid);
    for i in 0..headers.len() {
        if i > 0 {
            headers[i].prev_blockhash = headers[i - 1].block_hash();
        }
        solve(i, &mut headers[i]);
    }
    let evidence = |h: &Header| HeaderEvidence {
        hash: h.block_hash(),
        header: HexBytes(serialize(h)),
    };
    Proof {
        format: PROOF_FORMAT.into(),
        version: PROOF_VERSION,
        record,
        leaf: LeafEvidence {
            preimage: HexBytes(preimage),
            hash: leaf_hash,
        },
        batch: BatchEvidence {
            seq: BatchSeq(0),
            size: 1,
            index: 0,
            root,
        },
        path: Vec::new(),
        anchor: Some(AnchorEvidence {
            network: f.network,
            pow: f.network.pow(),
            tag: Tag::default(),
            tx: HexBytes(serialize(&tx)),
            txid,
            output_index: 0,
            tx_index: 0,
            tx_branch: Vec::new(),
            block: BlockEvidence {
                height: 900_000,
                hash: headers[0].block_hash(),
                header: HexBytes(serialize(&headers[0])),
            },
            headers_after: headers[1..].iter().map(evidence).collect(),
        }),
    }
}

/// Grinds the nonce (then the time) of `header` until `ok` holds.
pub fn grind(header: &mut Header, ok: impl Fn(&Header) -> bool) {
    while !ok(header) {
        header.nonce = header.nonce.wrapping_add(1);
        if header.nonce == 0 {
            header.time += 1;
        }
    }
}

/// Solves with a network's own proof of work (cheap on regtest networks).
pub fn solve_for(network: AnchorNetwork) -> impl FnMut(usize, &mut Header) {
    move |_, h| grind(h, |h| network.pow_hash(h) <= h.target())
}

/// `(time, nonce)` of the anchor block and the header after it in the
/// difficulty-1 "mainnet" forgery ([`difficulty_one_mainnet`]): found once
/// by `cargo run --release -p aggregator --example forge_difficulty_one`
/// (about 2^32 SHA-256d each; minutes on one core), pinned here so that the
/// test builds the forgery in-process without the grind.
pub const DIFFICULTY_ONE_SOLUTIONS: [(u32, u32); 2] =
    [(1_764_460_801, 454_697_849), (1_764_461_400, 519_077_611)];

/// A complete "Bitcoin mainnet" proof at difficulty 1 with valid proof of
/// work: two headers a GPU makes in seconds.
pub fn difficulty_one_mainnet() -> Proof {
    let f = Forgery {
        network: AnchorNetwork::Bitcoin,
        bits: DIFFICULTY_ONE,
        headers: DIFFICULTY_ONE_SOLUTIONS.len(),
        second_payload: false,
    };
    forge(&f, |i, h| {
        (h.time, h.nonce) = DIFFICULTY_ONE_SOLUTIONS[i];
    })
}
