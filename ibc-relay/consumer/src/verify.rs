//! `verify_packet`: everything a consumer chain checks before it believes
//! that a record is timestamped `k` blocks deep.

use aggregator::headers::{check_next, HeaderError};
use aggregator::proof::Proof;
use aggregator::trust::{NetworkAnchors, TrustAnchors};
use aggregator::verify::{verify_with, Expect};
use aggregator::{AnchorNetwork, ChainId, PosBlock, Record, Tag};
use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::BlockHash;
use prost::Message;

use crate::packet::{TimestampPacket, PACKET_VERSION};

/// Most headers one packet may carry (about ten weeks of Bitcoin blocks).
pub const MAX_HEADERS: usize = 10_000;

/// A Bitcoin header the consumer chain already trusts, and its height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedHeader {
    /// Its height.
    pub height: u32,
    /// The header.
    pub header: Header,
}

/// What the consumer chain expects of every packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerParams {
    /// The consumer chain's own id: packets for other chains are refused.
    pub chain_id: ChainId,
    /// The Bitcoin network anchors must be on.
    pub network: AnchorNetwork,
    /// The deployment tag of the btcts service.
    pub tag: Tag,
    /// Blocks required from the anchor block (counted as 1) to the last header.
    pub k: u32,
}

/// A packet that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPacket {
    /// The timestamped record.
    pub record: PosBlock,
    /// Height of the anchor block.
    pub bitcoin_height: u32,
    /// Hash of the anchor block.
    pub bitcoin_block: BlockHash,
    /// Depth of the anchor block under the packet's last header, computed here.
    pub depth: u32,
    /// The packet's last header: linked to the trusted header and checked,
    /// a candidate for the consumer's next trusted header.
    pub tip: TrustedHeader,
}

/// Why a packet is refused; the text goes into the error acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The bytes are not a `TimestampPacket`.
    #[error("packet does not decode: {0}")]
    Decode(String),
    /// A layout version this code does not know.
    #[error("packet version {0} is not supported")]
    Version(u32),
    /// The record is missing, malformed, for another chain, or not the proof's.
    #[error("record: {0}")]
    Record(String),
    /// The proof document does not verify.
    #[error("proof: {0}")]
    Proof(String),
    /// The headers are missing, malformed, too many, or do not link.
    #[error("headers: {0}")]
    Headers(String),
    /// A header's work or difficulty is not acceptable.
    #[error("header at height {height}: {reason}")]
    Work {
        /// Its height.
        height: u32,
        /// What is wrong.
        reason: String,
    },
    /// The anchor block is not among the packet's headers.
    #[error("the anchor block is not among the packet's headers")]
    AnchorNotInHeaders,
    /// The service's claimed depth is not the one the headers show.
    #[error("claimed depth {claimed} but the headers show {computed}")]
    ClaimedDepth {
        /// Claimed.
        claimed: u32,
        /// Computed.
        computed: u32,
    },
    /// Not deep enough.
    #[error("depth {depth} is below the required {k}")]
    TooShallow {
        /// Computed depth.
        depth: u32,
        /// Required.
        k: u32,
    },
}

