//! Shared by the tests that run the real `btcts serve` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btcts_api::auth::TokenHash;
use btcts_tests::node::RegtestNode;
use serde_json::{json, Value};

/// Confirmations required in these tests.
pub const K: u64 = 3;

/// A running `btcts serve`; killed (SIGKILL) on drop.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Its base URL.
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port, below the kernel's ephemeral range (see
/// `btc_submitter::regtest::loopback_ports`).
pub fn free_port() -> Result<u16> {
    btc_submitter::regtest::loopback_port()
}

/// A configuration for `node` on `port`: chains chain-0..2 with tokens token-0..2.
pub fn write_config(dir: &Path, node: &RegtestNode, port: u16) -> Result<PathBuf> {
    let names: Vec<(String, String)> = (0..3)
        .map(|i| (format!("chain-{i}"), format!("token-{i}")))
        .collect();
    let names: Vec<(&str, &str)> = names
        .iter()
        .map(|(c, t)| (c.as_str(), t.as_str()))
        .collect();
    write_config_for(dir, node, port, &names)
}

/// A configuration for `node` on `port` accepting records of each
/// `(chain, token)`.
pub fn write_config_for(
    dir: &Path,
    node: &RegtestNode,
    port: u16,
    chains: &[(&str, &str)],
) -> Result<PathBuf> {
    let (user, pass) = node.credentials();
    let chains: String = chains
        .iter()
        .map(|(chain, token)| format!("\"{chain}\" = [\"{}\"]\n", hex(&TokenHash::of(token).0)))
        .collect();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{data}\"\nnetwork = \"litecoin-regtest\"\nconfirmations = {K}\n\
         [limits]\nrate_per_second = 100000\nrate_burst = 100000\n\
         [node]\nurl = \"{url}\"\nuser = \"{user}\"\npassword = \"{pass}\"\nwallet = \"btcts\"\npoll_ms = 100\n\
         [auth.chains]\n{chains}",
        data = dir.join("data").display(),
        url = node.rpc_url(),
    );
    let path = dir.join("btcts.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts `btcts serve` and waits until it is ready.
pub async fn start(config: &Path, port: u16, log_path: &Path) -> Result<Daemon> {
    start_with_env(config, port, log_path, &[]).await
}

/// [`start`] with extra environment variables.
pub async fn start_with_env(
    config: &Path,
    port: u16,
    log_path: &Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<Daemon> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    let child = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["serve", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let daemon = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log: log_path.to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{}/readyz", daemon.url)).await {
            if r.status().is_success() {
                return Ok(daemon);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "btcts serve did not become ready:\n{}",
        std::fs::read_to_string(log_path).unwrap_or_default()
    )
}

/// GET `path`: status and JSON body.
pub async fn get(d: &Daemon, path: &str) -> Result<(u16, Value)> {
    let r = reqwest::get(format!("{}{path}", d.url)).await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Submits heights of chain-`chain`; returns the ids.
pub async fn submit(
    d: &Daemon,
    chain: usize,
    heights: std::ops::Range<u64>,
    tag: u8,
) -> Result<Vec<String>> {
    submit_as(
        d,
        &format!("chain-{chain}"),
        &format!("token-{chain}"),
        heights,
        tag,
    )
    .await
}

/// Submits heights of `chain` with `token`; returns the ids.
pub async fn submit_as(
    d: &Daemon,
    chain: &str,
    token: &str,
    heights: std::ops::Range<u64>,
    tag: u8,
) -> Result<Vec<String>> {
    let blocks: Vec<Value> = heights
        .map(|h| json!({ "height": h, "block_hash": format!("{:016x}{:02x}", h, tag).repeat(4)[..64].to_string(), "staker_set_digest": "cd".repeat(32) }))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chains/{chain}/blocks", d.url))
        .bearer_auth(token)
        .json(&json!({ "blocks": blocks }))
        .send()
        .await?;
    ensure!(r.status().as_u16() == 202, "submit answered {}", r.status());
    let body: Value = r.json().await?;
    Ok(body["records"]
        .as_array()
        .context("records")?
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect())
}

/// Mines a block every 200 ms until record `id` has `depth` confirmations.
pub async fn mine_until(d: &Daemon, node: &RegtestNode, id: &str, depth: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, r) = get(d, &format!("/v1/records/{id}")).await?;
        if r["confirmations"].as_u64().unwrap_or(0) >= depth {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{id} never reached depth {depth}: {r}"
        );
        node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the `btcts` binary with `args`.
pub fn btcts(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(args)
        .output()
        .expect("runs btcts")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The node's tip height.
pub fn tip_height(node: &RegtestNode) -> Result<u64> {
    node.call("getblockcount", &[])?
        .as_u64()
        .context("getblockcount")
}

/// The btcts payloads of each best-chain block above `after`, by height.
pub fn anchors_by_block(
    node: &RegtestNode,
    after: u64,
) -> Result<Vec<(u64, Vec<aggregator::Payload>)>> {
    (after + 1..=tip_height(node)?)
        .map(|h| {
            let hash = serde_json::from_value(node.call("getblockhash", &[h.into()])?)?;
            let payloads = node
                .block(&hash)?
                .txdata
                .iter()
                .flat_map(|tx| tx.output.iter())
                .filter_map(|o| aggregator::Payload::from_script(&o.script_pubkey).ok())
                .collect();
            Ok((h, payloads))
        })
        .collect()
}
