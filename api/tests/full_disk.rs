//! A full disk (issue 15, finding 4): the real `btcts serve` binary with its
//! data directory on a small tmpfs, against a real litecoind regtest node.
//! Submissions fill the disk until one is refused; while it is full
//! `/readyz` and submissions answer 503 with a stable code (never 500);
//! once space is back the store reopens itself without a restart, new
//! submissions are acknowledged, anchoring goes on, and every record
//! acknowledged before or after is still there, also after a restart.
//!
//! Mounting needs root; without it the test fails (it does not skip).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btcts_tests::node::RegtestNode;
use serde_json::{json, Value};

mod common;
use common::*;

/// A tmpfs mounted at a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(at)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            bail!(
                "this test mounts a small tmpfs to fill the disk and needs root (CAP_SYS_ADMIN): mount failed: {}",
                text(&out.stderr).trim()
            );
        }
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// One submission of `n` records of chain-0 from `first`: status, code,
/// Retry-After and the acknowledged ids.
async fn post(
    d: &Daemon,
    first: u64,
    n: u64,
) -> Result<(u16, String, Option<String>, Vec<String>)> {
    let blocks: Vec<Value> = (first..first + n)
        .map(|h| json!({ "height": h, "block_hash": format!("{h:064x}"), "staker_set_digest": "cd".repeat(32) }))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chains/chain-0/blocks", d.url))
        .bearer_auth("token-0")
        .json(&json!({ "blocks": blocks }))
        .send()
        .await?;
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let ids = body["records"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    Ok((status, code, retry, ids))
}

async fn readyz(d: &Daemon) -> Result<(u16, Value)> {
    get(d, "/readyz").await
}

async fn all_present(d: &Daemon, ids: &[String]) -> Result<()> {
    let client = reqwest::Client::new();
    for id in ids {
        let r = client
            .get(format!("{}/v1/records/{id}", d.url))
            .send()
            .await?;
        ensure!(
            r.status().as_u16() == 200,
            "acknowledged record {id} answers {}",
            r.status()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_recovers_without_a_restart() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let log = dir.path().join("btcts.log");
    let data = dir.path().join("data");
    let _mount = Tmpfs::mount(&data, "16m")?;
    // Space the test gives back later.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![7u8; 12 << 20])?;

    let daemon = start(&config, port, &log).await?;
    let mut acked = Vec::new();
    let mut next = 0u64;
    let per = 1000;
    // Fill the disk until a submission is refused.
    let (status, code, retry) = loop {
        ensure!(next < 1_000_000, "the disk never filled");
        let (status, code, retry, ids) = post(&daemon, next, per).await?;
        next += per;
        if status == 202 {
            acked.extend(ids);
            continue;
        }
        break (status, code, retry);
    };
    ensure!(
        !acked.is_empty(),
        "nothing was acknowledged before the disk filled"
    );
    ensure!(
        status == 503 && (code == "disk_full" || code == "store_unavailable") && retry.is_some(),
        "a submission on a full disk answered {status} {code:?} (Retry-After {retry:?})"
    );
    // It lasts: later submissions are refused the same way, and not ready.
    let refused_from = next;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (status, code, _, _) = post(&daemon, next, per).await?;
        ensure!(
            status == 503 && code == "disk_full",
            "while full: {status} {code:?}"
        );
    }
    let (status, body) = readyz(&daemon).await?;
    ensure!(
        status == 503 && body["code"] == "disk_full",
        "readyz while full: {status} {body}"
    );

    // Space comes back: ready again without a restart.
    std::fs::remove_file(&filler)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = readyz(&daemon).await?;
        if status == 200 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "readyz after space came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, code, _, ids) = post(&daemon, refused_from, per).await?;
    ensure!(
        status == 202,
        "a submission after recovery: {status} {code:?}"
    );
    let last = ids.last().context("acknowledged ids")?.clone();
    acked.extend(ids);
    all_present(&daemon, &acked).await?;

    // Anchoring goes on: the first and the last record get confirmed.
    mine_until(&daemon, &node, &acked[0], K).await?;
    mine_until(&daemon, &node, &last, K).await?;

    // And after a restart everything acknowledged is still there.
    drop(daemon);
    let daemon = start(&config, port, &log).await?;
    all_present(&daemon, &acked).await?;
    Ok(())
}
