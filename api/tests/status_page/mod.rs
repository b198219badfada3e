//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`) loads `/` from a live `btcts dev`, the text it renders is
//! checked against `/status`, and a screenshot is taken (written to
//! `docs/status-page.png` with `BTCTS_WRITE_GOLDEN=1`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

/// The Chromium binary, or why there is none (a skip outside CI only).
fn chromium() -> Result<Option<PathBuf>> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                return Ok(Some(PathBuf::from(path)));
            }
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("no chromium: scripts/setup-tests.sh installs Debian's chromium");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "SKIP status page in Chromium: no chromium binary (scripts/setup-tests.sh installs it)"
        );
    }
    Ok(None)
}

fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chromium);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Text of the element `id="{id}"` in `dom`.
fn by_id<'d>(dom: &'d str, id: &str) -> Option<&'d str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = at + dom[at..].find('>')? + 1;
    let end = start + dom[start..].find('<')?;
    Some(&dom[start..end])
}

/// Submits a few more records as blocks pass (so the page has batches to
/// show), then checks the page against `/status` and takes the screenshot.
pub async fn check(url: &str, client: &reqwest::Client, token: &str) -> Result<()> {
    let Some(chromium) = chromium()? else {
        return Ok(());
    };
    let mut last = String::new();
    for h in 2..=4u64 {
        let body = json!({ "blocks": [{ "height": h, "block_hash": format!("{h:02x}").repeat(32), "staker_set_digest": "22".repeat(32) }] });
        let r: Value = client
            .post(format!("{url}/v1/chains/dev-chain/blocks"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        last = r["records"][0]["id"].as_str().context("id")?.to_owned();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rec: Value = client
            .get(format!("{url}/v1/records/{last}"))
            .send()
            .await?
            .json()
            .await?;
        if rec["status"] == "confirmed" {
            break;
        }
        ensure!(Instant::now() < deadline, "not confirmed: {rec}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let before: Value = client
        .get(format!("{url}/status"))
        .send()
        .await?
        .json()
        .await?;
    let dir = tempfile::tempdir()?;
    let out = headless(&chromium, &dir.path().join("profile"))
        .arg("--dump-dom")
        .arg(format!("{url}/"))
        .output()?;
    ensure!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout)?;
    let after: Value = client
        .get(format!("{url}/status"))
        .send()
        .await?
        .json()
        .await?;

    ensure!(
        by_id(&dom, "network") == before["network"].as_str(),
        "network: {dom}"
    );
    let tip: u64 = by_id(&dom, "tip").context("tip")?.parse()?;
    let (t0, t1) = (
        before["tip_height"].as_u64().context("tip before")?,
        after["tip_height"].as_u64().context("tip after")?,
    );
    ensure!((t0..=t1).contains(&tip), "tip {tip} outside {t0}..={t1}");
    // The demo's record, the 3 submitted here and the 2 digests the demo
    // test stamps through the calendar.
    ensure!(by_id(&dom, "records") == Some("6"), "records: {dom}");
    let balance = after["wallet"]["balance_sat"].as_u64().context("balance")?;
    ensure!(balance > 0, "{after}");
    ensure!(
        by_id(&dom, "balance").is_some_and(|b| b.ends_with(" sat")),
        "{dom}"
    );
    // Every batch /status lists is on the page with its txid.
    let batches = before["batches"].as_array().context("batches")?;
    ensure!(batches.len() >= 2, "{before}");
    for b in batches {
        if let Some(txid) = b["txid"].as_str() {
            ensure!(
                dom.contains(txid),
                "batch {} ({txid}) not on the page",
                b["seq"]
            );
        }
    }
    ensure!(dom.contains("dev-chain"), "the chain row");
    ensure!(!dom.contains("<script"), "no JavaScript");

    let shot = dir.path().join("status-page.png");
    let out = headless(&chromium, &dir.path().join("profile2"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1100,1250")
        .arg(format!("{url}/"))
        .output()?;
    ensure!(
        out.status.success(),
        "chromium screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot)?;
    ensure!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot of {} bytes",
        png.len()
    );
    if std::env::var("BTCTS_WRITE_GOLDEN").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/status-page.png");
        std::fs::write(docs, png)?;
    }
    Ok(())
}
