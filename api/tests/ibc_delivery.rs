//! IBC (2/2) end to end over real sockets: the `btcts` binary against a
//! real litecoind regtest node, delivering to test consumer chains served
//! over gRPC (`btcts_tests::network`: the ibc-rs host behind the Cosmos SDK
//! tx, auth and node services). Records go in over REST, are anchored, reach
//! depth k, travel as packets to their own chain only, are verified there
//! and acknowledged; `GET /v1/chains/{id}/ibc` shows it. Then the faults:
//! the consumer's endpoint down for 30 s (packets created meanwhile time out
//! and are re-sent), an account-sequence race, and kill -9 of btcts
//! mid-delivery — nothing lost, nothing proven twice with different bytes,
//! the client never frozen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aggregator::{AnchorNetwork, ChainId, Tag};
use anyhow::{ensure, Context, Result};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use btc_submitter::BitcoinNode;
use btcts_consumer::{ConsumerParams, TrustedHeader};
use btcts_tests::network::{TestConsumer, PREFIX};
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::TestChain;
use serde_json::Value;

mod common;
use common::*;

fn account(byte: u8) -> String {
    let key = SecretKey::from_slice(&[byte; 32]).expect("valid key");
    ibc_relay::cosmos::address(&key.public_key(&Secp256k1::new()), PREFIX).expect("address")
}

/// The node's tip, as the consumers' trusted checkpoint.
fn checkpoint(node: &RegtestNode) -> Result<TrustedHeader> {
    let rpc = node.node()?;
    let height = rpc.chain_info()?.tip_height;
    let hash = rpc.block_hash_at(height)?.context("tip")?;
    Ok(TrustedHeader {
        height,
        header: rpc.header(&hash)?,
    })
}

/// A consumer chain `chain-<i>` trusting `trusted`, with relayer account
/// key byte `0x20 + i` funded.
fn consumer(i: usize, trusted: TrustedHeader) -> Result<TestConsumer> {
    let id = format!("chain-{i}");
    TestConsumer::start(
        &id,
        trusted,
        ConsumerParams {
            chain_id: ChainId::new(&id)?,
            network: AnchorNetwork::LitecoinRegtest,
            tag: Tag::DEFAULT,
            k: K as u32,
        },
        &[account(0x20 + i as u8)],
    )
}

