//! [`Hooked`]: any [`BitcoinNode`] with a hook run around its calls, for
//! counting calls, injecting failures and crash tests.

use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, OutPoint, Transaction, Txid};

use crate::node::{BitcoinNode, BlockStatus, ChainInfo, Funded, NodeError, TxStatus};

/// A call a [`Hooked`] node is about to forward, or a broadcast it just made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A trait method is about to be called (its name).
    Call(&'static str),
    /// `broadcast` reached the inner node and succeeded.
    Broadcast(&'a Txid),
}

/// The hook a [`Hooked`] node runs; an error is returned to the caller.
pub type Hook = Box<dyn Fn(Event<'_>) -> Result<(), NodeError> + Send + Sync>;

/// Any node with a hook run before every call and after every successful
/// broadcast: counts calls, injects failures, or ends the process at an
/// exact moment (crash tests).
pub struct Hooked<N> {
    /// The node calls are forwarded to.
    pub inner: N,
    hook: Hook,
}

impl<N> Hooked<N> {
    /// Wraps `inner`.
    pub fn new(
        inner: N,
        hook: impl Fn(Event<'_>) -> Result<(), NodeError> + Send + Sync + 'static,
    ) -> Self {
        Hooked {
            inner,
            hook: Box::new(hook),
        }
    }
}

impl<N> std::fmt::Debug for Hooked<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooked")
    }
}

impl<N: BitcoinNode> BitcoinNode for Hooked<N> {
    fn chain_info(&self) -> Result<ChainInfo, NodeError> {
        (self.hook)(Event::Call("chain_info"))?;
        self.inner.chain_info()
    }
    fn best_block_hash(&self) -> Result<BlockHash, NodeError> {
        (self.hook)(Event::Call("best_block_hash"))?;
        self.inner.best_block_hash()
    }
    fn wait_for_block_above(
        &self,
        height: u32,
        timeout: Duration,
    ) -> Result<(u32, BlockHash), NodeError> {
        (self.hook)(Event::Call("wait_for_block_above"))?;
        self.inner.wait_for_block_above(height, timeout)
    }
    fn block_status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, NodeError> {
        (self.hook)(Event::Call("block_status"))?;
        self.inner.block_status(hash)
    }
    fn block(&self, hash: &BlockHash) -> Result<Block, NodeError> {
        (self.hook)(Event::Call("block"))?;
        self.inner.block(hash)
    }
    fn header(&self, hash: &BlockHash) -> Result<Header, NodeError> {
        (self.hook)(Event::Call("header"))?;
        self.inner.header(hash)
    }
    fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError> {
        (self.hook)(Event::Call("block_hash_at"))?;
        self.inner.block_hash_at(height)
    }
    fn estimate_fee_rate(&self, blocks: u16) -> Result<Option<u64>, NodeError> {
        (self.hook)(Event::Call("estimate_fee_rate"))?;
        self.inner.estimate_fee_rate(blocks)
    }
    fn wallet_balance_sat(&self) -> Result<u64, NodeError> {
        (self.hook)(Event::Call("wallet_balance_sat"))?;
        self.inner.wallet_balance_sat()
    }
    fn fund_and_sign(
        &self,
        script: &bitcoin::Script,
        fee_rate: u64,
        inputs: Option<&[OutPoint]>,
    ) -> Result<Funded, NodeError> {
        (self.hook)(Event::Call("fund_and_sign"))?;
        self.inner.fund_and_sign(script, fee_rate, inputs)
    }
    fn broadcast(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        (self.hook)(Event::Call("broadcast"))?;
        let txid = self.inner.broadcast(tx)?;
        (self.hook)(Event::Broadcast(&txid))?;
        Ok(txid)
    }
    fn tx_status(&self, txid: &Txid) -> Result<TxStatus, NodeError> {
        (self.hook)(Event::Call("tx_status"))?;
        self.inner.tx_status(txid)
    }
}
