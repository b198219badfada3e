//! Produces the golden proof files and checks them against fresh ones.
//!
//! `BTCTS_WRITE_GOLDEN=1 cargo test -p btcts-tests --test golden` rewrites
//! `aggregator/tests/data/*.json`; without it the tests only compare/verify.

use aggregator::leaf::leaf_hash;
use aggregator::proof::AnchorEvidence;
use aggregator::{verify, AnchorNetwork, Expect, Proof, Tag};
use anyhow::{Context, Result};
use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::merkle_tree::calculate_root;
use bitcoin::pow::CompactTarget;
use bitcoin::{
    Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid,
    Witness,
};
use btcts_tests::golden::sealed_store;
use btcts_tests::node::{workspace_root, RegtestNode};
use serde_json::json;

fn data_path(name: &str) -> std::path::PathBuf {
    workspace_root().join("aggregator/tests/data").join(name)
}

fn write_golden() -> bool {
    std::env::var_os("BTCTS_WRITE_GOLDEN").is_some()
}

fn check_or_write(name: &str, proof: &Proof, compare: bool) -> Result<()> {
    let path = data_path(name);
    if write_golden() {
        std::fs::write(&path, proof.to_json())?;
    } else if compare {
        let stored = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        assert_eq!(
            stored,
            proof.to_json(),
            "{name} differs from a freshly generated proof"
        );
    }
    Ok(())
}

/// A real litecoind regtest block: anchor, mine, build and verify every proof.
#[test]
fn litecoin_regtest_anchor_proofs_verify() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, batch, records) = sealed_store(dir.path())?;
    let node = RegtestNode::start()?;
    let payload = aggregator::Payload {
        tag: Tag::DEFAULT,
        batch: batch.seq,
        root: batch.root,
    };
    let data = bitcoin::hex::DisplayHex::to_lower_hex_string(&payload.to_bytes()[..]);
    let tx = node.send_outputs(json!([{ "data": data }]), 2)?;
    let mined = node.mine(3)?;
    let block = node.block(&mined[0])?;
    let height = node.height(&mined[0])?;
    let after = [node.header(&mined[1])?, node.header(&mined[2])?];
    let anchor = AnchorEvidence::from_block(
        AnchorNetwork::LitecoinRegtest,
        Tag::DEFAULT,
        tx.compute_txid(),
        &block,
        height,
        &after,
    )
    .context("anchor tx is in the first mined block")?;

    // The branch we compute agrees with the node's own gettxoutproof.
    let proof_hex = node.call(
        "gettxoutproof",
        &[json!([tx.compute_txid()]), json!(mined[0])],
    )?;
    let mb: bitcoin::MerkleBlock =
        bitcoin::consensus::encode::deserialize_hex(proof_hex.as_str().context("hex")?)?;
    let (mut matches, mut indexes) = (vec![], vec![]);
    let root = mb.txn.extract_matches(&mut matches, &mut indexes)?;
    assert_eq!(root, block.header.merkle_root);
    assert_eq!(indexes, vec![anchor.tx_index]);

    let expect = Expect {
        network: Some(AnchorNetwork::LitecoinRegtest),
        tag: Some(Tag::DEFAULT),
    };
    for (i, record) in records.iter().enumerate() {
        let proof = store
            .proof(&leaf_hash(record))?
            .context("sealed")?
            .with_anchor(anchor.clone());
        let v = verify(&proof, &expect).map_err(|e| anyhow::anyhow!("record {i}: {e}"))?;
        let a = v.anchor.context("anchored")?;
        assert_eq!(
            (a.txid, a.block_hash, a.block_height, a.confirmations),
            (tx.compute_txid(), mined[0], height, 3)
        );
        match i {
            0 => check_or_write("litecoin-regtest-pos-block.json", &proof, false)?,
            4 => check_or_write("litecoin-regtest-digest.json", &proof, false)?,
            _ => {}
        }
    }
    Ok(())
}

/// A Bitcoin-regtest block (double SHA-256 work) built and mined in-process,
/// deterministically, so the golden file must match byte for byte.
#[test]
fn bitcoin_regtest_golden_is_reproducible() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, batch, records) = sealed_store(dir.path())?;
    let payload = aggregator::Payload {
        tag: Tag::DEFAULT,
        batch: batch.seq,
        root: batch.root,
    };
    let coinbase = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(b"\x01\x01btcts golden".to_vec()),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_btc(50.0)?,
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        }],
    };
    let anchor_tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(
                Txid::from_raw_hash(sha256d::Hash::hash(b"btcts golden funding")),
                0,
            ),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![
            TxOut {
                value: Amount::ZERO,
                script_pubkey: payload.script_pubkey(),
            },
            TxOut {
                value: Amount::from_sat(4_999_990_000),
                script_pubkey: ScriptBuf::from_bytes([vec![0x00, 0x14], vec![0x11; 20]].concat()),
            },
        ],
    };
    let txdata = vec![coinbase, anchor_tx.clone()];
    let merkle_root = calculate_root(txdata.iter().map(Transaction::compute_txid))
        .map(TxMerkleNode::from)
        .context("non-empty")?;
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
    let block_header = mine(genesis, merkle_root, 1_764_000_000);
    let block = Block {
        header: block_header,
        txdata,
    };
    let h2 = mine(
        block.block_hash(),
        TxMerkleNode::from_raw_hash(sha256d::Hash::hash(b"2")),
        1_764_000_600,
    );
    let h3 = mine(
        h2.block_hash(),
        TxMerkleNode::from_raw_hash(sha256d::Hash::hash(b"3")),
        1_764_001_200,
    );
    let anchor = AnchorEvidence::from_block(
        AnchorNetwork::Regtest,
        Tag::DEFAULT,
        anchor_tx.compute_txid(),
        &block,
        1,
        &[h2, h3],
    )
    .context("anchor in block")?;
    let proof = store
        .proof(&leaf_hash(&records[1]))?
        .context("sealed")?
        .with_anchor(anchor);
    let v = verify(
        &proof,
        &Expect {
            network: Some(AnchorNetwork::Regtest),
            tag: None,
        },
    )?;
    assert_eq!(v.anchor.map(|a| a.confirmations), Some(3));
    check_or_write("bitcoin-regtest-pos-block.json", &proof, true)
}

/// Grinds the nonce of a regtest header until it meets its target.
fn mine(prev: bitcoin::BlockHash, merkle_root: TxMerkleNode, time: u32) -> Header {
    let mut header = Header {
        version: Version::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root,
        time,
        bits: CompactTarget::from_consensus(0x207f_ffff),
        nonce: 0,
    };
    while AnchorNetwork::Regtest.check_pow(&header).is_err() {
        header.nonce += 1;
    }
    header
}
