//! btcts-consumer: what a consumer chain's IBC application runs on each
//! packet from btcts. It trusts the service for delivery only: from a
//! Bitcoin header the chain already trusts it checks that the packet's
//! headers link and carry valid work, that the anchor transaction is in the
//! anchor block, that its OP_RETURN carries the batch root, that the leaf's
//! path reaches that root, and it computes the depth itself.
//!
//! No I/O, no clocks, no threads: it depends on the pure core of
//! [`aggregator`] (built without its `store` feature), `bitcoin` and `prost`,
//! so that a CosmWasm contract can build it.

pub mod packet;
mod verify;

pub use packet::{PosBlockRecord, TimestampAck, TimestampPacket, PACKET_VERSION};
pub use verify::{
    verify_packet, ConsumerParams, PacketError, TrustedHeader, VerifiedPacket, MAX_HEADERS,
};

/// The port btcts packets are sent on.
pub const PORT_ID: &str = "btcts";
/// The channel version of packet format v1.
pub const CHANNEL_VERSION: &str = "btcts-1";
