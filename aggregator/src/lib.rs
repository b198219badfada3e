//! btcts domain core: records and their leaf encoding, batch Merkle trees,
//! the OP_RETURN payload, proof documents and the offline verifier, and the
//! durable redb store with its group-commit writer. No network I/O.

pub mod anchor;
pub mod chain;
pub mod clock;
pub mod events;
pub mod headers;
#[cfg(feature = "store")]
pub mod ingest;
pub mod leaf;
pub mod merkle;
pub mod ots;
pub mod pages;
pub mod payload;
pub mod proof;
#[cfg(feature = "store")]
pub mod schema;
#[cfg(feature = "store")]
pub mod store;
pub mod trust;
pub mod types;
pub mod verify;

pub use chain::{AnchorNetwork, PowFunction};
pub use clock::{Clock, SystemClock};
#[cfg(feature = "store")]
pub use ingest::Ingestor;
pub use merkle::{MerkleTree, PathStep, Side};
pub use payload::{Payload, Tag};
pub use proof::Proof;
#[cfg(feature = "store")]
pub use store::{Ack, BatchInfo, Store, StoreError, StoreOptions, StoredRecord};
pub use trust::{Trust, TrustAnchors};
pub use types::{
    BatchSeq, ChainId, Height, LeafHash, MerkleRoot, PosBlock, PosBlockHash, Record,
    StakerSetDigest,
};
pub use verify::{verify, verify_with, Expect, Verified, VerifyError};
