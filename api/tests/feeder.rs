//! `btcts feed` over real sockets: the real consumer chain (`btcts-consumerd`
//! localnet), the real `btcts serve` (on litecoind regtest) and the `btcts
//! feed` process. The feeder posts every block; each stored record's
//! `block_hash` and `staker_set_digest` are the chain's own (read back over
//! CometBFT RPC, independently of the feeder's gRPC path); a SIGKILL of the
//! feeder and a restart skip no height and post none as a new record twice
//! (re-posts are reported as duplicates); btcts down for a few seconds and
//! the feeder recovers; `--status` shows the cursor and the lag.
//!
//! `feeder_catch_up_benchmark` (ignored; run by hand) measures catching up
//! 10,000 blocks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btcts_api::auth::TokenHash;
use btcts_tests::chain::{btcts_genesis, ChainOptions, ConsumerChain};
use btcts_tests::node::RegtestNode;
use serde_json::Value;

mod common;
use common::*;

const CHAIN: &str = "feed-chain";

/// The 80 bytes of Bitcoin regtest's genesis header: x/btcts needs a
/// checkpoint to start, and the feeder never delivers to it.
fn genesis_header() -> [u8; 80] {
    let header = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header;
    let mut bytes = [0u8; 80];
    bytes.copy_from_slice(&bitcoin::consensus::serialize(&header));
    bytes
}

