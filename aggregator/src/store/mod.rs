//! The durable store: one redb file holding records, batches and their trees.
//!
//! Its public API is small and transactional on purpose — submit, seal,
//! query — because it is the seam a replicated backend would implement.
//! Every state transition is one write transaction committed with immediate
//! durability before the caller hears of it.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTableMetadata};

use crate::clock::Clock;
use crate::leaf;
use crate::merkle::PathStep;
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
    /// A write failed for lack of space (`disk_full`) or another I/O error;
    /// nothing of it was stored. The store refuses work until it has
    /// reopened the file and a probe write commits (tried every
    /// [`RECOVERY_INTERVAL`]), so this passes without a restart.
    #[error("store unavailable{}: {cause}", if *.disk_full { " (disk full)" } else { "" })]
    Unavailable {
        /// The failure was ENOSPC (or a quota).
        disk_full: bool,
        /// The underlying error.
        cause: String,
    },
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
    db: Arc<Handle>,
    clock: Arc<dyn Clock>,
    /// The id index's per-generation filters ([`id_index`]).
    ids: Arc<IdFilters>,
    /// The last event id committed ([`Store::subscribe_events`]).
    events: Arc<tokio::sync::watch::Sender<u64>>,
    /// Summary rows the status queries read (tests hold them to a bound).
    #[cfg(test)]
    summary_rows: Arc<std::sync::atomic::AtomicU64>,
    #[cfg(feature = "test-utils")]
    hook: Arc<std::sync::Mutex<Option<AccessHook>>>,
}

impl Store {
    /// Opens the store at `path`, creating it if absent, and checks its
    /// schema version; with the default [`StoreOptions`].
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Store, StoreError> {
        Store::open_with_options(path, clock, StoreOptions::default())
    }

    /// [`Store::open`] with `options` (e.g. a smaller page cache).
    pub fn open_with_options(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        Store::open_with(options::opener(path.as_ref().to_owned(), options), clock)
    }

    /// Opens the store with `open`, which is called again to reopen it
    /// after an I/O failure.
    pub(crate) fn open_with(open: Opener, clock: Arc<dyn Clock>) -> Result<Store, StoreError> {
        let store = Store {
            db: Arc::new(Handle::open(open)?),
            clock,
            ids: Arc::default(),
            events: Arc::new(tokio::sync::watch::Sender::new(0)),
            #[cfg(test)]
            summary_rows: Arc::default(),
            #[cfg(feature = "test-utils")]
            hook: Arc::default(),
        };
        store.init_schema()?;
        store.with(|db| store.ids.fill(&db.begin_read()?))?;
        store.published(Some(store.event_bounds()?.last));
        Ok(store)
    }

    /// Runs `f` on the open database. While the store is unavailable (an
    /// I/O failure, e.g. a full disk) this answers
    /// [`StoreError::Unavailable`] without touching the file, except for a
    /// reopen attempt every [`RECOVERY_INTERVAL`].
    fn with<T>(&self, f: impl FnOnce(&Database) -> Result<T, StoreError>) -> Result<T, StoreError> {
        #[cfg(feature = "test-utils")]
        {
            let hook = self.hook.lock().ok().and_then(|h| h.clone());
            if let Some(hook) = hook {
                (hook.0)();
            }
        }
        let db = self.db.get()?;
        self.db.check(f(&db))
    }

    /// Sets (or with `None` removes) the hook run at the start of every
    /// store access, on the calling thread.
    #[cfg(feature = "test-utils")]
    pub fn set_access_hook(&self, hook: Option<AccessHook>) {
        if let Ok(mut slot) = self.hook.lock() {
            *slot = hook;
        }
    }

