//! The fast-unbonding status from the per-chain batch summary: the same
//! answer as walking every height (the old query), in a bounded number of
//! summary rows, also for stores upgraded from schema 1.

use std::sync::atomic::Ordering;

use super::codec::batch_of;
use super::fixtures::{block, digest, evidence, open_large_at};
use super::*;
use crate::anchor::{AnchorRecord, AnchorStatus, MinedIn};
use crate::clock::FixedClock;

fn anchor(store: &Store, batch: u64, confirmations: Option<u32>) {
    let mined = confirmations.map(|c| MinedIn {
        txid: evidence().txid,
        block_hash: evidence().block.hash,
        height: 100 + batch as u32,
        confirmations: c,
        evidence: evidence(),
    });
    let status = match confirmations {
        Some(_) => AnchorStatus::Mined,
        None => AnchorStatus::Broadcast,
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

/// The query as it was: walk `chain`'s heights from the top.
fn by_scan(store: &Store, chain: &ChainId, k: u32) -> Option<(LeafHash, u32)> {
    let db = store.db.get().expect("db");
    let txn = db.begin_read().expect("txn");
    let c = chain.as_str();
    let heights = txn.open_table(CHAIN_HEIGHTS).expect("table");
    for entry in heights.range((c, 0)..=(c, u64::MAX)).expect("range").rev() {
        let seq = entry.expect("row").1.value();
        let Some(batch) = batch_of(&txn, seq).expect("batch") else {
            continue;
        };
        if seq >= batch.first_record + batch.size {
            continue;
        }
        let mined = read_anchor(&txn, batch.seq)
            .expect("anchor")
            .and_then(|a| a.mined);
        if let Some(m) = mined.filter(|m| m.confirmations >= k) {
            let id = store.record_by_seq(&txn, seq).expect("record").id;
            return Some((id, m.height));
        }
    }
    None
}

fn by_summary(store: &Store, chain: &ChainId, k: u32) -> Option<(LeafHash, u32)> {
    store
        .latest_timestamped(chain, k)
        .expect("query")
        .map(|(r, m)| (r.id, m.height))
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random chains, heights out of order, forks, digests, batches and
/// anchors at random depths (some unmined, some batches unanchored).
fn random_store(store: &Store, rng: &mut Rng) {
    let mut digests = 0;
    for _ in 0..1 + rng.below(8) {
        let mut records = Vec::new();
        for _ in 0..1 + rng.below(40) {
            records.push(match rng.below(5) {
                0 => {
                    digests += 1;
                    digest(digests)
                }
                1 | 2 => block("a", rng.below(120), 1 + rng.below(3) as u8),
                _ => block("b", rng.below(60), 1 + rng.below(2) as u8),
            });
        }
        store.submit(&records).expect("stored");
        store.seal_batch(1 + rng.below(30)).expect("sealed");
    }
    let batches = store.db.get().expect("db").begin_read().expect("txn");
    let count = batches
        .open_table(BATCHES)
        .expect("table")
        .len()
        .expect("len");
    for b in 0..rng.below(count + 1) {
        let confirmations = match rng.below(4) {
            0 => None,
            _ => Some(rng.below(6) as u32),
        };
        anchor(store, b, confirmations);
    }
}

#[test]
fn the_summary_answers_as_the_height_scan_did_on_random_stores() {
    let chains = [
        ChainId::new("a").expect("id"),
        ChainId::new("b").expect("id"),
    ];
    for seed in 1..=60u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let store = Store::open(&path, Arc::new(FixedClock::new(1))).expect("opens");
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        random_store(&store, &mut rng);
        for chain in &chains {
            for k in 0..=6 {
                assert_eq!(
                    by_summary(&store, chain, k),
                    by_scan(&store, chain, k),
                    "seed {seed}, chain {chain}, k {k}"
                );
            }
        }
    }
}

/// A schema-1 store (no summary table) is summarised on open.
#[test]
fn a_schema_1_store_gets_its_summary_on_open() {
    let chain = ChainId::new("a").expect("id");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    let expected: Vec<_> = {
        let store = Store::open(&path, Arc::new(FixedClock::new(1))).expect("opens");
        random_store(&store, &mut Rng(7));
        anchor(&store, 0, Some(3));
        let db = store.db.get().expect("db");
        let txn = db.begin_write().expect("txn");
        txn.delete_table(CHAIN_BATCHES).expect("dropped");
        txn.open_table(META)
            .expect("meta")
            .insert(META_SCHEMA_VERSION, 1)
            .expect("version");
        txn.commit().expect("commit");
        (0..=6).map(|k| by_scan(&store, &chain, k)).collect()
    };
    let store = Store::open(&path, Arc::new(FixedClock::new(1))).expect("upgrades");
    assert!(
        expected.iter().any(Option::is_some),
        "the case anchors something"
    );
    for (k, want) in expected.iter().enumerate() {
        assert_eq!(&by_summary(&store, &chain, k as u32), want, "k {k}");
    }
}

/// 200k heights: the status reads a couple of summary rows, not the heights.
#[test]
fn the_status_reads_a_bounded_number_of_rows_over_200k_heights() {
    let chain = ChainId::new("a").expect("id");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_large_at(&dir.path().join("s.redb"), Arc::new(FixedClock::new(1)));
    let heights: Vec<_> = (0..200_000).map(|h| block("a", h, 1)).collect();
    store.submit(&heights[..100]).expect("stored");
    store.seal_batch(u64::MAX).expect("sealed");
    for chunk in heights[100..].chunks(50_000) {
        store.submit(chunk).expect("stored");
        store.seal_batch(u64::MAX).expect("sealed");
    }
    anchor(&store, 0, Some(6));
    anchor(&store, 1, Some(1));
    // Batches 2.. are not anchored yet.
    store.summary_rows.store(0, Ordering::Relaxed);
    let deep = by_summary(&store, &chain, 6).expect("found");
    assert_eq!(deep.0, heights[99].0);
    assert!(store.summary_rows.load(Ordering::Relaxed) <= 2);
    store.summary_rows.store(0, Ordering::Relaxed);
    let shallow = by_summary(&store, &chain, 1).expect("found");
    assert_eq!(shallow.0, heights[50_099].0);
    assert!(store.summary_rows.load(Ordering::Relaxed) <= 1);
    assert_eq!(by_summary(&store, &chain, 7), None);
    assert!(store.summary_rows.load(Ordering::Relaxed) <= 3);
}
