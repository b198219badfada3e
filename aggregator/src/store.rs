//! The durable store: one redb file holding records, batches and their trees.
//!
//! Its public API is small and transactional on purpose — submit, seal,
//! query — because it is the seam a replicated backend would implement.
//! Every state transition is one write transaction committed with immediate
//! durability before the caller hears of it.

use std::path::Path;
use std::sync::Arc;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    WriteTransaction,
};
use tracing::info;

use crate::anchor::AnchorRecord;
use crate::clock::Clock;
use crate::leaf;
use crate::merkle::{MerkleTree, PathStep};
use crate::pages::{self, PageError};
use crate::proof::{BatchEvidence, LeafEvidence, Proof, PROOF_FORMAT, PROOF_VERSION};
use crate::schema::*;
use crate::types::{BatchSeq, ChainId, Height, HexBytes, LeafHash, MerkleRoot, Record};

/// A failure of the store. Storage errors are not retried here; the caller
/// decides (a submission is simply not acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error (I/O, corruption, …).
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    /// The file was written by a different schema version.
    #[error("store schema version {found} is not supported (this build reads version {expected})")]
    SchemaVersion {
        /// The version found in the file.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
    /// Stored bytes do not decode: the file is damaged or was edited.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The group commit this submission was part of failed (the message is
    /// the underlying error); nothing in it was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The group-commit writer has stopped.
    #[error("the store writer has shut down")]
    Closed,
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.into())
            }
        }
    )*};
}
storage_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The outcome of submitting one record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ack {
    /// The record id.
    pub id: LeafHash,
    /// The same record was already stored; nothing new was written.
    pub duplicate: bool,
    /// Another record with a different block hash exists at the same chain and height.
    pub conflict: bool,
}

/// A stored record and where it stands.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredRecord {
    /// The record id.
    pub id: LeafHash,
    /// The record.
    pub record: Record,
    /// When it was first received (Unix ms).
    pub received_unix_ms: u64,
    /// Its batch and index there, once sealed.
    pub batch: Option<(BatchSeq, u64)>,
}

/// A sealed batch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BatchInfo {
    /// Its sequence number.
    pub seq: BatchSeq,
    /// Sequence number of its first record.
    pub first_record: u64,
    /// Number of records.
    pub size: u64,
    /// The tree root.
    pub root: MerkleRoot,
    /// When it was sealed (Unix ms).
    pub sealed_unix_ms: u64,
}

/// Two different block hashes submitted for one chain and height.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conflict {
    /// The height of the fork.
    pub height: Height,
    /// The record stored first at that height.
    pub first: LeafHash,
    /// A later record with a different block hash.
    pub other: LeafHash,
}

/// The btcts store. Cheap to clone; all clones share one database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
}

