//! btc-submitter: anchors batch roots in Bitcoin. The [`node::BitcoinNode`]
//! trait with its JSON-RPC implementation ([`rpc::CoreRpcNode`], Bitcoin Core
//! and litecoind 0.21), the fee policy, and the anchor state machine
//! ([`anchor::Anchorer`]).

pub mod anchor;
pub mod cadence;
#[cfg(any(test, feature = "test-utils"))]
pub mod fake;
pub mod fees;
pub mod node;
pub mod proofs;
#[cfg(feature = "regtest")]
pub mod regtest;
pub mod rpc;
pub mod watch;

pub use anchor::{
    check_chain, AnchorConfig, AnchorError, Anchorer, StartError, StepOutcome, WrongChain,
};
pub use cadence::{AnchoringSnapshot, AnchoringView, Cadence};
pub use fees::FeePolicy;
pub use node::{BitcoinNode, NodeError};
pub use proofs::{complete_proof, TipCache};
pub use rpc::{CoreRpcNode, RpcAuth, RpcConfig};
