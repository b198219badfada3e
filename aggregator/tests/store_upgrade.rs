//! A store written by an older release opens after the upgrade with every
//! record, batch, anchor and proof intact.
//!
//! `data/store-v3.redb` is a schema-3 store (the layout before the id index
//! moved into generations) written by `main` at 47115f5 running [`build`]
//! below; `data/store-v3.json` is what that build's [`dump`] read back from
//! it. Both functions use only the store's public API, unchanged since, so
//! the same [`dump`] on the upgraded store must give the same document.

use std::sync::Arc;

use aggregator::anchor::{AnchorRecord, AnchorStatus, MinedIn};
use aggregator::clock::FixedClock;
use aggregator::leaf::leaf_hash;
use aggregator::types::RawDigest;
use aggregator::{
    BatchSeq, ChainId, LeafHash, PosBlock, PosBlockHash, Proof, Record, StakerSetDigest, Store,
};
use serde_json::{json, Value};

/// The records of the fixture: 3 chains × 12 heights, a fork at one height,
/// 10 digests.
fn records() -> Vec<(LeafHash, Record)> {
    let mut out = Vec::new();
    for h in 0..12u64 {
        for (c, chain) in ["osmosis-1", "cosmoshub-4", "dev-chain"].iter().enumerate() {
            let mut hash = [0u8; 32];
            hash[0] = c as u8;
            hash[1..9].copy_from_slice(&h.to_be_bytes());
            out.push(Record::PosBlock(PosBlock {
                chain_id: ChainId::new(*chain).expect("valid"),
                height: 100 + h,
                block_hash: PosBlockHash(hash),
                staker_set_digest: StakerSetDigest([0x5a; 32]),
            }));
        }
    }
    out.push(Record::PosBlock(PosBlock {
        chain_id: ChainId::new("osmosis-1").expect("valid"),
        height: 105,
        block_hash: PosBlockHash([0xf0; 32]),
        staker_set_digest: StakerSetDigest([0x5a; 32]),
    }));
    for i in 0..10u8 {
        out.push(Record::Digest {
            digest: RawDigest([i; 32]),
        });
    }
    out.into_iter().map(|r| (leaf_hash(&r), r)).collect()
}

fn evidence() -> aggregator::proof::AnchorEvidence {
    let proof: Proof = serde_json::from_str(include_str!("data/litecoin-regtest-pos-block.json"))
        .expect("golden proof");
    proof.anchor.expect("anchored")
}

/// Writes the fixture's content into a new store: two sealed batches (the
/// first confirmed, the second mined), the rest pending.
#[allow(dead_code)]
fn build(store: &Store) {
    let records = records();
    store.submit(&records[..30]).expect("stored");
    store.submit(&records[30..]).expect("stored");
    store.seal_batch(20).expect("sealed");
    store.seal_batch(20).expect("sealed");
    for (batch, status, depth) in [(0, AnchorStatus::Confirmed, 6), (1, AnchorStatus::Mined, 1)] {
        let e = evidence();
        store
            .put_anchor(&AnchorRecord {
                batch: BatchSeq(batch),
                status,
                inputs: Vec::new(),
                txs: Vec::new(),
                mined: Some(MinedIn {
                    txid: e.txid,
                    block_hash: e.block.hash,
                    height: 200 + batch as u32,
                    confirmations: depth,
                    evidence: e,
                }),
                at_fee_cap: false,
                updated_unix_ms: 1_700_000_000_000,
            })
            .expect("anchor stored");
    }
}

/// Everything the store answers about the fixture's records.
fn dump(store: &Store) -> Value {
    let mut recs = Vec::new();
    let mut proofs = Vec::new();
    for (id, _) in records() {
        let r = store.record(&id).expect("reads").expect("stored");
        recs.push(json!({
            "id": r.id,
            "record": r.record,
            "received_unix_ms": r.received_unix_ms,
            "batch": r.batch.map(|(b, i)| json!([b, i])),
        }));
        proofs.push(json!(store.proof(&id).expect("reads")));
    }
    let mut batches = Vec::new();
    let mut anchors = Vec::new();
    for seq in 0..3 {
        if let Some(b) = store.batch(BatchSeq(seq)).expect("reads") {
            batches.push(json!({
                "seq": b.seq,
                "first_record": b.first_record,
                "size": b.size,
                "root": b.root,
                "sealed_unix_ms": b.sealed_unix_ms,
            }));
        }
        anchors.push(json!(store.anchor(BatchSeq(seq)).expect("reads")));
    }
    let osmosis = ChainId::new("osmosis-1").expect("valid");
    json!({
        "record_count": store.record_count().expect("reads"),
        "pending": store.pending_count().expect("reads"),
        "records": recs,
        "batches": batches,
        "anchors": anchors,
        "proofs": proofs,
        "latest_height": store.latest_height(&osmosis).expect("reads"),
        "conflicts": store.conflicts(&osmosis).expect("reads").iter()
            .map(|c| json!([c.height, c.first, c.other])).collect::<Vec<_>>(),
    })
}

#[test]
fn a_schema_3_store_written_by_the_previous_release_opens_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/store-v3.redb"),
        &path,
    )
    .expect("fixture copied");
    let expected: Value =
        serde_json::from_str(include_str!("data/store-v3.json")).expect("fixture json");
    let clock = Arc::new(FixedClock::new(1_800_000_000_000));
    {
        let store = Store::open(&path, clock.clone()).expect("upgrades");
        assert_eq!(dump(&store), expected);
        // Every old record is a duplicate; a new one is stored after them.
        let acks = store.submit(&records()).expect("stored");
        assert!(acks.iter().all(|a| a.duplicate));
        let new = Record::Digest {
            digest: RawDigest([0xee; 32]),
        };
        let acks = store
            .submit(&[(leaf_hash(&new), new.clone())])
            .expect("stored");
        assert!(!acks[0].duplicate);
    }
    let store = Store::open(&path, clock).expect("reopens");
    assert_eq!(dump(&store)["records"], expected["records"]);
    let new = Record::Digest {
        digest: RawDigest([0xee; 32]),
    };
    assert_eq!(
        store
            .record(&leaf_hash(&new))
            .expect("reads")
            .map(|r| r.record),
        Some(new)
    );
    assert_eq!(store.record_count().expect("reads"), 48);
}
