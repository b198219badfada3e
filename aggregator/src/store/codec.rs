//! Value layouts of the store's tables, and the small reads shared by queries.

use redb::{ReadTransaction, ReadableTable};

use super::{BatchInfo, StoreError};
use crate::leaf;
use crate::merkle::PathStep;
use crate::pages::{self, PageError};
use crate::schema::*;
use crate::types::{BatchSeq, LeafHash, MerkleRoot, Record};

pub(super) fn read_path(
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
pub(super) fn batch_of(txn: &ReadTransaction, seq: u64) -> Result<Option<BatchInfo>, StoreError> {
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

pub(super) fn meta_get(
    meta: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<u64, StoreError> {
    Ok(meta.get(key)?.map_or(0, |v| v.value()))
}

pub(super) fn decode_id(value: &[u8]) -> Result<LeafHash, StoreError> {
    value
        .get(..32)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(LeafHash)
        .ok_or_else(|| StoreError::Corrupt("record value shorter than its id".into()))
}

pub(super) fn decode_record(value: &[u8]) -> Result<(LeafHash, u64, Record), StoreError> {
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

pub(super) fn encode_batch(b: &BatchInfo) -> [u8; 56] {
    let mut out = [0u8; 56];
    out[..8].copy_from_slice(&b.first_record.to_be_bytes());
    out[8..16].copy_from_slice(&b.size.to_be_bytes());
    out[16..48].copy_from_slice(b.root.as_bytes());
    out[48..].copy_from_slice(&b.sealed_unix_ms.to_be_bytes());
    out
}

pub(super) fn decode_batch(seq: BatchSeq, v: &[u8]) -> Result<BatchInfo, StoreError> {
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
