//! Fast unbonding end to end, all over sockets: a real consumer chain
//! (`btcts-consumerd` with `x/btcts`, a 2 s staking `unbonding_time`) feeds
//! its own blocks to the `btcts` daemon with `btcts feed`; btcts anchors them
//! in litecoind regtest and delivers the proofs over IBC; `x/btcts` holds
//! every unbonding and releases it once a timestamp of the chain's own block
//! at or above the unbonding's height is k deep. A conflicting hash
//! timestamped for the chain releases nothing and is reported as a fork; a
//! redelegation is held and released the same way.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use btc_submitter::BitcoinNode;
use btcts_api::auth::TokenHash;
use btcts_tests::chain::{btcts_genesis, ChainOptions, ConsumerChain};
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::TestChain;
use serde_json::Value;

mod common;
use common::*;

const CHAIN: &str = "consumer-1";
const TOKEN: &str = "consumer-token";
const AMOUNT: u128 = 5_000_000;

fn relayer() -> String {
    let key = SecretKey::from_slice(&[0x31; 32]).expect("valid key");
    ibc_relay::cosmos::address(&key.public_key(&Secp256k1::new()), "cosmos").expect("address")
}

/// The most time between two mined blocks (`UNBONDING_BLOCK_SECS`, default
/// 4; docs/BENCHMARKS.md measures with 2). Not a `BTCTS_` name: btcts reads
/// those as its configuration.
fn block_interval() -> Duration {
    let secs = std::env::var("UNBONDING_BLOCK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    Duration::from_secs(secs)
}

/// A JSON number the SDK's CLI may print as a string.
fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// litecoind, the consumer chain, and btcts set up to deliver to it.
struct World {
    node: RegtestNode,
    chain: ConsumerChain,
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    daemon: Option<Daemon>,
    feeder: Option<Child>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(f) = self.feeder.as_mut() {
            let _ = f.kill();
            let _ = f.wait();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn world(max_hold: Duration) -> Result<World> {
    let node = RegtestNode::start()?;
    let rpc = node.node()?;
    let height = rpc.chain_info()?.tip_height;
    let header = rpc.header(&rpc.block_hash_at(height)?.context("tip")?)?;
    let mut genesis = btcts_genesis(
        "litecoin-regtest",
        &[CHAIN],
        K as u32,
        height,
        &bitcoin::consensus::serialize(&header)
            .try_into()
            .map_err(|_| anyhow::anyhow!("80 bytes"))?,
    );
    genesis["params"]["max_hold"] = Value::String(format!("{}s", max_hold.as_secs()));
    let chain = ConsumerChain::start(
        ChainOptions {
            chain_id: CHAIN.into(),
            btcts_genesis: Some(genesis),
            unbonding_time: Some(Duration::from_secs(2)),
            ..ChainOptions::default()
        }
        .fund(&relayer(), 100_000_000_000),
    )?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    std::fs::write(dir.path().join("solo.key"), "30".repeat(32))?;
    std::fs::write(dir.path().join("account.key"), "31".repeat(32))?;
    std::fs::write(dir.path().join("feed.token"), TOKEN)?;
    let mut text = std::fs::read_to_string(&config)?;
    // Still inside `[auth.chains]`, the last table write_config writes.
    text.push_str(&format!(
        "\"{CHAIN}\" = [\"{}\"]\n[ibc]\nkey_file = \"{}\"\npoll_ms = 200\n\
         [ibc.chains.{CHAIN}]\ngrpc = \"{}\"\naccount_key_file = \"{}\"\ncheckpoint_height = {height}\n\
         gas_price = \"0.0025\"\ngas_limit = 4000000\n",
        hex(&TokenHash::of(TOKEN).0),
        dir.path().join("solo.key").display(),
        chain.grpc_url(),
        dir.path().join("account.key").display(),
    ));
    std::fs::write(&config, text)?;
    let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["ibc", "setup", "--chain", CHAIN, "--config"])
        .arg(&config)
        .output()?;
    ensure!(
        out.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut w = World {
        node,
        chain,
        dir,
        config,
        port,
        daemon: None,
        feeder: None,
    };
    w.start_btcts().await?;
    w.start_feeder()?;
    Ok(w)
}

impl World {
    async fn start_btcts(&mut self) -> Result<()> {
        let log = self.dir.path().join("btcts.log");
        self.daemon = Some(start(&self.config, self.port, &log).await?);
        Ok(())
    }

    fn start_feeder(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("feed.log"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_btcts"))
            .args([
                "feed",
                "--chain-id",
                CHAIN,
                "--grpc",
                &self.chain.grpc_url(),
            ])
            .args(["--btcts", &format!("http://127.0.0.1:{}", self.port)])
            .arg("--token-file")
            .arg(self.dir.path().join("feed.token"))
            .arg("--state-dir")
            .arg(self.dir.path().join("feed"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.feeder = Some(child);
        Ok(())
    }

    fn stop_feeder(&mut self) {
        if let Some(mut f) = self.feeder.take() {
            let _ = f.kill();
            let _ = f.wait();
        }
    }

    /// The node's own validator: the one with the most stake.
    fn validator(&self) -> Result<String> {
        let v = self.chain.query(&["staking", "validators"])?;
        let tokens = |v: &Value| v["tokens"].as_str().and_then(|t| t.parse::<u128>().ok());
        v["validators"]
            .as_array()
            .and_then(|a| a.iter().max_by_key(|v| tokens(v)))
            .and_then(|v| v["operator_address"].as_str())
            .map(str::to_owned)
            .context("a validator")
    }

    /// The chain's pending holds, as (unbonding id, height).
    fn holds(&self) -> Result<Vec<(u64, u64)>> {
        let v = self.chain.query(&["btcts", "holds"])?;
        Ok(v["holds"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| (num(&h["unbonding_id"]), num(&h["height"])))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Unbonds `AMOUNT` from the validator; the transaction's height.
    fn unbond(&self) -> Result<u64> {
        let r = self.chain.tx(&[
            "staking",
            "unbond",
            &self.validator()?,
            &format!("{AMOUNT}stake"),
        ])?;
        Ok(num(&r["height"]))
    }

    fn balance(&self) -> Result<u128> {
        self.chain.balance(self.chain.validator_address(), "stake")
    }

    /// Whether btcts has the chain's block at `height` (the feeder got there).
    async fn fed(&self, height: u64) -> Result<bool> {
        let d = self.daemon.as_ref().context("btcts runs")?;
        Ok(get(d, &format!("/v1/chains/{CHAIN}/blocks/{height}"))
            .await?
            .0
            == 200)
    }

    /// Mines one block at a time (waiting a few seconds after each) until
    /// `cond`; fails after `max` blocks. Returns how many were mined.
    async fn mine_until(
        &self,
        max: u64,
        what: &str,
        cond: impl Fn() -> Result<bool>,
    ) -> Result<u64> {
        let mut blocks = 0;
        while !cond()? {
            ensure!(
                blocks < max,
                "no {what} after {blocks} Bitcoin blocks; logs in {}",
                self.dir.path().display()
            );
            TestChain::mine(&self.node, 1)?;
            blocks += 1;
            let mined = Instant::now();
            while mined.elapsed() < block_interval() && !cond()? {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(blocks)
    }

    /// Waits up to `secs` for `cond`.
    async fn wait(&self, secs: u64, what: &str, cond: impl Fn() -> Result<bool>) -> Result<()> {
        let start = Instant::now();
        while !cond()? {
            ensure!(
                start.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unbonding_is_released_k_blocks_after_its_block_is_timestamped() -> Result<()> {
    let w = world(Duration::from_secs(3600)).await?;
    let height = w.unbond()?;
    let after_tx = w.balance()?;
    let held = w.holds()?;
    ensure!(
        held.iter().any(|(_, h)| *h == height),
        "held at {height}: {held:?}"
    );
    let start = Instant::now();
    while !w.fed(height).await? {
        ensure!(start.elapsed() < Duration::from_secs(30), "feeder too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fed_at = Instant::now();
    // Mine one block at a time: the unbonding's block is anchored, buried
    // k deep, delivered and verified; the entry is then released.
    let released =
        || -> Result<bool> { Ok(w.holds()?.is_empty() && w.balance()? == after_tx + AMOUNT) };
    let blocks = w.mine_until(K + 3, "release", released).await?;
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "fast unbonding: released {:.1} s and {blocks} Bitcoin blocks after the unbonding block was fed (k = {K})",
            fed_at.elapsed().as_secs_f64()
        );
    }
    let t = w.chain.query(&["btcts", "latest-timestamp", CHAIN])?;
    ensure!(num(&t["timestamp"]["height"]) >= height, "{t}");
    ensure!(num(&t["timestamp"]["depth"]) >= K, "{t}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conflicting_hash_releases_nothing_and_is_reported_as_a_fork() -> Result<()> {
    let mut w = world(Duration::from_secs(3600)).await?;
    // The chain's honest blocks stop arriving; an unbonding is held.
    w.stop_feeder();
    let height = w.unbond()?;
    let after_tx = w.balance()?;
    w.chain
        .wait_for_height(height + 3, Duration::from_secs(30))?;
    // Someone with the chain's credential timestamps another hash for a
    // height above the unbonding.
    let d = w.daemon.as_ref().context("btcts")?;
    submit_as(d, CHAIN, TOKEN, height + 2..height + 3, 0xee).await?;
    let forked = || -> Result<bool> {
        let f = w.chain.query(&["btcts", "forks"])?;
        Ok(f["forks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| num(&f["height"]) == height + 2)))
    };
    w.mine_until(K + 3, "fork on the chain", forked).await?;
    ensure!(!w.holds()?.is_empty(), "nothing released on a fork");
    ensure!(w.balance()? == after_tx);
    // The honest chain's timestamps still release it.
    w.start_feeder()?;
    let fed = Instant::now();
    while !w.fed(height + 3).await? {
        ensure!(fed.elapsed() < Duration::from_secs(30), "feeder too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.mine_until(K + 3, "release", || Ok(w.holds()?.is_empty()))
        .await?;
    w.wait(20, "the release", || {
        Ok(w.holds()?.is_empty() && w.balance()? == after_tx + AMOUNT)
    })
    .await?;
    Ok(())
}

/// A second validator on the same node's chain (it never signs, so it has
/// too little power to matter): a redelegation target besides `first`.
fn second_validator(w: &World, first: &str) -> Result<String> {
    let home = w.chain.home().display().to_string();
    let out = Command::new(ConsumerChain::binary()?)
        .args([
            "keys",
            "add",
            "val2",
            "--keyring-backend",
            "test",
            "--home",
            &home,
        ])
        .args(["--output", "json"])
        .output()?;
    ensure!(
        out.status.success(),
        "keys add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout)?;
    let address = key["address"].as_str().context("address")?.to_owned();
    w.chain
        .tx(&["bank", "send", "validator", &address, "100000000stake"])?;
    let spec = w.dir.path().join("val2.json");
    std::fs::write(
        &spec,
        serde_json::json!({
            "pubkey": {"@type": "/cosmos.crypto.ed25519.PubKey", "key": "7Pl0F1vQ8Q9vS2W2y6Wg3mO2oXdQbZb9hQxwqF1G1ZE="},
            "amount": "1000000stake",
            "moniker": "val2",
            "commission-rate": "0.1",
            "commission-max-rate": "0.2",
            "commission-max-change-rate": "0.01",
            "min-self-delegation": "1"
        })
        .to_string(),
    )?;
    let spec = spec.display().to_string();
    w.chain
        .tx(&["staking", "create-validator", &spec, "--from", "val2"])?;
    let v = w.chain.query(&["staking", "validators"])?;
    v["validators"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(|v| v["operator_address"].as_str())
                .find(|o| *o != first)
        })
        .map(str::to_owned)
        .context("the second validator")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redelegation_is_held_and_released_the_same_way() -> Result<()> {
    let w = world(Duration::from_secs(3600)).await?;
    let from = w.validator()?;
    let to = second_validator(&w, &from)?;
    let r = w.chain.tx(&[
        "staking",
        "redelegate",
        &from,
        &to,
        &format!("{AMOUNT}stake"),
        "--gas",
        "600000",
    ])?;
    let height = num(&r["height"]);
    let held = w.holds()?;
    ensure!(
        held.iter().any(|(_, h)| *h == height),
        "held at {height}: {held:?}"
    );
    let redelegations = || -> Result<usize> {
        let v = w.chain.query(&[
            "staking",
            "redelegation",
            w.chain.validator_address(),
            &from,
            &to,
        ]);
        Ok(match v {
            Ok(v) => v["redelegation_responses"][0]["entries"]
                .as_array()
                .map_or(0, Vec::len),
            Err(e) if format!("{e:#}").contains("not found") => 0,
            Err(e) => return Err(e),
        })
    };
    // Mature after 2 s, but held.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ensure!(redelegations()? == 1, "the redelegation waits for its hold");
    let start = Instant::now();
    while !w.fed(height).await? {
        ensure!(start.elapsed() < Duration::from_secs(30), "feeder too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.mine_until(K + 3, "release", || {
        Ok(w.holds()?.is_empty() && redelegations()? == 0)
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn with_btcts_stopped_nothing_is_released_until_max_hold_then_everything_is() -> Result<()> {
    let max_hold = Duration::from_secs(20);
    let mut w = world(max_hold).await?;
    w.stop_feeder();
    w.daemon = None; // SIGKILL
    let first = w.unbond()?;
    let held_at = Instant::now();
    let second = w.unbond()?;
    let after_tx = w.balance()?;
    let heights: Vec<u64> = w.holds()?.iter().map(|(_, h)| *h).collect();
    ensure!(
        heights.contains(&first) && heights.contains(&second),
        "{heights:?}"
    );
    // Bitcoin goes on; no timestamp can arrive.
    TestChain::mine(&w.node, K as u32 + 1)?;
    while held_at.elapsed() + Duration::from_secs(3) < max_hold {
        ensure!(w.holds()?.len() == 2, "released before max_hold");
        ensure!(w.balance()? == after_tx);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    w.wait(30, "the release at max_hold", || {
        Ok(w.holds()?.is_empty() && w.balance()? == after_tx + 2 * AMOUNT)
    })
    .await?;
    ensure!(held_at.elapsed() >= max_hold);
    Ok(())
}
