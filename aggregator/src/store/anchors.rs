//! Anchor records in the store: one per batch, written by the anchoring loop.

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use std::collections::BTreeSet;

use super::codec::{decode_batch, decode_record, meta_get};
use super::timing::Op;
use super::{BatchInfo, Store, StoreError};
use crate::anchor::AnchorRecord;
use crate::schema::*;
use crate::types::{BatchSeq, ChainId, Record};

impl Store {
    /// Writes `anchor` (one state transition = one durable transaction).
    pub fn put_anchor(&self, anchor: &AnchorRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(anchor).map_err(|e| {
            StoreError::Corrupt(format!("anchor {} does not serialize: {e}", anchor.batch))
        })?;
        let now = self.clock.now_unix_ms();
        let last_event = self.with(|db| {
            let (txn, timed) = self.db.writers.begin(db, Op::Anchor)?;
            let last_event = super::events::log_anchor(&txn, anchor, now)?;
            txn.open_table(ANCHORS)?
                .insert(anchor.batch.0, value.as_slice())?;
            timed.commit(txn)?;
            Ok(last_event)
        })?;
        self.published(last_event);
        Ok(())
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

impl Store {
    /// The anchors whose first transaction was built at or after `since_ms`
    /// (Unix ms), oldest first. Anchors are built in batch order, so this
    /// reads back from the newest and stops at the first older one.
    pub fn anchors_built_since(&self, since_ms: u64) -> Result<Vec<AnchorRecord>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ANCHORS)?;
            let mut out = Vec::new();
            for entry in table.iter()?.rev() {
                let (k, v) = entry?;
                let anchor = decode_anchor(BatchSeq(k.value()), v.value())?;
                if anchor
                    .txs
                    .first()
                    .is_some_and(|t| t.built_unix_ms < since_ms)
                {
                    break;
                }
                out.push(anchor);
            }
            out.reverse();
            Ok(out)
        })
    }

    /// The chains of the pending (unsealed) records from sequence number
    /// `from` on, reading at most `max` records; with the sequence number to
    /// go on from. The anchoring loop follows new records with it to learn
    /// when each chain's oldest pending record arrived.
    pub fn pending_chains(
        &self,
        from: u64,
        max: u64,
    ) -> Result<(BTreeSet<ChainId>, u64), StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            let start = from.max(meta_get(&meta, META_SEALED_UPTO)?);
            let end = meta_get(&meta, META_NEXT_RECORD)?.min(start.saturating_add(max));
            let records = txn.open_table(RECORDS)?;
            let mut chains = BTreeSet::new();
            for entry in records.range(start..end)? {
                let (_, v) = entry?;
                if let (_, _, Record::PosBlock(b)) = decode_record(v.value())? {
                    chains.insert(b.chain_id);
                }
            }
            Ok((chains, end.max(start)))
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
