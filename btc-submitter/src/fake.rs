//! An in-memory [`BitcoinNode`] for fast tests (feature `test-utils`): a
//! Bitcoin-regtest chain with real headers and proof of work, a mempool with
//! replace-by-fee, a wallet of fake coins, and knobs to mine, mine past the
//! mempool, reorg, drop transactions and fail on cue. The same scenario tests
//! run against it and against a real node, so it cannot drift far.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aggregator::AnchorNetwork;
use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::pow::CompactTarget;
use bitcoin::script::PushBytesBuf;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, Txid, Witness,
};

use crate::node::{BitcoinNode, BlockStatus, ChainInfo, Funded, NodeError, TxStatus};

#[derive(Debug)]
struct State {
    /// The best chain, genesis first.
    blocks: Vec<Block>,
    /// Blocks that left the best chain, with their heights.
    stale: HashMap<BlockHash, (Block, u32)>,
    mempool: Vec<Transaction>,
    /// Unspent wallet coins and their values in sat.
    coins: Vec<(OutPoint, u64)>,
    /// The value of every coin the wallet ever had, spent or not.
    values: HashMap<OutPoint, u64>,
    /// Every transaction the wallet built and that was broadcast.
    wallet: HashMap<Txid, Transaction>,
    fee_estimate: Option<u64>,
    down: bool,
    /// Calls to let through before failing `fail_next` of them.
    fail_after: u32,
    fail_next: u32,
}

/// The fake node. Share it with `Arc` to keep controlling it while an
/// `Anchorer` uses it.
#[derive(Debug)]
pub struct FakeNode {
    state: Mutex<State>,
    /// Notified whenever the best chain changes (mined, reorganised).
    tip_changed: Condvar,
    /// Calls made through the node interface, answered or failed.
    calls: AtomicU64,
    /// How long each call takes before it is answered, in µs.
    latency_us: AtomicU64,
}

impl Default for FakeNode {
    fn default() -> Self {
        FakeNode::new()
    }
}

fn transient() -> NodeError {
    NodeError::Transient("fake node is down".into())
}

