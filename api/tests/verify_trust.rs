//! `btcts verify` must never call a forgeable proof "verified": forgeries a
//! laptop makes (`btcts_tests::forge`) against the real binary, the trust
//! anchors file, and `--node` against a live litecoind whose anchor block
//! is then invalidated.

use std::path::Path;

use aggregator::proof::Proof;
use aggregator::AnchorNetwork;
use anyhow::{ensure, Context, Result};
use bitcoin::block::Header;
use btcts_tests::forge::{
    difficulty_one_mainnet, forge, grind, solve_for, Forgery, DIFFICULTY_ONE, REGTEST_BITS,
};
use btcts_tests::node::RegtestNode;
use serde_json::Value;

mod common;
use common::*;

fn write(dir: &Path, name: &str, proof: &Proof) -> String {
    let path = dir.join(name);
    std::fs::write(&path, proof.to_json()).expect("write");
    path.to_str().expect("utf-8 path").to_owned()
}

/// Runs `btcts verify ARGS FILE` and expects exit 1 naming `step` (and `detail`).
fn refused(file: &str, args: &[&str], step: &str, detail: &str) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    all.push(file);
    let out = btcts(&all);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} {file}: {stderr}");
    assert!(
        stderr.contains(&format!("NOT VERIFIED: {step}")) && stderr.contains(detail),
        "{args:?} {file}: expected {step:?} / {detail:?} in: {stderr}"
    );
    assert!(!text(&out.stdout).contains("proof verified"));
}

