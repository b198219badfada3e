//! Serving proofs: the stored evidence plus the best-chain headers after
//! the anchor block, never from a block that left the best chain.

use aggregator::proof::HeaderEvidence;
use aggregator::types::HexBytes;
use aggregator::Proof;
use bitcoin::consensus::serialize;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::node::{BitcoinNode, NodeError};

/// Adds the best-chain headers after the anchor block to `proof`, so it
/// shows its depth by itself. A proof whose block left the best chain is
/// returned without its anchor: it is never served from a stale block.
pub fn complete_proof<N: BitcoinNode + ?Sized>(
    node: &N,
    mut proof: Proof,
    max_headers: u32,
) -> Result<Proof, NodeError> {
    let Some(anchor) = proof.anchor.as_mut() else {
        return Ok(proof);
    };
    let in_best = node
        .block_status(&anchor.block.hash)?
        .is_some_and(|s| s.confirmations >= 1);
    if !in_best {
        proof.anchor = None;
        return Ok(proof);
    }
    anchor.headers_after.clear();
    for height in anchor.block.height + 1..=anchor.block.height.saturating_add(max_headers) {
        let Some(hash) = node.block_hash_at(height)? else {
            break;
        };
        let header = node.header(&hash)?;
        anchor.headers_after.push(HeaderEvidence {
            hash,
            header: HexBytes(serialize(&header)),
        });
    }
    Ok(proof)
}

/// The best chain's most recent headers, kept up to date by polling the
/// node (one call per poll while the tip is unchanged), so that serving a
/// proof needs no node round trip.
///
/// Anchors below that window (older than `depth` blocks) are completed by
/// the node — about a dozen calls each — and the answer is kept until the
/// tip moves ([`TipCache::complete_deep`], [`TipCache::remember_deep`]), so
/// a proof of an old record costs the node once per anchor block per new
/// block, not once per request; requests that miss at the same time wait
/// for one question instead of each asking ([`TipCache::complete_deep_once`]).
#[derive(Debug)]
pub struct TipCache {
    depth: u32,
    chain: std::sync::RwLock<CachedChain>,
    deep: std::sync::Mutex<DeepAnchors>,
    /// The question being asked about each deep anchor block, while
    /// someone asks or waits for it.
    flights: std::sync::Mutex<std::collections::HashMap<bitcoin::BlockHash, Arc<Flight>>>,
}

/// One anchor block's turn at the node: who holds `last` asks; the others
/// wait on it and then take the answer it left.
#[derive(Debug, Default)]
struct Flight {
    /// Questions finished so far (read before waiting, to know whether an
    /// answer came while one waited).
    finished: AtomicU64,
    /// The last question's failure, handed to those who waited for it.
    last: std::sync::Mutex<Option<NodeError>>,
}

/// The node's answers for anchor blocks below the cached window, valid
/// while the tip is `tip`: the headers after each block, or `None` if the
/// block was not in the best chain.
#[derive(Debug, Default)]
struct DeepAnchors {
    tip: Option<bitcoin::BlockHash>,
    by_block: std::collections::HashMap<bitcoin::BlockHash, Option<Vec<HeaderEvidence>>>,
}

/// Most anchor blocks [`TipCache::remember_deep`] keeps for one tip.
const MAX_DEEP_ANCHORS: usize = 4096;

#[derive(Debug, Default)]
struct CachedChain {
    tip: Option<bitcoin::BlockHash>,
    tip_height: u32,
    by_height: std::collections::BTreeMap<u32, (bitcoin::BlockHash, bitcoin::block::Header)>,
}

impl TipCache {
    /// A cache of the `depth` most recent best-chain headers.
    pub fn new(depth: u32) -> TipCache {
        TipCache {
            depth: depth.max(1),
            chain: Default::default(),
            deep: Default::default(),
            flights: Default::default(),
        }
    }

    /// The tip the cache was last brought to.
    pub fn tip(&self) -> Option<bitcoin::BlockHash> {
        self.read().tip
    }

    /// `proof` completed from a node answer [`TipCache::remember_deep`]
    /// kept at the current tip; `None` if there is none (ask the node).
    pub fn complete_deep(&self, mut proof: Proof) -> Option<Proof> {
        let tip = self.tip()?;
        let deep = self.deep.lock().unwrap_or_else(|p| p.into_inner());
        if deep.tip != Some(tip) {
            return None;
        }
        let Some(anchor) = proof.anchor.as_mut() else {
            return Some(proof);
        };
        match deep.by_block.get(&anchor.block.hash)? {
            Some(headers) => anchor.headers_after = headers.clone(),
            None => proof.anchor = None,
        }
        Some(proof)
    }

