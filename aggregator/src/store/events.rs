//! The event log ([`EVENTS`]): appended in the transaction of the
//! transition it reports, read back as [`Event`]s by streams and webhooks.
//!
//! An entry about a batch takes one event id per record of the batch
//! (`first id + index in the batch`); ids of records that belong to no
//! chain (calendar digests) are never delivered. Reading a chain's events
//! in a batch is a range over [`CHAIN_RECORDS`].

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::codec::{decode_batch, decode_record, meta_get};
use super::timing::Op;
use super::{BatchInfo, Store, StoreError};
use crate::anchor::{AnchorRecord, AnchorStatus, MinedIn};
use crate::events::{AnchorRef, Event, EventType, ForkRef, RecordRef, EVENT_VERSION};
use crate::schema::*;
use crate::types::{BatchSeq, ChainId, LeafHash, Record};

/// Records read per call when no chain is named (digests are skipped, and
/// a batch may be all digests): bounds one call's work.
const SCAN_BUDGET: u64 = 20_000;
/// Log entries read per call: a chain far behind on a busy store skips
/// other chains' entries this many at a time.
pub(super) const ENTRY_BUDGET: usize = 4_096;

/// One row of [`EVENTS`].
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct LogEntry {
    pub kind: EventType,
    pub time_unix_ms: u64,
    /// Event ids the entry takes: the batch size, or 1.
    pub span: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSeq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<AnchorRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<(ChainId, ForkRef)>,
}

/// A page of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventPage {
    /// The events, ids increasing.
    pub events: Vec<Event>,
    /// Every id up to this one has been looked at: ask again after it.
    /// At least the `after` asked with.
    pub next: u64,
}

/// The ids the log holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventBounds {
    /// Events below this id were pruned (1 if none were).
    pub oldest: u64,
    /// The last id written (0 before the first event).
    pub last: u64,
}

/// Appends `entry` in `txn`; returns the last id it takes.
pub(super) fn append(txn: &WriteTransaction, entry: &LogEntry) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let base = meta_get(&meta, META_NEXT_EVENT)?.max(1);
    let value = serde_json::to_vec(entry)
        .map_err(|e| StoreError::Corrupt(format!("event entry does not serialize: {e}")))?;
    txn.open_table(EVENTS)?.insert(base, value.as_slice())?;
    let next = base + entry.span.max(1);
    meta.insert(META_NEXT_EVENT, next)?;
    Ok(next - 1)
}

fn anchor_ref(m: &MinedIn) -> AnchorRef {
    AnchorRef {
        txid: m.txid,
        block_hash: m.block_hash,
        block_height: m.height,
        depth: m.confirmations,
    }
}

/// The entries an anchor update from `prev` to `new` writes: `reorged`
/// when its block left, `anchored` when it is in a (new) block,
/// `confirmed` when it became confirmed (or confirmed in a new block).
pub(super) fn anchor_transitions(
    prev: Option<&AnchorRecord>,
    new: &AnchorRecord,
) -> Vec<(EventType, AnchorRef)> {
    let old = prev.and_then(|p| p.mined.as_ref());
    let now = new.mined.as_ref();
    let same_block = matches!((old, now), (Some(a), Some(b)) if a.block_hash == b.block_hash);
    let mut out = Vec::new();
    if let (Some(old), false) = (old, same_block) {
        out.push((EventType::RecordReorged, anchor_ref(old)));
    }
    if let (Some(now), false) = (now, same_block) {
        out.push((EventType::RecordAnchored, anchor_ref(now)));
    }
    let was_confirmed = prev.is_some_and(|p| p.status == AnchorStatus::Confirmed) && same_block;
    if let (Some(now), AnchorStatus::Confirmed, false) = (now, new.status, was_confirmed) {
        out.push((EventType::RecordConfirmed, anchor_ref(now)));
    }
    out
}