/// Checks packet `data` from `trusted` on: the record is this chain's and
/// the proof's; the proof document verifies (leaf, path, root, OP_RETURN,
/// transaction, inclusion, proof of work); the headers start right after
/// `trusted`, link, and each carries valid work at an acceptable difficulty;
/// the anchor block is one of them (at the proof's `block.height`), and the
/// proof's `headers_after` are the packet's next headers; its depth, computed from the headers,
/// equals the claim and is at least `params.k`.
pub fn verify_packet(
    data: &[u8],
    trusted: &TrustedHeader,
    params: &ConsumerParams,
) -> Result<VerifiedPacket, PacketError> {
    let packet = TimestampPacket::decode(data).map_err(|e| PacketError::Decode(e.to_string()))?;
    // One encoding per packet: no unknown fields, no alternative varints.
    if packet.encode_to_vec() != data {
        return Err(PacketError::Decode("not the canonical encoding".into()));
    }
    if packet.version != PACKET_VERSION {
        return Err(PacketError::Version(packet.version));
    }
    let record = packet
        .record
        .as_ref()
        .ok_or_else(|| PacketError::Record("missing".into()))?
        .to_record()
        .ok_or_else(|| PacketError::Record("malformed chain id or hash".into()))?;
    if record.chain_id != params.chain_id {
        return Err(PacketError::Record(format!(
            "for chain {}, not {}",
            record.chain_id, params.chain_id
        )));
    }
    let text =
        std::str::from_utf8(&packet.proof).map_err(|_| PacketError::Proof("not UTF-8".into()))?;
    let proof = Proof::from_json(text).map_err(|e| PacketError::Proof(e.to_string()))?;
    if proof.to_json() != text {
        return Err(PacketError::Proof("not the canonical JSON layout".into()));
    }
    if proof.record != Record::PosBlock(record.clone()) {
        return Err(PacketError::Record(
            "the proof is for another record".into(),
        ));
    }
    let expect = Expect {
        network: Some(params.network),
        tag: Some(params.tag),
    };
    // The trust anchors compiled in: on a mainnet, every header at or above
    // the difficulty floor (the consumer's own trusted header does the
    // checkpoint's job).
    let anchors = TrustAnchors::shared();
    verify_with(&proof, &expect, anchors).map_err(|e| PacketError::Proof(e.to_string()))?;
    let anchor = proof
        .anchor
        .as_ref()
        .ok_or_else(|| PacketError::Proof("not anchored".into()))?;

    let headers = check_headers(
        &packet,
        trusted,
        params.network,
        anchors.get(params.network),
    )?;
    let index = anchor
        .block
        .height
        .checked_sub(packet.first_height)
        .map(|i| i as usize)
        .filter(|i| *i < headers.len())
        .ok_or(PacketError::AnchorNotInHeaders)?;
    if serialize(&headers[index]) != anchor.block.header.0 {
        return Err(PacketError::AnchorNotInHeaders);
    }
    // The proof's own headers after the anchor (usually none in a packet)
    // must be the packet's, so that a packet never carries two branches.
    let after = &headers[index + 1..];
    if anchor.headers_after.len() > after.len()
        || anchor
            .headers_after
            .iter()
            .zip(after)
            .any(|(h, p)| h.header.0 != serialize(p))
    {
        return Err(PacketError::Proof(
            "its headers_after are not the packet's headers after the anchor block".into(),
        ));
    }
    // At most MAX_HEADERS, so this fits.
    let depth = (headers.len() - index) as u32;
    if depth != packet.depth {
        return Err(PacketError::ClaimedDepth {
            claimed: packet.depth,
            computed: depth,
        });
    }
    if depth < params.k {
        return Err(PacketError::TooShallow { depth, k: params.k });
    }
    let last = headers.len() - 1;
    Ok(VerifiedPacket {
        record,
        bitcoin_height: anchor.block.height,
        bitcoin_block: anchor.block.hash,
        depth,
        tip: TrustedHeader {
            height: packet.first_height + last as u32,
            header: headers[last],
        },
    })
}

/// Parses the headers and checks linkage from `trusted`, the floor, work
/// and difficulty ([`aggregator::headers`]).
fn check_headers(
    packet: &TimestampPacket,
    trusted: &TrustedHeader,
    network: AnchorNetwork,
    anchors: &NetworkAnchors,
) -> Result<Vec<Header>, PacketError> {
    if packet.headers.is_empty() || packet.headers.len() > MAX_HEADERS {
        return Err(PacketError::Headers(format!(
            "{} headers; 1 to {MAX_HEADERS} are allowed",
            packet.headers.len()
        )));
    }
    if Some(packet.first_height) != trusted.height.checked_add(1) {
        return Err(PacketError::Headers(format!(
            "they start at height {}, not right after the trusted header at {}",
            packet.first_height, trusted.height
        )));
    }
    let mut out = Vec::with_capacity(packet.headers.len());
    let mut prev = trusted.header;
    for (i, raw) in packet.headers.iter().enumerate() {
        let height = packet.first_height.saturating_add(i as u32);
        if raw.len() != 80 {
            return Err(PacketError::Headers(format!(
                "header at height {height} is {} bytes, not 80",
                raw.len()
            )));
        }
        let header: Header = deserialize(raw)
            .map_err(|e| PacketError::Headers(format!("header at height {height}: {e}")))?;
        match check_next(network, anchors, height, &prev, &header) {
            Ok(()) => {}
            Err(HeaderError::Link) => {
                return Err(PacketError::Headers(format!(
                    "header at height {height} does not link to the one before it"
                )))
            }
            Err(e) => {
                return Err(PacketError::Work {
                    height,
                    reason: e.to_string(),
                })
            }
        }
        out.push(header);
        prev = header;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
