//! What the relay remembers about one consumer chain, in its own redb file:
//! how far the setup got, the transaction in flight (written before it is
//! broadcast), and every packet with its state.
//!
//! Each change is one durable transaction, so after a crash the relay
//! resumes from exactly what it had done: it looks the in-flight
//! transaction up before sending anything new.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// name → JSON: `setup`, `pending`, `cursor`, `next_packet`.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("relay_meta");
/// packet sequence → JSON [`PacketRecord`].
const PACKETS: TableDefinition<u64, &[u8]> = TableDefinition::new("relay_packets");
/// packet sequence → packet data (format v1).
const DATA: TableDefinition<u64, &[u8]> = TableDefinition::new("relay_packet_data");
/// record id → the latest packet sequence carrying it.
const BY_RECORD: TableDefinition<&[u8; 32], u64> = TableDefinition::new("relay_by_record");

/// The store failed.
#[derive(Debug, thiserror::Error)]
#[error("relay store: {0}")]
pub struct StateError(pub String);

fn err(e: impl std::fmt::Display) -> StateError {
    StateError(e.to_string())
}

/// The consumer-side identifiers learnt during setup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupState {
    /// `06-solomachine-N`, once the client exists.
    pub client_id: Option<String>,
    /// `connection-N`, once ConnOpenInit landed.
    pub connection_id: Option<String>,
    /// Whether ConnOpenAck landed.
    pub connection_open: bool,
    /// `channel-N`, once ChanOpenInit landed.
    pub channel_id: Option<String>,
    /// Whether ChanOpenAck landed: packets may flow.
    pub channel_open: bool,
    /// Proof inputs fixed before a handshake proof is signed, so a restart
    /// signs (gets back) exactly the same proof.
    pub intent: Option<ProofIntent>,
    /// A key rotation under way.
    #[serde(default)]
    pub rotation: Option<RotationIntent>,
}

/// A key rotation, fixed before its header is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationIntent {
    /// The solo-machine sequence the header uses.
    pub sequence: u64,
    /// Its timestamp (ns).
    pub timestamp: u64,
    /// The new public key, compressed, hex.
    pub new_public_key: String,
}

impl SetupState {
    /// Whether packets can be sent.
    pub fn complete(&self) -> bool {
        self.channel_open
    }
}

/// The inputs of a solo-machine proof, persisted before signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofIntent {
    /// The first solo-machine sequence it uses.
    pub sequence: u64,
    /// The proof timestamp (ns).
    pub timestamp: u64,
    /// For ConnOpenAck: the consumer block whose consensus state is proven.
    pub consumer_height: u64,
    /// Its consensus state, encoded as an `Any`.
    #[serde(with = "hex_bytes")]
    pub consumer_consensus: Vec<u8>,
    /// The consumer's client state as the service holds it, as an `Any`.
    #[serde(with = "hex_bytes")]
    pub consumer_client: Vec<u8>,
}

/// A transaction written down before it is broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTx {
    /// What it does (`create_client`, `packet 7`, …).
    pub purpose: String,
    /// The message (an encoded `Any`).
    #[serde(with = "hex_bytes")]
    pub message: Vec<u8>,
    /// Its hash.
    pub hash: String,
    /// The signed `TxRaw`.
    #[serde(with = "hex_bytes")]
    pub tx_raw: Vec<u8>,
    /// The account sequence it was signed at.
    pub account_sequence: u64,
}

/// Where a packet is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum PacketState {
    /// Built, not yet proven to the consumer.
    Created,
    /// Its proof's inputs are fixed; its transaction is being sent.
    Sent,
    /// Received, acknowledged with success.
    Acknowledged {
        /// The consumer block of the receipt.
        consumer_height: u64,
        /// The anchor's depth the consumer computed from the packet's headers.
        depth: u32,
    },
    /// Received, acknowledged with an error.
    ErrorAcknowledged {
        /// The consumer block of the receipt.
        consumer_height: u64,
        /// The consumer's reason.
        reason: String,
    },
    /// Received (the transaction carried no acknowledgement of it).
    Received {
        /// The consumer block.
        consumer_height: u64,
    },
    /// Past its timeout with no receipt; `resent_as` carries the record now.
    TimedOut {
        /// The packet that replaced it.
        resent_as: u64,
    },
    /// Needs the operator: delivering it could require signing other data
    /// at a solo-machine sequence already used.
    Stalled {
        /// Why.
        reason: String,
    },
}

