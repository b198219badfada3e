//! Sealing: the oldest pending records become a batch.
//!
//! The store has one writer, and every submission waits for it. So what
//! reads the batch's records — its tree, its chain records, each chain's
//! highest first-recorded height — is done in a read transaction; the
//! chain-record index is written ahead in small transactions; and the
//! batch itself (its row, tree pages, per-chain summary, the watermark and
//! the event) is one short write transaction. Done in the batch's own
//! transaction, the pass over 35,000 records held the writer for ~50 ms
//! each block and was the tail of the submission latency
//! (docs/BENCHMARKS.md).

use std::collections::BTreeMap;
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};
use tracing::info;

use super::codec::{decode_record, encode_batch, meta_get};
use super::timing::{Op, Writers};
use super::{events, summary, BatchInfo, Store, StoreError};
use crate::merkle::MerkleTree;
use crate::pages;
use crate::schema::*;
use crate::types::BatchSeq;

/// Chain records indexed per write transaction ahead of a seal: a few
/// milliseconds of the writer with 1,000 chains (docs/BENCHMARKS.md).
const INDEX_CHUNK: usize = 1024;
/// How long the index written ahead of a seal waits, after each of its
/// transactions, for waiting writers (submissions) to take the writer.
const GIVE_WAY: Duration = Duration::from_millis(2);

/// The pending records of a batch to be, read outside the writer.
pub(crate) struct Pending {
    /// Sequence number of the first.
    pub(crate) first: u64,
    /// Their Merkle tree, in sequence order.
    pub(crate) tree: MerkleTree,
    /// Their chain records and per-chain summary.
    chains: Chains,
    /// Whether `chains.records` are in [`CHAIN_RECORDS`] already.
    indexed: bool,
}

impl Store {
    /// Seals up to `max_records` pending records, oldest first, into a new
    /// batch. The batch, its tree pages and the new watermark are written
    /// in one transaction, so after a crash either the whole batch exists
    /// or its records are still pending. `None` when nothing is pending.
    pub fn seal_batch(&self, max_records: u64) -> Result<Option<BatchInfo>, StoreError> {
        let max_records = max_records.max(1);
        self.with(|db| loop {
            let Some(mut pending) = read_pending(db, max_records)? else {
                return Ok(None);
            };
            index_ahead(db, &self.db.writers, &mut pending)?;
            let (txn, timed) = self.db.writers.begin(db, Op::Seal)?;
            let info = match self.write_batch(&txn, &pending)? {
                Some(info) => info,
                // Someone else sealed these records in between: try again.
                None => continue,
            };
            timed.commit(txn)?;
            info!(batch = %info.seq, records = info.size, root = %info.root, "batch sealed");
            self.published(Some(self.event_bounds()?.last));
            return Ok(Some(info));
        })
    }

    /// Writes the batch of `pending` into `txn`, or `None` if the
    /// watermark moved since it was read.
    pub(crate) fn write_batch(
        &self,
        txn: &WriteTransaction,
        pending: &Pending,
    ) -> Result<Option<BatchInfo>, StoreError> {
        let (first, tree) = (pending.first, &pending.tree);
        let mut meta = txn.open_table(META)?;
        if meta_get(&meta, META_SEALED_UPTO)? != first {
            return Ok(None);
        }
        let size = tree.leaf_count() as u64;
        let info = BatchInfo {
            seq: BatchSeq(meta_get(&meta, META_NEXT_BATCH)?),
            first_record: first,
            size,
            root: tree.root(),
            sealed_unix_ms: self.clock.now_unix_ms(),
        };
        txn.open_table(BATCHES)?
            .insert(info.seq.0, encode_batch(&info).as_slice())?;
        txn.open_table(BATCH_STARTS)?.insert(first, info.seq.0)?;
        let mut pages_table = txn.open_table(TREE_PAGES)?;
        for (group, page, bytes) in pages::split(tree) {
            pages_table.insert(tree_page_key(info.seq.0, group, page), bytes.as_slice())?;
        }
        drop(pages_table);
        if !pending.indexed {
            insert_chain_records(txn, &pending.chains.records)?;
        }
        summary::write_chain_batches(txn, info.seq, &pending.chains.best)?;
        meta.insert(META_SEALED_UPTO, first + size)?;
        meta.insert(META_NEXT_BATCH, info.seq.0 + 1)?;
        drop(meta);
        events::append(
            txn,
            &events::LogEntry {
                kind: crate::events::EventType::RecordBatched,
                time_unix_ms: info.sealed_unix_ms,
                span: size,
                batch: Some(info.seq),
                anchor: None,
                fork: None,
            },
        )?;
        Ok(Some(info))
    }
}

