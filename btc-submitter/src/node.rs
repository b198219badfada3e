//! The Bitcoin node as the anchoring loop sees it: one narrow trait, with
//! errors classified as transient (retry later) or permanent.

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, OutPoint, Transaction, Txid};

/// A failure talking to the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node is unreachable, warming up, or timed out: retry with backoff.
    #[error("node unavailable: {0}")]
    Transient(String),
    /// The node answered but refused the request: retrying will not help.
    #[error("node refused: {0}")]
    Permanent(String),
}

impl NodeError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, NodeError::Transient(_))
    }
}

/// The node's view of its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// `getblockchaininfo.chain`: `main`, `test`, `testnet4`, `signet`, `regtest`.
    pub chain: String,
    /// The hash of block 0.
    pub genesis: BlockHash,
    /// The best block.
    pub tip: BlockHash,
    /// Its height.
    pub tip_height: u32,
}

/// Where a block stands relative to the best chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockStatus {
    /// The block's height.
    pub height: u32,
    /// Confirmations: ≥ 1 in the best chain (1 = tip), ≤ 0 when not in it.
    pub confirmations: i64,
}

/// Where a wallet transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Unknown to the node (never seen, or dropped from the mempool).
    Unknown,
    /// In the mempool.
    InMempool,
    /// In a block of the best chain.
    InBlock(BlockHash),
    /// Conflicted: another transaction spending its inputs is in the chain.
    Conflicted,
}

/// A funded, signed transaction the node's wallet built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funded {
    /// The signed transaction.
    pub tx: Transaction,
    /// The fee it pays, in sat.
    pub fee_sat: u64,
}

/// The node btcts anchors through. Implementations: `CoreRpcNode` (Bitcoin
/// Core or litecoind JSON-RPC) and, for tests, `FakeNode`.
///
/// Every method may fail with [`NodeError::Transient`] when the node is
/// down; the caller retries on its next step. None of them changes
/// anything on the node except [`BitcoinNode::broadcast`].
pub trait BitcoinNode: Send + Sync {
    /// Chain name, genesis and tip. Read-only; retryable.
    fn chain_info(&self) -> Result<ChainInfo, NodeError>;

    /// The best block's hash. Read-only and cheap: polled every second.
    fn best_block_hash(&self) -> Result<BlockHash, NodeError>;

    /// Blocks until the best chain is higher than `height` or `timeout` has
    /// passed, then returns the tip's height and hash (on a timeout, the tip
    /// as it is, which may be the same height with another hash after a
    /// reorg). Returns at once when the tip is already higher, so a caller
    /// that passes the height it last saw misses no block. Read-only;
    /// retryable. Implementations may cap `timeout` (the RPC node caps it at
    /// 30 s) and must not hold up the node's other calls while waiting.
    fn wait_for_block_above(
        &self,
        height: u32,
        timeout: Duration,
    ) -> Result<(u32, BlockHash), NodeError>;

    /// Height and best-chain confirmations of `hash`; `None` if unknown.
    fn block_status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, NodeError>;

    /// The full block `hash` (non-witness transactions suffice for proofs).
    fn block(&self, hash: &BlockHash) -> Result<Block, NodeError>;

    /// The header of `hash`.
    fn header(&self, hash: &BlockHash) -> Result<Header, NodeError>;

    /// The hash of the best-chain block at `height`, if the chain is that long.
    fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError>;

    /// A fee-rate estimate (sat/vB) for confirmation within `blocks`;
    /// `None` when the node has no estimate (always so on regtest).
    fn estimate_fee_rate(&self, blocks: u16) -> Result<Option<u64>, NodeError>;

    /// Builds, funds (wallet) and signs a transaction whose only non-change
    /// output is `script` (an OP_RETURN), paying `fee_rate` sat/vB. With
    /// `inputs`, spends exactly those (a replacement) and adds no others.
    /// Nothing is broadcast and no coins are locked: calling it again is harmless.
    fn fund_and_sign(
        &self,
        script: &bitcoin::Script,
        fee_rate: u64,
        inputs: Option<&[OutPoint]>,
    ) -> Result<Funded, NodeError>;

    /// Broadcasts `tx`. Idempotent: a transaction the node already has in its
    /// mempool or chain is `Ok`. A refusal (fee too low, conflict) is
    /// [`NodeError::Permanent`].
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, NodeError>;

    /// Where the wallet transaction `txid` stands.
    fn tx_status(&self, txid: &Txid) -> Result<TxStatus, NodeError>;

    /// The wallet's spendable balance in sat: confirmed plus its own
    /// unconfirmed change (what funds the next anchors). Read-only.
    fn wallet_balance_sat(&self) -> Result<u64, NodeError>;
}

impl<T: BitcoinNode + ?Sized> BitcoinNode for std::sync::Arc<T> {
    fn chain_info(&self) -> Result<ChainInfo, NodeError> {
        (**self).chain_info()
    }
    fn best_block_hash(&self) -> Result<BlockHash, NodeError> {
        (**self).best_block_hash()
    }
    fn wait_for_block_above(
        &self,
        height: u32,
        timeout: Duration,
    ) -> Result<(u32, BlockHash), NodeError> {
        (**self).wait_for_block_above(height, timeout)
    }
    fn block_status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, NodeError> {
        (**self).block_status(hash)
    }
    fn block(&self, hash: &BlockHash) -> Result<Block, NodeError> {
        (**self).block(hash)
    }
    fn header(&self, hash: &BlockHash) -> Result<Header, NodeError> {
        (**self).header(hash)
    }
    fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError> {
        (**self).block_hash_at(height)
    }
    fn estimate_fee_rate(&self, blocks: u16) -> Result<Option<u64>, NodeError> {
        (**self).estimate_fee_rate(blocks)
    }
    fn fund_and_sign(
        &self,
        script: &bitcoin::Script,
        fee_rate: u64,
        inputs: Option<&[OutPoint]>,
    ) -> Result<Funded, NodeError> {
        (**self).fund_and_sign(script, fee_rate, inputs)
    }
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        (**self).broadcast(tx)
    }
    fn tx_status(&self, txid: &Txid) -> Result<TxStatus, NodeError> {
        (**self).tx_status(txid)
    }
    fn wallet_balance_sat(&self) -> Result<u64, NodeError> {
        (**self).wallet_balance_sat()
    }
}
