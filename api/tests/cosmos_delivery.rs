//! IBC end to end against the real ibc-go chain, all over sockets: the
//! `btcts` binary (`btcts ibc setup`, `btcts serve`) with litecoind regtest
//! and `btcts-consumerd` (Cosmos SDK v0.54, ibc-go v11, 06-solomachine,
//! `x/btcts`) run as a localnet by `btcts_tests::chain`. Records of three
//! source chains go in over REST, are anchored and reach the consumer
//! (`deliver = "latest"`: one packet per source chain and batch); the
//! chain's own queries show what `x/btcts` verified. The gas of packets with
//! 3, 10 and 100 headers is printed. The chain is stopped for 30 s while
//! records reach depth, and nothing is lost; `kill -9` of btcts while 20
//! records are delivered one by one (`deliver = "all"`) leaves every record
//! delivered exactly once and the client active at the signer's sequence.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use btc_submitter::BitcoinNode;
use btcts_tests::chain::{btcts_genesis, ChainOptions, ConsumerChain};
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::TestChain;
use serde_json::Value;

mod common;
use common::*;

const CONSUMER: &str = "consumer-1";
const SOURCES: [&str; 3] = ["chain-a", "chain-b", "chain-c"];
const CLIENT: &str = "06-solomachine-0";
/// The relayer account's key byte.
const RELAYER: u8 = 0x21;

fn relayer() -> Result<String> {
    let key = SecretKey::from_slice(&[RELAYER; 32])?;
    Ok(ibc_relay::cosmos::address(
        &key.public_key(&Secp256k1::new()),
        "cosmos",
    )?)
}

fn token(source: &str) -> String {
    format!("{source}-token")
}

/// litecoind, the consumer chain trusting litecoind's tip, and a btcts
/// configuration delivering to it.
struct World {
    node: RegtestNode,
    chain: ConsumerChain,
    dir: tempfile::TempDir,
    port: u16,
    config: PathBuf,
}

fn world(deliver: &str, timeout_secs: u64, block_time: Duration) -> Result<World> {
    let node = RegtestNode::start()?;
    let rpc = node.node()?;
    let checkpoint = rpc.chain_info()?.tip_height;
    let header = rpc.header(&rpc.block_hash_at(checkpoint)?.context("tip")?)?;
    let header: [u8; 80] = bitcoin::consensus::serialize(&header)
        .try_into()
        .map_err(|_| anyhow::anyhow!("a header is 80 bytes"))?;
    let opts = ChainOptions {
        chain_id: CONSUMER.into(),
        btcts_genesis: Some(btcts_genesis(
            "litecoin-regtest",
            &SOURCES,
            K as u32,
            checkpoint,
            &header,
        )),
        block_time,
        ..ChainOptions::default()
    }
    .fund(&relayer()?, 10_000_000_000);
    let chain = ConsumerChain::start(opts)?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let tokens: Vec<String> = SOURCES.iter().map(|s| token(s)).collect();
    let chains: Vec<(&str, &str)> = SOURCES
        .iter()
        .copied()
        .zip(tokens.iter().map(String::as_str))
        .collect();
    let config = write_config_for(dir.path(), &node, port, &chains)?;
    let (solo, account) = (dir.path().join("solo.key"), dir.path().join("relayer.key"));
    std::fs::write(&solo, "11".repeat(32))?;
    std::fs::write(&account, format!("{RELAYER:02x}").repeat(32))?;
    let mut text = std::fs::read_to_string(&config)?;
    // x/btcts charges 10,000 gas per litecoin-regtest (scrypt) header.
    text.push_str(&format!(
        "\n[ibc]\nkey_file = \"{}\"\npacket_timeout_secs = {timeout_secs}\npoll_ms = 200\n\
         [ibc.chains.{CONSUMER}]\ngrpc = \"{}\"\naccount_key_file = \"{}\"\ncheckpoint_height = {checkpoint}\n\
         sources = {SOURCES:?}\ndeliver = \"{deliver}\"\ngas_limit = 8000000\ngas_price = \"0.0025\"\n",
        solo.display(),
        chain.grpc_url(),
        account.display(),
    ));
    std::fs::write(&config, text)?;
    Ok(World {
        node,
        chain,
        dir,
        port,
        config,
    })
}

impl World {
    fn log(&self) -> PathBuf {
        self.dir.path().join("btcts.log")
    }