impl FakeNode {
    /// A chain of only the Bitcoin-regtest genesis block and a wallet of 50 coins.
    pub fn new() -> FakeNode {
        let coins: Vec<(OutPoint, u64)> = (0..50u32)
            .map(|i| {
                (
                    OutPoint::new(
                        Txid::from_raw_hash(sha256d::Hash::hash(&i.to_le_bytes())),
                        0,
                    ),
                    50_000_000,
                )
            })
            .collect();
        let values = coins.iter().copied().collect();
        FakeNode {
            state: Mutex::new(State {
                blocks: vec![bitcoin::constants::genesis_block(bitcoin::Network::Regtest)],
                stale: HashMap::new(),
                mempool: Vec::new(),
                coins,
                values,
                wallet: HashMap::new(),
                fee_estimate: None,
                down: false,
                fail_after: 0,
                fail_next: 0,
            }),
            tip_changed: Condvar::new(),
            calls: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    /// Calls made so far through the node interface ([`BitcoinNode`]),
    /// answered or failed.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Every later call through the node interface takes `latency` before
    /// it is answered, as a node across a network does.
    pub fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.store(us, Ordering::SeqCst);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock only happens in a failing test.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> Result<MutexGuard<'_, State>, NodeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let latency = self.latency_us.load(Ordering::SeqCst);
        if latency > 0 {
            std::thread::sleep(Duration::from_micros(latency));
        }
        let mut s = self.state();
        if s.down {
            return Err(transient());
        }
        if s.fail_next > 0 {
            if s.fail_after > 0 {
                s.fail_after -= 1;
            } else {
                s.fail_next -= 1;
                return Err(transient());
            }
        }
        Ok(s)
    }

    /// Mines `n` blocks holding the whole mempool (the first one does).
    pub fn mine(&self, n: u32) -> Vec<BlockHash> {
        let mut s = self.state();
        let hashes = (0..n).map(|_| s.mine(true)).collect();
        self.tip_changed.notify_all();
        hashes
    }

    /// Mines `n` blocks that leave the mempool out.
    pub fn mine_empty(&self, n: u32) -> Vec<BlockHash> {
        let mut s = self.state();
        let hashes = (0..n).map(|_| s.mine(false)).collect();
        self.tip_changed.notify_all();
        hashes
    }

    /// Disconnects the `depth` most recent blocks (their transactions go back
    /// to the mempool), then mines `replacement` empty blocks in their place.
    pub fn reorg(&self, depth: u32, replacement: u32) -> Vec<BlockHash> {
        let mut s = self.state();
        for _ in 0..depth {
            let height = s.blocks.len() as u32 - 1;
            let Some(block) = s.blocks.pop() else { break };
            for tx in block.txdata.iter().skip(1).rev() {
                s.mempool.insert(0, tx.clone());
                // Undo the block's effect on the wallet.
                let txid = tx.compute_txid();
                s.coins.retain(|(o, _)| o.txid != txid);
                for input in &tx.input {
                    if let Some(v) = s.values.get(&input.previous_output).copied() {
                        s.coins.push((input.previous_output, v));
                    }
                }
            }
            s.stale.insert(block.block_hash(), (block, height));
        }
        let hashes = (0..replacement).map(|_| s.mine(false)).collect();
        self.tip_changed.notify_all();
        hashes
    }

    /// Removes `txid` from the mempool, as an eviction would.
    pub fn drop_tx(&self, txid: &Txid) {
        self.state().mempool.retain(|t| t.compute_txid() != *txid);
    }

    /// Spends `outpoint` by a transaction that is not btcts's (another user
    /// of the wallet, paying 10,000 sat): it replaces whatever spends that
    /// coin in the mempool and goes into the next block like any other.
    pub fn spend_elsewhere(&self, outpoint: OutPoint) -> Txid {
        let mut s = self.state();
        let value = s.values.get(&outpoint).copied().unwrap_or(0);
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: outpoint,
                script_sig: ScriptBuf::from_bytes(vec![0x52; 107]),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(value.saturating_sub(10_000)),
                script_pubkey: ScriptBuf::from_bytes([vec![0x00, 0x14], vec![0x33; 20]].concat()),
            }],
        };
        s.mempool
            .retain(|t| t.input.iter().all(|i| i.previous_output != outpoint));
        s.mempool.push(tx.clone());
        tx.compute_txid()
    }

    /// Makes every call fail as if the node were unreachable, or not.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
        // A wait in progress fails at once, as a dropped connection would.
        self.tip_changed.notify_all();
    }

    /// Makes the next `n` calls fail transiently.
    pub fn fail_next(&self, n: u32) {
        self.fail_after(0, n);
    }

    /// Lets `skip` calls through, then makes `n` calls fail transiently.
    pub fn fail_after(&self, skip: u32, n: u32) {
        let mut s = self.state();
        s.fail_after = skip;
        s.fail_next = n;
    }

    /// Sets the fee estimate (sat/vB); `None` is regtest's "insufficient data".
    pub fn set_fee_estimate(&self, rate: Option<u64>) {
        self.state().fee_estimate = rate;
    }

    /// The mempool's transactions.
    pub fn mempool(&self) -> Vec<Transaction> {
        self.state().mempool.clone()
    }

    /// The best chain's blocks, genesis first.
    pub fn blocks(&self) -> Vec<Block> {
        self.state().blocks.clone()
    }
}

impl State {
    fn tip(&self) -> &Block {
        // The chain always holds at least the genesis block.
        &self.blocks[self.blocks.len() - 1]
    }

