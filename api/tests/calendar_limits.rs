//! The open calendar cannot crowd out consumer chains (issue 15, finding
//! 2): each client has a digest quota (429 `calendar_quota`), and beyond a
//! global number of pending records the calendar answers 503
//! `calendar_busy` — while a consumer chain's submissions go on being
//! accepted. Over a real socket, so the limiter keeps its state.

use std::net::SocketAddr;

use btcts_api::server::app;
use serde_json::{json, Value};

mod inproc;
use inproc::{anchorer, harness_ots};

async fn serve(h: &inproc::Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app(h.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Status, `Retry-After` and error code of one digest.
async fn digest(client: &reqwest::Client, url: &str, i: u32) -> (u16, Option<String>, String) {
    let r = client
        .post(format!("{url}/digest"))
        .body(format!("digest number {i}"))
        .send()
        .await
        .expect("response");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.bytes().await.expect("body");
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, retry, code)
}

async fn consumer_submit(client: &reqwest::Client, url: &str, height: u64) -> u16 {
    client
        .post(format!("{url}/v1/chains/chain-a/blocks"))
        .bearer_auth("token-a")
        .json(&json!({ "blocks": [{
            "height": height,
            "block_hash": format!("{:064x}", height + 1),
            "staker_set_digest": "ab".repeat(32),
        }] }))
        .send()
        .await
        .expect("response")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_digest_quota_gets_429_and_chains_are_not_affected() {
    let h = harness_ots(|o| {
        o.digests_per_second = 1;
        o.digest_burst = 5;
    });
    let url = serve(&h).await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(digest(&client, &url, i).await);
    }
    let accepted = statuses.iter().filter(|s| s.0 == 200).count();
    assert_eq!(accepted, 5, "the burst, then the quota: {statuses:?}");
    let (status, retry, code) = &statuses[7];
    assert_eq!((*status, code.as_str()), (429, "calendar_quota"));
    assert!(
        retry.as_deref().and_then(|r| r.parse::<u64>().ok()) >= Some(1),
        "Retry-After: {retry:?}"
    );
    // A consumer chain is not counted against the calendar's quota.
    assert_eq!(consumer_submit(&client, &url, 1).await, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_pending_cap_the_calendar_answers_503_until_the_next_anchor() {
    let h = harness_ots(|o| o.max_pending = 10);
    let url = serve(&h).await;
    let client = reqwest::Client::new();
    for i in 0..10 {
        assert_eq!(digest(&client, &url, i).await.0, 200, "digest {i}");
    }
    let (status, retry, code) = digest(&client, &url, 10).await;
    assert_eq!((status, code.as_str()), (503, "calendar_busy"));
    assert_eq!(retry.as_deref(), Some("30"));
    // Consumer chains are never refused by the calendar's cap.
    for height in 1..=5 {
        assert_eq!(consumer_submit(&client, &url, height).await, 202);
    }
    assert_eq!(h.store.pending_count().expect("count"), 15);
    // The next anchor takes every pending record; the calendar opens again.
    anchorer(&h).step().expect("anchors");
    assert_eq!(h.store.pending_count().expect("count"), 0);
    assert_eq!(digest(&client, &url, 11).await.0, 200);
}
