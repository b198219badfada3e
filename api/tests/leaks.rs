//! What anonymous clients must not learn (issue 15, finding 8): the node's
//! own error text, and whether a consumer-chain record exists when reads
//! need a token.

use axum::http::{Method, StatusCode};
use btcts_api::auth::TokenHash;
use serde_json::{json, Value};

mod inproc;
use inproc::{anchor_to_depth, harness, harness_with, send, Harness};

async fn submit_one(h: &Harness) -> String {
    let body = json!({ "blocks": [{ "height": 1, "block_hash": "11".repeat(32), "staker_set_digest": "22".repeat(32) }] });
    let (status, _, bytes) = send(
        h,
        Method::POST,
        "/v1/chains/chain-a/blocks",
        Some("token-a"),
        Some("application/json"),
        body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    v["records"][0]["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn node_errors_stay_in_the_log() {
    let h = harness(|_| {});
    let id = submit_one(&h).await;
    anchor_to_depth(&h, 2);
    h.fake.set_down(true);
    for uri in ["/readyz".to_owned(), format!("/v1/records/{id}/proof")] {
        let (status, _, bytes) = send(&h, Method::GET, &uri, None, None, Vec::new()).await;
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {text}");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["code"], "node_unavailable", "{uri}");
        assert!(
            !text.contains("fake node is down") && !text.contains("node unavailable:"),
            "{uri} leaks the node's error: {text}"
        );
    }
}

#[tokio::test]
async fn the_calendar_does_not_tell_who_exists_when_reads_need_a_token() {
    let h = harness_with(|_| {}, |c| c.read = Some(TokenHash::of("reader")));
    let id = submit_one(&h).await;
    let unknown = "cd".repeat(32);
    let get = |id: String, token: Option<&'static str>| {
        let h = &h;
        async move {
            let (status, _, body) = send(
                h,
                Method::GET,
                &format!("/timestamp/{id}"),
                token,
                None,
                Vec::new(),
            )
            .await;
            (status, body)
        }
    };
    let for_unknown = get(unknown.clone(), None).await;
    assert_eq!(for_unknown.0, StatusCode::NOT_FOUND);
    // Without the read token, an existing record looks exactly unknown
    // (it was 401 before), with a wrong token too.
    assert_eq!(get(id.clone(), None).await, for_unknown);
    assert_eq!(get(id.clone(), Some("guess")).await, for_unknown);
    // With it, the record is there (pending: not yet anchored).
    let (status, body) = get(id, Some("reader")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        String::from_utf8_lossy(&body).contains("Pending confirmation"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test]
async fn monitoring_can_require_the_read_token() {
    for required in [false, true] {
        let h = harness_with(
            |_| {},
            |c| {
                c.read = Some(TokenHash::of("reader"));
                c.monitoring_requires_read = required;
            },
        );
        for uri in ["/readyz", "/metrics"] {
            let (status, _, _) = send(&h, Method::GET, uri, None, None, Vec::new()).await;
            assert_eq!(
                status == StatusCode::UNAUTHORIZED,
                required,
                "{uri} without a token, required: {required}"
            );
            let (status, _, _) = send(&h, Method::GET, uri, Some("reader"), None, Vec::new()).await;
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{uri} with the read token"
            );
        }
    }
}
