//! Anchor records in the store: one per batch, written by the anchoring loop.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use super::codec::decode_batch;
use super::{BatchInfo, Store, StoreError};
use crate::anchor::AnchorRecord;
use crate::schema::*;
use crate::types::BatchSeq;

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
