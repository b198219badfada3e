//! The records and batch behind the golden proof files in
//! `aggregator/tests/data/`, shared by the tests that produce them.

use std::sync::Arc;

use aggregator::clock::FixedClock;
use aggregator::leaf::leaf_hash;
use aggregator::types::RawDigest;
use aggregator::{BatchInfo, ChainId, PosBlock, PosBlockHash, Record, StakerSetDigest, Store};
use anyhow::{Context, Result};
use sha2_free::sha256;

/// SHA-256 without pulling a hashing crate into the harness.
mod sha2_free {
    use bitcoin::hashes::{sha256 as h, Hash};
    pub fn sha256(data: &[u8]) -> [u8; 32] {
        h::Hash::hash(data).to_byte_array()
    }
}

/// The five golden records: three consumer blocks on two chains, a second
/// (forked) block at one of those heights, and a raw digest.
pub fn records() -> Result<Vec<Record>> {
    let pos = |chain: &str, height: u64, tag: &str| -> Result<Record> {
        Ok(Record::PosBlock(PosBlock {
            chain_id: ChainId::new(chain)?,
            height,
            block_hash: PosBlockHash(sha256(format!("{chain} block {height} {tag}").as_bytes())),
            staker_set_digest: StakerSetDigest(sha256(
                format!("{chain} stakers {height}").as_bytes(),
            )),
        }))
    };
    Ok(vec![
        pos("cosmoshub-4", 100, "a")?,
        pos("cosmoshub-4", 101, "a")?,
        pos("osmosis-1", 7, "a")?,
        pos("cosmoshub-4", 101, "fork")?,
        Record::Digest {
            digest: RawDigest(sha256(b"btcts golden digest")),
        },
    ])
}

/// A fresh store in `dir` holding [`records`] sealed as batch 0.
pub fn sealed_store(dir: &std::path::Path) -> Result<(Store, BatchInfo, Vec<Record>)> {
    let store = Store::open(
        dir.join("btcts.redb"),
        Arc::new(FixedClock::new(1_764_000_000_000)),
    )?;
    let records = records()?;
    let with_ids: Vec<_> = records.iter().map(|r| (leaf_hash(r), r.clone())).collect();
    store.submit(&with_ids)?;
    let batch = store.seal_batch(1000)?.context("records are pending")?;
    Ok((store, batch, records))
}
