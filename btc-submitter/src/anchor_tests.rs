//! Unit tests of the anchoring loop against `FakeNode`.

use super::*;
use crate::fake::{Event, FakeNode, Hooked};
use aggregator::clock::FixedClock;
use aggregator::types::RawDigest;
use aggregator::{BatchSeq, Record};
use bitcoin::hashes::Hash;
use bitcoin::Txid;
use std::sync::atomic::{AtomicU32, Ordering};

/// A store in `dir` holding one pending digest record; returns its id too.
pub(crate) fn store_with_one_record(dir: &tempfile::TempDir) -> (Store, aggregator::LeafHash) {
    let store =
        Store::open(dir.path().join("s.redb"), Arc::new(FixedClock::new(0))).expect("store");
    let r = Record::Digest {
        digest: RawDigest([1; 32]),
    };
    let id = aggregator::leaf::leaf_hash(&r);
    store.submit(&[(id, r)]).expect("stored");
    (store, id)
}

/// An anchorer on the fake node with the default regtest configuration.
fn regtest_anchorer(store: &Store, fake: &Arc<FakeNode>) -> Anchorer<Arc<FakeNode>> {
    Anchorer::new(
        store.clone(),
        fake.clone(),
        AnchorConfig::new(AnchorNetwork::Regtest),
        Arc::new(FixedClock::new(0)),
    )
}

fn store(dir: &tempfile::TempDir) -> Store {
    store_with_one_record(dir).0
}

