//! The event log: one event per chain record per transition, ids that only
//! grow, pages that resume without gaps, events written with the state
//! they report, and the schema-2 upgrade.

use super::fixtures::{block, digest, evidence, open_at};
use super::*;
use crate::anchor::{AnchorRecord, AnchorStatus, MinedIn};
use crate::events::{Event, EventType};
use crate::types::PosBlockHash;

/// Anchor of `batch`: in block `block` (a byte of its hash) at `depth`, or
/// unmined; `Confirmed` when `confirmed`.
fn anchor(store: &Store, batch: u64, block: Option<(u8, u32)>, confirmed: bool) {
    let mined = block.map(|(b, depth)| {
        let mut hash = evidence().block.hash.to_byte_array();
        hash[0] = b;
        MinedIn {
            txid: evidence().txid,
            block_hash: bitcoin::BlockHash::from_byte_array(hash),
            height: 100 + u32::from(b),
            confirmations: depth,
            evidence: evidence(),
        }
    });
    let status = match (&mined, confirmed) {
        (Some(_), true) => AnchorStatus::Confirmed,
        (Some(_), false) => AnchorStatus::Mined,
        (None, _) => AnchorStatus::Broadcast,
    };
    store
        .put_anchor(&AnchorRecord {
            batch: BatchSeq(batch),
            status,
            inputs: Vec::new(),
            txs: Vec::new(),
            mined,
            at_fee_cap: false,
            updated_unix_ms: 0,
        })
        .expect("anchor stored");
}

use bitcoin::hashes::Hash as _;

fn open(dir: &tempfile::TempDir) -> Store {
    open_at(&dir.path().join("s.redb"))
}

/// Every event of `chain` (or all) after `after`, read `limit` at a time.
fn all(store: &Store, after: u64, chain: Option<&str>, limit: usize) -> Vec<Event> {
    let chain = chain.map(|c| ChainId::new(c).expect("id"));
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = store
            .events_after(cursor, chain.as_ref(), limit)
            .expect("reads");
        assert!(page.next >= cursor, "the cursor never goes back");
        if page.events.is_empty() && page.next == cursor {
            return out;
        }
        cursor = page.next;
        out.extend(page.events);
    }
}

fn kinds(events: &[Event]) -> Vec<(EventType, u64)> {
    events
        .iter()
        .map(|e| (e.kind, e.record.as_ref().map_or(0, |r| r.height)))
        .collect()
}

#[test]
fn a_batch_gives_one_event_per_chain_record_and_digests_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let mut records = vec![block("a", 1, 1), digest(1), block("b", 1, 1)];
    records.extend((2..6).map(|h| block("a", h, 1)));
    store.submit(&records).expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");

    let a = all(&store, 0, Some("a"), 100);
    assert_eq!(
        kinds(&a),
        (1..6)
            .map(|h| (EventType::RecordBatched, h))
            .collect::<Vec<_>>()
    );
    // Ids are the record's place in the batch, from 1: the digest's (2)
    // and chain b's (3) are not a's.
    assert_eq!(a.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 4, 5, 6, 7]);
    assert_eq!(a[0].record.as_ref().map(|r| r.id), Some(records[0].0));
    assert_eq!(a[0].batch, Some(BatchSeq(0)));
    let everything = all(&store, 0, None, 100);
    assert_eq!(everything.len(), 6, "every chain record, no digest");
    assert_eq!(everything[1].chain_id.as_str(), "b");
    assert_eq!(store.event_bounds().expect("bounds").last, 7);

    // Read one at a time, from anywhere: no gap, no duplicate.
    for limit in [1, 2, 3] {
        assert_eq!(all(&store, 0, Some("a"), limit), a, "limit {limit}");
        assert_eq!(all(&store, 0, None, limit), everything, "limit {limit}");
    }
    assert_eq!(all(&store, 4, Some("a"), 1), a[2..].to_vec());
    assert_eq!(all(&store, 7, None, 10), Vec::new());
}