impl Store {
    /// Opens the store at `path`, creating it if absent, and checks its schema version.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Store, StoreError> {
        let db = Database::create(path.as_ref())?;
        let store = Store {
            db: Arc::new(db),
            clock,
        };
        store.init_schema()?;
        Ok(store)
    }

    fn init_schema(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(META_SCHEMA_VERSION)?.map(|v| v.value());
            match found {
                Some(v) if v == SCHEMA_VERSION => {}
                Some(v) => {
                    return Err(StoreError::SchemaVersion {
                        found: v,
                        expected: SCHEMA_VERSION,
                    })
                }
                None => {
                    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION)?;
                }
            }
            for table in [RECORDS, BATCHES] {
                txn.open_table(table)?;
            }
            txn.open_table(RECORD_IDS)?;
            txn.open_table(RECORD_IDS_OVERFLOW)?;
            txn.open_table(CHAIN_HEIGHTS)?;
            txn.open_table(CONFLICTS)?;
            txn.open_table(BATCH_STARTS)?;
            txn.open_table(TREE_PAGES)?;
            txn.open_table(ANCHORS)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores `records` (ids precomputed with [`leaf::leaf_hash`]) in one
    /// durable transaction and returns one [`Ack`] per record, in order.
    pub fn submit(&self, records: &[(LeafHash, Record)]) -> Result<Vec<Ack>, StoreError> {
        let mut acks = self.submit_groups(&[records])?;
        Ok(acks.pop().unwrap_or_default())
    }

    /// Stores several requests' records in one durable transaction (group commit).
    pub(crate) fn submit_groups(
        &self,
        groups: &[&[(LeafHash, Record)]],
    ) -> Result<Vec<Vec<Ack>>, StoreError> {
        let now = self.clock.now_unix_ms();
        let txn = self.db.begin_write()?;
        let mut out = Vec::with_capacity(groups.len());
        {
            let mut w = RecordWriter {
                meta: txn.open_table(META)?,
                records: txn.open_table(RECORDS)?,
                ids: txn.open_table(RECORD_IDS)?,
                overflow: txn.open_table(RECORD_IDS_OVERFLOW)?,
                heights: txn.open_table(CHAIN_HEIGHTS)?,
                conflicts: txn.open_table(CONFLICTS)?,
                next: 0,
                now,
                value: Vec::with_capacity(40 + leaf::MAX_PREIMAGE_LEN),
            };
            w.next = meta_get(&w.meta, META_NEXT_RECORD)?;
            for group in groups {
                let acks = group
                    .iter()
                    .map(|(id, record)| w.put(id, record))
                    .collect::<Result<_, _>>()?;
                out.push(acks);
            }
            let next = w.next;
            w.meta.insert(META_NEXT_RECORD, next)?;
        }
        txn.commit()?;
        Ok(out)
    }

    /// Seals up to `max_records` pending records, oldest first, into a new
    /// batch. The tree is built outside the write lock; the batch, its tree
    /// pages and the new watermark are written in one transaction, so after a
    /// crash either the whole batch exists or its records are still pending.
    /// `None` when nothing is pending.
    pub fn seal_batch(&self, max_records: u64) -> Result<Option<BatchInfo>, StoreError> {
        let max_records = max_records.max(1);
        loop {
            let Some((first, tree)) = self.build_pending_tree(max_records)? else {
                return Ok(None);
            };
            let txn = self.db.begin_write()?;
            let info = match self.write_batch(&txn, first, &tree)? {
                Some(info) => info,
                // Someone else sealed these records in between: try again.
                None => continue,
            };
            txn.commit()?;
            info!(batch = %info.seq, records = info.size, root = %info.root, "batch sealed");
            return Ok(Some(info));
        }
    }

    fn build_pending_tree(
        &self,
        max_records: u64,
    ) -> Result<Option<(u64, MerkleTree)>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let first = meta_get(&meta, META_SEALED_UPTO)?;
        let next = meta_get(&meta, META_NEXT_RECORD)?;
        let end = next.min(first.saturating_add(max_records));
        if end <= first {
            return Ok(None);
        }
        let records = txn.open_table(RECORDS)?;
        let mut leaves = Vec::with_capacity((end - first) as usize);
        for entry in records.range(first..end)? {
            let (_, v) = entry?;
            leaves.push(decode_id(v.value())?);
        }
        if leaves.len() as u64 != end - first {
            return Err(StoreError::Corrupt(format!(
                "records {first}..{end} are not all present"
            )));
        }
        Ok(MerkleTree::from_leaves(&leaves).map(|t| (first, t)))
    }

    /// Writes the batch over records `first..first + tree.leaf_count()` into
    /// `txn`, or `None` if the watermark moved since the tree was built.
    pub(crate) fn write_batch(
        &self,
        txn: &WriteTransaction,
        first: u64,
        tree: &MerkleTree,
    ) -> Result<Option<BatchInfo>, StoreError> {
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
        meta.insert(META_SEALED_UPTO, first + size)?;
        meta.insert(META_NEXT_BATCH, info.seq.0 + 1)?;
        Ok(Some(info))
    }

    /// Number of records not yet in a batch.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta_get(&meta, META_NEXT_RECORD)? - meta_get(&meta, META_SEALED_UPTO)?)
    }

    /// Number of records stored (duplicates counted once).
    pub fn record_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(RECORDS)?.len()?)
    }

    /// The record with id `id`, if stored.
    pub fn record(&self, id: &LeafHash) -> Result<Option<StoredRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(seq) = seq_of(&txn, id)? else {
            return Ok(None);
        };
        self.record_by_seq(&txn, seq).map(Some)
    }

    fn record_by_seq(&self, txn: &ReadTransaction, seq: u64) -> Result<StoredRecord, StoreError> {
        let records = txn.open_table(RECORDS)?;
        let value = records
            .get(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("record {seq} is indexed but missing")))?;
        let (id, received_unix_ms, record) = decode_record(value.value())?;
        let batch = match batch_of(txn, seq)? {
            Some(b) if seq < b.first_record + b.size => Some((b.seq, seq - b.first_record)),
            _ => None,
        };
        Ok(StoredRecord {
            id,
            record,
            received_unix_ms,
            batch,
        })
    }

    /// Every record stored for `chain` at `height`, in arrival order (more than one = fork).
    pub fn records_at(
        &self,
        chain: &ChainId,
        height: Height,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let c = chain.as_str();
        let Some(first) = txn
            .open_table(CHAIN_HEIGHTS)?
            .get((c, height))?
            .map(|v| v.value())
        else {
            return Ok(Vec::new());
        };
        let mut seqs = vec![first];
        for entry in txn
            .open_table(CONFLICTS)?
            .range((c, height, 0)..=(c, height, u64::MAX))?
        {
            seqs.push(entry?.0.value().2);
        }
        seqs.into_iter()
            .map(|s| self.record_by_seq(&txn, s))
            .collect()
    }

    /// The highest height submitted for `chain`, if any.
    pub fn latest_height(&self, chain: &ChainId) -> Result<Option<Height>, StoreError> {
        let txn = self.db.begin_read()?;
        let c = chain.as_str();
        let table = txn.open_table(CHAIN_HEIGHTS)?;
        let last = table
            .range((c, 0)..=(c, u64::MAX))?
            .next_back()
            .transpose()?;
        Ok(last.map(|(k, _)| k.value().1))
    }

    /// Fork evidence for `chain`, lowest height first.
    pub fn conflicts(&self, chain: &ChainId) -> Result<Vec<Conflict>, StoreError> {
        let txn = self.db.begin_read()?;
        let c = chain.as_str();
        let records = txn.open_table(RECORDS)?;
        let id_of = |seq: u64| -> Result<LeafHash, StoreError> {
            let v = records
                .get(seq)?
                .ok_or_else(|| StoreError::Corrupt(format!("record {seq} missing")))?;
            decode_id(v.value())
        };
        let mut out = Vec::new();
        for entry in txn
            .open_table(CONFLICTS)?
            .range((c, 0, 0)..=(c, u64::MAX, u64::MAX))?
        {
            let (k, v) = entry?;
            let (_, height, other) = k.value();
            out.push(Conflict {
                height,
                first: id_of(v.value())?,
                other: id_of(other)?,
            });
        }
        Ok(out)
    }

    /// The batch `seq`, if sealed.
    pub fn batch(&self, seq: BatchSeq) -> Result<Option<BatchInfo>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        let v = table.get(seq.0)?;
        v.map(|v| decode_batch(seq, v.value())).transpose()
    }

    /// The inclusion path of leaf `index` of batch `batch` (of `size` leaves),
    /// read from the stored tree pages.
    pub fn merkle_path(
        &self,
        batch: BatchSeq,
        size: u64,
        index: u64,
    ) -> Result<Vec<PathStep>, StoreError> {
        let txn = self.db.begin_read()?;
        read_path(&txn, batch, size, index)
    }

    /// The proof document of record `id` as far as the store can build it:
    /// leaf and path for a sealed record, no anchor yet. `None` if the id is
    /// unknown or the record is still pending.
    pub fn proof(&self, id: &LeafHash) -> Result<Option<Proof>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(seq) = seq_of(&txn, id)? else {
            return Ok(None);
        };
        let stored = self.record_by_seq(&txn, seq)?;
        let Some((batch_seq, index)) = stored.batch else {
            return Ok(None);
        };
        let batch = txn
            .open_table(BATCHES)?
            .get(batch_seq.0)?
            .map(|v| decode_batch(batch_seq, v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt(format!("batch {batch_seq} missing")))?;
        let path = read_path(&txn, batch_seq, batch.size, index)?;
        let anchor = read_anchor(&txn, batch_seq)?
            .and_then(|a| a.mined)
            .map(|m| m.evidence);
        Ok(Some(Proof {
            format: PROOF_FORMAT.to_owned(),
            version: PROOF_VERSION,
            leaf: LeafEvidence {
                preimage: HexBytes(leaf::encode(&stored.record)),
                hash: stored.id,
            },
            record: stored.record,
            batch: BatchEvidence {
                seq: batch_seq,
                size: batch.size,
                index,
                root: batch.root,
            },
            path,
            anchor,
        }))
    }
}

