//! schemathesis (a tool nobody here wrote, pinned in `.venv` by
//! `scripts/setup-tests.sh`) against the live server and its own spec: no
//! server error and no response that violates the spec.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use btcts_tests::node::RegtestNode;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_or_spec_violation() -> Result<()> {
    let st = btcts_tests::node::workspace_root().join(".venv/bin/schemathesis");
    ensure!(
        st.is_file(),
        "{} is missing: run scripts/setup-tests.sh",
        st.display()
    );
    let node = RegtestNode::start()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = write_config(dir.path(), &node, port)?;
    let daemon = start(&config, port, &dir.path().join("btcts.log")).await?;
    // Some data for the read routes to find.
    let ids = submit(&daemon, 0, 0..20, 1).await?;
    node.mine(1)?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = tokio::task::spawn_blocking({
        let url = daemon.url.clone();
        // Its cache (`.schemathesis/`) goes to the temp dir, not the repo.
        let cwd = dir.path().to_owned();
        move || {
            Command::new(st)
                .current_dir(cwd)
                .args(["run", &format!("{url}/openapi.json"), "--url", &url])
                .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
                .args(["--max-examples", "40", "--seed", "1", "--no-color"])
                // Event streams never end by themselves (api/tests/events.rs covers them).
                .args(["--exclude-path-regex", "events$"])
                .args(["--header", "Authorization: Bearer token-0"])
                .output()
        }
    })
    .await??;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    ensure!(
        report.contains("passed") || report.contains("Passed"),
        "no test ran:\n{report}"
    );
    let (status, _) = get(
        &daemon,
        &format!("/v1/records/{}", ids.first().context("id")?),
    )
    .await?;
    ensure!(status == 200, "the server still answers after the run");
    Ok(())
}
