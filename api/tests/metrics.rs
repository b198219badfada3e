//! `/metrics` of the real `btcts serve` on litecoind: `# HELP` lines,
//! histogram buckets and the alerting gauges with plausible values; the
//! alert rules pass `promtool check rules`; every metric the rules and the
//! Grafana dashboard use is one the code exports (catches typos).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use btcts_api::metrics_catalog::{Kind, METRICS};
use btcts_tests::node::RegtestNode;

mod common;
use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The value of the sample line starting with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Scrapes until every series in `wanted` has a sample (the store size is
/// measured shortly after start, the balance on a new block).
async fn scrape_until(d: &Daemon, wanted: &[&str]) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!("{}/metrics", d.url))
            .await?
            .text()
            .await?;
        let missing: Vec<&&str> = wanted
            .iter()
            .filter(|s| sample(&text, s).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("/metrics never showed {missing:?}:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Appends `[ibc]` with one consumer chain, `chain-2`, at a closed port
/// (not set up: its delivery loop runs and reports it not halted).
fn add_ibc(config: &Path, dir: &Path) -> Result<()> {
    std::fs::write(dir.join("solo.key"), "11".repeat(32))?;
    std::fs::write(dir.join("account.key"), "22".repeat(32))?;
    let mut text = std::fs::read_to_string(config)?;
    text.push_str(&format!(
        "\n[ibc]\nkey_file = \"{}\"\npoll_ms = 100\n[ibc.chains.chain-2]\ngrpc = \"http://127.0.0.1:{}\"\naccount_key_file = \"{}\"\ncheckpoint_height = 0\n",
        dir.join("solo.key").display(),
        free_port()?,
        dir.join("account.key").display()
    ));
    std::fs::write(config, text)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_help_buckets_and_plausible_gauges() -> Result<()> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    add_ibc(&config, dir.path())?;
    let d = start(&config, port, &dir.path().join("btcts.log")).await?;
    let ids = submit(&d, 0, 1..4, 1).await?;
    mine_until(&d, &node, &ids[0], K).await?;
    node.mine(1)?;

    let gauges = [
        "btcts_wallet_balance_sat",
        "btcts_anchor_last_confirmed_timestamp_seconds",
        "btcts_anchoring_failing",
        "btcts_ibc_chain_halted{chain=\"chain-2\"}",
        "btcts_store_disk_bytes",
    ];
    let text = scrape_until(&d, &gauges).await?;

    for name in [
        "btcts_wallet_balance_sat",
        "btcts_anchor_last_confirmed_timestamp_seconds",
        "btcts_anchoring_failing",
        "btcts_ibc_chain_halted",
        "btcts_store_disk_bytes",
        "btcts_http_requests_total",
        "btcts_http_request_duration_seconds",
        "btcts_anchor_time_to_first_confirmation_seconds",
    ] {
        ensure!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP line for {name}:\n{text}"
        );
    }
    for histogram in [
        "btcts_http_request_duration_seconds",
        "btcts_anchor_time_to_first_confirmation_seconds",
        "btcts_store_write_wait_seconds",
        "btcts_store_write_hold_seconds",
        "btcts_store_commit_seconds",
    ] {
        ensure!(
            text.contains(&format!("# TYPE {histogram} histogram")),
            "{histogram} is not a histogram:\n{text}"
        );
        let buckets = text
            .lines()
            .filter(|l| l.starts_with(&format!("{histogram}_bucket{{")) && l.contains("le=\""))
            .count();
        ensure!(
            buckets >= 5,
            "{histogram} has {buckets} bucket lines:\n{text}"
        );
    }

    let value = |series: &str| sample(&text, series).context(series.to_owned());
    let balance = value("btcts_wallet_balance_sat")?;
    ensure!(
        balance > 1e8 && balance < 84e6 * 1e8,
        "wallet balance {balance} sat is implausible for a funded regtest wallet"
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let confirmed = value("btcts_anchor_last_confirmed_timestamp_seconds")?;
    ensure!(
        (confirmed - now).abs() < 2.0 * 3600.0,
        "last confirmed anchor at {confirmed}, now is {now}"
    );
    ensure!(
        value("btcts_anchoring_failing")? == 0.0,
        "anchoring reported failing"
    );
    ensure!(
        value("btcts_ibc_chain_halted{chain=\"chain-2\"}")? == 0.0,
        "a chain not set up reported halted"
    );
    // Every write transaction is timed by what it writes: the submissions,
    // the seal and the anchor's transitions all happened above. A commit
    // is part of the hold, and no durable commit takes no time at all.
    for op in ["ingest", "seal", "anchor"] {
        let count = |name: &str| value(&format!("{name}_count{{op=\"{op}\"}}"));
        let sum = |name: &str| value(&format!("{name}_sum{{op=\"{op}\"}}"));
        for name in [
            "btcts_store_write_wait_seconds",
            "btcts_store_write_hold_seconds",
            "btcts_store_commit_seconds",
        ] {
            ensure!(count(name)? >= 1.0, "no {name} for op {op}:\n{text}");
        }
        let (hold, commit) = (
            sum("btcts_store_write_hold_seconds")?,
            sum("btcts_store_commit_seconds")?,
        );
        ensure!(
            commit > 0.0 && hold >= commit && hold < 60.0,
            "op {op}: hold {hold} s, commit {commit} s"
        );
    }
    let disk = value("btcts_store_disk_bytes")?;
    let actual = std::fs::metadata(dir.path().join("data/btcts.redb"))?.len() as f64;
    ensure!(
        disk > 0.0 && disk <= actual * 2.0 && disk >= actual / 2.0,
        "store size {disk} bytes, the file has {actual}"
    );
    Ok(())
}

/// Metric names in `text`, histogram series suffixes removed.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("btcts_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(name.to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every name the sources emit with `metrics::counter!` and friends.
fn emitted() -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for krate in ["aggregator", "btc-submitter", "ibc-relay", "feeder", "api"] {
        let mut dirs = vec![repo().join(krate).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path)?;
                    for kind in ["counter", "gauge", "histogram"] {
                        let call = format!("metrics::{kind}!(\"");
                        for (at, _) in text.match_indices(&call) {
                            let tail = &text[at + call.len()..];
                            names.insert(tail[..tail.find('"').unwrap_or(0)].to_owned());
                        }
                    }
                }
            }
        }
    }
    Ok(names)
}