#[tokio::test(start_paused = true)]
async fn the_loop_backs_off_while_the_node_is_down_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let fake = Arc::new(FakeNode::new());
    let polls = Arc::new(AtomicU32::new(0));
    let counter = polls.clone();
    let node = Hooked::new(fake.clone(), move |e| {
        if e == Event::Call("best_block_hash") {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    });
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
    let mut a = regtest_anchorer(&store, &fake);
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

/// A `metrics` recorder that keeps counters (`name{label=value,…}`), for
/// `metrics::with_local_recorder` around the steps under test.
#[derive(Default)]
struct Counters(
    std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::atomic::AtomicU64>>>,
);

impl Counters {
    fn get(&self, key: &str) -> u64 {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

impl metrics::Recorder for Counters {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        metrics::Counter::from_arc(map.entry(name).or_default().clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// The current transaction of batch `seq`, decoded.
fn current_tx(store: &Store, seq: u64) -> Transaction {
    let record = store
        .anchor(BatchSeq(seq))
        .expect("query")
        .expect("anchored");
    let raw = &record.current().expect("a transaction").raw.0;
    bitcoin::consensus::deserialize(raw).expect("stored transactions decode")
}

/// Whether `tx` carries the payload of batch `seq` (same tag, seq and root).
fn carries_batch<N: BitcoinNode>(
    a: &Anchorer<N>,
    store: &Store,
    seq: u64,
    tx: &Transaction,
) -> bool {
    let batch = store.batch(BatchSeq(seq)).expect("query").expect("sealed");
    let script = a.payload(&batch).script_pubkey();
    tx.output.iter().any(|o| o.script_pubkey == script)
}

fn submit_digest(store: &Store, byte: u8) {
    let r = Record::Digest {
        digest: RawDigest([byte; 32]),
    };
    store
        .submit(&[(aggregator::leaf::leaf_hash(&r), r)])
        .expect("stored");
}

/// Batch 0 is mined in its rebuilt transaction, then batch 1 is anchored.
fn assert_anchoring_goes_on<N: BitcoinNode>(
    a: &mut Anchorer<N>,
    fake: &FakeNode,
    store: &Store,
    rebuilt: Txid,
) {
    fake.mine(1);
    a.step().expect("reconciles");
    let record = store.anchor(BatchSeq(0)).expect("query").expect("anchored");
    assert_eq!(
        record.mined.map(|m| m.txid),
        Some(rebuilt),
        "the rebuilt transaction is mined"
    );
    submit_digest(store, 9);
    a.step().expect("anchors the next batch");
    let next = store
        .anchor(BatchSeq(1))
        .expect("query")
        .expect("batch 1 anchored");
    assert_eq!(next.status, AnchorStatus::Broadcast);
    assert!(fake
        .mempool()
        .iter()
        .any(|t| t.compute_txid() == next.txs[0].txid));
}

/// Another user of the wallet spends the anchor's input and that spend is
/// mined: the anchor is `Conflicted`. It is rebuilt from other coins with
/// the same payload, once, and anchoring goes on.
#[test]
fn a_conflicted_anchor_is_rebuilt_from_fresh_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let fake = Arc::new(FakeNode::new());
    let mut a = regtest_anchorer(&store, &fake);
    a.step().expect("anchors");
    let first = store.anchor(BatchSeq(0)).expect("query").expect("anchored");
    let foreign = fake.spend_elsewhere(first.inputs[0]);
    fake.mine(1);
    assert_eq!(fake.tx_status(&first.txs[0].txid), Ok(TxStatus::Conflicted));
    let counters = Counters::default();
    metrics::with_local_recorder(&counters, || {
        for _ in 0..3 {
            a.step().expect("steps");
        }
        // A block that leaves the rebuilt anchor out: a replacement, no second rebuild.
        fake.mine_empty(1);
        a.step().expect("steps");
    });
    let record = store.anchor(BatchSeq(0)).expect("query").expect("anchored");
    assert_eq!(record.batch, BatchSeq(0));
    assert_eq!(record.status, AnchorStatus::Broadcast);
    assert!(
        record.inputs.iter().all(|i| !first.inputs.contains(i)),
        "fresh inputs: {:?} vs {:?}",
        record.inputs,
        first.inputs
    );
    assert!(
        record.owns(&first.txs[0].txid),
        "the conflicted transaction is kept"
    );
    let tx = current_tx(&store, 0);
    assert!(carries_batch(&a, &store, 0, &tx), "same payload");
    let mempool: Vec<Txid> = fake
        .mempool()
        .iter()
        .map(Transaction::compute_txid)
        .collect();
    assert_eq!(mempool, vec![tx.compute_txid()]);
    assert_ne!(tx.compute_txid(), foreign);
    assert_eq!(
        counters.get("btcts_anchor_rebuilds_total{reason=conflicted}"),
        1
    );
    assert_anchoring_goes_on(&mut a, &fake, &store, tx.compute_txid());
}

/// The anchor was stored `Built` but never broadcast (the broadcast failed),
/// and meanwhile its input was spent elsewhere: the node refuses it for good.
/// Steps do not fail forever; the anchor is rebuilt and anchoring goes on.
#[test]
fn a_built_anchor_the_node_refuses_is_rebuilt_from_fresh_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let fake = Arc::new(FakeNode::new());
    let lose_broadcasts = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let lose = lose_broadcasts.clone();
    let node = Hooked::new(fake.clone(), move |e| match e {
        Event::Call("broadcast") if lose.load(Ordering::SeqCst) => {
            Err(NodeError::Transient("connection reset".into()))
        }
        _ => Ok(()),
    });
    let mut a = Anchorer::new(
        store.clone(),
        node,
        AnchorConfig::new(AnchorNetwork::Regtest),
        Arc::new(FixedClock::new(0)),
    );
    assert!(a.step().is_err(), "the broadcast is lost");
    let built = store.anchor(BatchSeq(0)).expect("query").expect("stored");
    assert_eq!(built.status, AnchorStatus::Built);
    fake.spend_elsewhere(built.inputs[0]);
    fake.mine(1);
    lose_broadcasts.store(false, Ordering::SeqCst);
    let counters = Counters::default();
    metrics::with_local_recorder(&counters, || {
        for _ in 0..3 {
            a.step().expect("a refused anchor does not stop the loop");
        }
    });
    let record = store.anchor(BatchSeq(0)).expect("query").expect("anchored");
    assert_eq!(record.status, AnchorStatus::Broadcast);
    assert!(
        record.inputs.iter().all(|i| !built.inputs.contains(i)),
        "fresh inputs"
    );
    let tx = current_tx(&store, 0);
    assert!(carries_batch(&a, &store, 0, &tx), "same payload");
    assert!(fake.mempool().contains(&tx));
    assert_eq!(
        counters.get("btcts_anchor_rebuilds_total{reason=refused}"),
        1
    );
    assert_anchoring_goes_on(&mut a, &fake, &store, tx.compute_txid());
}

/// Issue 15, finding 2: records that arrive faster than one batch's worth
/// per block used to be sealed into a queue of batches while an anchor
/// waited, one anchor per block, so a record waited behind everything
/// sealed before it (days, at calendar rates). Now nothing is sealed while
/// the anchor slot is taken, and the next anchor commits every record
/// pending when it is built.
#[test]
fn the_next_anchor_covers_everything_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let fake = Arc::new(FakeNode::new());
    let mut config = AnchorConfig::new(AnchorNetwork::Regtest);
    config.early_anchor_at = 100;
    let mut a = Anchorer::new(
        store.clone(),
        fake.clone(),
        config,
        Arc::new(FixedClock::new(0)),
    );
    a.step().expect("anchors batch 0");
    let submit = |from: u32, n: u32| {
        let records: Vec<_> = (from..from + n)
            .map(|i| {
                let r = Record::Digest {
                    digest: RawDigest(
                        bitcoin::hashes::sha256::Hash::hash(&i.to_le_bytes()).to_byte_array(),
                    ),
                };
                (aggregator::leaf::leaf_hash(&r), r)
            })
            .collect();
        store.submit(&records).expect("stored");
    };
    // While batch 0's anchor waits for a block: 250 records, then more.
    submit(0, 250);
    a.step().expect("step without a block");
    submit(250, 120);
    a.step().expect("step without a block");
    assert!(
        store.batch(BatchSeq(1)).expect("query").is_none(),
        "sealed while the anchor slot was taken"
    );
    fake.mine(1);
    a.step().expect("batch 0 mined; the next anchor is built");
    let batch = store.batch(BatchSeq(1)).expect("query").expect("sealed");
    assert_eq!(batch.size, 370, "the anchor commits everything pending");
    assert!(store.anchor(BatchSeq(1)).expect("query").is_some());
    assert_eq!(store.pending_count().expect("count"), 0);
    assert_eq!(fake.mempool().len(), 1, "one anchor per block");
}
