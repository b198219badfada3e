//! Packet format v1: the protobuf messages of
//! `ibc-relay/proto/btcts/v1/packet.proto`, field for field.

use aggregator::{ChainId, PosBlock, PosBlockHash, StakerSetDigest};

/// The `version` of this layout.
pub const PACKET_VERSION: u32 = 1;

/// `btcts.v1.TimestampPacket`: one record and the evidence of its timestamp.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TimestampPacket {
    /// Layout version: [`PACKET_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The record.
    #[prost(message, optional, tag = "2")]
    pub record: Option<PosBlockRecord>,
    /// The proof document v1, canonical JSON.
    #[prost(bytes = "vec", tag = "3")]
    pub proof: Vec<u8>,
    /// Height of `headers[0]`.
    #[prost(uint32, tag = "4")]
    pub first_height: u32,
    /// Consecutive 80-byte headers from `first_height` to the tip the service saw.
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub headers: Vec<Vec<u8>>,
    /// The depth the service claims.
    #[prost(uint32, tag = "6")]
    pub depth: u32,
}

/// `btcts.v1.PosBlockRecord`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PosBlockRecord {
    /// Consumer chain id.
    #[prost(string, tag = "1")]
    pub chain_id: String,
    /// Block height.
    #[prost(uint64, tag = "2")]
    pub height: u64,
    /// Block hash, 32 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub block_hash: Vec<u8>,
    /// Staker-set digest, 32 bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub staker_set_digest: Vec<u8>,
}

/// `btcts.v1.TimestampAck`: the `result` of a successful acknowledgement.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TimestampAck {
    /// Consumer chain id.
    #[prost(string, tag = "1")]
    pub chain_id: String,
    /// Block height.
    #[prost(uint64, tag = "2")]
    pub height: u64,
    /// The anchor block's height.
    #[prost(uint32, tag = "3")]
    pub bitcoin_height: u32,
    /// The depth the consumer computed.
    #[prost(uint32, tag = "4")]
    pub depth: u32,
}

impl PosBlockRecord {
    /// The wire form of a record.
    pub fn from_record(b: &PosBlock) -> PosBlockRecord {
        PosBlockRecord {
            chain_id: b.chain_id.to_string(),
            height: b.height,
            block_hash: b.block_hash.as_bytes().to_vec(),
            staker_set_digest: b.staker_set_digest.as_bytes().to_vec(),
        }
    }

    /// The record, if every field is well formed.
    pub fn to_record(&self) -> Option<PosBlock> {
        Some(PosBlock {
            chain_id: ChainId::new(&self.chain_id).ok()?,
            height: self.height,
            block_hash: PosBlockHash(self.block_hash.as_slice().try_into().ok()?),
            staker_set_digest: StakerSetDigest(self.staker_set_digest.as_slice().try_into().ok()?),
        })
    }
}