#[test]
fn the_catalog_alerts_and_dashboard_name_only_exported_metrics() -> Result<()> {
    let catalog: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
    let emitted = emitted()?;
    ensure!(
        catalog == emitted,
        "the catalog and the code disagree: only in the catalog {:?}, only in the code {:?}",
        catalog.difference(&emitted).collect::<Vec<_>>(),
        emitted.difference(&catalog).collect::<Vec<_>>()
    );
    let histograms: BTreeSet<&str> = METRICS
        .iter()
        .filter(|m| m.kind == Kind::Histogram)
        .map(|m| m.name)
        .collect();
    for file in [
        "contrib/prometheus/alerts.yml",
        "contrib/grafana/btcts.json",
    ] {
        let text = std::fs::read_to_string(repo().join(file))?;
        let used = names_in(&text);
        ensure!(!used.is_empty(), "{file} uses no btcts metric");
        let unknown: Vec<&String> = used.difference(&catalog).collect();
        ensure!(
            unknown.is_empty(),
            "{file} uses metrics btcts does not export: {unknown:?}"
        );
        for h in &histograms {
            ensure!(
                !text.contains(&format!("{h}{{")) && !text.contains(&format!("{h}[")),
                "{file} reads histogram {h} without _bucket/_sum/_count"
            );
        }
    }
    serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(
        repo().join("contrib/grafana/btcts.json"),
    )?)
    .context("the dashboard is not JSON")?;
    Ok(())
}

#[test]
#[allow(clippy::print_stderr)] // the reason for a skip is the test's report
fn alert_rules_pass_promtool() -> Result<()> {
    let rules = repo().join("contrib/prometheus/alerts.yml");
    let out = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is missing under CI=true: scripts/setup-tests.sh installs it (Debian prometheus)"
            );
            eprintln!("SKIP alert_rules_pass_promtool: promtool not installed (apt-get install prometheus)");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    ensure!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(())
}
