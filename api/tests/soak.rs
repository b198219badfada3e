//! Soak (issue 15): the real binary on litecoind regtest for a few minutes
//! (`BTCTS_SOAK_SECS`, default 120) under a mix of consumer-chain
//! submissions, calendar digests and proof reads, while blocks are mined
//! every second and, in turn, the node is restarted, the chain reorganises
//! and btcts is killed with SIGKILL and started again. It ends with the
//! invariants:
//!
//! - every acknowledged record is there (never a 404), gets confirmed, and
//!   its proof verifies;
//! - each batch is anchored once in the best chain;
//! - no 5xx but the documented 503s;
//! - btcts's resident memory stays bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator::leaf::leaf_hash;
use aggregator::proof::Proof;
use aggregator::types::RawDigest;
use aggregator::verify::{verify, Expect};
use aggregator::{AnchorNetwork, Record};
use anyhow::{ensure, Context, Result};
use bitcoin::hashes::Hash;
use btcts_tests::node::RegtestNode;
use serde_json::{json, Value};

mod common;
use common::*;

/// 503 codes docs/operations.md documents; any other 5xx is a failure.
const DOCUMENTED_503: [&str; 7] = [
    "node_unavailable",
    "store_unavailable",
    "disk_full",
    "calendar_busy",
    "overloaded",
    "shutting_down",
    "timeout",
];
/// Most resident memory btcts may use during the soak.
const MAX_RSS_KB: u64 = 512 * 1024;

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged record ids (hex).
    acked: Mutex<BTreeSet<String>>,
    /// Unexpected answers, described.
    violations: Mutex<Vec<String>>,
    /// Requests answered, and those refused with a documented 503.
    answered: AtomicU64,
    refused: AtomicU64,
}

impl Seen {
    fn violation(&self, what: String) {
        if let Ok(mut v) = self.violations.lock() {
            v.push(what);
        }
    }

