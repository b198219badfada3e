//! IBC start-up failures of the real `btcts serve` binary (issue 15,
//! finding 6): a consumer chain that cannot be opened after another one was,
//! and a listen address already taken with consumer chains configured. Each
//! ends the process promptly with a non-zero status and a message that says
//! what failed — no panic, no hang. No consumer chain runs: every gRPC
//! endpoint is a closed loopback port (the relay connects lazily), the point
//! is what happens before any delivery.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use bitcoin::secp256k1::SecretKey;
use btcts_tests::node::RegtestNode;

mod common;
use common::*;

/// How long a failing start-up may take, the node's first answer included.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Appends `[ibc]` with consumer chains `chain-0` and `chain-1` (in that
/// order: the chains open sorted by id), both at closed loopback ports.
fn add_ibc(config: &Path, dir: &Path) -> Result<()> {
    std::fs::write(dir.join("solo.key"), "11".repeat(32))?;
    let mut text = std::fs::read_to_string(config)?;
    text.push_str(&format!(
        "\n[ibc]\nkey_file = \"{}\"\npoll_ms = 100\n",
        dir.join("solo.key").display()
    ));
    for i in 0..2u8 {
        let key = dir.join(format!("account-{i}.key"));
        std::fs::write(&key, format!("{:02x}", 0x20 + i).repeat(32))?;
        text.push_str(&format!(
            "[ibc.chains.chain-{i}]\ngrpc = \"http://127.0.0.1:{}\"\naccount_key_file = \"{}\"\ncheckpoint_height = 0\n",
            free_port()?,
            key.display()
        ));
    }
    std::fs::write(config, text)?;
    Ok(())
}

/// A fresh directory with a configuration for `node` on `port` with both
/// consumer chains.
fn setup(node: &RegtestNode, port: u16) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), node, port)?;
    add_ibc(&config, dir.path())?;
    Ok((dir, config))
}

/// Runs `btcts serve --config <config>` until it exits, at most [`PROMPTLY`]
/// (then it is killed and this fails): its status and its output.
fn serve_until_exit(config: &Path, dir: &Path) -> Result<(ExitStatus, String)> {
    let log_path = dir.join("btcts.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    // Killed on drop, also when this fails.
    let mut daemon = Daemon {
        child,
        url: String::new(),
        log: log_path.clone(),
    };
    let started = Instant::now();
    loop {
        if let Some(status) = daemon.child.try_wait()? {
            return Ok((status, std::fs::read_to_string(&log_path)?));
        }
        if started.elapsed() > PROMPTLY {
            bail!(
                "btcts serve still running after {PROMPTLY:?} (hung):\n{}",
                std::fs::read_to_string(&log_path)?
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The failure every start-up here must show: non-zero, no panic, the
/// `btcts:` error line containing every one of `words`.
fn assert_clean_failure(status: ExitStatus, output: &str, words: &[&str]) -> Result<()> {
    ensure!(!status.success(), "btcts serve exited 0:\n{output}");
    ensure!(
        !output.contains("panicked"),
        "btcts serve panicked ({status}):\n{output}"
    );
    let Some(line) = output.lines().find(|l| l.starts_with("btcts: ")) else {
        bail!("no `btcts:` error line ({status}):\n{output}");
    };
    for word in words {
        ensure!(line.contains(word), "{word:?} missing from {line:?}");
    }
    Ok(())
}

#[test]
fn a_consumer_chain_that_cannot_be_opened_after_another_fails_start_up_naming_it() -> Result<()> {
    let node = RegtestNode::start()?;

    // chain-1's solo-machine signer was set up with another key than
    // ibc.key_file (chain-0's relay is open by then).
    let (dir, config) = setup(&node, free_port()?)?;
    let store = dir.path().join("data/ibc/chain-1");
    std::fs::create_dir_all(&store)?;
    let other = SecretKey::from_slice(&[0x33; 32])?;
    drop(ibc_relay::Signer::open(
        &store.join("signer.redb"),
        other,
        "btcts/chain-1",
        1,
    )?);
    let (status, output) = serve_until_exit(&config, dir.path())?;
    assert_clean_failure(status, &output, &["chain-1", "another key"])?;

    // chain-1's store directory cannot be created (a file is in the way):
    // the error names the chain although the file system does not.
    let (dir, config) = setup(&node, free_port()?)?;
    std::fs::create_dir_all(dir.path().join("data/ibc"))?;
    std::fs::write(dir.path().join("data/ibc/chain-1"), "not a directory")?;
    let (status, output) = serve_until_exit(&config, dir.path())?;
    assert_clean_failure(status, &output, &["chain-1"])?;
    Ok(())
}

#[test]
fn a_taken_listen_port_with_consumer_chains_fails_start_up_without_hanging() -> Result<()> {
    let node = RegtestNode::start()?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let (dir, config) = setup(&node, port)?;
    let (status, output) = serve_until_exit(&config, dir.path())?;
    assert_clean_failure(status, &output, &[&format!("127.0.0.1:{port}")])?;
    drop(taken);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_consumer_chains_serve_starts_and_stops_on_sigterm() -> Result<()> {
    let node = RegtestNode::start()?;
    let port = free_port()?;
    let (dir, config) = setup(&node, port)?;
    let log = dir.path().join("btcts.log");
    let mut daemon = start(&config, port, &log).await?;
    let (status, body) = get(&daemon, "/v1/chains/chain-1/ibc").await?;
    ensure!(status == 200, "ibc status answered {status}: {body}");
    ensure!(body["setup"]["complete"] == false, "{body}");
    let sent = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()?;
    ensure!(sent.success(), "kill -TERM failed");
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = daemon.child.try_wait()? {
            break status;
        }
        if stopped.elapsed() > PROMPTLY {
            bail!(
                "btcts serve did not stop on SIGTERM:\n{}",
                std::fs::read_to_string(&log)?
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = std::fs::read_to_string(&log)?;
    ensure!(status.success(), "exited {status}:\n{output}");
    ensure!(!output.contains("panicked"), "{output}");
    ensure!(output.contains("btcts stopped"), "{output}");
    Ok(())
}
