//! Building packet format v1 from a proof, and the IBC commitments the
//! solo machine signs over packets and acknowledgements.

use aggregator::proof::Proof;
use aggregator::Record;
use bitcoin::block::Header;
use bitcoin::consensus::serialize;
use bitcoin::hashes::{sha256, Hash};
use btcts_consumer::{PosBlockRecord, TimestampPacket, PACKET_VERSION};

/// Why a proof cannot become a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Only consumer-chain records travel over IBC.
    #[error("only PoS block records are sent over IBC")]
    NotPosBlock,
    /// The proof has no Bitcoin evidence yet.
    #[error("the proof is not anchored")]
    NotAnchored,
    /// The headers do not contain the anchor block.
    #[error("the headers do not contain the anchor block")]
    AnchorNotInHeaders,
}

/// The packet for `proof`, with `headers` (consecutive, starting at
/// `first_height`, which must not be above the anchor block) to the tip.
pub fn build_packet(
    proof: &Proof,
    first_height: u32,
    headers: &[Header],
) -> Result<TimestampPacket, BuildError> {
    let Record::PosBlock(record) = &proof.record else {
        return Err(BuildError::NotPosBlock);
    };
    let anchor = proof.anchor.as_ref().ok_or(BuildError::NotAnchored)?;
    let index = anchor
        .block
        .height
        .checked_sub(first_height)
        .map(|i| i as usize)
        .filter(|i| {
            headers
                .get(*i)
                .is_some_and(|h| h.block_hash() == anchor.block.hash)
        })
        .ok_or(BuildError::AnchorNotInHeaders)?;
    Ok(TimestampPacket {
        version: PACKET_VERSION,
        record: Some(PosBlockRecord::from_record(record)),
        proof: proof.to_json().into_bytes(),
        first_height,
        headers: headers.iter().map(serialize).collect(),
        depth: u32::try_from(headers.len() - index).unwrap_or(u32::MAX),
    })
}

/// ICS-04 packet commitment: `sha256(timeout_timestamp ‖ revision_number ‖
/// revision_height ‖ sha256(data))`, numbers as 8-byte big-endian.
pub fn packet_commitment(
    timeout_timestamp_ns: u64,
    timeout_revision_number: u64,
    timeout_revision_height: u64,
    data: &[u8],
) -> [u8; 32] {
    let mut buf = Vec::with_capacity(56);
    buf.extend_from_slice(&timeout_timestamp_ns.to_be_bytes());
    buf.extend_from_slice(&timeout_revision_number.to_be_bytes());
    buf.extend_from_slice(&timeout_revision_height.to_be_bytes());
    buf.extend_from_slice(sha256::Hash::hash(data).as_byte_array());
    sha256::Hash::hash(&buf).to_byte_array()
}

/// ICS-04 acknowledgement commitment: `sha256(acknowledgement)`.
pub fn ack_commitment(ack: &[u8]) -> [u8; 32] {
    sha256::Hash::hash(ack).to_byte_array()
}