    /// Judges one answer: `Ok(true)` when it is a success.
    fn judge(&self, what: &str, status: u16, body: &[u8]) -> bool {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if status < 500 {
            return true;
        }
        let code = code_of(body);
        if status == 503 && DOCUMENTED_503.contains(&code.as_str()) {
            self.refused.fetch_add(1, Ordering::Relaxed);
        } else {
            self.violation(format!(
                "{what}: {status} {}",
                String::from_utf8_lossy(body)
            ));
        }
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the figures are the test's report
async fn soak_with_restarts_reorgs_and_a_kill() -> Result<()> {
    let secs: u64 = std::env::var("BTCTS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
        .max(20);
    let mut node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str("[opentimestamps]\ndigests_per_second = 100000\ndigest_burst = 100000\n");
    std::fs::write(&config, text)?;
    let log = dir.path().join("btcts.log");
    let mut daemon = start(&config, port, &log).await?;
    let url = daemon.url.clone();
    let start_height = tip_height(&node)?;

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let rss = Arc::new(AtomicU64::new(0));
    let pid = Arc::new(AtomicU64::new(u64::from(daemon.child.id())));
    let mut load = Vec::new();
    // Three consumer chains, 10 heights a request, ~5 requests/s each.
    for chain in 0..3 {
        let (url, seen, stop) = (url.clone(), seen.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut next = 1u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let blocks: Vec<Value> = (next..next + 10)
                    .map(|h| json!({ "height": h, "block_hash": format!("{:056x}{chain:08x}", h), "staker_set_digest": "cd".repeat(32) }))
                    .collect();
                let Ok(r) = client
                    .post(format!("{url}/v1/chains/chain-{chain}/blocks"))
                    .bearer_auth(format!("token-{chain}"))
                    .json(&json!({ "blocks": blocks }))
                    .send()
                    .await
                else {
                    continue; // btcts is down: nothing was acknowledged
                };
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                if seen.judge("submit", status, &body) && status == 202 {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let ids = v["records"].as_array().cloned().unwrap_or_default();
                    if ids.len() != 10 {
                        seen.violation(format!("202 without 10 records: {v}"));
                    }
                    if let Ok(mut acked) = seen.acked.lock() {
                        acked.extend(ids.iter().filter_map(|r| r["id"].as_str().map(str::to_owned)));
                    }
                    next += 10;
                }
            }
        }));
    }
    // Calendar digests, ~50/s.
    {
        let (url, seen, stop) = (url.clone(), seen.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                i += 1;
                let digest = bitcoin::hashes::sha256::Hash::hash(&i.to_le_bytes());
                let Ok(r) = client
                    .post(format!("{url}/digest"))
                    .body(digest.to_byte_array().to_vec())
                    .send()
                    .await
                else {
                    continue;
                };
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                if seen.judge("digest", status, &body) && status == 200 {
                    let id = leaf_hash(&Record::Digest {
                        digest: RawDigest(digest.to_byte_array()),
                    });
                    if let Ok(mut acked) = seen.acked.lock() {
                        acked.insert(id.to_string());
                    }
                }
            }
        }));
    }
    // Reads of acknowledged records: never a 404.
    {
        let (url, seen, stop) = (url.clone(), seen.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let id = {
                    let Ok(acked) = seen.acked.lock() else { break };
                    if acked.is_empty() {
                        continue;
                    }
                    n = n.wrapping_mul(31).wrapping_add(7);
                    acked.iter().nth(n % acked.len()).cloned()
                };
                let Some(id) = id else { continue };
                let Ok(r) = client
                    .get(format!("{url}/v1/records/{id}/proof"))
                    .bearer_auth("token-0")
                    .send()
                    .await
                else {
                    continue;
                };
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                if status == 404 && code_of(&body) != "not_batched_yet" {
                    seen.violation(format!(
                        "acknowledged record {id} answered 404 {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                seen.judge("proof", status, &body);
            }
        }));
    }
    // btcts's resident memory, once a second.
    {
        let (rss, pid, stop) = (rss.clone(), pid.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!(
                    "/proc/{}/status",
                    pid.load(Ordering::Relaxed)
                ))
                .unwrap_or_default();
                let kb = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                    .unwrap_or(0);
                rss.fetch_max(kb, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }

    // The faults, in turn, while a block is mined every second.
    let started = Instant::now();
    let mut faults = vec![
        (secs / 4, "node restart"),
        (secs / 2, "reorg"),
        (secs * 3 / 4, "kill"),
    ];
    faults.reverse();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        node.mine(1)?;
        let Some(&(at, fault)) = faults.last() else {
            continue;
        };
        if started.elapsed() < Duration::from_secs(at) {
            continue;
        }
        faults.pop();
        eprintln!("{:?}: {fault}", started.elapsed());
        match fault {
            "node restart" => {
                node.stop()?;
                tokio::time::sleep(Duration::from_secs(5)).await;
                node.start_again()?;
            }
            "reorg" => {
                node.reorg(2)?;
            }
            _ => {
                // SIGKILL (Daemon's drop) and the same configuration again.
                drop(daemon);
                daemon = start(&config, port, &log).await?;
                pid.store(u64::from(daemon.child.id()), Ordering::Relaxed);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await?;
    }

    // Every acknowledged record confirmed: mine until they are.
    let acked: Vec<String> = seen
        .acked
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .cloned()
        .collect();
    ensure!(
        acked.len() > 100,
        "only {} records acknowledged",
        acked.len()
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut proofs = BTreeMap::new();
    for id in &acked {
        loop {
            let r = client
                .get(format!("{url}/v1/records/{id}/proof"))
                .bearer_auth("token-0")
                .send()
                .await?;
            if r.status().as_u16() == 404 {
                let body = r.bytes().await?;
                ensure!(
                    code_of(&body) == "not_batched_yet",
                    "acknowledged record {id} lost: {}",
                    String::from_utf8_lossy(&body)
                );
            } else if r.status().is_success() {
                let proof: Proof = r.json().await.context("proof JSON")?;
                let depth = proof
                    .anchor
                    .as_ref()
                    .map_or(0, |a| 1 + a.headers_after.len() as u64);
                if depth >= K {
                    proofs.insert(id.clone(), proof);
                    break;
                }
            }
            ensure!(Instant::now() < deadline, "{id} never confirmed");
            node.mine(1)?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Every proof verifies, on the network named.
    let expect = Expect {
        network: Some(AnchorNetwork::LitecoinRegtest),
        tag: None,
    };
    let mut batches_of_records = BTreeSet::new();
    for (id, proof) in &proofs {
        let v = verify(proof, &expect).map_err(|e| anyhow::anyhow!("proof of {id}: {e}"))?;
        ensure!(v.leaf.to_string() == *id, "proof of {id} is for {}", v.leaf);
        batches_of_records.insert(v.batch.0);
    }

    // Each batch anchored once in the best chain. (A block may hold two:
    // the reorg returns the anchors of both blocks it removes to the
    // mempool, and the next block mines them together.)
    let mut anchored: BTreeMap<u64, u64> = BTreeMap::new();
    for (h, payloads) in anchors_by_block(&node, start_height)? {
        for p in payloads {
            if let Some(first) = anchored.insert(p.batch.0, h) {
                anyhow::bail!("batch {} anchored at {first} and again at {h}", p.batch);
            }
        }
    }
    for b in &batches_of_records {
        ensure!(
            anchored.contains_key(b),
            "batch {b} is not in the best chain"
        );
    }

    let violations = seen
        .violations
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let max_rss = rss.load(Ordering::Relaxed);
    eprintln!(
        "soak {secs} s: {} records acknowledged and verified, {} batches, {} requests ({} documented 503s), max RSS {} MiB",
        acked.len(),
        anchored.len(),
        seen.answered.load(Ordering::Relaxed),
        seen.refused.load(Ordering::Relaxed),
        max_rss / 1024
    );
    ensure!(violations.is_empty(), "unexpected answers: {violations:#?}");
    ensure!(
        max_rss > 0 && max_rss < MAX_RSS_KB,
        "btcts used {max_rss} kB resident"
    );
    drop(daemon);
    Ok(())
}

/// The error code of a JSON error body ("" if none).
fn code_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}