impl PacketState {
    /// The state's name, as metrics and the API show it.
    pub fn name(&self) -> &'static str {
        match self {
            PacketState::Created => "created",
            PacketState::Sent => "sent",
            PacketState::Acknowledged { .. } => "acknowledged",
            PacketState::ErrorAcknowledged { .. } => "error_acknowledged",
            PacketState::Received { .. } => "received",
            PacketState::TimedOut { .. } => "timed_out",
            PacketState::Stalled { .. } => "stalled",
        }
    }

    /// Whether the relay still has work to do on it.
    pub fn open(&self) -> bool {
        matches!(self, PacketState::Created | PacketState::Sent)
    }
}

/// One packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketRecord {
    /// The packet sequence.
    pub sequence: u64,
    /// The record it carries.
    pub record_id: aggregator::LeafHash,
    /// The record's height on its chain.
    pub height: u64,
    /// The anchor block's height.
    pub bitcoin_height: u32,
    /// Timeout, consumer time in ns.
    pub timeout_ns: u64,
    /// The solo-machine proof's inputs, fixed before it is signed.
    pub proof: Option<(u64, u64)>,
    /// Failed deliveries so far.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// The transaction that delivered it.
    pub tx_hash: Option<String>,
    /// State.
    #[serde(flatten)]
    pub state: PacketState,
}

impl PacketRecord {
    /// A new packet carrying `record_id` (its sequence is given when stored).
    pub fn new(
        record_id: aggregator::LeafHash,
        height: u64,
        bitcoin_height: u32,
        timeout_ns: u64,
    ) -> PacketRecord {
        PacketRecord {
            sequence: 0,
            record_id,
            height,
            bitcoin_height,
            timeout_ns,
            proof: None,
            attempts: 0,
            last_error: None,
            tx_hash: None,
            state: PacketState::Created,
        }
    }
}

/// The next packet sequence to give out.
fn next_packet(meta: &redb::Table<&str, &[u8]>) -> Result<u64, StateError> {
    match meta.get("next_packet").map_err(err)? {
        Some(v) => serde_json::from_slice(v.value()).map_err(err),
        None => Ok(1),
    }
}

/// The relay's store for one consumer chain. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayStore {
    db: Arc<Database>,
}

