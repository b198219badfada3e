//! ibc-relay: delivers proofs to consumer chains over IBC, the service
//! acting as an ICS-06 solo machine (`docs/ibc.md`).
//!
//! - [`signer`]: the secp256k1 key, with sequence, timestamp and
//!   diversifier persisted before any signature leaves it;
//! - [`packet`]: packet format v1 (the messages live in [`btcts_consumer`],
//!   which consumer chains build too) and the IBC commitments over it.

pub mod cosmos;
pub mod grpc;
pub mod msgs;
pub mod packet;
pub mod relay;
pub mod signer;
pub mod state;
pub mod tx;

pub use btcts_consumer::{TimestampAck, TimestampPacket, CHANNEL_VERSION, PORT_ID};
pub use relay::{ConsumerConfig, Deliver, Relay, RelayError, StepReport};
pub use signer::{Signed, Signer, SignerError, SignerState};