/// Writes the entries for `anchor`'s update in `txn` (its previous state is
/// read there); returns the last event id written, if any.
pub(super) fn log_anchor(
    txn: &WriteTransaction,
    anchor: &AnchorRecord,
    now_ms: u64,
) -> Result<Option<u64>, StoreError> {
    let prev = {
        let table = txn.open_table(ANCHORS)?;
        let v = table.get(anchor.batch.0)?;
        v.map(|v| super::anchors::decode_anchor(anchor.batch, v.value()))
            .transpose()?
    };
    let transitions = anchor_transitions(prev.as_ref(), anchor);
    if transitions.is_empty() {
        return Ok(None);
    }
    let size = {
        let batches = txn.open_table(BATCHES)?;
        let v = batches.get(anchor.batch.0)?.ok_or_else(|| {
            StoreError::Corrupt(format!("anchor of batch {} with no batch", anchor.batch))
        })?;
        decode_batch(anchor.batch, v.value())?.size
    };
    let mut last = None;
    for (kind, a) in transitions {
        last = Some(append(
            txn,
            &LogEntry {
                kind,
                time_unix_ms: now_ms,
                span: size,
                batch: Some(anchor.batch),
                anchor: Some(a),
                fork: None,
            },
        )?);
    }
    Ok(last)
}

impl Store {
    /// Up to `limit` events with ids above `after`, of `chain` or of every
    /// chain, oldest first. Read `next` of the answer to go on.
    pub fn events_after(
        &self,
        after: u64,
        chain: Option<&ChainId>,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            read_events(&txn, after, chain, limit.max(1))
        })
    }

    /// The oldest id still held and the last id written.
    pub fn event_bounds(&self) -> Result<EventBounds, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(EventBounds {
                oldest: meta_get(&meta, META_EVENTS_PRUNED_BELOW)?.max(1),
                last: meta_get(&meta, META_NEXT_EVENT)?.max(1) - 1,
            })
        })
    }

    /// The last event id written, updated after every commit that writes
    /// events: streams wait on it.
    pub fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Tells subscribers that events up to `last` are committed.
    pub(super) fn published(&self, last: Option<u64>) {
        if let Some(last) = last {
            self.events.send_if_modified(|v| {
                let newer = last > *v;
                if newer {
                    *v = last;
                }
                newer
            });
        }
    }

    /// Removes the log entries written before `before_unix_ms`; returns how
    /// many. Ids below the first entry left are then reported pruned.
    pub fn prune_events(&self, before_unix_ms: u64) -> Result<u64, StoreError> {
        self.with(|db| {
            let (txn, timed) = self.db.writers.begin(db, Op::Prune)?;
            let mut removed = 0;
            {
                let mut log = txn.open_table(EVENTS)?;
                let mut meta = txn.open_table(META)?;
                let mut pruned_below = meta_get(&meta, META_EVENTS_PRUNED_BELOW)?.max(1);
                loop {
                    let Some((base, entry)) = log
                        .first()?
                        .map(|(k, v)| (k.value(), decode_entry(k.value(), v.value())))
                    else {
                        break;
                    };
                    let entry = entry?;
                    if entry.time_unix_ms >= before_unix_ms {
                        break;
                    }
                    log.remove(base)?;
                    pruned_below = pruned_below.max(base + entry.span.max(1));
                    removed += 1;
                }
                meta.insert(META_EVENTS_PRUNED_BELOW, pruned_below)?;
            }
            timed.commit(txn)?;
            Ok(removed)
        })
    }

    /// The last event id `chain`'s webhook receiver acknowledged, if any.
    pub fn webhook_cursor(&self, chain: &ChainId) -> Result<Option<u64>, StoreError> {
        self.with(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(WEBHOOK_CURSORS)?;
            let v = table.get(chain.as_str())?;
            Ok(v.map(|v| v.value()))
        })
    }

    /// Records that `chain`'s webhook receiver has every event up to `id`.
    pub fn set_webhook_cursor(&self, chain: &ChainId, id: u64) -> Result<(), StoreError> {
        self.with(|db| {
            let (txn, timed) = self.db.writers.begin(db, Op::Webhook)?;
            txn.open_table(WEBHOOK_CURSORS)?
                .insert(chain.as_str(), id)?;
            timed.commit(txn)?;
            Ok(())
        })
    }
}

