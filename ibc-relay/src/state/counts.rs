//! Packets per state, kept beside the packets in the same transactions,
//! so that the API's counts cost one small table read, not a decode of
//! every packet ever stored.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};

use super::{err, PacketRecord, StateError, PACKETS};

/// State name → packets in it.
pub(super) const COUNTS: TableDefinition<&str, u64> = TableDefinition::new("relay_packet_counts");
/// Set once the counts cover every packet (stores from before the table
/// are counted once, on open).
const COUNTED: TableDefinition<&str, u64> = TableDefinition::new("relay_packet_counts_meta");

/// Every state name, in the order the API lists them.
pub(super) const STATES: [&str; 7] = [
    "created",
    "sent",
    "received",
    "acknowledged",
    "error_acknowledged",
    "timed_out",
    "stalled",
];

/// Writes `packet` into `packets` and moves its count from its previous
/// state (if it existed) to its new one.
pub(super) fn insert(
    packets: &mut Table<u64, &[u8]>,
    counts: &mut Table<&str, u64>,
    packet: &PacketRecord,
) -> Result<(), StateError> {
    let json = serde_json::to_vec(packet).map_err(err)?;
    let old = packets
        .insert(packet.sequence, json.as_slice())
        .map_err(err)?
        .map(|v| serde_json::from_slice::<PacketRecord>(v.value()))
        .transpose()
        .map_err(err)?;
    if let Some(old) = old {
        add(counts, old.state.name(), -1)?;
    }
    add(counts, packet.state.name(), 1)
}

fn add(counts: &mut Table<&str, u64>, state: &str, delta: i64) -> Result<(), StateError> {
    let now = counts.get(state).map_err(err)?.map_or(0, |v| v.value());
    let next = now.saturating_add_signed(delta);
    counts.insert(state, next).map_err(err)?;
    Ok(())
}

/// Counts every packet once if this store's counts do not cover them yet.
pub(super) fn backfill(txn: &WriteTransaction) -> Result<(), StateError> {
    let mut done = txn.open_table(COUNTED).map_err(err)?;
    if done.get("complete").map_err(err)?.is_some() {
        return Ok(());
    }
    let packets = txn.open_table(PACKETS).map_err(err)?;
    let mut counts = txn.open_table(COUNTS).map_err(err)?;
    for state in STATES {
        counts.insert(state, 0).map_err(err)?;
    }
    for entry in packets.iter().map_err(err)? {
        let (_, v) = entry.map_err(err)?;
        let p: PacketRecord = serde_json::from_slice(v.value()).map_err(err)?;
        add(&mut counts, p.state.name(), 1)?;
    }
    done.insert("complete", 1).map_err(err)?;
    Ok(())
}