/// Appends `[ibc]` for `chains` (index, consumer) to the config at `path`.
fn add_ibc(
    path: &Path,
    dir: &Path,
    checkpoint: u32,
    timeout_secs: u64,
    chains: &[(usize, &TestConsumer)],
) -> Result<()> {
    std::fs::write(dir.join("solo.key"), "11".repeat(32))?;
    let mut text = std::fs::read_to_string(path)?;
    text.push_str(&format!(
        "\n[ibc]\nkey_file = \"{}\"\npacket_timeout_secs = {timeout_secs}\npoll_ms = 200\n",
        dir.join("solo.key").display()
    ));
    for (i, c) in chains {
        let key = dir.join(format!("account-{i}.key"));
        std::fs::write(&key, format!("{:02x}", 0x20 + i).repeat(32))?;
        text.push_str(&format!(
            "[ibc.chains.chain-{i}]\ngrpc = \"{}\"\naccount_key_file = \"{}\"\ncheckpoint_height = {checkpoint}\ngas_price = \"0.025\"\n\
             deliver = \"all\"\nlegacy_connection_proofs = true\n",
            c.url(),
            key.display()
        ));
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// `btcts ibc setup --chain chain-<i>`: its output.
fn setup(config: &Path, i: usize) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["ibc", "setup", "--chain", &format!("chain-{i}"), "--config"])
        .arg(config)
        .output()?;
    ensure!(
        out.status.success(),
        "setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

async fn ibc_status(d: &Daemon, i: usize) -> Result<Value> {
    let (status, v) = get(d, &format!("/v1/chains/chain-{i}/ibc?limit=1000")).await?;
    ensure!(
        status == 200,
        "ibc status answered {status}: {v}\n{}",
        log_tail(d)
    );
    Ok(v)
}

/// Mines a block every 300 ms until chain `i`'s acknowledged count is `n`
/// (or `deadline` passes).
async fn mine_until_acknowledged(
    d: &Daemon,
    node: &RegtestNode,
    targets: &[(usize, u64)],
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let mut done = true;
        let mut seen = Vec::new();
        for (i, n) in targets {
            let v = ibc_status(d, *i).await?;
            let acked = v["counts"]["acknowledged"].as_u64().unwrap_or(0);
            seen.push((i, acked, v["halted"].clone()));
            done &= acked >= *n;
        }
        if done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let status = ibc_status(d, targets[0].0).await?;
            anyhow::bail!(
                "not acknowledged in time (chain, acknowledged, halted): {seen:?}\nstatus: {status}\nlog:\n{}",
                log_tail(d)
            );
        }
        node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The daemon's last log lines, for failure messages.
fn log_tail(d: &Daemon) -> String {
    let text = std::fs::read_to_string(&d.log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("request")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The heights a consumer received, each with an accepted verdict; fails
/// on any refused packet.
fn received_heights(c: &TestConsumer, chain: &str) -> Result<Vec<u64>> {
    let mut heights = Vec::new();
    for (packet, verdict) in c.received() {
        let v = verdict.map_err(|e| anyhow::anyhow!("packet {} refused: {e}", packet.seq_on_a))?;
        ensure!(
            v.record.chain_id.as_str() == chain,
            "{chain} got a packet of {}",
            v.record.chain_id
        );
        ensure!(v.depth >= K as u32, "depth {} below k", v.depth);
        heights.push(v.record.height);
    }
    Ok(heights)
}

fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("btcts.toml"), dir.join("btcts.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumer_chains_receive_verify_and_acknowledge_only_their_own_records() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let trusted = checkpoint(&node)?;
    let (a, b) = (consumer(0, trusted)?, consumer(1, trusted)?);
    add_ibc(
        &config,
        dir.path(),
        trusted.height,
        3600,
        &[(0, &a), (1, &b)],
    )?;
    for i in [0, 1] {
        let out = setup(&config, i)?;
        ensure!(out.contains("channel-0"), "{out}");
    }
    ensure!(a.counts() == (1, 1, 1) && b.counts() == (1, 1, 1));
    let d = start(&config, port, &paths(dir.path()).1).await?;

    submit(&d, 0, 1..7, 0).await?;
    submit(&d, 1, 1..5, 0).await?;
    submit(&d, 2, 1..4, 0).await?; // chain-2 has no IBC
    mine_until_acknowledged(&d, &node, &[(0, 6), (1, 4)], Duration::from_secs(120)).await?;

    ensure!(received_heights(&a, "chain-0")? == (1..7).collect::<Vec<_>>());
    ensure!(received_heights(&b, "chain-1")? == (1..5).collect::<Vec<_>>());
    for (i, c, n) in [(0, &a, 6), (1, &b, 4)] {
        let v = ibc_status(&d, i).await?;
        ensure!(v["setup"]["complete"] == true, "{v}");
        ensure!(v["counts"]["acknowledged"] == n, "{v}");
        let packets = v["packets"].as_array().context("packets")?;
        ensure!(packets.len() == n as usize, "{v}");
        ensure!(
            packets.iter().all(|p| p["state"] == "acknowledged"
                && p["depth"].as_u64() >= Some(K)
                && p["tx_hash"].is_string()),
            "{v}"
        );
        let client = v["setup"]["client_id"].as_str().context("client id")?;
        let (sequence, frozen) = c.client(client).context("client")?;
        ensure!(!frozen);
        ensure!(
            v["solo_machine"]["sequence"] == sequence,
            "{v} vs client {sequence}"
        );
        ensure!(c.chain().equivocations.is_empty());
    }
    // Pages, errors, metrics.
    let (_, page) = get(&d, "/v1/chains/chain-0/ibc?limit=2&from=3").await?;
    let seqs: Vec<u64> = page["packets"]
        .as_array()
        .context("packets")?
        .iter()
        .filter_map(|p| p["sequence"].as_u64())
        .collect();
    ensure!(seqs == vec![3, 4] && page["next_from"] == 5, "{page}");
    let (status, v) = get(&d, "/v1/chains/chain-2/ibc").await?;
    ensure!(
        status == 404 && v["code"] == "ibc_not_configured",
        "{status} {v}"
    );
    for bad in ["?limit=0", "?limit=1001", "?limit=x", "?from=-1"] {
        let (status, v) = get(&d, &format!("/v1/chains/chain-0/ibc{bad}")).await?;
        ensure!(status == 400, "{bad}: {status} {v}");
    }
    let (status, _) = get(&d, "/v1/chains/not%20a%20chain/ibc").await?;
    ensure!(status == 400);
    let metrics = reqwest::get(format!("{}/metrics", d.url))
        .await?
        .text()
        .await?;
    ensure!(
        metrics.contains("btcts_ibc_packets_total{chain=\"chain-0\",state=\"acknowledged\"} 6"),
        "metrics"
    );

    // Rotate the solo-machine key of both clients, then deliver with it.
    drop(d);
    let new_key = dir.path().join("solo-2.key");
    std::fs::write(&new_key, "12".repeat(32))?;
    let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["ibc", "rotate-key", "--new-key-file"])
        .arg(&new_key)
        .arg("--config")
        .arg(&config)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success()
            && text.contains("chain-0: rotated")
            && text.contains("chain-1: rotated"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(&config)?;
    let old_key = dir.path().join("solo.key").display().to_string();
    std::fs::write(
        &config,
        toml.replace(&old_key, &new_key.display().to_string()),
    )?;
    let d = start(&config, port, &paths(dir.path()).1).await?;
    submit(&d, 0, 7..9, 0).await?;
    submit(&d, 1, 5..6, 0).await?;
    mine_until_acknowledged(&d, &node, &[(0, 8), (1, 5)], Duration::from_secs(120)).await?;
    let rotated = ibc_relay::signer::public_key_any(
        &SecretKey::from_slice(&[0x12; 32])?.public_key(&Secp256k1::new()),
    );
    for c in [&a, &b] {
        let holds = c
            .chain()
            .host
            .solo_client("06-solomachine-0")
            .and_then(|s| s.consensus_state)
            .and_then(|cs| cs.public_key);
        ensure!(
            holds == Some(rotated.clone()),
            "the client follows the new key"
        );
        ensure!(c.chain().equivocations.is_empty());
    }
    ensure!(received_heights(&a, "chain-0")? == (1..9).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_survives_downtime_timeouts_a_sequence_race_and_kill_9() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let trusted = checkpoint(&node)?;
    let mut c = consumer(0, trusted)?;
    // Short timeouts so that the downtime outlasts them.
    add_ibc(&config, dir.path(), trusted.height, 20, &[(0, &c)])?;
    setup(&config, 0)?;
    let log = paths(dir.path()).1;
    let mut d = start(&config, port, &log).await?;
    submit(&d, 0, 1..4, 0).await?;
    mine_until_acknowledged(&d, &node, &[(0, 3)], Duration::from_secs(90)).await?;

    // 1. The endpoint is down for 30 s while records reach depth.
    c.stop();
    let down_since = Instant::now();
    let ids = submit(&d, 0, 4..7, 0).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut confirmed = 0;
        for id in &ids {
            let (_, r) = get(&d, &format!("/v1/records/{id}")).await?;
            confirmed += usize::from(r["status"] == "confirmed");
        }
        if confirmed == ids.len() {
            break;
        }
        ensure!(Instant::now() < deadline, "records not confirmed");
        node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let v = ibc_status(&d, 0).await?;
    ensure!(
        v["counts"]["acknowledged"] == 3,
        "nothing can be delivered while down: {v}"
    );
    // Let the packets created meanwhile outlive their 20 s timeout.
    let confirmed_at = Instant::now();
    while down_since.elapsed() < Duration::from_secs(30)
        || confirmed_at.elapsed() < Duration::from_secs(22)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.restart()?;
    mine_until_acknowledged(&d, &node, &[(0, 6)], Duration::from_secs(90)).await?;
    let v = ibc_status(&d, 0).await?;
    ensure!(
        v["counts"]["timed_out"].as_u64() >= Some(1),
        "packets older than their timeout were re-sent as new ones: {v}"
    );
    let resent = v["packets"]
        .as_array()
        .context("packets")?
        .iter()
        .filter(|p| p["state"] == "timed_out")
        .all(|p| p["resent_as"].as_u64() > p["sequence"].as_u64());
    ensure!(resent, "{v}");

    // 2. Someone else uses the relayer account: its sequence moves on.
    c.bump_sequence(&account(0x20));
    submit(&d, 0, 7..9, 0).await?;
    mine_until_acknowledged(&d, &node, &[(0, 8)], Duration::from_secs(90)).await?;
    ensure!(
        c.chain().sequence_mismatches >= 1,
        "the race never happened"
    );

    // 3. kill -9 in the middle of delivering 20 packets.
    c.set_delay(Duration::from_millis(250));
    let before = c.received().len();
    submit(&d, 0, 9..29, 0).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while c.received().len() < before + 3 {
        ensure!(Instant::now() < deadline, "delivery never started");
        node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    d.child.kill()?; // SIGKILL
    d.child.wait()?;
    let partial = c.received().len() - before;
    ensure!(partial < 20, "everything was delivered before the kill");
    c.set_delay(Duration::ZERO);
    d = start(&config, port, &log).await?;
    mine_until_acknowledged(&d, &node, &[(0, 28)], Duration::from_secs(120)).await?;

    // Every record exactly once, every proof once per sequence, the client alive.
    let mut heights = received_heights(&c, "chain-0")?;
    heights.sort_unstable();
    ensure!(heights == (1..29).collect::<Vec<_>>(), "{heights:?}");
    ensure!(
        c.chain().equivocations.is_empty(),
        "two proofs at one sequence: {:?}",
        c.chain().equivocations
    );
    let v = ibc_status(&d, 0).await?;
    let client = v["setup"]["client_id"].as_str().context("client id")?;
    let (sequence, frozen) = c.client(client).context("client")?;
    ensure!(!frozen, "frozen");
    ensure!(
        v["solo_machine"]["sequence"] == sequence,
        "{v} vs {sequence}"
    );
    ensure!(v["halted"].is_null() && v["counts"]["stalled"] == 0, "{v}");
    Ok(())
}

#[test]
fn btcts_ibc_setup_interrupted_after_each_step_and_run_again_finishes_once() -> Result<()> {
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    let trusted = TrustedHeader {
        height: 0,
        header: genesis.header,
    };
    for step in 1..=5u64 {
        let mut c = consumer(0, trusted)?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("btcts.toml");
        // The node is never contacted by `btcts ibc setup`.
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{}\"\nnetwork = \"litecoin-regtest\"\n[node]\nurl = \"http://127.0.0.1:9\"\nuser = \"u\"\npassword = \"p\"\n",
                dir.path().join("data").display()
            ),
        )?;
        add_ibc(&config, dir.path(), 0, 3600, &[(0, &c)])?;
        c.go_down_after(step);
        let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
            .args(["ibc", "setup", "--chain", "chain-0", "--config"])
            .arg(&config)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success(),
            "step {step}: finished despite the interruption"
        );
        ensure!(stderr.contains("again"), "step {step}: {stderr}");
        c.restart()?;
        let out = setup(&config, 0).with_context(|| format!("re-run after step {step}"))?;
        ensure!(out.contains("channel-0"), "step {step}: {out}");
        ensure!(c.counts() == (1, 1, 1), "step {step}: {:?}", c.counts());
        ensure!(c.chain().equivocations.is_empty(), "step {step}");
        let status = Command::new(env!("CARGO_BIN_EXE_btcts"))
            .args(["ibc", "status", "--chain", "chain-0", "--config"])
            .arg(&config)
            .output()?;
        let v: Value = serde_json::from_slice(&status.stdout)?;
        ensure!(v["setup"]["complete"] == true, "step {step}: {v}");
        let (sequence, frozen) = c.client("06-solomachine-0").context("client")?;
        ensure!(
            !frozen && v["solo_machine"]["sequence"] == sequence,
            "step {step}: {v}"
        );
    }
    Ok(())
}