    fn count_summary_row(&self) {
        #[cfg(test)]
        self.summary_rows
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `Ok` if the store takes writes (as far as it knows: the last write
    /// or recovery probe succeeded); [`StoreError::Unavailable`] otherwise.
    pub fn check_available(&self) -> Result<(), StoreError> {
        self.db.get().map(drop)
    }

    fn init_schema(&self) -> Result<(), StoreError> {
        self.with(|db| self.init_schema_in(db))
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
        let (out, last_event) = self.with(|db| {
            let (txn, timed) = self.db.writers.begin(db, timing::Op::Ingest)?;
            let mut out = Vec::with_capacity(groups.len());
            let last_event = {
                let mut w = RecordWriter::open(&txn, &self.ids, now)?;
                for group in groups {
                    let acks = group
                        .iter()
                        .map(|(id, record)| w.put(id, record))
                        .collect::<Result<_, _>>()?;
                    out.push(acks);
                }
                w.finish()?
            };
            timed.commit(txn)?;
            Ok((out, last_event))
        })?;
        self.published(last_event);
        Ok(out)
    }

    /// Number of records not yet in a batch.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta_get(&meta, META_NEXT_RECORD)? - meta_get(&meta, META_SEALED_UPTO)?)
        })
    }

    /// Number of records stored (duplicates counted once).
    pub fn record_count(&self) -> Result<u64, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            Ok(txn.open_table(RECORDS)?.len()?)
        })
    }

    /// The record with id `id`, if stored.
    pub fn record(&self, id: &LeafHash) -> Result<Option<StoredRecord>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let Some(seq) = seq_of(&self.ids, &txn, id)? else {
                return Ok(None);
            };
            self.record_by_seq(&txn, seq).map(Some)
        })
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

    /// The records of `batch`, in leaf order, keeping those `keep` accepts
    /// (the IBC relay takes one chain's records of each anchored batch).
    pub fn batch_records(
        &self,
        batch: &BatchInfo,
        keep: impl Fn(&Record) -> bool,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let records = txn.open_table(RECORDS)?;
            let mut out = Vec::new();
            for entry in records.range(batch.first_record..batch.first_record + batch.size)? {
                let (k, v) = entry?;
                let (id, received_unix_ms, record) = decode_record(v.value())?;
                if keep(&record) {
                    out.push(StoredRecord {
                        id,
                        record,
                        received_unix_ms,
                        batch: Some((batch.seq, k.value() - batch.first_record)),
                    });
                }
            }
            Ok(out)
        })
    }

    /// Every record stored for `chain` at `height`, in arrival order (more than one = fork).
    pub fn records_at(
        &self,
        chain: &ChainId,
        height: Height,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
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
        })
    }

    /// The highest height submitted for `chain`, if any.
    pub fn latest_height(&self, chain: &ChainId) -> Result<Option<Height>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let c = chain.as_str();
            let table = txn.open_table(CHAIN_HEIGHTS)?;
            let last = table
                .range((c, 0)..=(c, u64::MAX))?
                .next_back()
                .transpose()?;
            Ok(last.map(|(k, _)| k.value().1))
        })
    }

    /// Fork evidence for `chain`, lowest height first.
    pub fn conflicts(&self, chain: &ChainId) -> Result<Vec<Conflict>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
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
        })
    }

    /// The batch `seq`, if sealed.
    pub fn batch(&self, seq: BatchSeq) -> Result<Option<BatchInfo>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(BATCHES)?;
            let v = table.get(seq.0)?;
            v.map(|v| decode_batch(seq, v.value())).transpose()
        })
    }

    /// The inclusion path of leaf `index` of batch `batch` (of `size` leaves),
    /// read from the stored tree pages.
    pub fn merkle_path(
        &self,
        batch: BatchSeq,
        size: u64,
        index: u64,
    ) -> Result<Vec<PathStep>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            read_path(&txn, batch, size, index)
        })
    }

    /// The proof document of record `id` as far as the store can build it:
    /// leaf and path for a sealed record, no anchor yet. `None` if the id is
    /// unknown or the record is still pending.
    pub fn proof(&self, id: &LeafHash) -> Result<Option<Proof>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let Some(seq) = seq_of(&self.ids, &txn, id)? else {
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
        })
    }
}

/// The pending records `first..first + max_records` as a tree, or `None`.
mod anchors;
mod codec;
mod events;
#[cfg(test)]
mod events_tests;
#[cfg(test)]
mod fixtures;
mod health;
#[cfg(test)]
mod health_tests;
#[cfg(feature = "test-utils")]
mod hook;
mod id_index;
#[cfg(test)]
mod id_index_tests;
mod lists;
mod options;
mod schema_init;
mod seal;
mod summary;
#[cfg(test)]
mod summary_tests;
#[cfg(test)]
mod tests;
mod timing;
mod writer;

use anchors::read_anchor;
use codec::*;
pub use events::{EventBounds, EventPage};
pub use health::RECOVERY_INTERVAL;
use health::{Handle, Opener};
#[cfg(feature = "test-utils")]
pub use hook::AccessHook;
use id_index::{seq_of, IdFilters};
pub use lists::{ConflictCursor, Page, RecordsAt};
pub use options::StoreOptions;
use writer::*;