fn decode_entry(base: u64, v: &[u8]) -> Result<LogEntry, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(format!("event entry {base}: {e}")))
}

fn read_events(
    txn: &ReadTransaction,
    after: u64,
    chain: Option<&ChainId>,
    limit: usize,
) -> Result<EventPage, StoreError> {
    let log = txn.open_table(EVENTS)?;
    let batches = txn.open_table(BATCHES)?;
    let records = txn.open_table(RECORDS)?;
    let chain_records = txn.open_table(CHAIN_RECORDS)?;
    let want = after.saturating_add(1);
    // The entry holding `want` may start before it.
    let start = match log.range(..=want)?.next_back().transpose()? {
        Some((k, v)) if k.value() + decode_entry(k.value(), v.value())?.span.max(1) > want => {
            k.value()
        }
        _ => want,
    };
    let mut page = EventPage {
        events: Vec::new(),
        next: after,
    };
    let mut scanned = 0u64;
    for row in log.range(start..)?.take(ENTRY_BUDGET) {
        let (k, v) = row?;
        let base = k.value();
        let entry = decode_entry(base, v.value())?;
        let end = base + entry.span.max(1);
        if let Some((fork_chain, fork)) = &entry.fork {
            if base >= want && chain.is_none_or(|c| c == fork_chain) {
                page.events.push(Event {
                    v: EVENT_VERSION,
                    id: base,
                    kind: entry.kind,
                    chain_id: fork_chain.clone(),
                    time_unix_ms: entry.time_unix_ms,
                    record: None,
                    batch: None,
                    anchor: None,
                    fork: Some(fork.clone()),
                });
            }
            page.next = page.next.max(end - 1);
        } else if let Some(batch) = entry.batch {
            let info = {
                let v = batches.get(batch.0)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("event {base} names missing batch {batch}"))
                })?;
                decode_batch(batch, v.value())?
            };
            let first_seq = info.first_record + want.max(base) - base;
            let end_seq = info.first_record + info.size;
            let mut stopped_at = None;
            match chain {
                Some(c) => {
                    for row in
                        chain_records.range((c.as_str(), first_seq)..(c.as_str(), end_seq))?
                    {
                        let seq = row?.0.value().1;
                        let v = records.get(seq)?.ok_or_else(|| {
                            StoreError::Corrupt(format!("record {seq} indexed but missing"))
                        })?;
                        let (id, _, record) = decode_record(v.value())?;
                        page.events
                            .extend(record_event(&entry, base, &info, seq, id, record));
                        if page.events.len() >= limit {
                            stopped_at = Some(seq);
                            break;
                        }
                    }
                }
                None => {
                    for row in records.range(first_seq..end_seq)? {
                        let (k, v) = row?;
                        let seq = k.value();
                        let (id, _, record) = decode_record(v.value())?;
                        page.events
                            .extend(record_event(&entry, base, &info, seq, id, record));
                        scanned += 1;
                        if page.events.len() >= limit || scanned >= SCAN_BUDGET {
                            stopped_at = Some(seq);
                            break;
                        }
                    }
                }
            }
            if let Some(seq) = stopped_at {
                page.next = page.next.max(base + seq - info.first_record);
                return Ok(page);
            }
            page.next = page.next.max(end - 1);
        }
        if page.events.len() >= limit || scanned >= SCAN_BUDGET {
            break;
        }
    }
    Ok(page)
}

/// The event of batch entry `entry` (first id `base`) for record `seq`, if
/// the record belongs to a chain.
fn record_event(
    entry: &LogEntry,
    base: u64,
    batch: &BatchInfo,
    seq: u64,
    id: LeafHash,
    record: Record,
) -> Option<Event> {
    let Record::PosBlock(b) = record else {
        return None;
    };
    Some(Event {
        v: EVENT_VERSION,
        id: base + seq - batch.first_record,
        kind: entry.kind,
        chain_id: b.chain_id,
        time_unix_ms: entry.time_unix_ms,
        record: Some(RecordRef {
            id,
            height: b.height,
            block_hash: b.block_hash,
        }),
        batch: Some(batch.seq),
        anchor: entry.anchor.clone(),
        fork: None,
    })
}