/// Reads up to `max_records` of the oldest pending records: their tree,
/// chain records and per-chain summary. `None` when nothing is pending.
pub(crate) fn read_pending(db: &Database, max_records: u64) -> Result<Option<Pending>, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let first = meta_get(&meta, META_SEALED_UPTO)?;
    let next = meta_get(&meta, META_NEXT_RECORD)?;
    let end = next.min(first.saturating_add(max_records));
    if end <= first {
        return Ok(None);
    }
    let records = txn.open_table(RECORDS)?;
    let heights = txn.open_table(CHAIN_HEIGHTS)?;
    let Scan { leaves, chains } = scan(&records, &heights, first..end)?;
    Ok(MerkleTree::from_leaves(&leaves).map(|tree| Pending {
        first,
        tree,
        chains,
        indexed: false,
    }))
}

/// What a pass over a range of records finds.
pub(super) struct Scan {
    /// Their ids, in sequence order.
    pub(super) leaves: Vec<crate::types::LeafHash>,
    /// Their chain records and per-chain summary.
    pub(super) chains: Chains,
}

/// The chain records among a range of records.
#[derive(Default)]
pub(crate) struct Chains {
    /// `(chain, sequence)` of those that are chain records.
    pub(super) records: Vec<(String, u64)>,
    /// Per chain: the highest height whose first record is among them, and
    /// that record's sequence number.
    pub(super) best: BTreeMap<String, (u64, u64)>,
}

/// Reads records `range` (all of them present, or an error).
pub(super) fn scan(
    records: &impl ReadableTable<u64, &'static [u8]>,
    heights: &impl ReadableTable<(&'static str, u64), u64>,
    range: std::ops::Range<u64>,
) -> Result<Scan, StoreError> {
    let mut out = Scan {
        leaves: Vec::with_capacity((range.end - range.start) as usize),
        chains: Chains::default(),
    };
    for entry in records.range(range.clone())? {
        let (k, v) = entry?;
        let seq = k.value();
        let (id, _, record) = decode_record(v.value())?;
        out.leaves.push(id);
        let Some((chain, height)) = record.chain_height() else {
            continue;
        };
        out.chains.records.push((chain.as_str().to_owned(), seq));
        // A fork's later record: the summary follows first records.
        if heights.get((chain.as_str(), height))?.map(|v| v.value()) != Some(seq) {
            continue;
        }
        match out.chains.best.get_mut(chain.as_str()) {
            Some(slot) if height > slot.0 => *slot = (height, seq),
            Some(_) => {}
            None => {
                out.chains
                    .best
                    .insert(chain.as_str().to_owned(), (height, seq));
            }
        }
    }
    if out.leaves.len() as u64 != range.end - range.start {
        return Err(StoreError::Corrupt(format!(
            "records {}..{} are not all present",
            range.start, range.end
        )));
    }
    Ok(out)
}

/// Writes `pending`'s chain records to [`CHAIN_RECORDS`] in key order,
/// [`INDEX_CHUNK`] at a time, each transaction made durable by the next
/// durable commit (the batch's, or a submission's), giving way to waiting
/// writers after each. In key order a transaction covers a few chains'
/// leaves, not one leaf of every chain (in arrival order, with 1,000
/// chains, each of them rewrote ~1,000 pages). An entry for a record not
/// yet in a batch is never read: readers range over a batch's records.
/// After a crash before the batch, the next seal writes the same entries
/// again.
pub(super) fn index_ahead(
    db: &Database,
    writers: &Writers,
    pending: &mut Pending,
) -> Result<(), StoreError> {
    pending.chains.records.sort_unstable();
    for chunk in pending.chains.records.chunks(INDEX_CHUNK) {
        let (mut txn, timed) = writers.begin(db, Op::Index)?;
        txn.set_durability(Durability::None)?;
        insert_chain_records(&txn, chunk)?;
        timed.commit(txn)?;
        writers.give_way(GIVE_WAY);
    }
    pending.indexed = true;
    Ok(())
}

pub(super) fn insert_chain_records(
    txn: &WriteTransaction,
    entries: &[(String, u64)],
) -> Result<(), StoreError> {
    let mut table = txn.open_table(CHAIN_RECORDS)?;
    for (chain, seq) in entries {
        table.insert((chain.as_str(), *seq), ())?;
    }
    Ok(())
}
