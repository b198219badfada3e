//! Fakes of the two outside systems, for tests (feature `test-utils`): a
//! chain whose tip moves on cue and a btcts that stores records as the real
//! store does (a re-post is a duplicate, another hash at a stored height a
//! conflict). Both fail on cue with scripted errors and log what they saw,
//! with `tokio::time` instants so paused-time tests can check waits.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use aggregator::{ChainId, Height, PosBlockHash, StakerSetDigest};
use tokio::time::Instant;

use crate::sink::{RecordAck, Sink, SinkError};
use crate::source::{BlockSource, ChainBlock, ChainTip, SourceError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The block a [`FakeChain`] has at `height`: hashes derived from it.
pub fn fake_block(height: Height) -> ChainBlock {
    let mut hash = [0xab; 32];
    hash[..8].copy_from_slice(&height.to_be_bytes());
    let mut digest = [0xcd; 32];
    digest[24..].copy_from_slice(&(height / 100).to_be_bytes());
    ChainBlock {
        height,
        block_hash: PosBlockHash(hash),
        staker_set_digest: StakerSetDigest(digest),
    }
}

#[derive(Debug, Default)]
struct ChainState {
    chain_id: String,
    tip: Height,
    failures: VecDeque<SourceError>,
    calls: Vec<Instant>,
}

/// A chain at a settable tip. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct FakeChain(Arc<Mutex<ChainState>>);

impl FakeChain {
    /// Chain `chain_id` at `tip`.
    pub fn new(chain_id: &str, tip: Height) -> FakeChain {
        FakeChain(Arc::new(Mutex::new(ChainState {
            chain_id: chain_id.to_owned(),
            tip,
            ..ChainState::default()
        })))
    }

    /// Moves the tip.
    pub fn set_tip(&self, tip: Height) {
        lock(&self.0).tip = tip;
    }

    /// The next calls fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = SourceError>) {
        lock(&self.0).failures.extend(errors);
    }

    /// When `tip` was asked.
    pub fn tip_calls(&self) -> Vec<Instant> {
        lock(&self.0).calls.clone()
    }
}

impl BlockSource for FakeChain {
    async fn tip(&self) -> Result<ChainTip, SourceError> {
        let mut s = lock(&self.0);
        s.calls.push(Instant::now());
        if let Some(e) = s.failures.pop_front() {
            return Err(e);
        }
        Ok(ChainTip {
            chain_id: s.chain_id.clone(),
            height: s.tip,
        })
    }

    async fn block(&self, height: Height) -> Result<ChainBlock, SourceError> {
        let mut s = lock(&self.0);
        if let Some(e) = s.failures.pop_front() {
            return Err(e);
        }
        if height == 0 || height > s.tip {
            return Err(SourceError::Protocol(format!("no block {height}")));
        }
        Ok(fake_block(height))
    }
}

#[derive(Debug, Default)]
struct BtctsState {
    limit: usize,
    /// (chain, height) → every hash stored there, first first.
    stored: BTreeMap<(String, Height), Vec<PosBlockHash>>,
    failures: VecDeque<SinkError>,
    /// Every submission that reached the fake: when, and its heights.
    requests: Vec<(Instant, Vec<Height>)>,
}

/// btcts with a per-request limit. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct FakeBtcts(Arc<Mutex<BtctsState>>);

impl FakeBtcts {
    /// A btcts taking at most `limit` records per request.
    pub fn new(limit: usize) -> FakeBtcts {
        FakeBtcts(Arc::new(Mutex::new(BtctsState {
            limit,
            ..BtctsState::default()
        })))
    }

    /// The next submissions fail with these errors, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = SinkError>) {
        lock(&self.0).failures.extend(errors);
    }

    /// Stores a record as another submitter would.
    pub fn insert(&self, chain: &str, height: Height, hash: PosBlockHash) {
        lock(&self.0)
            .stored
            .entry((chain.to_owned(), height))
            .or_default()
            .push(hash);
    }

    /// The hashes stored for `chain` at each height.
    pub fn stored(&self, chain: &str) -> BTreeMap<Height, Vec<PosBlockHash>> {
        lock(&self.0)
            .stored
            .iter()
            .filter(|((c, _), _)| c == chain)
            .map(|((_, h), v)| (*h, v.clone()))
            .collect()
    }

    /// Every submission that reached it, failed or not.
    pub fn requests(&self) -> Vec<(Instant, Vec<Height>)> {
        lock(&self.0).requests.clone()
    }
}

impl Sink for FakeBtcts {
    async fn submit(
        &self,
        chain: &ChainId,
        blocks: &[ChainBlock],
    ) -> Result<Vec<RecordAck>, SinkError> {
        let mut s = lock(&self.0);
        s.requests
            .push((Instant::now(), blocks.iter().map(|b| b.height).collect()));
        if let Some(e) = s.failures.pop_front() {
            return Err(e);
        }
        if blocks.len() > s.limit {
            return Err(SinkError::Rejected {
                status: 413,
                code: "too_many_records".into(),
                message: format!("{} records; the limit is {}", blocks.len(), s.limit),
            });
        }
        let mut acks = Vec::with_capacity(blocks.len());
        for b in blocks {
            let hashes = s
                .stored
                .entry((chain.as_str().to_owned(), b.height))
                .or_default();
            let duplicate = hashes.contains(&b.block_hash);
            if !duplicate {
                hashes.push(b.block_hash);
            }
            acks.push(RecordAck {
                duplicate,
                conflict: hashes.len() > 1,
            });
        }
        Ok(acks)
    }
}