#[test]
fn anchor_transitions_give_anchored_confirmed_and_reorged_once_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store
        .submit(&[block("a", 1, 1), block("a", 2, 1)])
        .expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");
    let mut watch = store.subscribe_events();
    let seen = *watch.borrow_and_update();
    anchor(&store, 0, None, false); // broadcast: nothing
    assert!(!watch.has_changed().expect("open"));
    anchor(&store, 0, Some((1, 1)), false); // mined
    assert!(watch.has_changed().expect("open"), "subscribers hear of it");
    anchor(&store, 0, Some((1, 2)), false); // deeper: nothing
    anchor(&store, 0, Some((1, 3)), true); // confirmed
    anchor(&store, 0, Some((1, 4)), true); // deeper: nothing
    anchor(&store, 0, None, false); // its block left
    anchor(&store, 0, Some((2, 1)), false); // mined again elsewhere
    anchor(&store, 0, Some((2, 3)), true); // confirmed there
    anchor(&store, 0, Some((3, 3)), true); // reorged straight into another block

    let events = all(&store, seen, Some("a"), 100);
    use EventType::*;
    let per_record: Vec<_> = events
        .iter()
        .filter(|e| e.record.as_ref().is_some_and(|r| r.height == 1))
        .map(|e| (e.kind, e.anchor.as_ref().map(|a| a.block_hash[0])))
        .collect();
    assert_eq!(
        per_record,
        [
            (RecordAnchored, Some(1)),
            (RecordConfirmed, Some(1)),
            (RecordReorged, Some(1)),
            (RecordAnchored, Some(2)),
            (RecordConfirmed, Some(2)),
            (RecordReorged, Some(2)),
            (RecordAnchored, Some(3)),
            (RecordConfirmed, Some(3)),
        ]
    );
    assert_eq!(
        events.len(),
        2 * per_record.len(),
        "both records, each time"
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    let confirmed = events
        .iter()
        .find(|e| e.kind == RecordConfirmed)
        .and_then(|e| e.anchor.clone())
        .expect("confirmed");
    assert_eq!((confirmed.depth, confirmed.block_height), (3, 101));
    assert_eq!(confirmed.txid, evidence().txid);
}

#[test]
fn a_fork_is_one_event_naming_both_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let first = block("a", 5, 1);
    let other = block("a", 5, 2);
    store.submit(std::slice::from_ref(&first)).expect("stored");
    store.submit(std::slice::from_ref(&other)).expect("stored");
    store
        .submit(std::slice::from_ref(&other))
        .expect("a duplicate: no second event");
    let events = all(&store, 0, Some("a"), 10);
    assert_eq!(events.len(), 1);
    let fork = events[0].fork.clone().expect("fork");
    assert_eq!(events[0].kind, EventType::ChainFork);
    assert_eq!((fork.height, fork.first, fork.other), (5, first.0, other.0));
    assert_eq!(fork.other_block_hash, PosBlockHash([2; 32]));
    assert!(all(&store, 0, Some("b"), 10).is_empty());
}

#[test]
fn events_survive_a_reopen_and_pruning_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        store.submit(&[block("a", 1, 1)]).expect("stored");
        store.seal_batch(u64::MAX).expect("sealed");
    }
    let store = open(&dir);
    assert_eq!(
        *store.subscribe_events().borrow(),
        1,
        "the tip is read on open"
    );
    assert_eq!(all(&store, 0, Some("a"), 10).len(), 1);
    store.submit(&[block("a", 2, 1)]).expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");
    // The clock is fixed at 7 ms: everything was written before 8.
    assert_eq!(store.prune_events(7).expect("prunes"), 0);
    assert_eq!(store.prune_events(8).expect("prunes"), 2);
    assert_eq!(
        store.event_bounds().expect("bounds"),
        EventBounds { oldest: 3, last: 2 }
    );
    assert!(all(&store, 0, None, 10).is_empty());
    let chain = ChainId::new("a").expect("id");
    assert_eq!(store.webhook_cursor(&chain).expect("reads"), None);
    store.set_webhook_cursor(&chain, 2).expect("writes");
    assert_eq!(store.webhook_cursor(&chain).expect("reads"), Some(2));
}

/// A schema-2 store (no chain records, no log) opens with its sealed chain
/// records indexed: the next transition of an old batch has its events.
#[test]
fn a_schema_2_store_is_upgraded_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        store
            .submit(&[block("a", 1, 1), digest(1), block("a", 2, 1)])
            .expect("stored");
        store.seal_batch(u64::MAX).expect("sealed");
        store.submit(&[block("a", 3, 1)]).expect("pending");
        let db = store.db.get().expect("db");
        let txn = db.begin_write().expect("txn");
        txn.delete_table(CHAIN_RECORDS).expect("dropped");
        txn.delete_table(EVENTS).expect("dropped");
        {
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert(META_SCHEMA_VERSION, 2).expect("version");
            meta.remove(META_NEXT_EVENT).expect("removed");
        }
        txn.commit().expect("commit");
    }
    let store = open(&dir);
    assert!(
        all(&store, 0, None, 10).is_empty(),
        "no history is invented"
    );
    anchor(&store, 0, Some((1, 1)), false);
    let events = all(&store, 0, Some("a"), 10);
    assert_eq!(
        kinds(&events),
        [
            (EventType::RecordAnchored, 1),
            (EventType::RecordAnchored, 2)
        ]
    );
    store.seal_batch(u64::MAX).expect("sealed");
    assert_eq!(all(&store, events[1].id, Some("a"), 10).len(), 1);
    assert_eq!(store.pending_count().expect("count"), 0);
}

