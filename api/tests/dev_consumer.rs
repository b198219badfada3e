//! `scripts/dev.sh --consumer` as a user runs it, with prebuilt binaries and
//! `--exit-after`: the demo sets up IBC, the feeder posts the chain's blocks,
//! x/btcts on the demo chain verifies timestamps of that chain, the printed
//! unbond command is held and released, and on exit everything is removed.
//! Each check uses the commands the demo printed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use btcts_tests::chain::ConsumerChain;
use serde_json::Value;

const CHAIN: &str = "demo-1";
/// The demo's run time; setup before it takes about 15 s.
const EXIT_AFTER: u64 = 50;

/// The demo's process, killed if the test ends early.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    /// Everything it printed so far.
    printed: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM runs the script's cleanup (kill() would orphan its children).
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

impl Demo {
    fn start() -> Result<Demo> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/dev.sh");
        let mut child = Command::new(script)
            .args(["--consumer", "--exit-after", &EXIT_AFTER.to_string()])
            .args(["--block-interval", "2"])
            .env("DEMO_BTCTS_BIN", env!("CARGO_BIN_EXE_btcts"))
            .env("DEMO_CONSUMERD_BIN", ConsumerChain::binary()?)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut stderr = child.stderr.take().context("stderr")?;
        let (tx, lines) = std::sync::mpsc::channel();
        let err_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            for line in text.lines() {
                let _ = err_tx.send(format!("stderr: {line}"));
            }
        });
        Ok(Demo {
            child,
            lines,
            printed: Vec::new(),
        })
    }

    /// Collects what the demo printed until now (without waiting).
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.printed.push(line);
        }
    }

    /// Waits up to `secs` for a printed line that `matches`; returns it.
    fn expect_line(
        &mut self,
        secs: u64,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String> {
        if let Some(line) = self.printed.iter().find(|l| matches(l)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.printed.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("no {what} within {secs} s:\n{}", self.output())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("the demo ended without {what}:\n{}", self.output())
                }
            }
        }
    }

    /// The printed command line containing `needle`, split into words (the
    /// demo's paths have no spaces).
    fn command(&self, needle: &str) -> Result<Vec<String>> {
        let line = self
            .printed
            .iter()
            .find(|l| l.contains(needle))
            .with_context(|| format!("no printed command with {needle:?}"))?;
        Ok(line.split_whitespace().map(str::to_owned).collect())
    }

    fn output(&self) -> String {
        self.printed.join("\n")
    }
}

/// Runs a printed command; its stdout as JSON.
fn run_json(words: &[String]) -> Result<Value> {
    let (program, args) = words.split_first().context("empty command")?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "{} failed: {}",
        words.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text
        .find('{')
        .with_context(|| format!("no JSON from {}: {text}", words.join(" ")))?;
    Ok(serde_json::from_str(text[start..].trim())?)
}

/// A JSON number the SDK's CLI may print as a string.
fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

async fn get_json(url: &str) -> Result<(u16, Value)> {
    let r = reqwest::get(url).await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_demo_verifies_its_chain_and_releases_an_unbonding() -> Result<()> {
    let started = Instant::now();
    let mut demo = Demo::start()?;
    // The banner ends with the log line; setup must have completed before it.
    let logs = demo.expect_line(120, "banner", |l| l.starts_with("Logs: "))?;
    ensure!(
        demo.printed
            .iter()
            .any(|l| l.starts_with("demo: IBC setup complete")),
        "{}",
        demo.output()
    );
    let dir = PathBuf::from(
        logs.trim_start_matches("Logs: ")
            .split("/{")
            .next()
            .context("log dir")?,
    );
    ensure!(
        dir.join("btcts.toml").is_file(),
        "{} has the config",
        dir.display()
    );
    let ibc_url = demo
        .command("/v1/chains/demo-1/ibc")?
        .pop()
        .context("url")?;
    let base = ibc_url.trim_end_matches("/v1/chains/demo-1/ibc").to_owned();

    // The printed unbond command, signed with the validator key.
    let mut unbond = demo.command(" tx staking unbond ")?;
    unbond.extend(["-o".to_owned(), "json".to_owned()]);
    let unbond = run_json(&unbond)?;
    ensure!(num(&unbond["code"]) == 0, "unbond refused: {unbond}");
    demo.expect_line(30, "a held unbonding", |l| {
        l.starts_with("demo: unbondings on hold: 1")
    })?;

    // The feeder posted the chain's blocks, x/btcts verified a timestamp of
    // the chain k deep, and btcts saw the acknowledgement.
    let latest = demo.command("query btcts latest-timestamp demo-1")?;
    let deadline = Instant::now() + Duration::from_secs(EXIT_AFTER);
    let verified = loop {
        demo.drain();
        let t = run_json(&latest).unwrap_or(Value::Null);
        if num(&t["timestamp"]["height"]) >= 1 {
            break t;
        }
        ensure!(
            Instant::now() < deadline,
            "no verified timestamp of {CHAIN}:\n{}",
            demo.output()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    ensure!(num(&verified["timestamp"]["depth"]) >= 3, "{verified}");
    ensure!(verified["timestamp"]["chain_id"] == CHAIN, "{verified}");
    let (status, _) = get_json(&format!("{base}/v1/chains/{CHAIN}/blocks/1")).await?;
    ensure!(status == 200, "the feeder did not post block 1: {status}");
    // The chain has executed the packet; btcts records its ack when it
    // next reads the chain's events.
    let ack_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ibc) = get_json(&ibc_url).await?;
        if num(&ibc["counts"]["acknowledged"]) >= 1 {
            break;
        }
        ensure!(
            Instant::now() < ack_deadline,
            "no acknowledgement recorded: {ibc}"
        );
        demo.drain();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    demo.expect_line(30, "the verification progress", |l| {
        l.starts_with("demo: x/btcts verified a timestamp of demo-1: height")
    })?;
    demo.expect_line(10, "the feeder's progress", |l| {
        l.starts_with("demo: feeder: btcts has every block of demo-1")
    })?;

    // The unbonding is released long before max_hold (an hour).
    demo.expect_line(EXIT_AFTER, "the release", |l| {
        l.starts_with("demo: x/btcts released 1 unbonding(s)")
    })?;
    let holds = run_json(&demo.command("query btcts holds")?)?;
    ensure!(
        holds["holds"].as_array().is_none_or(Vec::is_empty),
        "{holds}"
    );

    // --exit-after stops it cleanly and removes everything.
    demo.expect_line(EXIT_AFTER + 60, "the stop", |l| {
        l.starts_with("demo: stopped")
    })?;
    let status = demo.child.wait()?;
    ensure!(
        status.success(),
        "demo exited with {status}:\n{}",
        demo.output()
    );
    ensure!(!dir.exists(), "{} was not removed", dir.display());
    ensure!(
        reqwest::get(format!("{base}/readyz")).await.is_err(),
        "btcts still answers after the demo"
    );
    #[allow(clippy::print_stderr)]
    {
        for line in demo
            .printed
            .iter()
            .filter(|l| l.starts_with("demo:") && l.contains("unbonding"))
        {
            eprintln!("{line}");
        }
        eprintln!(
            "dev --consumer: whole run {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
