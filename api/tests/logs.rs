//! The real `btcts serve` with stderr piped to a file: with
//! `[log] format = "json"` every line is a JSON object; with text (here
//! chosen by BTCTS_LOG_FORMAT over the file's json) lines are plain. Neither
//! carries ANSI escape codes, stderr not being a terminal.

use std::path::Path;

use anyhow::{ensure, Result};
use btcts_tests::node::RegtestNode;
use serde_json::Value;

mod common;
use common::*;

/// Runs `btcts serve` with `[log] format = "json"` in its file and `env`,
/// submits a record and mines it to depth (so the anchoring loop logs),
/// and returns the log file's lines.
async fn serve_and_log(env: &[(&str, &std::ffi::OsStr)]) -> Result<Vec<String>> {
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str("\n[log]\nformat = \"json\"\n");
    std::fs::write(&config, text)?;
    let log = dir.path().join("btcts.log");
    let d = start_with_env(&config, port, &log, env).await?;
    let ids = submit(&d, 0, 1..3, 1).await?;
    mine_until(&d, &node, &ids[0], 1).await?;
    drop(d);
    read_lines(&log)
}

fn read_lines(log: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(log)?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn no_escape_codes(lines: &[String]) -> Result<()> {
    for line in lines {
        ensure!(
            !line.contains("\x1b["),
            "an ANSI escape code in a piped log line: {line:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_writes_one_json_object_per_line() -> Result<()> {
    // A variable naming no key: its warning comes after logging is set up,
    // so it is JSON too.
    let lines = serve_and_log(&[("BTCTS_NO_SUCH_KEY", "1".as_ref())]).await?;
    ensure!(lines.len() >= 3, "too few log lines: {lines:?}");
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("not JSON ({e}): {line:?}"))?;
        ensure!(
            v["level"].is_string() && v["fields"].is_object(),
            "a JSON line without level and fields: {line}"
        );
    }
    ensure!(
        lines.iter().any(|l| l.contains("BTCTS_NO_SUCH_KEY")),
        "the ignored-variable warning is missing: {lines:?}"
    );
    no_escape_codes(&lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_piped_has_no_escape_codes() -> Result<()> {
    let lines = serve_and_log(&[("BTCTS_LOG_FORMAT", "text".as_ref())]).await?;
    ensure!(lines.len() >= 3, "too few log lines: {lines:?}");
    ensure!(
        lines.iter().all(|l| !l.starts_with('{')),
        "BTCTS_LOG_FORMAT=text did not override the file's json: {lines:?}"
    );
    ensure!(
        lines.iter().any(|l| l.contains(" INFO ")),
        "no plain INFO line: {lines:?}"
    );
    no_escape_codes(&lines)
}

/// A line per request only with `[log] access` (here BTCTS_LOG_ACCESS):
/// by default requests are logged at debug, which `info` filters out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_logged_only_with_the_access_log_on() -> Result<()> {
    let requests = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("\"message\":\"request\""))
            .cloned()
            .collect::<Vec<_>>()
    };
    let quiet = serve_and_log(&[]).await?;
    ensure!(
        requests(&quiet).is_empty(),
        "request lines without the access log: {:?}",
        requests(&quiet)
    );
    let logged = serve_and_log(&[("BTCTS_LOG_ACCESS", "true".as_ref())]).await?;
    let lines = requests(&logged);
    ensure!(
        lines.iter().any(|l| l.contains("\"status\":202")),
        "no access line for the submission: {lines:?}"
    );
    ensure!(
        lines.iter().all(|l| l.contains("\"level\":\"INFO\"")),
        "{lines:?}"
    );
    Ok(())
}