impl Store {
    /// Writes `anchor` (one state transition = one durable transaction).
    pub fn put_anchor(&self, anchor: &AnchorRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(anchor).map_err(|e| {
            StoreError::Corrupt(format!("anchor {} does not serialize: {e}", anchor.batch))
        })?;
        let txn = self.db.begin_write()?;
        txn.open_table(ANCHORS)?
            .insert(anchor.batch.0, value.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// The anchor of batch `batch`, if one was ever built.
    pub fn anchor(&self, batch: BatchSeq) -> Result<Option<AnchorRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        read_anchor(&txn, batch)
    }

    /// The anchors of the `n` most recent anchored batches, oldest first.
    pub fn recent_anchors(&self, n: usize) -> Result<Vec<AnchorRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ANCHORS)?;
        let mut out = Vec::with_capacity(n);
        for entry in table.iter()?.rev().take(n) {
            let (k, v) = entry?;
            out.push(decode_anchor(BatchSeq(k.value()), v.value())?);
        }
        out.reverse();
        Ok(out)
    }

    /// The oldest sealed batch that has no anchor yet.
    pub fn next_unanchored_batch(&self) -> Result<Option<BatchInfo>, StoreError> {
        let txn = self.db.begin_read()?;
        let next = match txn.open_table(ANCHORS)?.last()? {
            Some((k, _)) => k.value() + 1,
            None => 0,
        };
        let batches = txn.open_table(BATCHES)?;
        let v = batches.get(next)?;
        v.map(|v| decode_batch(BatchSeq(next), v.value()))
            .transpose()
    }
}

