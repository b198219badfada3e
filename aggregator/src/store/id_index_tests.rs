//! The id index in generations (2^3 records each in unit tests): lookups
//! and duplicates across generations, prefix clashes within and across
//! them, filters rebuilt on reopen, and the upgrade from schema 3.

use super::*;
use crate::types::RawDigest;
use redb::ReadableTable;

/// A digest record under a chosen id: `prefix` is the id's first 8 bytes,
/// `tail` tells ids with one prefix apart. (The store takes ids as given.)
fn rec(prefix: u64, tail: u64) -> (LeafHash, Record) {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&prefix.to_be_bytes());
    id[8..16].copy_from_slice(&tail.to_be_bytes());
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&prefix.to_be_bytes());
    d[8..16].copy_from_slice(&tail.to_be_bytes());
    (
        LeafHash(id),
        Record::Digest {
            digest: RawDigest(d),
        },
    )
}

use super::fixtures::open_at as open;

fn seq(store: &Store, id: &LeafHash) -> Option<u64> {
    let db = store.db.get().expect("db");
    seq_of(&store.ids, &db.begin_read().expect("txn"), id).expect("reads")
}

fn overflow_len(store: &Store) -> u64 {
    let db = store.db.get().expect("db");
    let txn = db.begin_read().expect("txn");
    txn.open_table(RECORD_IDS_OVERFLOW)
        .expect("table")
        .len()
        .expect("len")
}

/// Every record is found where it was stored, and every resubmission is a
/// duplicate, whichever generation holds it — also after a reopen, when
/// the filters are rebuilt from the table.
#[test]
fn lookups_and_duplicates_span_every_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let records: Vec<_> = (0..100u64)
        .map(|i| rec(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i))
        .collect();
    {
        let store = open(&path);
        for chunk in records.chunks(7) {
            let acks = store.submit(chunk).expect("stored");
            assert!(acks.iter().all(|a| !a.duplicate));
        }
        assert_eq!(store.ids.generation(99), 12, "2^3 records a generation");
        for (i, (id, _)) in records.iter().enumerate() {
            assert_eq!(seq(&store, id), Some(i as u64));
        }
    }
    let store = open(&path);
    for (i, (id, r)) in records.iter().enumerate() {
        assert_eq!(seq(&store, id), Some(i as u64), "after reopen");
        assert_eq!(
            store.record(id).expect("reads").map(|s| s.record),
            Some(r.clone())
        );
    }
    // Old and new records in one submission: only the new one is stored.
    let mut again = records.clone();
    again.push(rec(1, 1));
    let acks = store.submit(&again).expect("stored");
    assert!(acks[..100].iter().all(|a| a.duplicate));
    assert!(!acks[100].duplicate);
    assert_eq!(store.record_count().expect("count"), 101);
    assert_eq!(seq(&store, &rec(1, 2).0), None, "an unknown id");
    assert_eq!(overflow_len(&store), 0);
}

/// Ids sharing an 8-byte prefix: the second within a generation goes to
/// the overflow table, one in a later generation takes that generation's
/// key; each is found, each resubmission is a duplicate, before and after
/// a reopen.
#[test]
fn ids_sharing_a_prefix_are_told_apart_within_and_across_generations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let p = 0xabcd_ef01_2345_6789;
    let (x, y, z, w) = (rec(p, 1), rec(p, 2), rec(p, 3), rec(p, 4));
    let filler: Vec<_> = (0..20u64).map(|i| rec(i + 1, 0)).collect();
    {
        let store = open(&path);
        store.submit(&[x.clone(), y.clone()]).expect("stored"); // seqs 0, 1: generation 0
        store.submit(&filler).expect("stored"); // seqs 2..22
        store.submit(std::slice::from_ref(&z)).expect("stored"); // seq 22: generation 2
        store.submit(&[y.clone(), w.clone()]).expect("stored"); // y again; w: seq 23, overflow
        assert_eq!(
            overflow_len(&store),
            2,
            "y (clash in generation 0) and w (in 2)"
        );
        for (r, s) in [(&x, 0), (&y, 1), (&z, 22), (&w, 23)] {
            assert_eq!(seq(&store, &r.0), Some(s));
        }
    }
    let store = open(&path);
    for (r, s) in [(&x, 0), (&y, 1), (&z, 22), (&w, 23)] {
        assert_eq!(seq(&store, &r.0), Some(s), "after reopen");
    }
    let acks = store
        .submit(&[w.clone(), z.clone(), y.clone(), x.clone()])
        .expect("stored");
    assert!(acks.iter().all(|a| a.duplicate), "{acks:?}");
    assert_eq!(store.record_count().expect("count"), 24);
    assert_eq!(seq(&store, &rec(p, 5).0), None);
}

/// A schema-3 store (one `prefix → record` table, no generation size) opens
/// as schema 4: its ids moved into generations, every record found, every
/// resubmission a duplicate, new records stored after the old ones.
#[test]
fn a_schema_3_id_index_is_moved_into_generations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let p = 0x1111_2222_3333_4444;
    let mut records: Vec<_> = (0..30u64)
        .map(|i| rec(i.wrapping_mul(0x5851_f42d), i))
        .collect();
    records.push(rec(p, 1));
    records.push(rec(p, 2)); // a clash: overflow in schema 3 as in 4
    {
        let store = open(&path);
        store.submit(&records).expect("stored");
        store.seal_batch(u64::MAX).expect("sealed");
        // Rewrite the id index as schema 3 kept it.
        let db = store.db.get().expect("db");
        let txn = db.begin_write().expect("txn");
        let entries: Vec<(u128, u64)> = txn
            .open_table(RECORD_ID_GENERATIONS)
            .expect("table")
            .iter()
            .expect("iter")
            .map(|e| e.map(|(k, v)| (k.value(), v.value())).expect("entry"))
            .collect();
        assert_eq!(entries.len(), 31, "every id but the clash");
        {
            let mut old = txn.open_table(RECORD_IDS_V3).expect("table");
            for (k, v) in entries {
                old.insert(k as u64, v).expect("insert");
            }
        }
        txn.delete_table(RECORD_ID_GENERATIONS).expect("dropped");
        {
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert(META_SCHEMA_VERSION, 3).expect("version");
            meta.remove(META_ID_GENERATION_BITS).expect("removed");
        }
        txn.commit().expect("commit");
    }
    let store = open(&path);
    {
        let db = store.db.get().expect("db");
        let txn = db.begin_read().expect("txn");
        let meta = txn.open_table(META).expect("meta");
        assert_eq!(
            meta_get(&meta, META_SCHEMA_VERSION).expect("v"),
            SCHEMA_VERSION
        );
        assert_eq!(meta_get(&meta, META_ID_GENERATION_BITS).expect("bits"), 3);
        assert!(
            txn.open_table(RECORD_IDS_V3).is_err(),
            "the old table is gone"
        );
    }
    for (i, (id, _)) in records.iter().enumerate() {
        assert_eq!(seq(&store, id), Some(i as u64));
        let proof = store.proof(id).expect("reads").expect("sealed");
        assert_eq!(proof.leaf.hash, *id);
    }
    let acks = store.submit(&records).expect("stored");
    assert!(acks.iter().all(|a| a.duplicate));
    store.submit(&[rec(p, 3)]).expect("stored");
    assert_eq!(seq(&store, &rec(p, 3).0), Some(32));
}
