//! Unit tests of the anchoring loop against `FakeNode`.

use super::*;
use crate::fake::{Event, FakeNode, Hooked};
use aggregator::clock::FixedClock;
use aggregator::types::RawDigest;
use aggregator::{BatchSeq, Record};
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
    let mut a = Anchorer::new(
        store.clone(),
        fake.clone(),
        AnchorConfig::new(AnchorNetwork::Regtest),
        Arc::new(FixedClock::new(0)),
    );
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
