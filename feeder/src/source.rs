//! The chain being fed, as the feeder needs it: its tip and its blocks by
//! height. [`BlockSource`] is the narrow trait the feeder is written
//! against; [`crate::GrpcSource`] implements it over the Cosmos SDK's
//! `cosmos.base.tendermint.v1beta1.Service`, tests use fakes.

use std::future::Future;

use aggregator::{Height, PosBlockHash, StakerSetDigest};

/// Why the chain gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Not reachable, busy, or mid-commit: worth retrying.
    #[error("chain node unavailable: {0}")]
    Unavailable(String),
    /// It answered, but not as a CometBFT/Cosmos SDK node would, or refused
    /// for good (a pruned height, say): retrying will not help.
    #[error("chain node: {0}")]
    Protocol(String),
}

impl SourceError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Unavailable(_))
    }
}

/// The chain's latest block, as far as the feeder needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    /// The chain id in the header (`cosmoshub-4`).
    pub chain_id: String,
    /// Its height.
    pub height: Height,
}

/// One block as it is submitted to btcts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainBlock {
    /// Its height.
    pub height: Height,
    /// The CometBFT header hash (the block ID hash).
    pub block_hash: PosBlockHash,
    /// The header's `validators_hash`: the validator set that signs it.
    pub staker_set_digest: StakerSetDigest,
}

/// A CometBFT/Cosmos chain's node.
///
/// Both calls are reads and may be repeated freely; `Err` says whether a
/// retry may help ([`SourceError::is_transient`]).
pub trait BlockSource: Send + Sync {
    /// The latest block the node has committed.
    fn tip(&self) -> impl Future<Output = Result<ChainTip, SourceError>> + Send;
    /// The committed block at `height` (at most the tip's height). A block
    /// the node no longer keeps (pruned) is a [`SourceError::Protocol`].
    fn block(&self, height: Height)
        -> impl Future<Output = Result<ChainBlock, SourceError>> + Send;
}
