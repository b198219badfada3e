//! Paged lists of a chain's records: fork evidence and the records at one
//! height, read as range queries from a cursor so a page costs its size.

use redb::ReadableDatabase;

use super::codec::decode_id;
use super::{Conflict, Store, StoreError, StoredRecord};
use crate::schema::*;
use crate::types::{ChainId, Height, LeafHash};

/// Up to a limit of items, and where the next page starts (if there is one).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Page<T, C> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// The cursor of the last item, when more follow it.
    pub next: Option<C>,
}

/// A position in a chain's fork evidence: the height and the later record's
/// sequence number of the last conflict on a page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConflictCursor {
    /// The height of the conflict.
    pub height: Height,
    /// The sequence number of its later record.
    pub seq: u64,
}

/// The records at one height of a chain.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordsAt {
    /// More than one record at the height (on any page).
    pub fork: bool,
    /// This page of them, in arrival order; the cursor is a record sequence.
    pub page: Page<StoredRecord, u64>,
}

impl Store {
    /// Up to `limit` conflicts of `chain` after `after`, lowest height first.
    pub fn conflicts_page(
        &self,
        chain: &ChainId,
        after: Option<ConflictCursor>,
        limit: usize,
    ) -> Result<Page<Conflict, ConflictCursor>, StoreError> {
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
            let table = txn.open_table(CONFLICTS)?;
            let rows = match after {
                Some(a) => table.range((c, a.height, a.seq)..=(c, u64::MAX, u64::MAX))?,
                None => table.range((c, 0, 0)..=(c, u64::MAX, u64::MAX))?,
            };
            let mut page = Page {
                items: Vec::new(),
                next: None,
            };
            let mut last = None;
            for entry in rows {
                let (k, v) = entry?;
                let (_, height, other) = k.value();
                let at = ConflictCursor { height, seq: other };
                if Some(at) == after {
                    continue;
                }
                if page.items.len() == limit {
                    page.next = last;
                    break;
                }
                page.items.push(Conflict {
                    height,
                    first: id_of(v.value())?,
                    other: id_of(other)?,
                });
                last = Some(at);
            }
            Ok(page)
        })
    }

    /// Up to `limit` records stored for `chain` at `height` after record
    /// sequence `after`, in arrival order.
    pub fn records_at_page(
        &self,
        chain: &ChainId,
        height: Height,
        after: Option<u64>,
        limit: usize,
    ) -> Result<RecordsAt, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let c = chain.as_str();
            let first = txn
                .open_table(CHAIN_HEIGHTS)?
                .get((c, height))?
                .map(|v| v.value());
            let conflicts = txn.open_table(CONFLICTS)?;
            let fork = conflicts
                .range((c, height, 0)..=(c, height, u64::MAX))?
                .next()
                .is_some();
            // The first record has the lowest sequence of its height.
            let mut seqs = first
                .filter(|_| after.is_none())
                .into_iter()
                .collect::<Vec<_>>();
            let from = after.map_or(0, |a| a.saturating_add(1));
            let mut more = false;
            if first.is_some() && after != Some(u64::MAX) {
                for entry in conflicts.range((c, height, from)..=(c, height, u64::MAX))? {
                    if seqs.len() == limit {
                        more = true;
                        break;
                    }
                    seqs.push(entry?.0.value().2);
                }
            }
            let next = if more { seqs.last().copied() } else { None };
            let items = seqs
                .into_iter()
                .map(|s| self.record_by_seq(&txn, s))
                .collect::<Result<_, _>>()?;
            Ok(RecordsAt {
                fork,
                page: Page { items, next },
            })
        })
    }
}
