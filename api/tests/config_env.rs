//! The environment `btcts serve` starts in is shared: a `BTCTS_*` variable
//! that names no configuration key (our own golden tests set
//! `BTCTS_WRITE_GOLDEN`) is ignored with one warning, not a refusal to start;
//! a value outside its range is refused before anything starts.

use std::process::{Command, Stdio};

use anyhow::{ensure, Result};
use btcts_tests::node::RegtestNode;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_with_unrelated_btcts_variables_and_warns_once() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let log_path = dir.path().join("btcts.log");
    let os = std::ffi::OsStr::new;
    let daemon = start_with_env(
        &config,
        port,
        &log_path,
        &[
            ("BTCTS_WRITE_GOLDEN", os("1")),
            ("BTCTS_NODE_PASWORD", os("value-of-the-typo")),
            // Not UTF-8: std::env::vars() panicked on it.
            (
                "SOMEONE_ELSES",
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9"),
            ),
            ("RUST_LOG", os("info")),
        ],
    )
    .await?;
    let (status, _) = get(&daemon, "/v1/chains/chain-0/status").await?;
    ensure!(status == 200, "status answered {status}");
    let log = std::fs::read_to_string(&log_path)?;
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ignoring BTCTS_* environment variables"))
        .collect();
    ensure!(warnings.len() == 1, "one warning expected:\n{log}");
    ensure!(
        warnings[0].contains("BTCTS_NODE_PASWORD, BTCTS_WRITE_GOLDEN")
            && !log.contains("value-of-the-typo"),
        "the warning names the variables, never their values:\n{log}"
    );
    drop(daemon);

    // A value outside its range: refused, naming the key and the range.
    let out = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("BTCTS_WRITE_GOLDEN", "1")
        .env("BTCTS_LIMITS_RATE_PER_SECOND", "4000000000")
        .stdin(Stdio::null())
        .output()?;
    let stderr = text(&out.stderr);
    ensure!(!out.status.success(), "started with an unlimited rate");
    ensure!(
        stderr.contains("`limits.rate_per_second`") && stderr.contains("1..=1000000000"),
        "{stderr}"
    );
    Ok(())
}
