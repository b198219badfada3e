//! The record id index: id → record sequence, written so that ingest stays
//! fast however large the store grows.
//!
//! Ids are hashes, so an index keyed by id alone takes every new record at a
//! random place in one ever-growing B-tree, and each commit rewrites pages
//! all over it (ingest fell from 330 k to 75 k records/s between 0 and 3 M
//! stored records). Here the key is `generation ‖ id prefix`, where a
//! record's generation is its sequence number divided by
//! 2^20 ([`NEW_STORE_GENERATION_BITS`]): new records only ever land in the newest
//! generation's key range, a B-tree of at most 2^20 entries, and older
//! generations are never written again.
//!
//! A lookup must then ask every generation. An in-memory Bloom filter per
//! generation (about 1.2 MB each, 1 % false positives) answers "certainly
//! not here" for all but the generation holding the id, so a lookup costs
//! one B-tree read plus a filter probe per generation. The filters are
//! derived data: built from the table when the store opens, added to by the
//! writer before it commits (a filter that also holds a prefix whose commit
//! failed only costs a wasted read), never persisted.
//!
//! A prefix taken within one generation by another id sends the later id to
//! [`RECORD_IDS_OVERFLOW`] (full id → sequence), which every lookup that
//! finds nothing in the generations also asks; it stays nearly empty
//! (a clash of 8-byte prefixes among 2^20 ids has odds of about 1 in 2^24).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use fastbloom::AtomicBloomFilter;
use redb::{ReadTransaction, ReadableTable};

use super::codec::meta_get;
use super::writer::record_id;
use super::StoreError;
use crate::schema::*;
use crate::types::LeafHash;

/// log2 of the records per id-index generation in a new store (2^20; in
/// this crate's unit tests 2^3, so that every store test crosses
/// generations). Kept in the store ([`META_ID_GENERATION_BITS`]): a store
/// always uses the size it was created with.
pub(super) const NEW_STORE_GENERATION_BITS: u64 = if cfg!(test) { 3 } else { 20 };
/// The false-positive rate each generation's filter is sized for.
const FALSE_POSITIVES: f64 = 0.01;

/// The big-endian first 8 bytes of a record id.
pub(super) fn id_prefix(id: &LeafHash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
}

/// The [`RECORD_ID_GENERATIONS`] key of `prefix` in `generation`.
pub(super) fn key(generation: u64, prefix: u64) -> u128 {
    (u128::from(generation) << 64) | u128::from(prefix)
}

/// The generation and prefix of a [`RECORD_ID_GENERATIONS`] key.
fn split(key: u128) -> (u64, u64) {
    // Both halves fit: the key was built from two u64s.
    ((key >> 64) as u64, key as u64)
}

/// One Bloom filter per generation, shared by the writer and every reader.
#[derive(Debug, Default)]
pub(crate) struct IdFilters {
    /// log2 of the records per generation, from the store.
    bits: AtomicU32,
    generations: RwLock<Vec<Arc<AtomicBloomFilter>>>,
}

impl IdFilters {
    /// Reads the store's generation size and adds every prefix in its
    /// generations table.
    pub(super) fn fill(&self, txn: &ReadTransaction) -> Result<(), StoreError> {
        let bits = meta_get(&txn.open_table(META)?, META_ID_GENERATION_BITS)?;
        if !(1..=40).contains(&bits) {
            return Err(StoreError::Corrupt(format!(
                "id generation size 2^{bits} is out of range"
            )));
        }
        // In range, just checked.
        self.bits.store(bits as u32, Ordering::Relaxed);
        for entry in txn.open_table(RECORD_ID_GENERATIONS)?.iter()? {
            let (k, _) = entry?;
            let (generation, prefix) = split(k.value());
            self.insert(generation, prefix);
        }
        Ok(())
    }

    /// The id generation of record `seq`.
    pub(super) fn generation(&self, seq: u64) -> u64 {
        seq >> self.bits.load(Ordering::Relaxed)
    }

    fn new_filter(&self) -> AtomicBloomFilter {
        let items = 1usize << self.bits.load(Ordering::Relaxed);
        AtomicBloomFilter::with_false_pos(FALSE_POSITIVES).expected_items(items)
    }

    /// Notes that `prefix` is (about to be) indexed in `generation`.
    pub(super) fn insert(&self, generation: u64, prefix: u64) {
        let filter = {
            let read = self.generations.read().unwrap_or_else(|p| p.into_inner());
            read.get(generation as usize).cloned()
        };
        let filter = match filter {
            Some(f) => f,
            None => {
                let mut write = self.generations.write().unwrap_or_else(|p| p.into_inner());
                while write.len() <= generation as usize {
                    write.push(Arc::new(self.new_filter()));
                }
                // Just pushed up to `generation`.
                write[generation as usize].clone()
            }
        };
        filter.insert(&prefix);
    }

    /// The generations below `below` that may hold `prefix`, oldest first.
    pub(super) fn candidates(&self, prefix: u64, below: u64) -> Vec<u64> {
        let read = self.generations.read().unwrap_or_else(|p| p.into_inner());
        read.iter()
            .take(below.min(read.len() as u64) as usize)
            .enumerate()
            .filter(|(_, f)| f.contains(&prefix))
            .map(|(g, _)| g as u64)
            .collect()
    }
}

/// The sequence number of the record with id `id`, if stored.
pub(super) fn seq_of(
    filters: &IdFilters,
    txn: &ReadTransaction,
    id: &LeafHash,
) -> Result<Option<u64>, StoreError> {
    let prefix = id_prefix(id);
    let candidates = filters.candidates(prefix, u64::MAX);
    if !candidates.is_empty() {
        let ids = txn.open_table(RECORD_ID_GENERATIONS)?;
        let records = txn.open_table(RECORDS)?;
        for generation in candidates {
            if let Some(seq) = ids.get(key(generation, prefix))?.map(|v| v.value()) {
                if record_id(&records, seq)? == *id {
                    return Ok(Some(seq));
                }
            }
        }
    }
    Ok(txn
        .open_table(RECORD_IDS_OVERFLOW)?
        .get(&id.0)?
        .map(|v| v.value()))
}

/// Moves a schema-3 id index (`prefix → sequence`) into generations of
/// 2^`bits` records, in key order so the new table is written sequentially,
/// and drops the old table. Returns the number of ids moved.
pub(super) fn upgrade_from_prefix_table(
    txn: &redb::WriteTransaction,
    bits: u64,
) -> Result<u64, StoreError> {
    let mut entries = Vec::new();
    {
        let old = txn.open_table(RECORD_IDS_V3)?;
        for entry in old.iter()? {
            let (prefix, seq) = entry?;
            let seq = seq.value();
            entries.push((key(seq >> bits, prefix.value()), seq));
        }
    }
    entries.sort_unstable_by_key(|(k, _)| *k);
    let mut new = txn.open_table(RECORD_ID_GENERATIONS)?;
    for (k, seq) in &entries {
        new.insert(*k, *seq)?;
    }
    drop(new);
    txn.delete_table(RECORD_IDS_V3)?;
    Ok(entries.len() as u64)
}
