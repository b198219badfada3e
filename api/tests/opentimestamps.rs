//! The stock OpenTimestamps client and library (pinned in `.venv` by
//! `scripts/setup-tests.sh`; nobody here wrote them) against the real
//! `btcts serve` binary and a real litecoind regtest node:
//!
//! - `ots stamp` with btcts as its only calendar, `ots upgrade` once the
//!   anchor is deep enough, `ots verify` against the node's RPC, `ots info`;
//! - `.ots` exports of consumer-chain records parsed and replayed by the
//!   `opentimestamps` library up to the anchor block's Merkle root, at the
//!   height of the JSON proof;
//! - malformed calendar input over real HTTP gets 4xx.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aggregator::ots::{Attestation, DetachedTimestamp};
use aggregator::Proof;
use anyhow::{ensure, Context, Result};
use btcts_tests::node::{workspace_root, RegtestNode};
use serde_json::Value;

mod common;
use common::*;

fn venv(tool: &str) -> Result<PathBuf> {
    let path = workspace_root().join(".venv/bin").join(tool);
    ensure!(
        path.is_file(),
        "{} is missing: run scripts/setup-tests.sh",
        path.display()
    );
    Ok(path)
}

/// Runs the stock `ots` client (no cache, only our calendar whitelisted).
fn ots(calendar: &str, dir: &Path, args: &[&str]) -> Result<Output> {
    Ok(Command::new(venv("ots")?)
        .args([
            "--no-cache",
            "--no-default-whitelist",
            "--whitelist",
            calendar,
        ])
        .args(args)
        .current_dir(dir)
        .output()?)
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `opentimestamps` library's own reading of an `.ots` file.
fn replay(path: &Path) -> Result<Value> {
    let out = Command::new(venv("python")?)
        .arg(workspace_root().join("scripts/ots_replay.py"))
        .arg(path)
        .output()?;
    ensure!(out.status.success(), "ots_replay.py: {}", show(&out));
    Ok(serde_json::from_slice(&out.stdout)?)
}

async fn get_bytes(d: &Daemon, path: &str) -> Result<(u16, Vec<u8>)> {
    let r = reqwest::get(format!("{}{path}", d.url)).await?;
    Ok((r.status().as_u16(), r.bytes().await?.to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_ots_client_stamps_upgrades_and_verifies_through_btcts() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    let calendar = daemon.url.clone();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work)?;

    // 1. `ots stamp` with btcts as the only calendar.
    std::fs::write(work.join("hello.txt"), b"hello from the btcts test suite\n")?;
    let out = ots(
        &calendar,
        &work,
        &["stamp", "-c", &calendar, "-m", "1", "hello.txt"],
    )?;
    ensure!(out.status.success(), "ots stamp: {}", show(&out));
    let stamp = work.join("hello.txt.ots");
    let pending = DetachedTimestamp::from_bytes(&std::fs::read(&stamp)?)?;
    let atts = pending.timestamp.replay(&pending.digest)?;
    let (commitment, uri) = match atts.as_slice() {
        [(msg, Attestation::Pending { uri })] => (msg.clone(), uri.clone()),
        other => anyhow::bail!("expected one pending attestation, got {other:?}"),
    };
    ensure!(uri == calendar, "pending at {uri}, not {calendar}");
    let id = bitcoin::hex::DisplayHex::to_lower_hex_string(&commitment[..]);
    let (status, record) = get(&daemon, &format!("/v1/records/{id}")).await?;
    ensure!(status == 200, "the commitment is a record: {record}");
    let out = ots(&calendar, &work, &["info", "hello.txt.ots"])?;
    ensure!(out.status.success(), "ots info (pending): {}", show(&out));

    // 2. Not anchored yet: the upgrade finds nothing and says so.
    let out = ots(&calendar, &work, &["upgrade", "hello.txt.ots"])?;
    ensure!(
        !out.status.success(),
        "upgrade of a pending stamp: {}",
        show(&out)
    );
    ensure!(
        show(&out).contains("Pending confirmation"),
        "the calendar's reason reaches the user: {}",
        show(&out)
    );

    // 3. Anchored and K deep: `ots upgrade` completes the timestamp.
    mine_until(&daemon, &node, &id, K).await?;
    let out = ots(&calendar, &work, &["upgrade", "hello.txt.ots"])?;
    ensure!(out.status.success(), "ots upgrade: {}", show(&out));
    ensure!(show(&out).contains("Timestamp complete"), "{}", show(&out));

    // 4. `ots verify` against the regtest node's RPC.
    let (user, pass) = node.credentials();
    let node_url = node
        .rpc_url()
        .replace("http://", &format!("http://{user}:{pass}@"));
    let out = ots(
        &calendar,
        &work,
        &[
            "--btc-regtest",
            "--bitcoin-node",
            &node_url,
            "verify",
            "hello.txt.ots",
        ],
    )?;
    ensure!(out.status.success(), "ots verify: {}", show(&out));
    ensure!(
        show(&out).contains("Success! Bitcoin block"),
        "{}",
        show(&out)
    );
    let out = ots(&calendar, &work, &["info", "hello.txt.ots"])?;
    ensure!(out.status.success(), "ots info (complete): {}", show(&out));
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("BitcoinBlockHeaderAttestation"),
        "{}",
        show(&out)
    );
    // ... and `btcts verify` reads the client's upgraded file too.
    let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args([
            "verify",
            "--network",
            "litecoin-regtest",
            "--node",
            &node_url,
            "--file",
        ])
        .arg(work.join("hello.txt"))
        .arg(&stamp)
        .output()?;
    ensure!(
        out.status.success(),
        "btcts verify hello.txt.ots: {}",
        show(&out)
    );

    // 5. A changed file does not verify.
    std::fs::write(work.join("hello.txt"), b"hello from someone else\n")?;
    let out = ots(
        &calendar,
        &work,
        &[
            "--btc-regtest",
            "--bitcoin-node",
            &node_url,
            "verify",
            "hello.txt.ots",
        ],
    )?;
    ensure!(
        !out.status.success(),
        "a changed file verified: {}",
        show(&out)
    );

    // 6. Consumer-chain records: the export replays (in the stock library)
    // from the leaf digest to the anchor block's Merkle root, at the height
    // of the JSON proof.
    let ids = submit(&daemon, 0, 0..5, 1).await?;
    let pending_path = work.join("pending.ots");
    let (status, bytes) =
        get_bytes(&daemon, &format!("/v1/records/{}/proof?format=ots", ids[0])).await?;
    ensure!(status == 200, "pending export: {status}");
    std::fs::write(&pending_path, bytes)?;
    let v = replay(&pending_path)?;
    ensure!(v["attestations"][0]["kind"] == "pending", "{v}");
    let out = ots(&calendar, &work, &["info", "pending.ots"])?;
    ensure!(
        out.status.success(),
        "ots info (pending export): {}",
        show(&out)
    );
    for id in &ids {
        mine_until(&daemon, &node, id, K).await?;
    }
    for (i, id) in ids.iter().enumerate() {
        let (status, proof) = get(&daemon, &format!("/v1/records/{id}/proof")).await?;
        ensure!(status == 200, "proof of {id}");
        let proof: Proof = serde_json::from_value(proof)?;
        let anchor = proof.anchor.as_ref().context("anchored")?;
        let (status, bytes) =
            get_bytes(&daemon, &format!("/v1/records/{id}/proof?format=ots")).await?;
        ensure!(status == 200, "ots export of {id}: {status}");
        let path = work.join(format!("record-{i}.ots"));
        std::fs::write(&path, &bytes)?;
        let v = replay(&path)?;
        ensure!(
            v["hash_op"] == "sha256" && v["file_digest"] == id.as_str(),
            "{v}"
        );
        let header = &anchor.block.header.0;
        let merkle_root = bitcoin::hex::DisplayHex::to_lower_hex_string(&header[36..68]);
        ensure!(
            v["attestations"].as_array().map(Vec::len) == Some(1)
                && v["attestations"][0]["kind"] == "bitcoin"
                && v["attestations"][0]["msg"] == merkle_root.as_str()
                && v["attestations"][0]["height"] == u64::from(anchor.block.height),
            "{v} vs block {} root {merkle_root}",
            anchor.block.height
        );
        let out = ots(&calendar, &work, &["info", &format!("record-{i}.ots")])?;
        ensure!(out.status.success(), "ots info: {}", show(&out));
        // The leaf preimage is the file the `.ots` timestamps.
        let (status, leaf) =
            get_bytes(&daemon, &format!("/v1/records/{id}/proof?format=leaf")).await?;
        ensure!(status == 200, "leaf of {id}");
        std::fs::write(work.join(format!("record-{i}")), leaf)?;
        let out = ots(
            &calendar,
            &work,
            &[
                "--btc-regtest",
                "--bitcoin-node",
                &node_url,
                "verify",
                &format!("record-{i}.ots"),
            ],
        )?;
        ensure!(
            out.status.success(),
            "ots verify record-{i}.ots: {}",
            show(&out)
        );
    }
    // The pending export upgrades through the calendar like a stamp.
    let out = ots(&calendar, &work, &["upgrade", "pending.ots"])?;
    ensure!(
        out.status.success(),
        "ots upgrade of an export: {}",
        show(&out)
    );

    // 7. Malformed calendar input over real HTTP: 4xx, never 5xx.
    let client = reqwest::Client::new();
    for body in [Vec::new(), vec![7u8; 65], vec![7u8; 4096]] {
        let r = client
            .post(format!("{}/digest", daemon.url))
            .body(body.clone())
            .send()
            .await?;
        ensure!(
            r.status().is_client_error(),
            "POST /digest with {} bytes: {}",
            body.len(),
            r.status()
        );
    }
    for path in ["zz", "%00%ff", "not-hex", &"g".repeat(64), &"ab".repeat(40)] {
        let (status, _) = get_bytes(&daemon, &format!("/timestamp/{path}")).await?;
        ensure!((400..500).contains(&status), "/timestamp/{path}: {status}");
    }
    Ok(())
}
