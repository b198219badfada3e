//! The per-chain summary behind the fast-unbonding status: for every batch,
//! the highest height of each chain whose first record it holds. Written
//! with the batch (same transaction); the status reads a handful of rows
//! instead of walking a chain's heights.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use super::anchors::read_anchor;
use super::codec::decode_record;
use super::{BatchInfo, Store, StoreError, StoredRecord};
use crate::anchor::MinedIn;
use crate::schema::*;
use crate::types::{BatchSeq, ChainId};

/// Adds `batch`'s rows to [`CHAIN_BATCHES`] and its chain records to
/// [`CHAIN_RECORDS`], reading its records in `txn` (the upgrade's
/// backfill; a seal reads them before its transaction, `store::seal`).
pub(super) fn index_batch(txn: &WriteTransaction, batch: &BatchInfo) -> Result<(), StoreError> {
    let scanned = {
        let records = txn.open_table(RECORDS)?;
        let heights = txn.open_table(CHAIN_HEIGHTS)?;
        super::seal::scan(
            &records,
            &heights,
            batch.first_record..batch.first_record + batch.size,
        )?
    };
    super::seal::insert_chain_records(txn, &scanned.chains.records)?;
    write_chain_batches(txn, batch.seq, &scanned.chains.best)
}

/// Adds batch `seq`'s rows to [`CHAIN_BATCHES`]: per chain, the highest
/// height whose first record is in the batch (`best`: height, record), and
/// the highest such height of the chain in this batch or any before it.
pub(super) fn write_chain_batches(
    txn: &WriteTransaction,
    seq: BatchSeq,
    best: &BTreeMap<String, (u64, u64)>,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(CHAIN_BATCHES)?;
    for (chain, &(height, record)) in best {
        let c = chain.as_str();
        let below = table
            .range((c, 0)..(c, seq.0))?
            .next_back()
            .transpose()?
            .map_or(0, |(_, v)| v.value().2);
        table.insert((c, seq.0), (height, record, below.max(height)))?;
    }
    Ok(())
}

/// Indexes the chain records of every sealed batch in [`CHAIN_RECORDS`]
/// (schema 2 had no such table).
/// `sealed` is the [`META_SEALED_UPTO`] watermark.
pub(super) fn backfill_chain_records(
    txn: &WriteTransaction,
    sealed: u64,
) -> Result<(), StoreError> {
    let records = txn.open_table(RECORDS)?;
    let mut chain_records = txn.open_table(CHAIN_RECORDS)?;
    for entry in records.range(..sealed)? {
        let (k, v) = entry?;
        if let Some((chain, _)) = decode_record(v.value())?.2.chain_height() {
            chain_records.insert((chain.as_str(), k.value()), ())?;
        }
    }
    Ok(())
}

/// Indexes every batch sealed before [`CHAIN_BATCHES`] existed (schema 1).
pub(super) fn backfill(txn: &WriteTransaction) -> Result<(), StoreError> {
    let batches: Vec<BatchInfo> = {
        let table = txn.open_table(BATCHES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(super::codec::decode_batch(BatchSeq(k.value()), v.value())?);
        }
        out
    };
    for batch in &batches {
        index_batch(txn, batch)?;
    }
    Ok(())
}

impl Store {
    /// The highest height of `chain` whose (first) record is in a batch
    /// anchored at least `min_confirmations` deep. This is the
    /// fast-unbonding answer; it follows the anchors as the anchoring loop
    /// last saw them.
    ///
    /// Reads [`CHAIN_BATCHES`] from the newest anchored batch down and stops
    /// once no older batch can hold a higher height: normally the anchors
    /// still short of `min_confirmations`, plus one.
    pub fn latest_timestamped(
        &self,
        chain: &ChainId,
        min_confirmations: u32,
    ) -> Result<Option<(StoredRecord, MinedIn)>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let Some(found) = self.newest_timestamped(&txn, chain, min_confirmations)? else {
                return Ok(None);
            };
            Ok(Some((self.record_by_seq(&txn, found.0)?, found.1)))
        })
    }

    /// The record sequence and anchor block of [`Store::latest_timestamped`].
    fn newest_timestamped(
        &self,
        txn: &ReadTransaction,
        chain: &ChainId,
        min_confirmations: u32,
    ) -> Result<Option<(u64, MinedIn)>, StoreError> {
        // Batches above the last anchor record are not anchored yet.
        let Some(last) = txn.open_table(ANCHORS)?.last()?.map(|(k, _)| k.value()) else {
            return Ok(None);
        };
        let c = chain.as_str();
        let table = txn.open_table(CHAIN_BATCHES)?;
        let mut best: Option<(u64, u64, MinedIn)> = None;
        for entry in table.range((c, 0)..=(c, last))?.rev() {
            let (k, v) = entry?;
            let (height, seq, at_or_below) = v.value();
            self.count_summary_row();
            if best.as_ref().is_some_and(|b| b.0 >= at_or_below) {
                break; // no batch from here down holds a higher height
            }
            if best.as_ref().is_some_and(|b| b.0 >= height) {
                continue;
            }
            let batch = BatchSeq(k.value().1);
            let mined = read_anchor(txn, batch)?.and_then(|a| a.mined);
            if let Some(m) = mined.filter(|m| m.confirmations >= min_confirmations) {
                best = Some((height, seq, m));
                if at_or_below <= height {
                    break; // the highest height of this batch and all below
                }
            }
        }
        Ok(best.map(|(_, seq, m)| (seq, m)))
    }
}
