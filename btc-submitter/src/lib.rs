//! btc-submitter: anchors batch roots in Bitcoin. The [`node::BitcoinNode`]
//! trait with its JSON-RPC implementation ([`rpc::CoreRpcNode`], Bitcoin Core
//! and litecoind 0.21), the fee policy, and the anchor state machine
//! ([`anchor::Anchorer`]).

pub mod anchor;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod fees;
pub mod node;
pub mod rpc;

pub use anchor::{
    check_chain, complete_proof, AnchorConfig, AnchorError, Anchorer, StepOutcome, WrongChain,
};
pub use fees::FeePolicy;
pub use node::{BitcoinNode, NodeError};
pub use rpc::{CoreRpcNode, RpcAuth, RpcConfig};