    /// `btcts <args> --config <config>`: its output; fails on a non-zero exit.
    fn btcts(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()?;
        ensure!(
            out.status.success(),
            "btcts {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    fn tip(&self) -> Result<u32> {
        Ok(self.node.node()?.chain_info()?.tip_height)
    }

    /// `x/btcts`'s latest verified timestamp of `source`, if any.
    fn latest(&self, source: &str) -> Result<Option<Value>> {
        match self.chain.query(&["btcts", "latest-timestamp", source]) {
            Ok(v) => Ok(Some(v["timestamp"].clone())),
            Err(e) if format!("{e:#}").contains("not found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `x/btcts` verified `height` of `source` as its latest.
    fn has_latest(&self, source: &str, height: u64) -> Result<bool> {
        Ok(self
            .latest(source)?
            .is_some_and(|t| num(&t["height"]).ok() == Some(height)))
    }

    /// `x/btcts`'s trusted tip height.
    fn trusted_height(&self) -> Result<u32> {
        let v = self.chain.query(&["btcts", "trusted-header"])?;
        Ok(u32::try_from(num(&v["header"]["height"])?)?)
    }

    /// How many IBC clients, connections and channels the chain has
    /// (besides ibc-go's built-in localhost client and connection).
    fn ibc_counts(&self) -> Result<(usize, usize, usize)> {
        let len = |v: Value, field: &str| {
            v[field].as_array().map_or(0, |a| {
                a.iter()
                    .filter(|e| !e.to_string().contains("localhost"))
                    .count()
            })
        };
        let q = |args: &[&str]| self.chain.query(args);
        Ok((
            len(q(&["ibc", "client", "states"])?, "client_states"),
            len(q(&["ibc", "connection", "connections"])?, "connections"),
            len(q(&["ibc", "channel", "channels"])?, "channels"),
        ))
    }

    /// `btcts ibc setup`, checked; then a re-run that sends nothing.
    fn setup_twice(&self) -> Result<()> {
        let args = ["ibc", "setup", "--chain", CONSUMER];
        let out = self.btcts(&args)?;
        ensure!(out.contains(CLIENT) && out.contains("channel-0"), "{out}");
        ensure!(self.ibc_counts()? == (1, 1, 1), "{:?}", self.ibc_counts()?);
        let client = self.chain.query(&["ibc", "client", "state", CLIENT])?["client_state"].clone();
        let account = self.chain.query(&["auth", "account", &relayer()?])?;
        ensure!(self.btcts(&args)? == out, "the re-run reports the same");
        ensure!(self.ibc_counts()? == (1, 1, 1), "{:?}", self.ibc_counts()?);
        ensure!(
            self.chain.query(&["ibc", "client", "state", CLIENT])?["client_state"] == client,
            "no proof was verified by the re-run"
        );
        ensure!(
            self.chain.query(&["auth", "account", &relayer()?])? == account,
            "no transaction was sent by the re-run"
        );
        Ok(())
    }
}

/// A JSON number the SDK's CLI may print as a string.
fn num(v: &Value) -> Result<u64> {
    match v {
        Value::String(s) => Ok(s.parse()?),
        Value::Number(n) => n.as_u64().context("not a u64"),
        other => anyhow::bail!("not a number: {other}"),
    }
}

/// A deadline for a poll loop; each `tick` waits a little or fails with
/// the daemon's last log lines.
struct Wait {
    until: Instant,
    what: &'static str,
}

impl Wait {
    fn new(secs: u64, what: &'static str) -> Wait {
        Wait {
            until: Instant::now() + Duration::from_secs(secs),
            what,
        }
    }

    async fn tick(&self, log: &Path) -> Result<()> {
        if Instant::now() >= self.until {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains("request")).collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            anyhow::bail!("timed out waiting for {}; btcts log:\n{tail}", self.what);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }
}

/// `GET /v1/chains/consumer-1/ibc` with every packet.
async fn ibc(d: &Daemon) -> Result<Value> {
    let (status, v) = get(d, &format!("/v1/chains/{CONSUMER}/ibc?limit=1000")).await?;
    ensure!(status == 200, "GET ibc answered {status}: {v}");
    Ok(v)
}

fn packets(v: &Value) -> Result<&Vec<Value>> {
    v["packets"].as_array().context("packets")
}

fn acknowledged(v: &Value) -> u64 {
    v["counts"]["acknowledged"].as_u64().unwrap_or(0)
}

/// Mines a block every 200 ms until every record in `ids` is confirmed.
async fn mine_until_confirmed(d: &Daemon, node: &RegtestNode, ids: &[String]) -> Result<()> {
    let wait = Wait::new(60, "records confirmed");
    loop {
        let mut confirmed = 0;
        for id in ids {
            let (_, r) = get(d, &format!("/v1/records/{id}")).await?;
            confirmed += usize::from(r["status"] == "confirmed");
        }
        if confirmed == ids.len() {
            return Ok(());
        }
        node.mine(1)?;
        wait.tick(&d.log).await?;
    }
}

/// Delivers `height` of chain-a in a packet of exactly `n` headers (the
/// consumer's trusted tip + 1 to the tip at depth k) and returns the gas
/// its `MsgRecvPacket` transaction used.
async fn gas_of_packet(w: &World, d: &Daemon, height: u64, n: u32) -> Result<u64> {
    let trusted = w.trusted_height()?;
    let before_anchor = trusted + n - K as u32;
    let tip = w.tip()?;
    ensure!(
        tip <= before_anchor,
        "{n} headers: tip {tip} is past {before_anchor}"
    );
    w.node.mine(u64::from(before_anchor - tip))?;
    let id = submit_as(d, "chain-a", &token("chain-a"), height..height + 1, 0)
        .await?
        .pop()
        .context("record id")?;
    let wait = Wait::new(30, "the anchor transaction");
    while w
        .node
        .call("getrawmempool", &[])?
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        wait.tick(&d.log).await?;
    }
    w.node.mine(1)?;
    let wait = Wait::new(30, "the anchor block");
    loop {
        let (_, r) = get(d, &format!("/v1/records/{id}")).await?;
        if !r["block_height"].is_null() {
            ensure!(
                num(&r["block_height"])? == u64::from(before_anchor) + 1,
                "{r}"
            );
            break;
        }
        wait.tick(&d.log).await?;
    }
    w.node.mine(K - 1)?;
    let wait = Wait::new(60, "the packet's acknowledgement");
    let hash = loop {
        let v = ibc(d).await?;
        let packet = packets(&v)?.iter().find(|p| p["record_id"] == id.as_str());
        if let Some(p) = packet.filter(|p| p["state"] == "acknowledged") {
            break p["tx_hash"].as_str().context("tx hash")?.to_owned();
        }
        wait.tick(&d.log).await?;
    };
    ensure!(
        w.trusted_height()? == trusted + n,
        "the packet carried {n} headers"
    );
    let tx = w.chain.query(&["tx", &hash])?;
    ensure!(tx.to_string().contains("MsgRecvPacket"), "{tx}");
    num(&tx["gas_used"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)] // the gas figures are the test's report
async fn three_source_chains_reach_ibc_go_with_measured_gas_and_survive_a_chain_outage(
) -> Result<()> {
    let mut w = world("latest", 20, Duration::from_millis(300))?;
    w.setup_twice()?;
    let d = start(&w.config, w.port, &w.log()).await?;

    // Three source chains; per batch and chain only the highest record.
    let tops = [("chain-a", 5), ("chain-b", 4), ("chain-c", 3)];
    let mut latest_ids = BTreeSet::new();
    for (source, top) in tops {
        let ids = submit_as(&d, source, &token(source), 1..top + 1, 0).await?;
        latest_ids.insert(ids.last().context("ids")?.clone());
    }
    let wait = Wait::new(90, "three acknowledgements");
    while acknowledged(&ibc(&d).await?) < 3 {
        w.node.mine(1)?;
        wait.tick(&d.log).await?;
    }
    for (source, top) in tops {
        let t = w.latest(source)?.context("verified")?;
        ensure!(num(&t["height"])? == top, "{source}: {t}");
        ensure!(num(&t["depth"])? >= K, "{source}: {t}");
    }
    let v = ibc(&d).await?;
    let sent: BTreeSet<String> = packets(&v)?
        .iter()
        .filter_map(|p| p["record_id"].as_str().map(str::to_owned))
        .collect();
    ensure!(sent == latest_ids && packets(&v)?.len() == 3, "{v}");
    ensure!(
        packets(&v)?.iter().all(|p| p["state"] == "acknowledged"
            && p["depth"].as_u64() >= Some(K)
            && p["tx_hash"].is_string()),
        "{v}"
    );

    // Gas per packet by the number of headers since the trusted tip (100
    // first: the blocks mined above may have passed the trusted tip by a few).
    for (height, n) in [(10, 100), (11, 3), (12, 10)] {
        let gas = gas_of_packet(&w, &d, height, n).await?;
        eprintln!("MsgRecvPacket with {n} litecoin-regtest headers: gas_used {gas}");
    }
    ensure!(w.has_latest("chain-a", 12)?);

    // The chain is down for 30 s while records reach depth.
    let acked = acknowledged(&ibc(&d).await?);
    w.chain.stop()?;
    let down = Instant::now();
    let tops = [("chain-a", 24), ("chain-b", 23), ("chain-c", 22)];
    let mut ids = Vec::new();
    for (source, top) in tops {
        ids.extend(submit_as(&d, source, &token(source), 20..top + 1, 0).await?);
    }
    mine_until_confirmed(&d, &w.node, &ids).await?;
    let confirmed = Instant::now();
    ensure!(
        acknowledged(&ibc(&d).await?) == acked,
        "delivered while down"
    );
    // The one deliberate wait: the outage, long enough for the packets
    // made meanwhile (20 s timeout, after a back-off of up to 6.4 s) to
    // time out unsigned.
    while down.elapsed() < Duration::from_secs(30) || confirmed.elapsed() < Duration::from_secs(22)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.chain.restart()?;
    let wait = Wait::new(90, "every chain's latest height after the outage");
    while !tops
        .iter()
        .map(|(s, top)| w.has_latest(s, *top))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .all(|b| b)
    {
        wait.tick(&d.log).await?;
    }
    // The chain has executed the last packets; btcts records their acks
    // when it next reads the chain's events.
    let mut v = ibc(&d).await?;
    while acknowledged(&v) < acked + 3 && packets(&v)?.iter().any(|p| p["state"] == "sent") {
        wait.tick(&d.log).await?;
        v = ibc(&d).await?;
    }
    ensure!(acknowledged(&v) == acked + 3, "one per source chain: {v}");
    ensure!(v["halted"].is_null() && v["counts"]["stalled"] == 0, "{v}");
    ensure!(v["counts"]["timed_out"].as_u64() >= Some(1), "{v}");
    ensure!(
        packets(&v)?.iter().all(|p| p["state"] == "acknowledged"
            || p["state"] == "timed_out" && p["resent_as"].as_u64() > p["sequence"].as_u64()),
        "{v}"
    );
    let status = w.chain.query(&["ibc", "client", "status", CLIENT])?;
    ensure!(status["status"] == "Active", "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_every_record_delivers_each_exactly_once() -> Result<()> {
    // 1 s blocks: one packet per block, so delivering 20 takes 20 s.
    let w = world("all", 3600, Duration::from_secs(1))?;
    w.setup_twice()?;
    let mut d = start(&w.config, w.port, &w.log()).await?;
    let ids = submit_as(&d, "chain-a", &token("chain-a"), 1..21, 0).await?;
    mine_until_confirmed(&d, &w.node, &ids).await?;
    let wait = Wait::new(60, "the first acknowledgements");
    while acknowledged(&ibc(&d).await?) < 3 {
        wait.tick(&d.log).await?;
    }
    d.child.kill()?; // SIGKILL
    d.child.wait()?;
    let status: Value = serde_json::from_str(&w.btcts(&["ibc", "status", "--chain", CONSUMER])?)?;
    ensure!(acknowledged(&status) < 20, "all delivered before the kill");
    d = start(&w.config, w.port, &w.log()).await?;
    let wait = Wait::new(90, "20 acknowledgements");
    while acknowledged(&ibc(&d).await?) < 20 {
        wait.tick(&d.log).await?;
    }

    // Every record exactly once, on both sides.
    let v = ibc(&d).await?;
    let list = packets(&v)?;
    let sent: BTreeSet<&str> = list
        .iter()
        .filter_map(|p| p["record_id"].as_str())
        .collect();
    let submitted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    ensure!(list.len() == 20 && sent == submitted, "{v}");
    ensure!(list.iter().all(|p| p["state"] == "acknowledged"), "{v}");
    for h in 1..=20u64 {
        let t = w
            .chain
            .query(&["btcts", "timestamp", "chain-a", &h.to_string()])?;
        ensure!(num(&t["timestamp"]["height"])? == h, "{h}: {t}");
        ensure!(num(&t["timestamp"]["depth"])? >= K, "{h}: {t}");
    }
    ensure!(w.has_latest("chain-a", 20)?);
    // The client is alive and has verified exactly the signer's proofs.
    let status = w.chain.query(&["ibc", "client", "status", CLIENT])?;
    ensure!(status["status"] == "Active", "{status}");
    let client = w.chain.query(&["ibc", "client", "state", CLIENT])?;
    ensure!(
        num(&client["client_state"]["sequence"])? == num(&v["solo_machine"]["sequence"])?,
        "client {client} vs signer {}",
        v["solo_machine"]
    );
    Ok(())
}