fn read_anchor(txn: &ReadTransaction, batch: BatchSeq) -> Result<Option<AnchorRecord>, StoreError> {
    let table = txn.open_table(ANCHORS)?;
    let v = table.get(batch.0)?;
    v.map(|v| decode_anchor(batch, v.value())).transpose()
}

fn decode_anchor(batch: BatchSeq, v: &[u8]) -> Result<AnchorRecord, StoreError> {
    serde_json::from_slice(v)
        .map_err(|e| StoreError::Corrupt(format!("anchor of batch {batch}: {e}")))
}

/// The tables a submission writes, open in one write transaction.
struct RecordWriter<'txn> {
    meta: redb::Table<'txn, &'static str, u64>,
    records: redb::Table<'txn, u64, &'static [u8]>,
    ids: redb::Table<'txn, u64, u64>,
    overflow: redb::Table<'txn, &'static [u8; 32], u64>,
    heights: redb::Table<'txn, (&'static str, u64), u64>,
    conflicts: redb::Table<'txn, (&'static str, u64, u64), u64>,
    next: u64,
    now: u64,
    value: Vec<u8>,
}

impl RecordWriter<'_> {
    /// Stores one record unless it is already there. The common case (a new
    /// record at a new height) costs one insert per table: inserts return the
    /// previous value, which is put back in the rare case there was one.
    fn put(&mut self, id: &LeafHash, record: &Record) -> Result<Ack, StoreError> {
        let seq = self.next;
        let taken = self.ids.insert(id_prefix(id), seq)?.map(|v| v.value());
        let existing = match taken {
            None => None,
            Some(taken) => {
                self.ids.insert(id_prefix(id), taken)?;
                self.resolve_prefix_taken(id, taken, seq)?
            }
        };
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
                conflict = true;
            }
        }
        Ok(Ack {
            id: *id,
            duplicate: false,
            conflict,
        })
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

