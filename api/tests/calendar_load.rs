//! Issue 15, finding 2, at the rate the issue names: 1,000 calendar digests
//! a second for 60 s (`BTCTS_CALENDAR_LOAD_SECS` to change it) against the
//! real binary on litecoind regtest with a block every 2 s. A consumer
//! chain's record submitted in the middle is anchored within 2 blocks; no
//! block holds more than one anchor; every batch is anchored once; the
//! calendar answers 200 or its documented 503, nothing else.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use btcts_tests::node::RegtestNode;

mod common;
use common::*;

const RATE: u64 = 1_000;
const BLOCK_EVERY: Duration = Duration::from_secs(2);
const WORKERS: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the figures are the test's report
async fn a_consumer_record_is_anchored_within_two_blocks_under_calendar_load() -> Result<()> {
    let secs: u64 = std::env::var("BTCTS_CALENDAR_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let node = Arc::new(RegtestNode::start()?);
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str("[opentimestamps]\ndigests_per_second = 100000\ndigest_burst = 100000\n");
    std::fs::write(&config, text)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    let start_height = tip_height(&node)?;

    // A block every 2 s, from a thread of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let miner = std::thread::spawn({
        let (node, stop) = (node.clone(), stop.clone());
        move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(BLOCK_EVERY);
                node.mine(1)?;
            }
            Ok(())
        }
    });

    // 1,000 digests a second: WORKERS clients, each on its own schedule.
    let (ok, busy) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let load: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (url, ok, busy) = (daemon.url.clone(), ok.clone(), busy.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let period = Duration::from_micros(1_000_000 * WORKERS / RATE);
                let mut tick = tokio::time::interval(period);
                for i in 0..secs * RATE / WORKERS {
                    tick.tick().await;
                    let r = client
                        .post(format!("{url}/digest"))
                        .body(format!("worker {w} digest {i}"))
                        .send()
                        .await
                        .context("digest")?;
                    match r.status().as_u16() {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        503 => busy.fetch_add(1, Ordering::Relaxed),
                        other => anyhow::bail!("digest answered {other}"),
                    };
                }
                anyhow::Ok(())
            })
        })
        .collect();

    // Half-way: one consumer-chain record.
    tokio::time::sleep(Duration::from_secs(secs / 2)).await;
    let id = submit(&daemon, 0, 1..2, 7).await?.remove(0);
    // The tip once the record is acknowledged (durable and pending).
    let at_submit = tip_height(&node)?;
    let anchored_at = loop {
        let (_, r) = get(&daemon, &format!("/v1/records/{id}")).await?;
        if let Some(h) = r["block_height"].as_u64() {
            break h;
        }
        ensure!(
            tip_height(&node)? <= at_submit + 4,
            "the record is still not anchored 4 blocks later: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for task in load {
        task.await??;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    miner
        .join()
        .map_err(|_| anyhow::anyhow!("miner panicked"))??;

    let (ok, busy) = (ok.load(Ordering::Relaxed), busy.load(Ordering::Relaxed));
    eprintln!(
        "{ok} digests accepted, {busy} busy, in {:.1} s; record submitted at height {at_submit}, anchored at {anchored_at}",
        elapsed.as_secs_f64()
    );
    ensure!(
        anchored_at <= at_submit + 2,
        "submitted at height {at_submit}, anchored at {anchored_at}"
    );
    ensure!(
        ok + busy == secs * RATE && elapsed < Duration::from_secs(secs * 3 / 2),
        "the load was not offered at {RATE}/s: {} in {elapsed:?}",
        ok + busy
    );

    // Every block since the start: at most one anchor each, and no batch twice.
    let mut batches: BTreeMap<u64, u64> = BTreeMap::new();
    for (height, anchors) in anchors_by_block(&node, start_height)? {
        ensure!(
            anchors.len() <= 1,
            "block {height} holds {} anchors",
            anchors.len()
        );
        for p in anchors {
            if let Some(first) = batches.insert(p.batch.0, height) {
                anyhow::bail!(
                    "batch {} anchored at {first} and again at {height}",
                    p.batch
                );
            }
        }
    }
    eprintln!(
        "{} anchors in {} blocks",
        batches.len(),
        tip_height(&node)? - start_height
    );
    Ok(())
}