/// The wire format, version 1: one event of each type, as a store writes
/// them, pinned byte for byte (`BTCTS_WRITE_GOLDEN=1` rewrites the file;
/// a change there is a format change: bump `EVENT_VERSION`).
#[test]
fn the_event_format_is_pinned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store
        .submit(&[block("osmosis-1", 7, 1), digest(9)])
        .expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");
    anchor(&store, 0, Some((1, 1)), false);
    anchor(&store, 0, Some((1, 6)), true);
    anchor(&store, 0, None, false);
    store.submit(&[block("osmosis-1", 7, 2)]).expect("a fork");
    let events = all(&store, 0, None, 100);
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    use EventType::*;
    assert_eq!(
        kinds,
        [
            RecordBatched,
            RecordAnchored,
            RecordConfirmed,
            RecordReorged,
            ChainFork
        ]
    );
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&events).expect("serializes")
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/events-v1.json");
    if std::env::var_os("BTCTS_WRITE_GOLDEN").is_some() {
        std::fs::write(path, &text).expect("writes");
    }
    let golden = std::fs::read_to_string(path).expect("golden file");
    assert_eq!(text, golden, "the event format changed");
    let back: Vec<Event> = serde_json::from_str(&golden).expect("parses");
    assert_eq!(back, events);
}

/// A chain far behind skips other chains' entries a bounded number at a
/// time, and still gets everything.
#[test]
fn a_page_reads_a_bounded_number_of_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    store.submit(&[block("b", 0, 1)]).expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");
    let batches = super::events::ENTRY_BUDGET as u64 + 10;
    for h in 0..batches {
        store.submit(&[block("a", h, 1)]).expect("stored");
        store.seal_batch(u64::MAX).expect("sealed");
    }
    store.submit(&[block("b", 1, 1)]).expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");
    let b = ChainId::new("b").expect("id");
    let first = store.events_after(1, Some(&b), 10).expect("reads");
    assert!(first.events.is_empty());
    assert_eq!(
        first.next,
        1 + super::events::ENTRY_BUDGET as u64,
        "one id per entry read"
    );
    let rest = all(&store, 1, Some("b"), 10);
    assert_eq!(kinds(&rest), [(EventType::RecordBatched, 1)]);
}

/// A seal indexes its chain records ahead of the batch, in transactions
/// of their own. A crash between the two leaves every record pending, and
/// the next seal, over more records, lists each chain record once.
#[test]
fn chain_records_indexed_ahead_of_an_interrupted_seal_are_listed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(&dir);
        // More than one indexing transaction's worth.
        let records: Vec<_> = (1..=5000).map(|h| block("a", h, 1)).collect();
        store.submit(&records).expect("stored");
        let db = store.db.get().expect("db");
        let mut pending = seal::read_pending(&db, u64::MAX)
            .expect("reads")
            .expect("pending");
        seal::index_ahead(&db, &store.db.writers, &mut pending).expect("indexed");
        // A durable commit after the indexing, as a submission would make.
        drop(db);
        store.submit(&[digest(1)]).expect("stored");
        // Crash: the batch is never written.
    }
    let store = open(&dir);
    assert_eq!(store.pending_count().expect("count"), 5001);
    assert_eq!(all(&store, 0, Some("a"), 1000), Vec::new(), "no batch yet");
    store
        .submit(&[block("a", 5001, 1), block("b", 1, 1)])
        .expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");
    let a = all(&store, 0, Some("a"), 1000);
    assert_eq!(
        a.iter()
            .map(|e| e.record.as_ref().map_or(0, |r| r.height))
            .collect::<Vec<_>>(),
        (1..=5001).collect::<Vec<_>>()
    );
    assert_eq!(
        kinds(&all(&store, 0, Some("b"), 10)),
        [(EventType::RecordBatched, 1)]
    );
}