    /// `proof` completed for an anchor below the cached window: from the
    /// answer kept at the current tip, else from `ask` (the node,
    /// [`complete_proof`]), which is then kept. Of the requests that miss
    /// for one anchor block at once, one calls `ask`; the others wait for
    /// it and take its answer, or its error, instead of each asking (a new
    /// tip drops every kept answer, and every request in flight would
    /// otherwise ask the node at that moment). Blocks the calling thread
    /// while it waits: call it where blocking is allowed.
    pub fn complete_deep_once(
        &self,
        proof: Proof,
        ask: impl FnOnce(Proof) -> Result<Proof, NodeError>,
    ) -> Result<Proof, NodeError> {
        if let Some(done) = self.complete_deep(proof.clone()) {
            return Ok(done);
        }
        let (Some(block), Some(_)) = (proof.anchor.as_ref().map(|a| a.block.hash), self.tip())
        else {
            // Nothing to keep the answer under: no single question to share.
            return ask(proof);
        };
        let flight = self
            .flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(block)
            .or_default()
            .clone();
        let seen = flight.finished.load(Ordering::Acquire);
        let result = {
            let mut last = flight.last.lock().unwrap_or_else(|p| p.into_inner());
            let waited_for = flight.finished.load(Ordering::Acquire) != seen;
            if let Some(done) = self.complete_deep(proof.clone()) {
                Ok(done)
            } else if let (Some(e), true) = (last.as_ref(), waited_for) {
                // The question we waited for failed: its error, not another try.
                Err(e.clone())
            } else {
                let asked_at = self.tip();
                let answer = ask(proof);
                *last = answer.as_ref().err().cloned();
                if let (Ok(p), Some(tip)) = (&answer, asked_at) {
                    self.remember_deep(tip, block, p);
                }
                flight.finished.fetch_add(1, Ordering::AcqRel);
                answer
            }
        };
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        // Ours and the map's: nobody else waits, the turn is over.
        if Arc::strong_count(&flight) == 2 {
            flights.remove(&block);
        }
        result
    }

    /// Keeps the node's completion of a proof anchored in `block`, asked
    /// while the cache's tip was `tip`, for [`TipCache::complete_deep`].
    pub fn remember_deep(
        &self,
        tip: bitcoin::BlockHash,
        block: bitcoin::BlockHash,
        completed: &Proof,
    ) {
        let mut deep = self.deep.lock().unwrap_or_else(|p| p.into_inner());
        if deep.tip != Some(tip) {
            deep.tip = Some(tip);
            deep.by_block.clear();
        }
        if deep.by_block.len() < MAX_DEEP_ANCHORS {
            let headers = completed.anchor.as_ref().map(|a| a.headers_after.clone());
            deep.by_block.insert(block, headers);
        }
    }

