//! The ingest path: one insert per table for a new record, and the id index
//! (generations of 8-byte prefixes, full ids in an overflow table on a
//! clash; [`super::id_index`]).

use redb::ReadableTable;

use super::codec::{decode_id, decode_record, meta_get};
use super::id_index::{id_prefix, key, IdFilters};
use super::{Ack, StoreError};
use crate::events::{EventType, ForkRef};
use crate::leaf;
use crate::schema::*;
use crate::types::{ChainId, LeafHash, PosBlockHash, Record};

/// The tables a submission writes, open in one write transaction.
pub(super) struct RecordWriter<'txn> {
    txn: &'txn redb::WriteTransaction,
    filters: &'txn IdFilters,
    /// `(chain, height, first record, later record)` of each fork stored.
    forks: Vec<(ChainId, u64, u64, u64)>,
    meta: redb::Table<'txn, &'static str, u64>,
    records: redb::Table<'txn, u64, &'static [u8]>,
    ids: redb::Table<'txn, u128, u64>,
    overflow: redb::Table<'txn, &'static [u8; 32], u64>,
    heights: redb::Table<'txn, (&'static str, u64), u64>,
    conflicts: redb::Table<'txn, (&'static str, u64, u64), u64>,
    next: u64,
    now: u64,
    value: Vec<u8>,
}

impl<'txn> RecordWriter<'txn> {
    /// Opens the tables a submission writes, in `txn`.
    pub(super) fn open(
        txn: &'txn redb::WriteTransaction,
        filters: &'txn IdFilters,
        now: u64,
    ) -> Result<Self, StoreError> {
        let meta = txn.open_table(META)?;
        let next = meta_get(&meta, META_NEXT_RECORD)?;
        Ok(RecordWriter {
            txn,
            filters,
            forks: Vec::new(),
            meta,
            records: txn.open_table(RECORDS)?,
            ids: txn.open_table(RECORD_ID_GENERATIONS)?,
            overflow: txn.open_table(RECORD_IDS_OVERFLOW)?,
            heights: txn.open_table(CHAIN_HEIGHTS)?,
            conflicts: txn.open_table(CONFLICTS)?,
            next,
            now,
            value: Vec::with_capacity(40 + leaf::MAX_PREIMAGE_LEN),
        })
    }

    /// Records the next record sequence number and a `chain.fork` event
    /// per fork stored; the caller commits. Returns the last event id
    /// written, if any.
    pub(super) fn finish(mut self) -> Result<Option<u64>, StoreError> {
        self.meta.insert(META_NEXT_RECORD, self.next)?;
        if self.forks.is_empty() {
            return Ok(None);
        }
        drop(self.meta);
        let mut last = None;
        for (chain, height, first, other) in std::mem::take(&mut self.forks) {
            let fork = |seq| -> Result<(LeafHash, PosBlockHash), StoreError> {
                let v = self.records.get(seq)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("record {seq} is indexed but missing"))
                })?;
                match decode_record(v.value())? {
                    (id, _, Record::PosBlock(b)) => Ok((id, b.block_hash)),
                    (id, _, _) => Err(StoreError::Corrupt(format!(
                        "record {id} at a chain height is not a block"
                    ))),
                }
            };
            let (first, first_block_hash) = fork(first)?;
            let (other, other_block_hash) = fork(other)?;
            last = Some(super::events::append(
                self.txn,
                &super::events::LogEntry {
                    kind: EventType::ChainFork,
                    time_unix_ms: self.now,
                    span: 1,
                    batch: None,
                    anchor: None,
                    fork: Some((
                        chain,
                        ForkRef {
                            height,
                            first,
                            first_block_hash,
                            other,
                            other_block_hash,
                        },
                    )),
                },
            )?);
        }
        Ok(last)
    }

    /// Stores one record unless it is already there. The common case (a new
    /// record at a new height) costs one insert per table, plus a filter
    /// probe per older id generation: inserts return the previous value,
    /// which is put back in the rare case there was one.
    pub(super) fn put(&mut self, id: &LeafHash, record: &Record) -> Result<Ack, StoreError> {
        let seq = self.next;
        let (prefix, newest) = (id_prefix(id), self.filters.generation(seq));
        let mut existing = self.find_in_older_generations(id, prefix, newest)?;
        if existing.is_none() {
            let taken = self
                .ids
                .insert(key(newest, prefix), seq)?
                .map(|v| v.value());
            existing = match taken {
                None => {
                    self.filters.insert(newest, prefix);
                    None
                }
                Some(taken) => {
                    self.ids.insert(key(newest, prefix), taken)?;
                    self.resolve_prefix_taken(id, taken, seq)?
                }
            };
        }
        if existing.is_some() {
            let conflict = match record.chain_height() {
                Some((chain, height)) => self.has_conflict(chain.as_str(), height)?,
                None => false,
            };
            return Ok(Ack {
                id: *id,
                duplicate: true,
                conflict,
            });
        }
        self.next += 1;
        self.value.clear();
        self.value.extend_from_slice(&id.0);
        self.value.extend_from_slice(&self.now.to_be_bytes());
        leaf::append_preimage(record, &mut self.value);
        self.records.insert(seq, self.value.as_slice())?;
        let mut conflict = false;
        if let Some((chain, height)) = record.chain_height() {
            let c = chain.as_str();
            let first = self.heights.insert((c, height), seq)?.map(|v| v.value());
            if let Some(first) = first {
                self.heights.insert((c, height), first)?;
                self.conflicts.insert((c, height, seq), first)?;
                self.forks.push((chain.clone(), height, first, seq));
                conflict = true;
            }
        }
        Ok(Ack {
            id: *id,
            duplicate: false,
            conflict,
        })
    }

    /// The record `id` if an id generation before `newest` holds it, or it
    /// went to the overflow table when its prefix was taken there.
    fn find_in_older_generations(
        &self,
        id: &LeafHash,
        prefix: u64,
        newest: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut prefix_seen = false;
        for g in self.filters.candidates(prefix, newest) {
            if let Some(seq) = self.ids.get(key(g, prefix))?.map(|v| v.value()) {
                if record_id(&self.records, seq)? == *id {
                    return Ok(Some(seq));
                }
                prefix_seen = true;
            }
        }
        if !prefix_seen {
            return Ok(None);
        }
        Ok(self.overflow.get(&id.0)?.map(|v| v.value()))
    }

    /// `id`'s prefix belongs to record `taken`: either that record is `id`
    /// (a duplicate) or `id` lives in, or now goes to, the overflow table.
    fn resolve_prefix_taken(
        &mut self,
        id: &LeafHash,
        taken: u64,
        seq: u64,
    ) -> Result<Option<u64>, StoreError> {
        if record_id(&self.records, taken)? == *id {
            return Ok(Some(taken));
        }
        let existing = self.overflow.insert(&id.0, seq)?.map(|v| v.value());
        if let Some(existing) = existing {
            self.overflow.insert(&id.0, existing)?;
        }
        Ok(existing)
    }

    fn has_conflict(&self, chain: &str, height: u64) -> Result<bool, StoreError> {
        Ok(self
            .conflicts
            .range((chain, height, 0)..=(chain, height, u64::MAX))?
            .next()
            .is_some())
    }
}

/// The id of record `seq`.
pub(super) fn record_id(
    records: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<LeafHash, StoreError> {
    let v = records
        .get(seq)?
        .ok_or_else(|| StoreError::Corrupt(format!("record {seq} is indexed but missing")))?;
    decode_id(v.value())
}
