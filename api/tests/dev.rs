//! `btcts dev` as a new user runs it: it prints a token and examples, a
//! submitted record is confirmed within a minute, `btcts proof` and
//! `btcts verify` work on it, and Ctrl-C stops everything cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

mod status_page;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_confirms_a_record_and_stops_on_ctrl_c() -> Result<()> {
    let port = btc_submitter::regtest::loopback_port()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_btcts"))
        .args([
            "dev",
            "--port",
            &port.to_string(),
            "--block-interval",
            "1",
            "--confirmations",
            "2",
        ])
        // The calendar's limits come from the environment, as in `serve`.
        .env("BTCTS_OPENTIMESTAMPS_DIGESTS_PER_SECOND", "1")
        .env("BTCTS_OPENTIMESTAMPS_DIGEST_BURST", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut token = None;
    let mut printed = String::new();
    while !printed.contains("Ctrl-C stops everything") {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .context("btcts dev printed no banner")?;
        printed.push_str(&line);
        printed.push('\n');
        if token.is_none() {
            token = line
                .trim()
                .strip_prefix("token")
                .map(|t| t.trim().to_owned());
        }
    }
    let token = token.context("token")?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        ensure!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut digests = Vec::new();
    for i in 0..3u8 {
        let r = client
            .post(format!("{url}/digest"))
            .body(vec![i; 32])
            .send()
            .await?;
        digests.push(r.status().as_u16());
    }
    ensure!(
        digests == [200, 200, 429],
        "a burst of 2 digests from the environment: {digests:?}"
    );
    let body = json!({ "blocks": [{ "height": 1, "block_hash": "11".repeat(32), "staker_set_digest": "22".repeat(32) }] });
    let r: Value = client
        .post(format!("{url}/v1/chains/dev-chain/blocks"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let id = r["records"][0]["id"].as_str().context("id")?.to_owned();
    let started = Instant::now();
    loop {
        let rec: Value = client
            .get(format!("{url}/v1/records/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if rec["status"] == "confirmed" {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "not confirmed within a minute: {rec}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("proof.json");
    let exe = env!("CARGO_BIN_EXE_btcts");
    let got = Command::new(exe)
        .args(["proof", &id, "--url", &url, "-o"])
        .arg(&file)
        .output()?;
    ensure!(
        got.status.success(),
        "btcts proof: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    // The demo runs on a test network: the verifier wants it named.
    let network = btcts_tests::node::NodeKind::detect().network().to_string();
    let verified = Command::new(exe)
        .args(["verify", "--network", &network])
        .arg(&file)
        .output()?;
    ensure!(
        verified.status.success(),
        "btcts verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    ensure!(
        printed.contains("curl -s -X POST") && printed.contains("btcts -- verify --network "),
        "{printed}"
    );
    status_page::check(&url, &client, &token).await?;

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        ensure!(
            Instant::now() < deadline,
            "btcts dev did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(status.success(), "exit status {status}");
    let mut rest = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        rest.push_str(&line);
    }
    ensure!(rest.contains("stopped"), "no goodbye: {rest}");
    ensure!(
        client.get(format!("{url}/healthz")).send().await.is_err(),
        "the server is gone"
    );
    Ok(())
}
