//! A stuck anchor does not stop anchoring: on a real litecoind, another
//! transaction of the same wallet double-spends the anchor's input at a higher
//! fee and is mined; btcts rebuilds the anchor from other coins (same batch,
//! same payload), it confirms, its proofs verify, and later batches anchor too.

use std::sync::Arc;

use aggregator::anchor::AnchorStatus;
use aggregator::clock::FixedClock;
use aggregator::leaf::leaf_hash;
use aggregator::types::RawDigest;
use aggregator::{BatchSeq, Payload, Record, Store, Tag};
use anyhow::{ensure, Context, Result};
use bitcoin::consensus::deserialize;
use bitcoin::{Amount, OutPoint, Transaction, Txid};
use btc_submitter::Anchorer;
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::{self, TestChain};
use serde_json::json;

/// Spends `input` (a wallet coin) to a new wallet address, paying 100,000
/// sat, and sends it: it replaces the anchor in the mempool.
fn double_spend(node: &RegtestNode, input: OutPoint) -> Result<Txid> {
    let coin = node.call(
        "gettxout",
        &[json!(input.txid), json!(input.vout), json!(false)],
    )?;
    let value = Amount::from_btc(coin["value"].as_f64().context("coin value")?)?;
    let to = node.call("getnewaddress", &[])?;
    let pay = value
        .checked_sub(Amount::from_sat(100_000))
        .context("coin too small")?;
    let raw = node.call(
        "createrawtransaction",
        &[
            json!([{ "txid": input.txid, "vout": input.vout }]),
            json!([{ to.as_str().context("address")?: pay.to_btc() }]),
        ],
    )?;
    let signed = node.call("signrawtransactionwithwallet", &[raw])?;
    ensure!(signed["complete"] == json!(true), "signed: {signed}");
    Ok(serde_json::from_value(
        node.call("sendrawtransaction", &[signed["hex"].clone()])?,
    )?)
}

/// Whether the current transaction of batch `seq` carries that batch's payload.
fn carries_its_batch(store: &Store, seq: u64) -> Result<bool> {
    let record = store.anchor(BatchSeq(seq))?.context("anchored")?;
    let tx: Transaction = deserialize(&record.current().context("tx")?.raw.0)?;
    let batch = store.batch(BatchSeq(seq))?.context("sealed")?;
    let payload = Payload {
        tag: Tag::DEFAULT,
        batch: batch.seq,
        root: batch.root,
    };
    Ok(tx
        .output
        .iter()
        .any(|o| o.script_pubkey == payload.script_pubkey()))
}

#[test]
fn litecoind_an_anchor_double_spent_by_another_wallet_transaction_is_rebuilt() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let (store, ids) = scenarios::store_with_records(dir.path(), 20)?;
    let mut a = Anchorer::new(
        store.clone(),
        node.node()?,
        scenarios::config(node.network()),
        Arc::new(FixedClock::new(1)),
    );
    a.step()?;
    let first = store.anchor(BatchSeq(0))?.context("anchored")?;
    let old = first.txs[0].txid;
    ensure!(node.mempool()? == vec![old], "the anchor is in the mempool");

    let foreign = double_spend(&node, first.inputs[0])?;
    ensure!(
        node.mempool()? == vec![foreign],
        "the double-spend replaced the anchor"
    );
    node.mine(1)?;
    let status = node.call("gettransaction", &[json!(old)])?;
    ensure!(
        status["confirmations"].as_i64() == Some(-1),
        "the anchor is conflicted: {status}"
    );

    a.step()?;
    a.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(
        record.status == AnchorStatus::Broadcast,
        "status {:?}",
        record.status
    );
    ensure!(
        record.inputs.iter().all(|i| !first.inputs.contains(i)),
        "rebuilt from other coins"
    );
    ensure!(carries_its_batch(&store, 0)?, "same batch, same payload");
    let rebuilt = record.current().context("tx")?.txid;
    ensure!(
        node.mempool()? == vec![rebuilt],
        "the rebuilt anchor is in the mempool"
    );

    let block = node.mine(1)?[0];
    a.step()?;
    let record = store.anchor(BatchSeq(0))?.context("anchored")?;
    ensure!(record.mined.as_ref().map(|m| m.txid) == Some(rebuilt));
    scenarios::check_proofs(&node, &store, &ids, rebuilt, block)?;

    // Anchoring goes on: the next batch is anchored and mined.
    let r = Record::Digest {
        digest: RawDigest([0x5a; 32]),
    };
    store.submit(&[(leaf_hash(&r), r)])?;
    a.step()?;
    let next = store.anchor(BatchSeq(1))?.context("batch 1 anchored")?;
    ensure!(next.status == AnchorStatus::Broadcast && carries_its_batch(&store, 1)?);
    node.mine(1)?;
    a.step()?;
    ensure!(store.anchor(BatchSeq(1))?.map(|r| r.status) == Some(AnchorStatus::Mined));
    Ok(())
}