/// The big-endian first 8 bytes of a record id: its key in [`RECORD_IDS`].
fn id_prefix(id: &LeafHash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
}

/// The id of record `seq`.
fn record_id(
    records: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<LeafHash, StoreError> {
    let v = records
        .get(seq)?
        .ok_or_else(|| StoreError::Corrupt(format!("record {seq} is indexed but missing")))?;
    decode_id(v.value())
}

/// The sequence number of the record with id `id`, if stored.
fn seq_of(txn: &ReadTransaction, id: &LeafHash) -> Result<Option<u64>, StoreError> {
    let Some(seq) = txn
        .open_table(RECORD_IDS)?
        .get(id_prefix(id))?
        .map(|v| v.value())
    else {
        return Ok(None);
    };
    if record_id(&txn.open_table(RECORDS)?, seq)? == *id {
        return Ok(Some(seq));
    }
    Ok(txn
        .open_table(RECORD_IDS_OVERFLOW)?
        .get(&id.0)?
        .map(|v| v.value()))
}

fn read_path(
    txn: &ReadTransaction,
    batch: BatchSeq,
    size: u64,
    index: u64,
) -> Result<Vec<PathStep>, StoreError> {
    let table = txn.open_table(TREE_PAGES)?;
    pages::read_path(size, index, |group, page, visit| {
        Ok::<_, StoreError>(match table.get(tree_page_key(batch.0, group, page))? {
            Some(v) => {
                visit(v.value());
                true
            }
            None => false,
        })
    })
    .map_err(|e| match e {
        PageError::Fetch(e) => e,
        PageError::Corrupt { group, page } => StoreError::Corrupt(format!(
            "batch {batch}: tree page ({group}, {page}) missing or truncated"
        )),
    })
}

/// The batch whose range starts at or before record `seq` (it may have ended before it).
fn batch_of(txn: &ReadTransaction, seq: u64) -> Result<Option<BatchInfo>, StoreError> {
    let starts = txn.open_table(BATCH_STARTS)?;
    let Some(entry) = starts.range(..=seq)?.next_back().transpose()? else {
        return Ok(None);
    };
    let batch = BatchSeq(entry.1.value());
    let batches = txn.open_table(BATCHES)?;
    let v = batches
        .get(batch.0)?
        .ok_or_else(|| StoreError::Corrupt(format!("batch {batch} indexed but missing")))?;
    decode_batch(batch, v.value()).map(Some)
}

fn meta_get(meta: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, StoreError> {
    Ok(meta.get(key)?.map_or(0, |v| v.value()))
}

fn decode_id(value: &[u8]) -> Result<LeafHash, StoreError> {
    value
        .get(..32)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(LeafHash)
        .ok_or_else(|| StoreError::Corrupt("record value shorter than its id".into()))
}

fn decode_record(value: &[u8]) -> Result<(LeafHash, u64, Record), StoreError> {
    let id = decode_id(value)?;
    let ms = value
        .get(32..40)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt(format!("record {id} truncated")))?;
    let record =
        leaf::decode(&value[40..]).map_err(|e| StoreError::Corrupt(format!("record {id}: {e}")))?;
    Ok((id, ms, record))
}

fn encode_batch(b: &BatchInfo) -> [u8; 56] {
    let mut out = [0u8; 56];
    out[..8].copy_from_slice(&b.first_record.to_be_bytes());
    out[8..16].copy_from_slice(&b.size.to_be_bytes());
    out[16..48].copy_from_slice(b.root.as_bytes());
    out[48..].copy_from_slice(&b.sealed_unix_ms.to_be_bytes());
    out
}

fn decode_batch(seq: BatchSeq, v: &[u8]) -> Result<BatchInfo, StoreError> {
    let bytes: &[u8; 56] = v
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("batch {seq} has {} bytes", v.len())))?;
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let mut root = [0u8; 32];
    root.copy_from_slice(&bytes[16..48]);
    Ok(BatchInfo {
        seq,
        first_record: u64_at(0),
        size: u64_at(8),
        root: MerkleRoot(root),
        sealed_unix_ms: u64_at(48),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::types::RawDigest;

    /// A crash between writing a batch and committing it: the transaction is
    /// dropped, the store closed and reopened. The records must still be
    /// pending and sealing must work as if nothing happened.
    #[test]
    fn an_interrupted_seal_leaves_every_record_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("btcts.redb");
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(5));
        let records: Vec<(LeafHash, Record)> = (0..300u16)
            .map(|i| {
                let mut d = [0u8; 32];
                d[..2].copy_from_slice(&i.to_be_bytes());
                let r = Record::Digest {
                    digest: RawDigest(d),
                };
                (leaf::leaf_hash(&r), r)
            })
            .collect();
        {
            let store = Store::open(&path, clock.clone()).expect("opens");
            store.submit(&records).expect("stored");
            let (first, tree) = store
                .build_pending_tree(1000)
                .expect("reads")
                .expect("pending");
            let txn = store.db.begin_write().expect("txn");
            let info = store
                .write_batch(&txn, first, &tree)
                .expect("writes")
                .expect("watermark");
            assert_eq!(info.size, 300);
            drop(txn); // crash: never committed
        }
        let store = Store::open(&path, clock).expect("reopens");
        assert_eq!(store.pending_count().expect("count"), 300);
        assert_eq!(store.batch(BatchSeq(0)).expect("query"), None);
        assert_eq!(
            store
                .record(&records[0].0)
                .expect("query")
                .and_then(|r| r.batch),
            None
        );
        let sealed = store.seal_batch(1000).expect("seals").expect("pending");
        assert_eq!((sealed.seq, sealed.size), (BatchSeq(0), 300));
        assert_eq!(store.pending_count().expect("count"), 0);
    }

    /// Two ids sharing their 8-byte prefix: the second goes to the overflow
    /// table and both stay distinct, findable and deduplicated.
    #[test]
    fn ids_sharing_a_prefix_are_kept_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(dir.path().join("s.redb"), Arc::new(FixedClock::new(0))).expect("opens");
        let rec = |b: u8| {
            let r = Record::Digest {
                digest: RawDigest([b; 32]),
            };
            (leaf::leaf_hash(&r), r)
        };
        let (a, b) = (rec(1), rec(2));
        store.submit(std::slice::from_ref(&a)).expect("stored");
        // Make b's prefix point at a, as a real prefix collision would.
        let txn = store.db.begin_write().expect("txn");
        txn.open_table(RECORD_IDS)
            .expect("table")
            .insert(id_prefix(&b.0), 0)
            .expect("insert");
        txn.commit().expect("commit");
        let first = store.submit(std::slice::from_ref(&b)).expect("stored");
        assert!(!first[0].duplicate, "a prefix match is not a duplicate");
        let again = store.submit(&[b.clone(), a.clone()]).expect("stored");
        assert!(again[0].duplicate && again[1].duplicate);
        assert_eq!(store.record_count().expect("count"), 2);
        assert_eq!(
            store.record(&a.0).expect("query").map(|r| r.record),
            Some(a.1)
        );
        assert_eq!(
            store.record(&b.0).expect("query").map(|r| r.record),
            Some(b.1)
        );
        let txn = store.db.begin_read().expect("txn");
        assert_eq!(
            txn.open_table(RECORD_IDS_OVERFLOW)
                .expect("table")
                .len()
                .expect("len"),
            1
        );
    }

    /// A seal that raced with another seal notices the moved watermark.
    #[test]
    fn a_stale_tree_is_not_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(dir.path().join("s.redb"), Arc::new(FixedClock::new(0))).expect("opens");
        let r = Record::Digest {
            digest: RawDigest([1; 32]),
        };
        store.submit(&[(leaf::leaf_hash(&r), r)]).expect("stored");
        let (first, tree) = store
            .build_pending_tree(10)
            .expect("reads")
            .expect("pending");
        store.seal_batch(10).expect("seals");
        let txn = store.db.begin_write().expect("txn");
        assert_eq!(store.write_batch(&txn, first, &tree).expect("checks"), None);
    }
}
