//! Block → proof latency for docs/BENCHMARKS.md (issue 18, target 3): how
//! long after a block reaches the node a record's status turns `anchored`,
//! and how long after the k-th block it turns `confirmed`.
//!
//! Starts litecoind regtest (the test harness) and btcts in this process
//! (`server::serve`, default `node.poll_ms` = 1000), then per round: submits
//! a record, waits until its anchor transaction is in the node's mempool,
//! mines one block (`generatetodescriptor`; its return is when the block
//! reached the node) and polls `GET /v1/records/{id}` every millisecond
//! until `anchored`; then mines k − 1 blocks in one call and polls until
//! `confirmed`. Prints p50/p99/max of both.
//!
//! ```sh
//! cargo run --release -p btcts --example block_latency -- --rounds 100 --confirmations 6
//! ```

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btc_submitter::{AnchorConfig, RpcAuth, RpcConfig};
use btcts_api::auth::{Credentials, TokenHash};
use btcts_api::config::{LimitsSection, OtsSettings, Settings, WebhookSettings};
use btcts_tests::node::RegtestNode;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    /// Blocks measured (each is one record anchored and confirmed).
    #[arg(long, default_value_t = 100)]
    rounds: usize,
    /// k: confirmations after which a record is `confirmed`.
    #[arg(long, default_value_t = 6)]
    confirmations: u32,
    /// `node.poll_ms` of the server (the fallback timer).
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
}

const CHAIN: &str = "bench-chain";
const TOKEN: &str = "bench-token";

fn main() -> Result<()> {
    let args = Args::parse();
    let node = RegtestNode::start()?;
    let data = tempfile::Builder::new()
        .prefix("btcts-latency-")
        .tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let settings = settings(&node, &data, port, &args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(btcts_api::server::serve(settings, None, async {
        let _ = stopped.await;
    }));
    let url = format!("http://127.0.0.1:{port}");
    let measured = runtime.block_on(measure(&node, &url, &args));
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    let (anchored, confirmed) = measured?;
    println!(
        "block → anchored  ({} blocks): {}",
        anchored.len(),
        summary(anchored)
    );
    println!(
        "k-th block → confirmed (k = {}, {} blocks): {}",
        args.confirmations,
        confirmed.len(),
        summary(confirmed)
    );
    Ok(())
}

fn settings(
    node: &RegtestNode,
    data: &tempfile::TempDir,
    port: u16,
    args: &Args,
) -> Result<Settings> {
    let (user, password) = node.credentials();
    let mut anchor = AnchorConfig::new(node.kind().network());
    anchor.confirmations = args.confirmations;
    anchor.poll = Duration::from_millis(args.poll_ms);
    let mut credentials = Credentials::default();
    credentials
        .chains
        .insert(CHAIN.parse()?, vec![TokenHash::of(TOKEN)]);
    Ok(Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        data_dir: data.path().to_path_buf(),
        store: Default::default(),
        rpc: RpcConfig {
            url: format!("{}/wallet/btcts", node.rpc_url()),
            auth: RpcAuth::UserPass(user, password),
        },
        anchor,
        limits: LimitsSection {
            rate_per_second: 1_000_000,
            rate_burst: 1_000_000,
            ..LimitsSection::default()
        },
        credentials,
        ots: OtsSettings::default(),
        ibc: None,
        events: Default::default(),
        access_log: false,
        webhooks: WebhookSettings::default(),
    })
}

async fn measure(
    node: &RegtestNode,
    url: &str,
    args: &Args,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let http = reqwest::Client::new();
    wait_ready(&http, url).await?;
    let (mut anchored, mut confirmed) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let id = submit(&http, url, round as u64).await?;
        until(&http, url, &id, |status| status == "batched").await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while node
            .call("getrawmempool", &[])?
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            ensure!(
                Instant::now() < deadline,
                "round {round}: no anchor in the mempool"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        node.mine(1)?;
        let mined = Instant::now();
        until(&http, url, &id, |status| status == "anchored").await?;
        anchored.push(mined.elapsed());
        if args.confirmations > 1 {
            node.mine(u64::from(args.confirmations) - 1)?;
        }
        let kth = Instant::now();
        until(&http, url, &id, |status| status == "confirmed").await?;
        confirmed.push(kth.elapsed());
    }
    Ok((anchored, confirmed))
}

async fn wait_ready(http: &reqwest::Client, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("btcts did not become ready")
}

/// Submits height `height` of the bench chain; returns the record id.
async fn submit(http: &reqwest::Client, url: &str, height: u64) -> Result<String> {
    let body = json!({ "blocks": [{
        "height": height,
        "block_hash": format!("{height:064x}"),
        "staker_set_digest": "ab".repeat(32),
    }] });
    let r: Value = http
        .post(format!("{url}/v1/chains/{CHAIN}/blocks"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(r["records"][0]["id"]
        .as_str()
        .context("record id")?
        .to_owned())
}

/// Polls record `id` every millisecond until its status passes `done`.
async fn until(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    done: impl Fn(&str) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r: Value = http
            .get(format!("{url}/v1/records/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if done(r["status"].as_str().unwrap_or_default()) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "record {id} stuck at {r}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn summary(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(v[v.len() - 1]),
        ms(v[0])
    )
}
