//! End to end over real sockets: the `btcts serve` binary against a real
//! litecoind regtest node. 3 chains × 100 records go from pending to
//! confirmed, every proof verifies (library, and once with `btcts verify`),
//! the chain status drops after a reorg of the anchor block, and the daemon
//! survives SIGTERM and SIGKILL without losing an acknowledged record.

use std::process::Command;
use std::time::{Duration, Instant};

use aggregator::{verify, AnchorNetwork, Expect, Proof};
use anyhow::{ensure, Context, Result};
use btcts_tests::node::RegtestNode;
use serde_json::{json, Value};

mod common;
use common::*;

/// Mines a block every 200 ms until every id is `confirmed`.
async fn mine_until_confirmed(d: &Daemon, node: &RegtestNode, ids: &[String]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending: Vec<String> = ids.to_vec();
    while !pending.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "{} records not confirmed in time",
            pending.len()
        );
        node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut still = Vec::new();
        for id in pending {
            let (_, r) = get(d, &format!("/v1/records/{id}")).await?;
            if r["status"] != "confirmed" {
                still.push(id);
            }
        }
        pending = still;
    }
    Ok(())
}

async fn wait_for(d: &Daemon, path: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = get(d, path).await?;
        if pred(&v) {
            return Ok(v);
        }
        ensure!(
            Instant::now() < deadline,
            "{path} never reached the expected state: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_chains_confirm_verify_survive_a_reorg_and_restarts() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let log = dir.path().join("btcts.log");
    let daemon = start(&config, port, &log).await?;

    let mut ids = Vec::new();
    for chain in 0..3 {
        ids.extend(submit(&daemon, chain, 0..50, 1).await?);
        ids.extend(submit(&daemon, chain, 50..100, 1).await?);
    }
    ensure!(ids.len() == 300);
    mine_until_confirmed(&daemon, &node, &ids).await?;

    let expect = Expect {
        network: Some(AnchorNetwork::LitecoinRegtest),
        tag: None,
    };
    for id in &ids {
        let (status, proof) = get(&daemon, &format!("/v1/records/{id}/proof")).await?;
        ensure!(status == 200, "proof of {id}: {status}");
        let proof: Proof = serde_json::from_value(proof)?;
        let v = verify(&proof, &expect).map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
        ensure!(
            v.anchor.is_some_and(|a| u64::from(a.confirmations) >= K),
            "{id} shows its depth"
        );
    }
    let (_, one) = get(&daemon, &format!("/v1/records/{}/proof", ids[0])).await?;
    let file = dir.path().join("proof.json");
    std::fs::write(&file, one.to_string())?;
    let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["verify", "--network", "litecoin-regtest"])
        .arg(&file)
        .output()?;
    ensure!(
        out.status.success(),
        "btcts verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for chain in 0..3 {
        let (_, s) = get(&daemon, &format!("/v1/chains/chain-{chain}/status")).await?;
        ensure!(
            s["latest_confirmed"]["height"] == 99 && s["latest_submitted_height"] == 99,
            "chain-{chain}: {s}"
        );
    }

    // Reorg out the block anchoring chain-0's height 99: its status must drop.
    let (_, s) = get(&daemon, "/v1/chains/chain-0/status").await?;
    let anchor_block: bitcoin::BlockHash =
        serde_json::from_value(s["latest_confirmed"]["bitcoin_block_hash"].clone())?;
    let depth = s["latest_confirmed"]["confirmations"]
        .as_u64()
        .context("confirmations")?;
    node.reorg_from(&anchor_block, u32::try_from(depth)? + 1)?;
    let dropped = wait_for(&daemon, "/v1/chains/chain-0/status", |s| {
        s["latest_confirmed"]["height"] != 99
    })
    .await?;
    ensure!(
        dropped["latest_anchored"]["bitcoin_block_hash"] != json!(anchor_block),
        "never reports the stale block: {dropped}"
    );
    mine_until_confirmed(&daemon, &node, &ids).await?;

    // SIGTERM: a clean stop; then restart on the same data dir.
    let more = submit(&daemon, 1, 100..110, 2).await?;
    let pid = daemon.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let mut daemon = daemon;
    let status = daemon.child.wait()?;
    ensure!(status.success(), "clean exit on SIGTERM, got {status}");
    drop(daemon);
    let daemon = start(&config, port, &log).await?;
    for id in ids.iter().chain(&more) {
        ensure!(
            get(&daemon, &format!("/v1/records/{id}")).await?.0 == 200,
            "{id} lost across SIGTERM"
        );
    }
    mine_until_confirmed(&daemon, &node, &more).await?;

    // SIGKILL right after acknowledgements: nothing acknowledged is lost.
    let last = submit(&daemon, 2, 100..120, 3).await?;
    drop(daemon); // kill -9
    let daemon = start(&config, port, &log).await?;
    for id in &last {
        ensure!(
            get(&daemon, &format!("/v1/records/{id}")).await?.0 == 200,
            "{id} lost across SIGKILL"
        );
    }
    mine_until_confirmed(&daemon, &node, &last).await?;
    let (_, s) = get(&daemon, "/v1/chains/chain-2/status").await?;
    ensure!(s["latest_confirmed"]["height"] == 119, "{s}");
    Ok(())
}

/// Issue 19 against the real binary: a cadence of 3 blocks and a daily fee
/// budget of about one and a half anchors. The first anchor goes out; the
/// second waits for the budget (`GET /v1/anchoring` says so, the metric is
/// set, `/readyz` stays ready, records are still accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_fee_budget_pauses_anchoring_and_v1_anchoring_says_so() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let mut text = std::fs::read_to_string(&config)?;
    // Anchors here pay the 2 sat/vB fallback for ~166 vB: ~332 sat each.
    text.push_str("[batching]\nmin_blocks_between_anchors = 3\n[fees]\ndaily_budget_sat = 500\n");
    std::fs::write(&config, text)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;

    let first = submit(&daemon, 0, 1..2, 1).await?.remove(0);
    mine_until(&daemon, &node, &first, 1).await?;
    let second = submit(&daemon, 0, 2..3, 1).await?.remove(0);
    for _ in 0..5 {
        node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let v = wait_for(&daemon, "/v1/anchoring", |v| {
        v["state"] == "budget_exhausted" && v["spending"]["today_anchors"] == 1
    })
    .await?;
    let spent = v["spending"]["today_sat"].as_u64().context("today_sat")?;
    ensure!((300..=500).contains(&spent), "{v}");
    ensure!(
        v["daily_budget_sat"] == 500 && v["min_blocks_between_anchors"] == 3,
        "{v}"
    );
    ensure!(v["projected_monthly_anchors"] == 1440, "{v}");
    ensure!(v["pending_records"] == 1, "{v}");
    let (_, r) = get(&daemon, &format!("/v1/records/{second}")).await?;
    ensure!(r["block_height"].is_null(), "anchored over the budget: {r}");
    let (status, _) = get(&daemon, "/readyz").await?;
    ensure!(
        status == 200,
        "/readyz {status} while the budget pauses anchoring"
    );
    let metrics = reqwest::get(format!("{}/metrics", daemon.url))
        .await?
        .text()
        .await?;
    ensure!(
        metrics.contains("btcts_anchor_budget_exhausted 1"),
        "no budget gauge in /metrics"
    );
    ensure!(metrics.contains("btcts_anchor_spent_today_sat"));
    let log = std::fs::read_to_string(&daemon.log)?;
    ensure!(
        log.matches("daily fee budget reached").count() == 1,
        "the pause is logged once"
    );
    Ok(())
}