/// Runs `btcts verify --json ARGS FILE`, expects success; the JSON.
fn accepted(file: &str, args: &[&str]) -> Value {
    let mut all = vec!["verify", "--json"];
    all.extend_from_slice(args);
    all.push(file);
    let out = btcts(&all);
    assert!(
        out.status.success(),
        "{args:?} {file}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn forged_proofs_are_refused_by_default_naming_the_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // (a) A regtest proof: three headers mined in microseconds.
    let regtest = Forgery {
        network: AnchorNetwork::Regtest,
        bits: REGTEST_BITS,
        headers: 3,
        second_payload: false,
    };
    let a = write(
        d,
        "a.json",
        &forge(&regtest, solve_for(AnchorNetwork::Regtest)),
    );
    refused(&a, &[], "network", "a test network");
    // ... it passes only when regtest is asked for, with the warning.
    let out = btcts(&["verify", "--network", "regtest", &a]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("WARNING: regtest is a test network")
            && stdout.contains("trust:       test-network")
            && stdout.contains("proof verified (test network)"),
        "{stdout}"
    );
    let v = accepted(&a, &["--network", "regtest"]);
    assert_eq!(v["trust"], "test-network");
    assert!(v["warning"]
        .as_str()
        .expect("warning")
        .contains("test network"));
    refused(&a, &["--network", "bitcoin"], "network", "expected bitcoin");

    // (b) The same relabelled litecoin-regtest, its headers ground to
    // satisfy both proof-of-work functions.
    let both = |_: usize, h: &mut Header| {
        grind(h, |h| {
            AnchorNetwork::Regtest.pow_hash(h) <= h.target()
                && AnchorNetwork::LitecoinRegtest.pow_hash(h) <= h.target()
        })
    };
    let relabelled = forge(
        &Forgery {
            network: AnchorNetwork::LitecoinRegtest,
            ..regtest
        },
        both,
    );
    let b = write(d, "b.json", &relabelled);
    refused(&b, &[], "network", "litecoin-regtest, a test network");
    refused(&b, &["--network", "regtest"], "network", "expected regtest");
    assert_eq!(
        accepted(&b, &["--network", "litecoin-regtest"])["trust"],
        "test-network"
    );

    // (c) A "mainnet" proof at difficulty 1: real work (about 2^32 hashes a
    // header, seconds on a GPU), far below the floor.
    let mainnet = difficulty_one_mainnet();
    for h in std::iter::once(&mainnet.anchor.as_ref().expect("anchored").block.header).chain(
        mainnet
            .anchor
            .as_ref()
            .expect("anchored")
            .headers_after
            .iter()
            .map(|h| &h.header),
    ) {
        let header: Header = bitcoin::consensus::deserialize(&h.0).expect("header");
        assert_eq!(
            AnchorNetwork::Bitcoin.check_pow(&header),
            Ok(()),
            "the forgery carries real difficulty-1 work"
        );
    }
    let c = write(d, "c.json", &mainnet);
    refused(&c, &[], "proof of work", "below the bitcoin floor");
    refused(
        &c,
        &["--network", "bitcoin"],
        "proof of work",
        "below the bitcoin floor",
    );

    // (d) Two btcts payloads in the anchor transaction (another root).
    let two = Forgery {
        network: AnchorNetwork::Bitcoin,
        bits: 0x170d_0864,
        headers: 1,
        second_payload: true,
    };
    let dd = write(d, "d.json", &forge(&two, |_, _| {}));
    refused(&dd, &[], "op_return payload", "2 btcts payload outputs");
    let two_regtest = forge(
        &Forgery {
            second_payload: true,
            ..regtest
        },
        solve_for(AnchorNetwork::Regtest),
    );
    let dr = write(d, "d-regtest.json", &two_regtest);
    refused(
        &dr,
        &["--network", "regtest"],
        "op_return payload",
        "a v1 anchor has exactly one",
    );
}

#[test]
fn trust_anchor_files_move_the_floor_and_add_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mainnet = difficulty_one_mainnet();
    let c = write(d, "c.json", &mainnet);
    let anchor_hash = mainnet.anchor.as_ref().expect("anchored").block.hash;

    // With the floor at difficulty 1 the same forgery is only work: the
    // floor is what refused it, and the output says what the work is worth.
    let floor_one = d.join("floor-one.toml");
    std::fs::write(
        &floor_one,
        format!("[bitcoin]\nfloor_bits = \"{DIFFICULTY_ONE:#010x}\"\nsubsidy = 312500000\n"),
    )
    .expect("write");
    let floor_one = floor_one.to_str().expect("utf-8");
    let v = accepted(&c, &["--trust-anchors", floor_one]);
    assert_eq!(v["trust"], "work-only");
    let work = &v["result"]["anchor"]["work"];
    let log2 = work["log2"].as_f64().expect("log2");
    assert!(
        (log2 - 33.0).abs() < 0.01,
        "two difficulty-1 headers: {work}"
    );
    assert!((work["blocks_at_floor"].as_f64().expect("blocks") - 2.0).abs() < 1e-6);
    let out = btcts(&["verify", "--trust-anchors", floor_one, &c]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("trust:       work-only") && stdout.contains("6.250 BTC of block rewards"),
        "{stdout}"
    );

    // A checkpoint at the anchor block makes it checkpointed; the wrong
    // height for it, or another block at the checkpoint's height, fails.
    let checkpointed = d.join("checkpointed.toml");
    std::fs::write(
        &checkpointed,
        format!(
            "[bitcoin]\nfloor_bits = \"0x1d00ffff\"\nsubsidy = 1\ncheckpoints = [{{ height = 900000, hash = \"{anchor_hash}\" }}]\n"
        ),
    )
    .expect("write");
    let v = accepted(
        &c,
        &["--trust-anchors", checkpointed.to_str().expect("utf-8")],
    );
    assert_eq!(v["trust"], "checkpointed");
    assert_eq!(v["result"]["anchor"]["checkpoint"]["height"], 900_000);
    let elsewhere = d.join("elsewhere.toml");
    std::fs::write(
        &elsewhere,
        "[bitcoin]\nfloor_bits = \"0x1d00ffff\"\ncheckpoints = [{ height = 900001, hash = \"00000000000000000000000000000000000000000000000000000000000000aa\" }]\n",
    )
    .expect("write");
    refused(
        &c,
        &["--trust-anchors", elsewhere.to_str().expect("utf-8")],
        "checkpoint",
        "the checkpoint there is",
    );

    // Bad files are refused before anything is verified (exit 2).
    for (name, body) in [
        ("unknown.toml", "[dogecoin]\nfloor_bits = \"0x1d00ffff\"\n"),
        ("testnet.toml", "[regtest]\nfloor_bits = \"0x1d00ffff\"\n"),
        ("typo.toml", "[bitcoin]\nflor_bits = \"0x1d00ffff\"\n"),
        ("syntax.toml", "[bitcoin\n"),
    ] {
        let path = d.join(name);
        std::fs::write(&path, body).expect("write");
        let out = btcts(&[
            "verify",
            "--trust-anchors",
            path.to_str().expect("utf-8"),
            &c,
        ]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--trust-anchors"), "{name}");
    }
}

#[test]
fn golden_proofs_verify_with_their_network_named() {
    let golden = |name: &str| {
        format!(
            "{}/../aggregator/tests/data/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    for (name, network) in [
        ("bitcoin-regtest-pos-block.json", "regtest"),
        ("litecoin-regtest-pos-block.json", "litecoin-regtest"),
        ("litecoin-regtest-digest.json", "litecoin-regtest"),
    ] {
        let path = golden(name);
        refused(&path, &[], "network", "a test network");
        let v = accepted(&path, &["--network", network]);
        assert_eq!(v["trust"], "test-network", "{name}");
        assert_eq!(v["result"]["anchor"]["confirmations"], 3, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_checked_until_the_node_drops_the_anchor_block() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    let ids = submit(&daemon, 0, 1..2, 7).await?;
    let id = ids.first().context("one record")?;
    mine_until(&daemon, &node, id, K).await?;
    let (status, proof) = get(&daemon, &format!("/v1/records/{id}/proof")).await?;
    ensure!(status == 200, "proof: {proof}");
    let path = dir.path().join("proof.json");
    std::fs::write(&path, proof.to_string())?;
    let path = path.to_str().context("utf-8")?;
    let anchor_hash = proof["anchor"]["block"]["hash"]
        .as_str()
        .context("anchor hash")?
        .to_owned();

    // Credentials from a bitcoin.conf-style file, not from argv.
    let (user, password) = node.credentials();
    let conf = dir.path().join("node.conf");
    std::fs::write(&conf, format!("rpcuser={user}\nrpcpassword={password}\n"))?;
    let conf = conf.to_str().context("utf-8")?;
    let url = node.rpc_url();
    // `btcts verify PROOF --network litecoin-regtest --node URL EXTRA…`.
    let with_node = |node_url: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            path,
            "--network",
            "litecoin-regtest",
            "--node",
            node_url,
        ];
        args.extend_from_slice(extra);
        btcts(&args)
    };
    let conf_args = ["--node-conf", conf];

    node.mine(2)?;
    let out = with_node(&url, &["--node-conf", conf, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v["valid"] == true && v["trust"] == "node-checked", "{v}");
    let depth = v["result"]["anchor"]["confirmations"].as_u64().unwrap_or(0);
    ensure!(depth >= K + 2, "depth is the node's, not the proof's: {v}");
    let out = with_node(&url, &conf_args);
    ensure!(
        text(&out.stdout).contains("in the node's best chain and holds the transaction"),
        "{}",
        text(&out.stdout)
    );
    // No credentials: told how to give them (exit 2, nothing verified).
    let out = with_node(&url, &[]);
    ensure!(out.status.code() == Some(2), "{}", text(&out.stderr));
    ensure!(
        text(&out.stderr).contains("--node-cookie"),
        "{}",
        text(&out.stderr)
    );
    // A password in the URL still works, with a warning.
    let with_password = url.replacen("://", &format!("://{user}:{password}@"), 1);
    let out = with_node(&with_password, &[]);
    ensure!(out.status.success(), "{}", text(&out.stderr));
    ensure!(text(&out.stderr).contains("visible to every local user"));

    // The node drops the anchor block: not verified, and why.
    node.call("invalidateblock", &[Value::String(anchor_hash.clone())])?;
    refused(
        path,
        &[
            "--network",
            "litecoin-regtest",
            "--node",
            &url,
            "--node-conf",
            conf,
        ],
        "node",
        &format!("block {anchor_hash} is not in the node's best chain"),
    );
    let out = with_node(&url, &["--node-conf", conf, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        out.status.code() == Some(1) && v["valid"] == false && v["error"]["step"] == "node",
        "{v}"
    );
    // Offline, the document alone is still consistent (test-network trust).
    ensure!(accepted(path, &["--network", "litecoin-regtest"])["trust"] == "test-network");
    Ok(())
}