impl RelayStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<RelayStore, StateError> {
        let db = Database::create(path).map_err(|e| {
            StateError(format!(
                "{}: {e} (is another btcts process using it?)",
                path.display()
            ))
        })?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(META).map_err(err)?;
        txn.open_table(PACKETS).map_err(err)?;
        txn.open_table(DATA).map_err(err)?;
        txn.open_table(BY_RECORD).map_err(err)?;
        counts::backfill(&txn)?;
        txn.commit().map_err(err)?;
        Ok(RelayStore { db: Arc::new(db) })
    }

    fn meta<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, StateError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(META).map_err(err)?;
        let Some(v) = table.get(key).map_err(err)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| StateError(format!("{key}: {e}")))
    }

    fn set_meta<T: Serialize>(&self, key: &str, value: Option<&T>) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(META).map_err(err)?;
            match value {
                Some(v) => {
                    let bytes = serde_json::to_vec(v).map_err(err)?;
                    table.insert(key, bytes.as_slice()).map_err(err)?;
                }
                None => {
                    table.remove(key).map_err(err)?;
                }
            }
        }
        txn.commit().map_err(err)
    }

    /// The setup's progress.
    pub fn setup(&self) -> Result<SetupState, StateError> {
        Ok(self.meta("setup")?.unwrap_or_default())
    }

    /// Records the setup's progress.
    pub fn set_setup(&self, setup: &SetupState) -> Result<(), StateError> {
        self.set_meta("setup", Some(setup))
    }

    /// The transaction in flight.
    pub fn pending(&self) -> Result<Option<PendingTx>, StateError> {
        self.meta("pending")
    }

    /// Writes (or clears) the transaction in flight.
    pub fn set_pending(&self, pending: Option<&PendingTx>) -> Result<(), StateError> {
        self.set_meta("pending", pending)
    }

    /// The next batch to look at for deliverable records.
    pub fn cursor(&self) -> Result<u64, StateError> {
        Ok(self.meta("cursor")?.unwrap_or(0))
    }

    /// Creates `packets` (skipping records already carried by one; their
    /// data is built when they are sent) and moves the cursor to `cursor`,
    /// in one transaction.
    pub fn add_packets(
        &self,
        packets: Vec<PacketRecord>,
        cursor: u64,
    ) -> Result<Vec<u64>, StateError> {
        let txn = self.db.begin_write().map_err(err)?;
        let mut created = Vec::new();
        {
            let mut meta = txn.open_table(META).map_err(err)?;
            let mut table = txn.open_table(PACKETS).map_err(err)?;
            let mut data = txn.open_table(DATA).map_err(err)?;
            let mut by_record = txn.open_table(BY_RECORD).map_err(err)?;
            let mut counts = txn.open_table(counts::COUNTS).map_err(err)?;
            let mut next = next_packet(&meta)?;
            for mut packet in packets {
                let id = packet.record_id.0;
                if by_record.get(&id).map_err(err)?.is_some() {
                    continue;
                }
                packet.sequence = next;
                counts::insert(&mut table, &mut counts, &packet)?;
                data.insert(next, [].as_slice()).map_err(err)?;
                by_record.insert(&id, next).map_err(err)?;
                created.push(next);
                next += 1;
            }
            let next = serde_json::to_vec(&next).map_err(err)?;
            meta.insert("next_packet", next.as_slice()).map_err(err)?;
            let cursor = serde_json::to_vec(&cursor).map_err(err)?;
            meta.insert("cursor", cursor.as_slice()).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(created)
    }

    /// Replaces timed-out packet `old` by a new one carrying the same record
    /// (its data is built again when it is sent).
    pub fn resend(&self, old: &PacketRecord, timeout_ns: u64) -> Result<u64, StateError> {
        let txn = self.db.begin_write().map_err(err)?;
        let seq;
        {
            let mut meta = txn.open_table(META).map_err(err)?;
            let mut table = txn.open_table(PACKETS).map_err(err)?;
            let mut data_table = txn.open_table(DATA).map_err(err)?;
            let mut by_record = txn.open_table(BY_RECORD).map_err(err)?;
            let mut counts = txn.open_table(counts::COUNTS).map_err(err)?;
            seq = next_packet(&meta)?;
            let fresh = PacketRecord {
                sequence: seq,
                ..PacketRecord::new(old.record_id, old.height, old.bitcoin_height, timeout_ns)
            };
            let retired = PacketRecord {
                state: PacketState::TimedOut { resent_as: seq },
                ..old.clone()
            };
            for p in [&fresh, &retired] {
                counts::insert(&mut table, &mut counts, p)?;
            }
            data_table.insert(seq, [].as_slice()).map_err(err)?;
            by_record.insert(&old.record_id.0, seq).map_err(err)?;
            let next = serde_json::to_vec(&(seq + 1)).map_err(err)?;
            meta.insert("next_packet", next.as_slice()).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(seq)
    }

    /// Why delivery is halted, if it is.
    pub fn halted(&self) -> Result<Option<String>, StateError> {
        self.meta("halted")
    }

    /// Halts delivery until the operator sets up a new client.
    pub fn halt(&self, reason: &str) -> Result<(), StateError> {
        self.set_meta("halted", Some(&reason))
    }

    /// Before a new client: every packet not delivered (open or stalled) is
    /// re-created unsigned, and the halt is lifted.
    pub fn reopen_for_new_client(&self) -> Result<(), StateError> {
        let mut stuck = Vec::new();
        let mut from = 0;
        loop {
            let page = self.packets(from, 1000)?;
            let Some(last) = page.last() else { break };
            from = last.sequence + 1;
            stuck.extend(
                page.into_iter()
                    .filter(|p| p.state.open() || matches!(p.state, PacketState::Stalled { .. })),
            );
        }
        for p in stuck {
            self.resend(&p, p.timeout_ns)?;
        }
        self.set_meta::<String>("halted", None)
    }

    /// Writes `packet`'s new state and the data it is sent with, in one
    /// transaction (before its proof is signed).
    pub fn put_sent_packet(&self, packet: &PacketRecord, data: &[u8]) -> Result<(), StateError> {
        self.write_packet(packet, Some(data))
    }

    /// Writes `packet`'s new state.
    pub fn put_packet(&self, packet: &PacketRecord) -> Result<(), StateError> {
        self.write_packet(packet, None)
    }

    fn write_packet(&self, packet: &PacketRecord, data: Option<&[u8]>) -> Result<(), StateError> {
        let txn = self.db.begin_write().map_err(err)?;
        counts::insert(
            &mut txn.open_table(PACKETS).map_err(err)?,
            &mut txn.open_table(counts::COUNTS).map_err(err)?,
            packet,
        )?;
        if let Some(data) = data {
            txn.open_table(DATA)
                .map_err(err)?
                .insert(packet.sequence, data)
                .map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    /// Packet `sequence` and its data.
    pub fn packet(&self, sequence: u64) -> Result<Option<(PacketRecord, Vec<u8>)>, StateError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(PACKETS).map_err(err)?;
        let Some(v) = table.get(sequence).map_err(err)? else {
            return Ok(None);
        };
        let packet: PacketRecord = serde_json::from_slice(v.value()).map_err(err)?;
        Ok(Some((packet, self.data(sequence)?)))
    }

    /// The data of packet `sequence`.
    pub fn data(&self, sequence: u64) -> Result<Vec<u8>, StateError> {
        let txn = self.db.begin_read().map_err(err)?;
        txn.open_table(DATA)
            .map_err(err)?
            .get(sequence)
            .map_err(err)?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| StateError(format!("packet {sequence} has no data")))
    }

    /// Up to `limit` packets with sequence ≥ `from`, in order.
    pub fn packets(&self, from: u64, limit: usize) -> Result<Vec<PacketRecord>, StateError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(PACKETS).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.range(from..).map_err(err)?.take(limit) {
            let (_, v) = entry.map_err(err)?;
            out.push(serde_json::from_slice(v.value()).map_err(err)?);
        }
        Ok(out)
    }

    /// The oldest packet the relay still has to deliver. Scans from a
    /// low-water mark, so finished packets are not read again.
    pub fn next_open(&self) -> Result<Option<PacketRecord>, StateError> {
        let from: u64 = self.meta("first_open")?.unwrap_or(0);
        let found = {
            let txn = self.db.begin_read().map_err(err)?;
            let table = txn.open_table(PACKETS).map_err(err)?;
            let mut found = None;
            for entry in table.range(from..).map_err(err)? {
                let (_, v) = entry.map_err(err)?;
                let p: PacketRecord = serde_json::from_slice(v.value()).map_err(err)?;
                if p.state.open() {
                    found = Some(p);
                    break;
                }
            }
            found
        };
        if let Some(p) = &found {
            if p.sequence > from {
                self.set_meta("first_open", Some(&p.sequence))?;
            }
        }
        Ok(found)
    }

    /// How many packets are in each state (kept as packets are written).
    pub fn counts(&self) -> Result<std::collections::BTreeMap<&'static str, u64>, StateError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(counts::COUNTS).map_err(err)?;
        counts::STATES
            .into_iter()
            .map(|state| {
                let n = table.get(state).map_err(err)?.map_or(0, |v| v.value());
                Ok((state, n))
            })
            .collect()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not hex"))
            })
            .collect()
    }
}

mod counts;
#[cfg(test)]
mod tests;
