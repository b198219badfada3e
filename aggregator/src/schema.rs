//! Every redb table of the store, and the schema version checked on open.
//!
//! Records get a dense sequence number on arrival; batches cover contiguous
//! ranges of them, so "pending" is simply every record at or after the
//! `sealed_upto` watermark and batch membership is a range lookup.

use redb::TableDefinition;

/// The layout version written on create and required on open. Version 1
/// stores (before [`CHAIN_BATCHES`]), version 2 stores (before [`EVENTS`]
/// and [`CHAIN_RECORDS`]) and version 3 stores (one id table,
/// [`RECORD_IDS_V3`], before [`RECORD_ID_GENERATIONS`]) are upgraded on open.
pub const SCHEMA_VERSION: u64 = 4;

/// Counters and the schema version (`META_*` keys).
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key in [`META`]: the schema version.
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// Key in [`META`]: the sequence number the next new record gets.
pub const META_NEXT_RECORD: &str = "next_record";
/// Key in [`META`]: every record below this sequence number is in a batch.
pub const META_SEALED_UPTO: &str = "sealed_upto";
/// Key in [`META`]: the sequence number the next batch gets.
pub const META_NEXT_BATCH: &str = "next_batch";
/// Key in [`META`]: the id the next event gets (events start at 1).
pub const META_NEXT_EVENT: &str = "next_event";
/// Key in [`META`]: log2 of the records per id generation
/// ([`RECORD_ID_GENERATIONS`]), fixed when the store is created.
pub const META_ID_GENERATION_BITS: &str = "id_generation_bits";
/// Key in [`META`]: every event below this id was pruned.
pub const META_EVENTS_PRUNED_BELOW: &str = "events_pruned_below";

/// Record sequence → `leaf hash (32) ‖ received unix ms (u64 BE) ‖ leaf preimage`.
pub const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// `generation (u64) ‖ first 8 bytes of a record id (big-endian)` as one
/// integer → the record of that generation that first had that prefix. A
/// record's generation is its sequence number >> [`META_ID_GENERATION_BITS`] (20), so new records only
/// ever go into the newest generation's key range; a record whose prefix is
/// taken within its generation goes to [`RECORD_IDS_OVERFLOW`]. Lookups ask
/// each generation whose in-memory Bloom filter may hold the prefix
/// (`store::id_index`).
pub const RECORD_ID_GENERATIONS: TableDefinition<u128, u64> =
    TableDefinition::new("record_id_generations");
/// Schema 3's id index (first 8 id bytes → record), moved into
/// [`RECORD_ID_GENERATIONS`] and deleted by the upgrade to schema 4.
pub const RECORD_IDS_V3: TableDefinition<u64, u64> = TableDefinition::new("record_ids");
/// Full record id → record sequence, for ids whose prefix was already taken
/// (in schema 3: anywhere; from schema 4: within the id's generation).
pub const RECORD_IDS_OVERFLOW: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("record_ids_overflow");
/// `(chain id, height)` → the first PoS block record stored at that height.
pub const CHAIN_HEIGHTS: TableDefinition<(&str, u64), u64> = TableDefinition::new("chain_heights");
/// `(chain id, height, later record sequence)` → the first record at that height,
/// for every record whose block hash differs from one already stored there.
pub const CONFLICTS: TableDefinition<(&str, u64, u64), u64> = TableDefinition::new("conflicts");
/// `(chain id, batch sequence)` → `(height, record sequence, running max)`:
/// the highest height of that chain whose first record (the one in
/// [`CHAIN_HEIGHTS`]) is in the batch, that record, and the highest such
/// height over this and every earlier batch of the chain. Written with the
/// batch; the fast-unbonding status reads it instead of the chain's heights.
pub const CHAIN_BATCHES: TableDefinition<(&str, u64), (u64, u64, u64)> =
    TableDefinition::new("chain_batches");
/// Batch sequence → `first record (u64 BE) ‖ size (u64 BE) ‖ root (32) ‖ sealed unix ms (u64 BE)`.
pub const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
/// First record sequence of a batch → batch sequence.
pub const BATCH_STARTS: TableDefinition<u64, u64> = TableDefinition::new("batch_starts");
/// Batch sequence → its [`crate::anchor::AnchorRecord`] as JSON. Batches are
/// anchored in order, so every batch above the last key is not anchored yet.
pub const ANCHORS: TableDefinition<u64, &[u8]> = TableDefinition::new("anchors");

/// First event id of a log entry → the entry (JSON). An entry about a
/// batch covers one id per record of the batch (`first id + index`), so a
/// batch sealed, mined or confirmed is one row however large it is; a fork
/// entry covers one id ([`crate::events`]).
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// `(chain id, record sequence)` for every sealed record of a chain: a
/// chain's events in a batch are a range read, not a scan of the batch.
pub const CHAIN_RECORDS: TableDefinition<(&str, u64), ()> = TableDefinition::new("chain_records");
/// Chain id → the last event id its webhook receiver acknowledged.
pub const WEBHOOK_CURSORS: TableDefinition<&str, u64> = TableDefinition::new("webhook_cursors");

/// [`tree_page_key`]`(batch, group, page)` → the node hashes of one tree page
/// ([`crate::pages`]).
pub const TREE_PAGES: TableDefinition<u128, &[u8]> = TableDefinition::new("tree_pages");

/// `batch (64 bits) ‖ group (8 bits) ‖ page (56 bits)` as one integer: a
/// fixed-width key compares much faster than a tuple. A batch has at most 8
/// groups (64 levels) and far fewer than 2^56 pages per group.
pub fn tree_page_key(batch: u64, group: u32, page: u64) -> u128 {
    (u128::from(batch) << 64)
        | (u128::from(group & 0xff) << 56)
        | u128::from(page & ((1 << 56) - 1))
}
