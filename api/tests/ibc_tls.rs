//! IBC delivery over TLS, end to end on loopback: the `btcts` binary against
//! a real litecoind regtest node, delivering to a test consumer chain whose
//! gRPC port sits behind a TLS proxy with a test CA ([`btcts_tests::tls`]).
//! `[ibc.chains.<id>] grpc = "https://127.0.0.1:PORT"` with `grpc_ca_file`
//! sets the chain up and delivers verified packets; without the CA file
//! `btcts ibc setup` fails naming the certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aggregator::{AnchorNetwork, ChainId, Tag};
use anyhow::{ensure, Context, Result};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use btc_submitter::BitcoinNode;
use btcts_consumer::{ConsumerParams, TrustedHeader};
use btcts_tests::network::{TestConsumer, PREFIX};
use btcts_tests::node::RegtestNode;
use btcts_tests::scenarios::TestChain;
use btcts_tests::tls::{TestPki, TlsProxy};

mod common;
use common::*;

const ACCOUNT_KEY: u8 = 0x20;

/// `chain-0`'s table, reached at `url`, trusting `ca` if given.
fn chain_table(dir: &Path, url: &str, ca: Option<&Path>, checkpoint: u32) -> Result<String> {
    let key = dir.join("account-0.key");
    std::fs::write(&key, format!("{ACCOUNT_KEY:02x}").repeat(32))?;
    let ca = ca
        .map(|p| format!("grpc_ca_file = \"{}\"\n", p.display()))
        .unwrap_or_default();
    Ok(format!(
        "[ibc.chains.chain-0]\ngrpc = \"{url}\"\n{ca}account_key_file = \"{}\"\n\
         checkpoint_height = {checkpoint}\ndeliver = \"all\"\nlegacy_connection_proofs = true\n",
        key.display()
    ))
}

fn setup(config: &Path) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["ibc", "setup", "--chain", "chain-0", "--config"])
        .arg(config)
        .output()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ibc_delivery_reaches_a_consumer_behind_tls_with_grpc_ca_file() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let rpc = node.node()?;
    let height = rpc.chain_info()?.tip_height;
    let hash = rpc.block_hash_at(height)?.context("tip")?;
    let trusted = TrustedHeader {
        height,
        header: rpc.header(&hash)?,
    };
    let account = SecretKey::from_slice(&[ACCOUNT_KEY; 32])?;
    let address = ibc_relay::cosmos::address(&account.public_key(&Secp256k1::new()), PREFIX)?;
    let consumer = TestConsumer::start(
        "chain-0",
        trusted,
        ConsumerParams {
            chain_id: ChainId::new("chain-0")?,
            network: AnchorNetwork::LitecoinRegtest,
            tag: Tag::DEFAULT,
            k: K as u32,
        },
        &[address],
    )?;
    let backend: SocketAddr = consumer.url().trim_start_matches("http://").parse()?;
    let pki = TestPki::generate()?;
    let proxy = TlsProxy::start(&pki, backend)?;
    let ca = dir.path().join("consumer-ca.pem");
    pki.write_ca(&ca)?;
    std::fs::write(dir.path().join("solo.key"), "11".repeat(32))?;
    let base = std::fs::read_to_string(&config)?;
    let ibc = format!(
        "\n[ibc]\nkey_file = \"{}\"\npoll_ms = 200\n",
        dir.path().join("solo.key").display()
    );

    // Without the CA: the handshake fails and says why.
    let table = chain_table(dir.path(), &proxy.url(), None, height)?;
    std::fs::write(&config, format!("{base}{ibc}{table}"))?;
    let out = setup(&config)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "set up without trusting the CA");
    ensure!(
        stderr.to_lowercase().contains("certificate"),
        "no certificate error: {stderr}"
    );
    ensure!(consumer.counts() == (0, 0, 0), "the consumer was touched");

    // With it: setup, then delivery of a record at depth k.
    let table = chain_table(dir.path(), &proxy.url(), Some(&ca), height)?;
    std::fs::write(&config, format!("{base}{ibc}{table}"))?;
    let out = setup(&config)?;
    ensure!(
        out.status.success(),
        "setup over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(consumer.counts() == (1, 1, 1), "{:?}", consumer.counts());
    let d = start(&config, port, &dir.path().join("btcts.log")).await?;
    submit(&d, 0, 1..3, 0).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, v) = get(&d, "/v1/chains/chain-0/ibc").await?;
        if v["counts"]["acknowledged"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "not acknowledged over TLS: {v}\n{}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        );
        node.mine(1)?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut heights = Vec::new();
    for (packet, verdict) in consumer.received() {
        let v = verdict.map_err(|e| anyhow::anyhow!("packet {} refused: {e}", packet.seq_on_a))?;
        heights.push(v.record.height);
    }
    heights.sort_unstable();
    ensure!(heights == [1, 2], "received {heights:?}");
    Ok(())
}