    /// Brings the cache to the node's best chain. Walks back from the tip
    /// until it meets a header it already holds, so a reorg replaces exactly
    /// the blocks that changed. Returns whether the tip moved.
    pub fn refresh<N: BitcoinNode>(&self, node: &N) -> Result<bool, NodeError> {
        let tip = node.best_block_hash()?;
        if self.read().tip == Some(tip) {
            return Ok(false);
        }
        let Some(status) = node.block_status(&tip)? else {
            return Ok(false);
        };
        let mut fresh = Vec::new();
        let (mut hash, mut height) = (tip, status.height);
        let lowest = status.height.saturating_sub(self.depth - 1);
        loop {
            if self
                .read()
                .by_height
                .get(&height)
                .is_some_and(|(h, _)| *h == hash)
            {
                break;
            }
            let header = node.header(&hash)?;
            fresh.push((height, hash, header));
            if height <= lowest || height == 0 {
                break;
            }
            hash = header.prev_blockhash;
            height -= 1;
        }
        let mut chain = self.chain.write().unwrap_or_else(|p| p.into_inner());
        chain
            .by_height
            .retain(|h, _| *h <= status.height && *h >= lowest);
        for (height, hash, header) in fresh {
            chain.by_height.insert(height, (hash, header));
        }
        chain.tip = Some(tip);
        chain.tip_height = status.height;
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CachedChain> {
        self.chain.read().unwrap_or_else(|p| p.into_inner())
    }

    /// [`complete_proof`] from the cache; `None` when the cache does not
    /// reach the anchor block (the caller asks the node instead).
    pub fn complete(&self, mut proof: Proof, max_headers: u32) -> Option<Proof> {
        let Some(anchor) = proof.anchor.as_mut() else {
            return Some(proof);
        };
        let chain = self.read();
        chain.tip?;
        let (hash, _) = chain.by_height.get(&anchor.block.height)?;
        if *hash != anchor.block.hash {
            proof.anchor = None;
            return Some(proof);
        }
        let last = chain
            .tip_height
            .min(anchor.block.height.saturating_add(max_headers));
        anchor.headers_after = (anchor.block.height + 1..=last)
            .filter_map(|h| chain.by_height.get(&h))
            .map(|(hash, header)| HeaderEvidence {
                hash: *hash,
                header: HexBytes(serialize(header)),
            })
            .collect();
        Some(proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchor::{AnchorConfig, Anchorer};
    use crate::fake::FakeNode;
    use aggregator::clock::FixedClock;
    use aggregator::AnchorNetwork;
    use std::sync::Arc;

    /// The fake node and a proof anchored 3 blocks deep in it.
    fn anchored_proof(dir: &tempfile::TempDir) -> (Arc<FakeNode>, Proof) {
        let (store, id) = crate::anchor::tests::store_with_one_record(dir);
        let fake = Arc::new(FakeNode::new());
        let mut a = Anchorer::new(
            store.clone(),
            fake.clone(),
            AnchorConfig::new(AnchorNetwork::Regtest),
            Arc::new(FixedClock::new(0)),
        );
        a.step().expect("anchors");
        fake.mine(3);
        a.step().expect("mined");
        let proof = store.proof(&id).expect("query").expect("sealed");
        assert!(proof.anchor.is_some());
        (fake, proof)
    }

    /// A proof anchored 3 blocks deep, a cache of 1 block (so the anchor
    /// is below its window) brought to the fake node's tip, and the node.
    fn deep_anchor(dir: &tempfile::TempDir) -> (Arc<FakeNode>, Proof, Arc<TipCache>) {
        let (fake, proof) = anchored_proof(dir);
        let cache = Arc::new(TipCache::new(1));
        cache.refresh(&fake).expect("refresh");
        assert_eq!(cache.complete(proof.clone(), 10), None, "below the window");
        (fake, proof, cache)
    }

    /// Runs `callers` threads at once through `complete_deep_once`, with
    /// `ask` answering only once every caller waits for the same turn
    /// (the map's `Arc` plus one per caller), so a caller that asks on its
    /// own shows in the count of asks.
    fn all_at_once(
        cache: &Arc<TipCache>,
        proof: &Proof,
        callers: usize,
        answer: Result<Proof, NodeError>,
    ) -> (usize, Vec<Result<Proof, NodeError>>) {
        let block = proof.anchor.as_ref().expect("anchored").block.hash;
        let asks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Arc::new(std::sync::Barrier::new(callers));
        let threads: Vec<_> = (0..callers)
            .map(|_| {
                let (cache, proof, asks, start, answer) = (
                    cache.clone(),
                    proof.clone(),
                    asks.clone(),
                    start.clone(),
                    answer.clone(),
                );
                std::thread::spawn(move || {
                    start.wait();
                    cache.complete_deep_once(proof, |_| {
                        asks.fetch_add(1, Ordering::SeqCst);
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(5);
                        while std::time::Instant::now() < deadline {
                            let waiting = cache
                                .flights
                                .lock()
                                .expect("flights")
                                .get(&block)
                                .map_or(0, Arc::strong_count);
                            if waiting == callers + 1 {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        answer
                    })
                })
            })
            .collect();
        let results = threads
            .into_iter()
            .map(|t| t.join().expect("caller"))
            .collect();
        (asks.load(Ordering::SeqCst), results)
    }

    #[test]
    fn callers_that_miss_at_once_share_one_question() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (fake, proof, cache) = deep_anchor(&dir);
        let from_node = complete_proof(&fake, proof.clone(), 10).expect("node");

        let (asks, results) = all_at_once(&cache, &proof, 16, Ok(from_node.clone()));
        assert_eq!(asks, 1, "one question for sixteen callers");
        assert!(results.iter().all(|r| r.as_ref() == Ok(&from_node)));
        assert!(
            cache.flights.lock().expect("flights").is_empty(),
            "turn over"
        );

        // Kept at this tip: no question at all; a new tip: one again.
        let ask_fails = |_| -> Result<Proof, NodeError> { panic!("kept: not asked") };
        assert_eq!(
            cache.complete_deep_once(proof.clone(), ask_fails),
            Ok(from_node)
        );
        fake.mine(1);
        assert!(cache.refresh(&fake).expect("refresh"));
        let newer = complete_proof(&fake, proof.clone(), 10).expect("node");
        let (asks, results) = all_at_once(&cache, &proof, 8, Ok(newer.clone()));
        assert_eq!(asks, 1);
        assert!(results.iter().all(|r| r.as_ref() == Ok(&newer)));
    }

    #[test]
    fn callers_that_waited_for_a_failed_question_get_its_error_and_the_next_asks_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (fake, proof, cache) = deep_anchor(&dir);
        let down = NodeError::Transient("node down".into());

        let (asks, results) = all_at_once(&cache, &proof, 16, Err(down.clone()));
        assert_eq!(asks, 1, "one failed question, not sixteen");
        assert!(results.iter().all(|r| r.as_ref() == Err(&down)));
        assert!(
            cache.flights.lock().expect("flights").is_empty(),
            "turn over"
        );
        assert_eq!(
            cache.complete_deep(proof.clone()),
            None,
            "a failure is not kept"
        );

        // The next caller asks again, and its answer is kept.
        let from_node = complete_proof(&fake, proof.clone(), 10).expect("node");
        let answer = from_node.clone();
        assert_eq!(
            cache.complete_deep_once(proof.clone(), move |_| Ok(answer)),
            Ok(from_node.clone())
        );
        assert_eq!(cache.complete_deep(proof), Some(from_node));
    }

    #[test]
    fn cached_completion_matches_the_node_and_follows_reorgs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (fake, proof) = anchored_proof(&dir);

        let cache = TipCache::new(100);
        assert!(cache.refresh(&fake).expect("refresh"));
        assert!(
            !cache.refresh(&fake).expect("refresh"),
            "unchanged tip: nothing to do"
        );
        let from_node = complete_proof(&fake, proof.clone(), 10).expect("node");
        assert_eq!(cache.complete(proof.clone(), 10), Some(from_node.clone()));
        assert_eq!(
            from_node.anchor.as_ref().map(|a| a.headers_after.len()),
            Some(2)
        );

        let shallow = TipCache::new(1);
        shallow.refresh(&fake).expect("refresh");
        assert_eq!(
            shallow.complete(proof.clone(), 10),
            None,
            "anchor below the cached window"
        );

        // Below the window: the node's answer is kept until the tip moves.
        let tip = shallow.tip().expect("refreshed");
        let block = proof.anchor.as_ref().expect("anchored").block.hash;
        assert_eq!(
            shallow.complete_deep(proof.clone()),
            None,
            "nothing kept yet"
        );
        shallow.remember_deep(tip, block, &from_node);
        assert_eq!(
            shallow.complete_deep(proof.clone()),
            Some(from_node.clone())
        );
        fake.mine(1);
        assert!(shallow.refresh(&fake).expect("refresh"));
        assert_eq!(
            shallow.complete_deep(proof.clone()),
            None,
            "a new tip: ask the node again"
        );

        fake.reorg(4, 5);
        assert!(cache.refresh(&fake).expect("refresh"));
        assert!(shallow.refresh(&fake).expect("refresh"));
        let gone = complete_proof(&fake, proof.clone(), 10).expect("node");
        assert!(gone.anchor.is_none());
        shallow.remember_deep(shallow.tip().expect("tip"), block, &gone);
        assert_eq!(
            shallow.complete_deep(proof.clone()),
            Some(gone),
            "a kept answer says the block left the chain"
        );
        let after = cache.complete(proof.clone(), 10).expect("covered");
        assert!(after.anchor.is_none(), "never served from a stale block");
        assert_eq!(Some(after), complete_proof(&fake, proof, 10).ok());
    }
}
