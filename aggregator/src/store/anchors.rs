//! Anchor records in the store: one per batch, written by the anchoring loop.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use std::collections::HashMap;

use super::codec::{batch_of, decode_batch};
use super::{BatchInfo, Store, StoreError, StoredRecord};
use crate::anchor::{AnchorRecord, MinedIn};
use crate::schema::*;
use crate::types::{BatchSeq, ChainId};

impl Store {
    /// Writes `anchor` (one state transition = one durable transaction).
    pub fn put_anchor(&self, anchor: &AnchorRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(anchor).map_err(|e| {
            StoreError::Corrupt(format!("anchor {} does not serialize: {e}", anchor.batch))
        })?;
        self.with(|db| {
            let txn = db.begin_write()?;
            txn.open_table(ANCHORS)?
                .insert(anchor.batch.0, value.as_slice())?;
            txn.commit()?;
            Ok(())
        })
    }

    /// The anchor of batch `batch`, if one was ever built.
    pub fn anchor(&self, batch: BatchSeq) -> Result<Option<AnchorRecord>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            read_anchor(&txn, batch)
        })
    }

    /// The anchors of the `n` most recent anchored batches, oldest first.
    pub fn recent_anchors(&self, n: usize) -> Result<Vec<AnchorRecord>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ANCHORS)?;
            let mut out = Vec::with_capacity(n);
            for entry in table.iter()?.rev().take(n) {
                let (k, v) = entry?;
                out.push(decode_anchor(BatchSeq(k.value()), v.value())?);
            }
            out.reverse();
            Ok(out)
        })
    }

    /// The oldest sealed batch that has no anchor yet.
    pub fn next_unanchored_batch(&self) -> Result<Option<BatchInfo>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let next = match txn.open_table(ANCHORS)?.last()? {
                Some((k, _)) => k.value() + 1,
                None => 0,
            };
            let batches = txn.open_table(BATCHES)?;
            let v = batches.get(next)?;
            v.map(|v| decode_batch(BatchSeq(next), v.value()))
                .transpose()
        })
    }
}

pub(super) fn read_anchor(
    txn: &ReadTransaction,
    batch: BatchSeq,
) -> Result<Option<AnchorRecord>, StoreError> {
    let table = txn.open_table(ANCHORS)?;
    let v = table.get(batch.0)?;
    v.map(|v| decode_anchor(batch, v.value())).transpose()
}

pub(super) fn decode_anchor(batch: BatchSeq, v: &[u8]) -> Result<AnchorRecord, StoreError> {
    serde_json::from_slice(v)
        .map_err(|e| StoreError::Corrupt(format!("anchor of batch {batch}: {e}")))
}

impl Store {
    /// The highest height of `chain` whose (first) record is in a batch
    /// anchored at least `min_confirmations` deep, looking at no more than
    /// `scan` heights from the top. This is the fast-unbonding answer; it
    /// follows the anchors as the anchoring loop last saw them.
    pub fn latest_timestamped(
        &self,
        chain: &ChainId,
        min_confirmations: u32,
        scan: usize,
    ) -> Result<Option<(StoredRecord, MinedIn)>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let c = chain.as_str();
            let heights = txn.open_table(CHAIN_HEIGHTS)?;
            let mut mined_by_batch: HashMap<u64, Option<MinedIn>> = HashMap::new();
            for entry in heights.range((c, 0)..=(c, u64::MAX))?.rev().take(scan) {
                let seq = entry?.1.value();
                let Some(batch) = batch_of(&txn, seq)? else {
                    continue;
                };
                if seq >= batch.first_record + batch.size {
                    continue;
                }
                let mined = match mined_by_batch.get(&batch.seq.0) {
                    Some(m) => m.clone(),
                    None => {
                        let m = read_anchor(&txn, batch.seq)?.and_then(|a| a.mined);
                        mined_by_batch.insert(batch.seq.0, m.clone());
                        m
                    }
                };
                if let Some(m) = mined.filter(|m| m.confirmations >= min_confirmations) {
                    return Ok(Some((self.record_by_seq(&txn, seq)?, m)));
                }
            }
            Ok(None)
        })
    }
}
