//! Confirmation events: what `GET /v1/chains/{id}/events` streams and a
//! chain's webhook receives (`docs/events.md`, format version
//! [`EVENT_VERSION`]).
//!
//! Events are derived from durable state: the store appends them in the
//! same transaction as the transition they report (a batch sealed, an
//! anchor mined, confirmed or reorged out, a conflicting hash stored), so a
//! client resuming from an event id misses nothing that was acknowledged.
//! Every event id is unique and ids only grow; a chain's stream sees a
//! subsequence of them (ids of other chains' records are skipped).

use bitcoin::{BlockHash, Txid};
use serde::{Deserialize, Serialize};

use crate::types::{BatchSeq, ChainId, Height, LeafHash, PosBlockHash};

/// The event format version, `v` in every event.
pub const EVENT_VERSION: u32 = 1;

/// What happened.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum EventType {
    /// The record was sealed into a batch (its proof path exists).
    #[serde(rename = "record.batched")]
    RecordBatched,
    /// The batch's anchor transaction is in a block of the best chain.
    #[serde(rename = "record.anchored")]
    RecordAnchored,
    /// The anchor block is `confirmations` (k) deep: the record is confirmed.
    #[serde(rename = "record.confirmed")]
    RecordConfirmed,
    /// The anchor block left the best chain (a Bitcoin reorg); `anchored`
    /// and `confirmed` follow again for the block that holds it next.
    #[serde(rename = "record.reorged")]
    RecordReorged,
    /// A second, different block hash was stored at a height of the chain.
    #[serde(rename = "chain.fork")]
    ChainFork,
}

impl EventType {
    /// The name on the wire (`record.confirmed`, …), also the SSE `event:`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RecordBatched => "record.batched",
            EventType::RecordAnchored => "record.anchored",
            EventType::RecordConfirmed => "record.confirmed",
            EventType::RecordReorged => "record.reorged",
            EventType::ChainFork => "chain.fork",
        }
    }
}

/// The record an event is about.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    /// The record id (`GET /v1/records/{id}`).
    pub id: LeafHash,
    /// The PoS block height.
    pub height: Height,
    /// The PoS block hash.
    pub block_hash: PosBlockHash,
}

/// The Bitcoin side of an `anchored`, `confirmed` or `reorged` event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorRef {
    /// The anchor transaction.
    pub txid: Txid,
    /// The block holding it (for `reorged`: the block that left the best chain).
    pub block_hash: BlockHash,
    /// That block's height.
    pub block_height: u32,
    /// Its depth when the event was written (1 = the tip).
    pub depth: u32,
}

/// The two records of a `chain.fork`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkRef {
    /// The height with two hashes.
    pub height: Height,
    /// The record stored first there.
    pub first: LeafHash,
    /// Its block hash.
    pub first_block_hash: PosBlockHash,
    /// The later record with a different hash.
    pub other: LeafHash,
    /// Its block hash.
    pub other_block_hash: PosBlockHash,
}

/// One event, exactly as streamed (SSE `data:`) and posted to webhooks.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Format version ([`EVENT_VERSION`]).
    pub v: u32,
    /// The event id: unique, increasing; resume after it with `Last-Event-ID`.
    pub id: u64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The consumer chain.
    pub chain_id: ChainId,
    /// When btcts stored the transition (Unix ms).
    pub time_unix_ms: u64,
    /// The record (`record.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
    /// Its batch (`record.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSeq>,
    /// The anchor (`record.anchored`, `record.confirmed`, `record.reorged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<AnchorRef>,
    /// The fork (`chain.fork`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkRef>,
}