    fn mine(&mut self, with_mempool: bool) -> BlockHash {
        let height = self.blocks.len() as u32;
        let mut script_sig = PushBytesBuf::new();
        let _ = script_sig.extend_from_slice(&height.to_le_bytes());
        let coinbase = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::builder().push_slice(script_sig).into_script(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(5_000_000_000),
                script_pubkey: ScriptBuf::new(),
            }],
        };
        let mut txdata = vec![coinbase];
        if with_mempool {
            txdata.append(&mut self.mempool);
        }
        for tx in &txdata[1..] {
            let spent: Vec<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
            self.coins.retain(|(o, _)| !spent.contains(o));
            if self.wallet.contains_key(&tx.compute_txid()) {
                if let Some(change) = tx.output.get(1) {
                    let coin = (OutPoint::new(tx.compute_txid(), 1), change.value.to_sat());
                    self.values.insert(coin.0, coin.1);
                    self.coins.push(coin);
                }
            }
        }
        let merkle_root =
            bitcoin::merkle_tree::calculate_root(txdata.iter().map(Transaction::compute_txid))
                .map(TxMerkleNode::from)
                .unwrap_or_else(TxMerkleNode::all_zeros);
        let mut header = Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: self.tip().block_hash(),
            merkle_root,
            time: self.tip().header.time + 600,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        };
        while AnchorNetwork::Regtest.check_pow(&header).is_err() {
            header.nonce += 1;
        }
        let block = Block { header, txdata };
        let hash = block.block_hash();
        self.blocks.push(block);
        hash
    }

    fn find_in_chain(&self, txid: &Txid) -> Option<BlockHash> {
        self.blocks
            .iter()
            .find(|b| b.txdata.iter().any(|t| t.compute_txid() == *txid))
            .map(Block::block_hash)
    }

    fn spent_in_chain(&self, outpoint: &OutPoint) -> bool {
        self.blocks
            .iter()
            .flat_map(|b| &b.txdata)
            .any(|t| t.input.iter().any(|i| i.previous_output == *outpoint))
    }
}

fn fee_of(tx: &Transaction, coins: &HashMap<OutPoint, u64>) -> u64 {
    let ins: u64 = tx
        .input
        .iter()
        .filter_map(|i| coins.get(&i.previous_output))
        .sum();
    let outs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    ins.saturating_sub(outs)
}

impl BitcoinNode for FakeNode {
    fn chain_info(&self) -> Result<ChainInfo, NodeError> {
        let s = self.live()?;
        Ok(ChainInfo {
            chain: "regtest".into(),
            genesis: s.blocks[0].block_hash(),
            tip: s.tip().block_hash(),
            tip_height: s.blocks.len() as u32 - 1,
        })
    }

    fn best_block_hash(&self) -> Result<BlockHash, NodeError> {
        Ok(self.live()?.tip().block_hash())
    }

