//! HTTP load generator for docs/BENCHMARKS.md: N concurrent keep-alive
//! connections for a fixed time against a running btcts (e.g. `btcts dev`),
//! reporting requests/s, records/s and latency percentiles. Loopback only.
//!
//! ```sh
//! cargo run --release -p btcts --example http_load -- --url http://127.0.0.1:8080 \
//!     --token <dev token> --mode post1 --connections 64 --seconds 10
//! ```

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// One record per POST.
    Post1,
    /// 1000 records per POST.
    Post1000,
    /// GET the proof of a sealed record.
    Proof,
}

#[derive(Parser, Debug)]
struct Args {
    /// The server (loopback).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A token of `--chain`.
    #[arg(long)]
    token: String,
    /// The chain to submit for.
    #[arg(long, default_value = "dev-chain")]
    chain: String,
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

static NEXT_HEIGHT: AtomicU64 = AtomicU64::new(0);

fn body(records: u64) -> Value {
    let start = NEXT_HEIGHT.fetch_add(records, Ordering::Relaxed);
    let salt = std::process::id();
    let blocks: Vec<Value> = (start..start + records)
        .map(|h| {
            json!({
                "height": h,
                "block_hash": format!("{salt:08x}{h:056x}"),
                "staker_set_digest": "ab".repeat(32),
            })
        })
        .collect();
    json!({ "blocks": blocks })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.url.starts_with("http://127.") || args.url.starts_with("http://localhost"),
        "load tests only target loopback"
    );
    NEXT_HEIGHT.store(u64::from(std::process::id()) << 32, Ordering::Relaxed);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let submit_url = format!("{}/v1/chains/{}/blocks", args.url, args.chain);
    let proof_url = match args.mode {
        Mode::Proof => Some(prepare_proof(&client, &args, &submit_url).await?),
        _ => None,
    };
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (client, submit_url, proof_url, token) = (
                client.clone(),
                submit_url.clone(),
                proof_url.clone(),
                args.token.clone(),
            );
            let mode = args.mode;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let response = match (mode, &proof_url) {
                        (Mode::Proof, Some(u)) => client.get(u).send().await,
                        (Mode::Post1, _) => {
                            client
                                .post(&submit_url)
                                .bearer_auth(&token)
                                .json(&body(1))
                                .send()
                                .await
                        }
                        _ => {
                            client
                                .post(&submit_url)
                                .bearer_auth(&token)
                                .json(&body(1000))
                                .send()
                                .await
                        }
                    };
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let per_request = match args.mode {
        Mode::Post1000 => 1000.0,
        _ => 1.0,
    };
    println!(
        "{:?}: {} ok, {errors} errors in {elapsed:.1} s over {} connections: {:.0} req/s, {:.0} records/s; \
         latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.mode,
        all.len(),
        args.connections,
        all.len() as f64 / elapsed,
        all.len() as f64 * per_request / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}

/// Submits one record and waits until it is sealed, so its proof exists.
async fn prepare_proof(client: &reqwest::Client, args: &Args, submit_url: &str) -> Result<String> {
    let r: Value = client
        .post(submit_url)
        .bearer_auth(&args.token)
        .json(&body(1))
        .send()
        .await?
        .json()
        .await?;
    let id = r["records"][0]["id"].as_str().context("id")?.to_owned();
    let url = format!("{}/v1/records/{id}/proof", args.url);
    for _ in 0..600 {
        if client.get(&url).send().await?.status().is_success() {
            return Ok(url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("record {id} was never sealed")
}
