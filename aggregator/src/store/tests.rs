use super::*;
use crate::clock::FixedClock;
use crate::types::RawDigest;

/// A crash between writing a batch and committing it: the transaction is
/// dropped, the store closed and reopened. The records must still be
/// pending and sealing must work as if nothing happened.
#[test]
fn an_interrupted_seal_leaves_every_record_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("btcts.redb");
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(5));
    let records: Vec<(LeafHash, Record)> = (0..300u16)
        .map(|i| {
            let mut d = [0u8; 32];
            d[..2].copy_from_slice(&i.to_be_bytes());
            let r = Record::Digest {
                digest: RawDigest(d),
            };
            (leaf::leaf_hash(&r), r)
        })
        .collect();
    {
        let store = Store::open(&path, clock.clone()).expect("opens");
        store.submit(&records).expect("stored");
        let pending = seal::read_pending(&store.db.get().expect("db"), 1000)
            .expect("reads")
            .expect("pending");
        let txn = store.db.get().expect("db").begin_write().expect("txn");
        let info = store
            .write_batch(&txn, &pending)
            .expect("writes")
            .expect("watermark");
        assert_eq!(info.size, 300);
        drop(txn); // crash: never committed
    }
    let store = Store::open(&path, clock).expect("reopens");
    assert_eq!(store.pending_count().expect("count"), 300);
    assert_eq!(store.batch(BatchSeq(0)).expect("query"), None);
    assert_eq!(
        store
            .record(&records[0].0)
            .expect("query")
            .and_then(|r| r.batch),
        None
    );
    let sealed = store.seal_batch(1000).expect("seals").expect("pending");
    assert_eq!((sealed.seq, sealed.size), (BatchSeq(0), 300));
    assert_eq!(store.pending_count().expect("count"), 0);
}

/// Two ids sharing their 8-byte prefix: the second goes to the overflow
/// table and both stay distinct, findable and deduplicated.
#[test]
fn ids_sharing_a_prefix_are_kept_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(dir.path().join("s.redb"), Arc::new(FixedClock::new(0))).expect("opens");
    let rec = |b: u8| {
        let r = Record::Digest {
            digest: RawDigest([b; 32]),
        };
        (leaf::leaf_hash(&r), r)
    };
    let (a, b) = (rec(1), rec(2));
    store.submit(std::slice::from_ref(&a)).expect("stored");
    // Make b's prefix point at a, as a real prefix collision would.
    let txn = store.db.get().expect("db").begin_write().expect("txn");
    txn.open_table(RECORD_ID_GENERATIONS)
        .expect("table")
        .insert(id_index::key(0, id_index::id_prefix(&b.0)), 0)
        .expect("insert");
    txn.commit().expect("commit");
    let first = store.submit(std::slice::from_ref(&b)).expect("stored");
    assert!(!first[0].duplicate, "a prefix match is not a duplicate");
    let again = store.submit(&[b.clone(), a.clone()]).expect("stored");
    assert!(again[0].duplicate && again[1].duplicate);
    assert_eq!(store.record_count().expect("count"), 2);
    assert_eq!(
        store.record(&a.0).expect("query").map(|r| r.record),
        Some(a.1)
    );
    assert_eq!(
        store.record(&b.0).expect("query").map(|r| r.record),
        Some(b.1)
    );
    let txn = store.db.get().expect("db").begin_read().expect("txn");
    assert_eq!(
        txn.open_table(RECORD_IDS_OVERFLOW)
            .expect("table")
            .len()
            .expect("len"),
        1
    );
}

/// A seal that raced with another seal notices the moved watermark.
#[test]
fn a_stale_tree_is_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(dir.path().join("s.redb"), Arc::new(FixedClock::new(0))).expect("opens");
    let r = Record::Digest {
        digest: RawDigest([1; 32]),
    };
    store.submit(&[(leaf::leaf_hash(&r), r)]).expect("stored");
    let pending = seal::read_pending(&store.db.get().expect("db"), 10)
        .expect("reads")
        .expect("pending");
    store.seal_batch(10).expect("seals");
    let txn = store.db.get().expect("db").begin_write().expect("txn");
    assert_eq!(store.write_batch(&txn, &pending).expect("checks"), None);
}

/// `n` distinct digest records, ids computed.
fn digests(n: u32) -> Vec<(LeafHash, Record)> {
    (0..n)
        .map(|i| {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_be_bytes());
            d[31] = 0xc5;
            let r = Record::Digest {
                digest: RawDigest(d),
            };
            (leaf::leaf_hash(&r), r)
        })
        .collect()
}

/// Writes 30,000 records (~7 MB of file) in 1000-record commits and seals
/// them; returns the store's redb cache statistics afterwards.
fn fill(store: &Store) -> redb::CacheStats {
    let records = digests(30_000);
    for chunk in records.chunks(1000) {
        store.submit(chunk).expect("stored");
    }
    while store.seal_batch(4096).expect("seals").is_some() {}
    assert_eq!(store.record_count().expect("count"), 30_000);
    assert_eq!(store.pending_count().expect("count"), 0);
    for (id, record) in records.iter().step_by(997) {
        let stored = store.record(id).expect("query").expect("found");
        assert_eq!(&stored.record, record);
        assert!(stored.batch.is_some(), "sealed");
    }
    store.db.get().expect("db").cache_stats()
}

/// The cache size reaches redb: a store opened with a 1 MiB cache works
/// (writes, seals, reads) and its cache stays within 1 MiB, evicting; the
/// same writes with the default cache hold more than 1 MiB.
#[test]
fn the_page_cache_is_bounded_by_the_option() {
    const SMALL: usize = 1 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(3));
    let small = Store::open_with_options(
        dir.path().join("small.redb"),
        clock.clone(),
        StoreOptions { cache_bytes: SMALL },
    )
    .expect("opens");
    let stats = fill(&small);
    assert!(stats.used_bytes() <= SMALL, "{} bytes", stats.used_bytes());
    assert!(stats.evictions() > 0, "a full 1 MiB cache evicts");
    drop(small);
    let reopened = Store::open_with_options(
        dir.path().join("small.redb"),
        clock.clone(),
        StoreOptions { cache_bytes: SMALL },
    )
    .expect("reopens");
    assert_eq!(reopened.record_count().expect("count"), 30_000);

    let default = Store::open(dir.path().join("default.redb"), clock).expect("opens");
    let stats = fill(&default);
    assert!(stats.used_bytes() > SMALL, "{} bytes", stats.used_bytes());
    assert_eq!(
        StoreOptions::default().cache_bytes,
        StoreOptions::DEFAULT_CACHE_BYTES
    );
}