fn start_chain(block_time: Duration) -> Result<ConsumerChain> {
    ConsumerChain::start(ChainOptions {
        chain_id: CHAIN.into(),
        btcts_genesis: Some(btcts_genesis("regtest", &[CHAIN], 3, 0, &genesis_header())),
        block_time,
        ..ChainOptions::default()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A btcts configuration in `dir` that also accepts `chains` with their tokens.
fn config(dir: &Path, node: &RegtestNode, port: u16, chains: &[(&str, &str)]) -> Result<PathBuf> {
    let path = write_config(dir, node, port)?;
    let mut text = std::fs::read_to_string(&path)?;
    ensure!(
        text.trim_end().ends_with(']'),
        "[auth.chains] is the last table"
    );
    for (chain, token) in chains {
        text.push_str(&format!(
            "\"{chain}\" = [\"{}\"]\n",
            hex(&TokenHash::of(token).0)
        ));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `btcts feed` with its output appended to `log`.
fn spawn_feed(args: &[&str], log: &Path) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Ok(Command::new(env!("CARGO_BIN_EXE_btcts"))
        .arg("feed")
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("BTCTS_FEED_TOKEN")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// The feeder's cursor, if written.
fn cursor(path: &Path) -> Result<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let v: Value = serde_json::from_str(&text)?;
            ensure!(v["chain_id"] == CHAIN, "cursor {text}");
            Ok(Some(v["height"].as_u64().context("cursor height")?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Waits until the cursor reaches `height`.
async fn wait_cursor(path: &Path, height: u64, feed: &mut Child, log: &Path) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(c) = cursor(path)? {
            if c >= height {
                return Ok(c);
            }
        }
        if let Some(status) = feed.try_wait()? {
            bail!(
                "btcts feed exited ({status}): {}",
                std::fs::read_to_string(log)?
            );
        }
        if Instant::now() > deadline {
            bail!(
                "cursor stuck below {height}: {}",
                std::fs::read_to_string(log)?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `key=value` field of a log line (ANSI escapes removed).
fn field(line: &str, key: &str) -> Option<u64> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    let at = plain.find(&format!(" {key}="))? + key.len() + 2;
    plain[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The block ID hash and validators hash of `height`, from CometBFT RPC.
async fn chain_block(rpc: &str, height: u64) -> Result<(String, String)> {
    let v: Value = reqwest::get(format!("{rpc}/block?height={height}"))
        .await?
        .json()
        .await?;
    let r = if v["result"].is_null() {
        &v
    } else {
        &v["result"]
    };
    let id = r["block_id"]["hash"].as_str().context("block_id.hash")?;
    let vals = r["block"]["header"]["validators_hash"]
        .as_str()
        .context("validators_hash")?;
    Ok((id.to_lowercase(), vals.to_lowercase()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeder_posts_every_block_survives_sigkill_and_btcts_downtime() -> Result<()> {
    let node = RegtestNode::start()?;
    let chain = start_chain(Duration::from_millis(300))?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let cfg = config(dir.path(), &node, port, &[(CHAIN, "feed-token")])?;
    let btcts_log = dir.path().join("btcts.log");
    let mut daemon = start(&cfg, port, &btcts_log).await?;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "feed-token\n")?;
    let state = dir.path().join("state");
    let cursor_file = state.join(format!("{CHAIN}.cursor"));
    let log = dir.path().join("feed.log");
    let grpc = chain.grpc_url();
    let args = [
        "--chain-id",
        CHAIN,
        "--grpc",
        &grpc,
        "--btcts",
        &daemon.url,
        "--token-file",
        token_file.to_str().context("path")?,
        "--state-dir",
        state.to_str().context("path")?,
        "--batch",
        "7",
        "--poll-ms",
        "200",
        "--max-backoff-secs",
        "1",
    ];

    // First run, then SIGKILL.
    let mut feed = spawn_feed(&args, &log)?;
    let first = wait_cursor(&cursor_file, 12, &mut feed, &log).await?;
    feed.kill()?;
    feed.wait()?;
    let killed_at = cursor(&cursor_file)?.context("cursor")?;
    ensure!(killed_at >= first);
    // The SIGKILL may land anywhere; put the cursor where a kill between a
    // POST and the cursor write would leave it, 5 blocks back, so the
    // re-post path is exercised for sure.
    std::fs::write(
        &cursor_file,
        format!(
            "{{\"chain_id\":\"{CHAIN}\",\"height\":{}}}\n",
            killed_at - 5
        ),
    )?;

    // Restarted: carries on.
    let mut feed = spawn_feed(&args, &log)?;
    let resumed = wait_cursor(&cursor_file, killed_at + 10, &mut feed, &log).await?;

    // btcts down for 3 s (SIGKILL), then back on the same port and data.
    daemon.child.kill()?;
    daemon.child.wait()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon = start(&cfg, port, &btcts_log).await?;
    let recovered = wait_cursor(&cursor_file, resumed + 10, &mut feed, &log).await?;

    // --status: the cursor and the lag.
    let status = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["feed", "--status", "--chain-id", CHAIN, "--grpc", &grpc])
        .args(["--state-dir", state.to_str().context("path")?])
        .output()?;
    let text = String::from_utf8_lossy(&status.stdout);
    ensure!(
        status.status.success(),
        "status: {text} {}",
        String::from_utf8_lossy(&status.stderr)
    );
    ensure!(
        text.contains("cursor:") && text.contains("chain tip:") && text.contains("lag:"),
        "{text}"
    );
    feed.kill()?;
    feed.wait()?;
    let last = cursor(&cursor_file)?.context("cursor")?;
    ensure!(last >= recovered);

    // Every height 1..=last is in btcts once, with the chain's own hashes.
    for h in 1..=last {
        let (status, body) = get(&daemon, &format!("/v1/chains/{CHAIN}/blocks/{h}")).await?;
        ensure!(status == 200, "height {h}: {status} {body}");
        let records = body["records"].as_array().context("records")?;
        ensure!(records.len() == 1, "height {h}: {body}");
        let (hash, vals) = chain_block(&chain.rpc_url(), h).await?;
        ensure!(
            records[0]["record"]["block_hash"] == hash.as_str(),
            "height {h}: {body} vs {hash}"
        );
        ensure!(
            records[0]["record"]["staker_set_digest"] == vals.as_str(),
            "height {h}: {body} vs {vals}"
        );
    }
    let (_, conflicts) = get(&daemon, &format!("/v1/chains/{CHAIN}/conflicts")).await?;
    ensure!(
        conflicts["conflicts"] == serde_json::json!([]),
        "{conflicts}"
    );

    // The logs: each height new exactly once over both runs; the re-posted
    // ones reported as duplicates; the outage retried.
    let text = std::fs::read_to_string(&log)?;
    let batches: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("batch posted"))
        .collect();
    let new: u64 = batches.iter().filter_map(|l| field(l, "new")).sum();
    let dups: u64 = batches.iter().filter_map(|l| field(l, "duplicates")).sum();
    let to = batches
        .iter()
        .filter_map(|l| field(l, "to"))
        .max()
        .context("no batch")?;
    ensure!(to == last, "last batch to {to}, cursor {last}");
    ensure!(new == last, "{new} new records for {last} heights:\n{text}");
    ensure!(dups >= 5, "{dups} duplicates reported:\n{text}");
    ensure!(
        text.contains("retrying"),
        "no retry while btcts was down:\n{text}"
    );
    ensure!(!text.contains("feed-token"), "the token is logged");
    Ok(())
}

/// Feeder throughput catching up `FEEDER_BENCH_BLOCKS` (10,000) blocks
/// of a localnet: the chain makes them with 10 ms blocks, is then slowed to
/// 10 s blocks (so it does not compete for the CPU), and `btcts feed` posts
/// them from height 1 three times, each under its own btcts chain id.
/// Prints each run and the median in blocks/s.
///
/// `cargo test -p btcts --test feeder -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: minutes of block production"]
#[allow(clippy::print_stderr)] // the measurement is the test's report
async fn feeder_catch_up_benchmark() -> Result<()> {
    let blocks: u64 = std::env::var("FEEDER_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let node = RegtestNode::start()?;
    let mut chain = start_chain(Duration::from_millis(10))?;
    let made = Instant::now();
    chain.wait_for_height(blocks, Duration::from_secs(3600))?;
    eprintln!(
        "chain made {blocks} blocks in {:.0} s",
        made.elapsed().as_secs_f64()
    );
    let config_toml = chain.home().join("config/config.toml");
    let text = std::fs::read_to_string(&config_toml)?;
    let slow: Vec<String> = text
        .lines()
        .map(|l| match l.starts_with("timeout_commit") {
            true => "timeout_commit = \"10s\"".to_owned(),
            false => l.to_owned(),
        })
        .collect();
    std::fs::write(&config_toml, slow.join("\n"))?;
    chain.restart()?;

    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let runs = ["bench-0", "bench-1", "bench-2"];
    let chains: Vec<(&str, &str)> = runs.iter().map(|c| (*c, *c)).collect();
    let cfg = config(dir.path(), &node, port, &chains)?;
    let btcts_log = dir.path().join("btcts.log");
    let daemon = match start(&cfg, port, &btcts_log).await {
        Ok(d) => d,
        Err(e) => bail!("{e}: {}", std::fs::read_to_string(&btcts_log)?),
    };
    let grpc = chain.grpc_url();
    let mut rates = Vec::new();
    for id in runs {
        let token_file = dir.path().join(format!("{id}.token"));
        std::fs::write(&token_file, id)?;
        let cursor_file = dir.path().join(format!("{id}.cursor"));
        let log = dir.path().join(format!("{id}.log"));
        let args = [
            "--chain-id",
            id,
            "--node-chain-id",
            CHAIN,
            "--grpc",
            &grpc,
            "--btcts",
            &daemon.url,
            "--token-file",
            token_file.to_str().context("path")?,
            "--cursor-file",
            cursor_file.to_str().context("path")?,
        ];
        let started = Instant::now();
        let mut feed = spawn_feed(&args, &log)?;
        let deadline = started + Duration::from_secs(1800);
        loop {
            if std::fs::read_to_string(&cursor_file)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["height"].as_u64())
                .is_some_and(|h| h >= blocks)
            {
                break;
            }
            if let Some(status) = feed.try_wait()? {
                bail!(
                    "btcts feed exited ({status}): {}",
                    std::fs::read_to_string(&log)?
                );
            }
            ensure!(Instant::now() < deadline, "run {id} too slow");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        feed.kill()?;
        feed.wait()?;
        let (_, body) = get(&daemon, &format!("/v1/chains/{id}/blocks/{blocks}")).await?;
        ensure!(
            body["records"].as_array().map(Vec::len) == Some(1),
            "{body}"
        );
        let rate = blocks as f64 / secs;
        eprintln!("{id}: {blocks} blocks in {secs:.2} s = {rate:.0} blocks/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    eprintln!("median: {:.0} blocks/s", rates[1]);
    Ok(())
}
