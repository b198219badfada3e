//! Records, anchor evidence and stores for the store's unit tests.

use std::path::Path;
use std::sync::Arc;

use super::Store;
use crate::clock::FixedClock;
use crate::leaf;
use crate::proof::{AnchorEvidence, Proof};
use crate::types::{ChainId, LeafHash, PosBlock, PosBlockHash, RawDigest, Record, StakerSetDigest};

/// A block of `chain` at `height` whose hash is 32 bytes of `hash`, with its id.
pub(super) fn block(chain: &str, height: u64, hash: u8) -> (LeafHash, Record) {
    let r = Record::PosBlock(PosBlock {
        chain_id: ChainId::new(chain).expect("valid"),
        height,
        block_hash: PosBlockHash([hash; 32]),
        staker_set_digest: StakerSetDigest([0x5a; 32]),
    });
    (leaf::leaf_hash(&r), r)
}

/// The `i`-th digest record (its first 8 bytes), with its id.
pub(super) fn digest(i: u64) -> (LeafHash, Record) {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&i.to_be_bytes());
    let r = Record::Digest {
        digest: RawDigest(d),
    };
    (leaf::leaf_hash(&r), r)
}

/// Anchor evidence to store (the golden proof's): its content does not
/// matter to the store.
pub(super) fn evidence() -> AnchorEvidence {
    let proof: Proof = serde_json::from_str(include_str!(
        "../../tests/data/litecoin-regtest-pos-block.json"
    ))
    .expect("golden proof");
    proof.anchor.expect("anchored")
}

/// The store at `path`, created if missing, on a clock fixed at 7 ms.
pub(super) fn open_at(path: &Path) -> Store {
    Store::open(path, Arc::new(FixedClock::new(7))).expect("opens")
}

/// A new store at `path` whose id index uses a service's generation size
/// (2^20 records) instead of the unit tests' 2^3, for a test that stores
/// many records: at 2^3 every lookup probes one filter per 8 records
/// stored, and 200 k records take minutes.
pub(super) fn open_large_at(path: &Path, clock: Arc<FixedClock>) -> Store {
    {
        let store = Store::open(path, clock.clone()).expect("opens");
        assert_eq!(store.record_count().expect("counted"), 0, "a new store");
        store
            .with(|db| {
                let txn = db.begin_write()?;
                txn.open_table(crate::schema::META)?
                    .insert(crate::schema::META_ID_GENERATION_BITS, 20)?;
                txn.commit()?;
                Ok(())
            })
            .expect("generation size set");
    }
    let store = Store::open(path, clock).expect("reopens");
    assert_eq!(
        store.ids.generation(1 << 20),
        1,
        "2^20 records per generation"
    );
    store
}