    /// Sees only [`FakeNode::set_down`], not the `fail_next` counts: those
    /// count the anchoring loop's calls, which a watcher thread must not race.
    fn wait_for_block_above(
        &self,
        height: u32,
        timeout: Duration,
    ) -> Result<(u32, BlockHash), NodeError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state();
        loop {
            if s.down {
                return Err(transient());
            }
            let tip = s.blocks.len() as u32 - 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if tip > height || left.is_zero() {
                return Ok((tip, s.tip().block_hash()));
            }
            s = self
                .tip_changed
                .wait_timeout(s, left)
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn block_status(&self, hash: &BlockHash) -> Result<Option<BlockStatus>, NodeError> {
        let s = self.live()?;
        let tip = s.blocks.len() as i64 - 1;
        if let Some(h) = s.blocks.iter().position(|b| b.block_hash() == *hash) {
            return Ok(Some(BlockStatus {
                height: h as u32,
                confirmations: tip - h as i64 + 1,
            }));
        }
        Ok(s.stale.get(hash).map(|(_, h)| BlockStatus {
            height: *h,
            confirmations: -1,
        }))
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, NodeError> {
        let s = self.live()?;
        s.blocks
            .iter()
            .find(|b| b.block_hash() == *hash)
            .or_else(|| s.stale.get(hash).map(|(b, _)| b))
            .cloned()
            .ok_or_else(|| NodeError::Permanent(format!("block {hash} not found")))
    }

    fn header(&self, hash: &BlockHash) -> Result<Header, NodeError> {
        self.block(hash).map(|b| b.header)
    }

    fn block_hash_at(&self, height: u32) -> Result<Option<BlockHash>, NodeError> {
        Ok(self
            .live()?
            .blocks
            .get(height as usize)
            .map(Block::block_hash))
    }

    fn estimate_fee_rate(&self, _blocks: u16) -> Result<Option<u64>, NodeError> {
        Ok(self.live()?.fee_estimate)
    }

    fn wallet_balance_sat(&self) -> Result<u64, NodeError> {
        Ok(self.live()?.coins.iter().map(|(_, v)| v).sum())
    }

    fn fund_and_sign(
        &self,
        script: &bitcoin::Script,
        fee_rate: u64,
        inputs: Option<&[OutPoint]>,
    ) -> Result<Funded, NodeError> {
        let s = self.live()?;
        let in_mempool: Vec<OutPoint> = s
            .mempool
            .iter()
            .flat_map(|t| t.input.iter().map(|i| i.previous_output))
            .collect();
        let chosen: Vec<(OutPoint, u64)> = match inputs {
            Some(ins) => ins
                .iter()
                .map(|o| s.coins.iter().find(|(c, _)| c == o).copied())
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    NodeError::Permanent("Insufficient funds: input not in wallet".into())
                })?,
            None => {
                let coin = s
                    .coins
                    .iter()
                    .find(|(o, _)| !in_mempool.contains(o))
                    .copied();
                vec![coin.ok_or_else(|| NodeError::Permanent("Insufficient funds".into()))?]
            }
        };
        let total: u64 = chosen.iter().map(|(_, v)| v).sum();
        let mut tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: chosen
                .iter()
                .map(|(o, _)| TxIn {
                    previous_output: *o,
                    // Stands in for a signature and a public key.
                    script_sig: ScriptBuf::from_bytes(vec![0x51; 107]),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: script.to_owned(),
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(
                        [vec![0x00, 0x14], vec![0x22; 20]].concat(),
                    ),
                },
            ],
        };
        let fee_sat = fee_rate * tx.vsize() as u64;
        tx.output[1].value = Amount::from_sat(
            total
                .checked_sub(fee_sat)
                .ok_or_else(|| NodeError::Permanent("Insufficient funds".into()))?,
        );
        Ok(Funded { tx, fee_sat })
    }

    fn broadcast(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        let mut s = self.live()?;
        let txid = tx.compute_txid();
        if s.mempool.iter().any(|t| t.compute_txid() == txid) || s.find_in_chain(&txid).is_some() {
            return Ok(txid);
        }
        if tx
            .input
            .iter()
            .any(|i| s.spent_in_chain(&i.previous_output))
        {
            return Err(NodeError::Permanent(
                "bad-txns-inputs-missingorspent".into(),
            ));
        }
        let fee = fee_of(tx, &s.values);
        let conflicting: Vec<Transaction> = s
            .mempool
            .iter()
            .filter(|t| {
                t.input.iter().any(|i| {
                    tx.input
                        .iter()
                        .any(|j| j.previous_output == i.previous_output)
                })
            })
            .cloned()
            .collect();
        let conflicting_fee: u64 = conflicting.iter().map(|t| fee_of(t, &s.values)).sum();
        // BIP125: more absolute fee, by at least the incremental relay fee (1 sat/vB).
        if !conflicting.is_empty() && fee < conflicting_fee + tx.vsize() as u64 {
            return Err(NodeError::Permanent("insufficient fee".into()));
        }
        let replaced: Vec<Txid> = conflicting.iter().map(Transaction::compute_txid).collect();
        s.mempool.retain(|t| !replaced.contains(&t.compute_txid()));
        s.mempool.push(tx.clone());
        s.wallet.insert(txid, tx.clone());
        Ok(txid)
    }

    fn tx_status(&self, txid: &Txid) -> Result<TxStatus, NodeError> {
        let s = self.live()?;
        if let Some(hash) = s.find_in_chain(txid) {
            return Ok(TxStatus::InBlock(hash));
        }
        if s.mempool.iter().any(|t| t.compute_txid() == *txid) {
            return Ok(TxStatus::InMempool);
        }
        match s.wallet.get(txid) {
            Some(tx)
                if tx
                    .input
                    .iter()
                    .any(|i| s.spent_in_chain(&i.previous_output)) =>
            {
                Ok(TxStatus::Conflicted)
            }
            _ => Ok(TxStatus::Unknown),
        }
    }
}

#[path = "fake_hooked.rs"]
mod hooked;
pub use hooked::{Event, Hook, Hooked};
