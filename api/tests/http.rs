//! The HTTP API in process (`oneshot` on the router) over a real store and
//! the fake node: auth, limits, bad input, and the read routes.

use std::sync::Arc;

use aggregator::clock::FixedClock;
use aggregator::{verify, Expect, Ingestor, Store};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use btc_submitter::fake::FakeNode;
use btc_submitter::{AnchorConfig, Anchorer};
use btcts_api::auth::{Credentials, TokenHash};
use btcts_api::config::Config;
use btcts_api::server::{app, AppState, OPENAPI, ROUTES};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    fake: Arc<FakeNode>,
    state: Arc<AppState>,
}

fn harness(tweak: impl FnOnce(&mut btcts_api::config::LimitsSection)) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(dir.path().join("s.redb"), Arc::new(FixedClock::new(1))).expect("store");
    let (ingestor, _writer) = Ingestor::start(store.clone()).expect("writer");
    let fake = Arc::new(FakeNode::new());
    let mut limits = Config::default().limits;
    limits.max_body_bytes = 64 * 1024;
    limits.max_records_per_request = 100;
    tweak(&mut limits);
    let mut credentials = Credentials::default();
    credentials.chains.insert(
        "chain-a".parse().expect("id"),
        vec![TokenHash::of("token-a")],
    );
    credentials.chains.insert(
        "chain-b".parse().expect("id"),
        vec![TokenHash::of("token-b")],
    );
    credentials.admin = Some(TokenHash::of("admin"));
    let state = Arc::new(AppState {
        store: store.clone(),
        ingestor,
        node: fake.clone(),
        credentials,
        limits,
        confirmations: 2,
        network: aggregator::AnchorNetwork::Regtest,
        metrics: None,
        tips: None,
    });
    Harness {
        _dir: dir,
        store,
        fake,
        state,
    }
}

fn block(height: u64, hash: u8) -> Value {
    json!({ "height": height, "block_hash": format!("{hash:02x}").repeat(32), "staker_set_digest": "ab".repeat(32) })
}

async fn call(
    h: &Harness,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b)
        }
        None => Body::empty(),
    };
    let response = app(h.state.clone())
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn submit(h: &Harness, chain: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    call(
        h,
        Method::POST,
        &format!("/v1/chains/{chain}/blocks"),
        token,
        Some(body.to_string()),
    )
    .await
}

#[tokio::test]
async fn submission_is_acknowledged_durably_with_duplicates_and_forks() {
    let h = harness(|_| {});
    let (status, body) = submit(
        &h,
        "chain-a",
        Some("token-a"),
        json!({ "blocks": [block(1, 1), block(2, 2)] }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let records = body["records"].as_array().expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["status"], "pending");
    assert_eq!(h.store.record_count().expect("count"), 2);
    let (_, again) = submit(
        &h,
        "chain-a",
        Some("token-a"),
        json!({ "blocks": [block(1, 1), block(2, 9)] }),
    )
    .await;
    assert_eq!(again["records"][0]["duplicate"], true);
    assert_eq!(again["records"][0]["id"], records[0]["id"]);
    assert_eq!(again["records"][1]["conflict"], true);
    let (status, at) = call(&h, Method::GET, "/v1/chains/chain-a/blocks/2", None, None).await;
    assert_eq!(
        (
            status,
            at["fork"].clone(),
            at["records"].as_array().map(Vec::len)
        ),
        (StatusCode::OK, json!(true), Some(2))
    );
    let (_, conflicts) = call(&h, Method::GET, "/v1/chains/chain-a/conflicts", None, None).await;
    assert_eq!(conflicts["conflicts"][0]["height"], 2);
}

#[tokio::test]
async fn rejected_requests_get_their_documented_status_and_store_nothing() {
    let h = harness(|_| {});
    let one = json!({ "blocks": [block(1, 1)] });
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        ("chain-a", None, one.to_string(), StatusCode::UNAUTHORIZED, "unauthorized"),
        ("chain-a", Some("nope"), one.to_string(), StatusCode::UNAUTHORIZED, "unauthorized"),
        ("chain-a", Some("token-b"), one.to_string(), StatusCode::FORBIDDEN, "forbidden"),
        ("chain-z", Some("token-a"), one.to_string(), StatusCode::NOT_FOUND, "unknown_chain"),
        ("bad%20chain", Some("token-a"), one.to_string(), StatusCode::BAD_REQUEST, "invalid_chain_id"),
        ("chain-a", Some("token-a"), "{\"blocks\": [".into(), StatusCode::BAD_REQUEST, "malformed_body"),
        ("chain-a", Some("token-a"), json!({ "blocks": [1] }).to_string(), StatusCode::BAD_REQUEST, "malformed_body"),
        ("chain-a", Some("token-a"), json!({ "blocks": [], "x": 1 }).to_string(), StatusCode::BAD_REQUEST, "malformed_body"),
        ("chain-a", Some("token-a"), json!({ "blocks": [] }).to_string(), StatusCode::UNPROCESSABLE_ENTITY, "no_records"),
        (
            "chain-a",
            Some("token-a"),
            json!({ "blocks": [{ "height": 1, "block_hash": "zz", "staker_set_digest": "ab".repeat(32) }] }).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_hex",
        ),
        (
            "chain-a",
            Some("token-a"),
            json!({ "blocks": [{ "height": -1, "block_hash": "11".repeat(32), "staker_set_digest": "ab".repeat(32) }] }).to_string(),
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
        (
            "chain-a",
            Some("token-a"),
            json!({ "blocks": (0..101).map(|i| block(i, 1)).collect::<Vec<_>>() }).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_records",
        ),
        (
            "chain-a",
            Some("token-a"),
            json!({ "blocks": [block(1, 1)], "pad": "x".repeat(70_000) }).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (chain, token, body, status, code) in cases {
        let (got, err) = call(
            &h,
            Method::POST,
            &format!("/v1/chains/{chain}/blocks"),
            token,
            Some(body),
        )
        .await;
        assert_eq!(
            (got, err["code"].as_str()),
            (status, Some(code)),
            "{chain} {token:?}: {err}"
        );
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(
        h.store.record_count().expect("count"),
        0,
        "no rejected record was stored"
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let h = harness(|l| {
        l.rate_per_second = 1;
        l.rate_burst = 3;
    });
    let router = app(h.state.clone());
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..5 {
        let req = Request::post("/v1/chains/chain-a/blocks")
            .header("authorization", "Bearer token-a")
            .header("content-type", "application/json")
            .body(Body::from(json!({ "blocks": [block(i, 1)] }).to_string()))
            .expect("request");
        let response = router.clone().oneshot(req).await.expect("response");
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response.headers().get("retry-after").cloned();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let v: Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(v["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], &[StatusCode::ACCEPTED; 3]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some(), "Retry-After is set");
    assert_eq!(h.store.record_count().expect("count"), 3);
}

#[tokio::test]
async fn reads_follow_a_record_from_pending_to_confirmed_and_serve_verifiable_proofs() {
    let h = harness(|_| {});
    let (_, body) = submit(
        &h,
        "chain-a",
        Some("token-a"),
        json!({ "blocks": [block(7, 1), block(8, 2)] }),
    )
    .await;
    let id = body["records"][1]["id"].as_str().expect("id").to_owned();
    let (status, rec) = call(&h, Method::GET, &format!("/v1/records/{id}"), None, None).await;
    assert_eq!(
        (status, rec["status"].clone()),
        (StatusCode::OK, json!("pending"))
    );
    let (status, err) = call(
        &h,
        Method::GET,
        &format!("/v1/records/{id}/proof"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, err["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_batched_yet"))
    );

    let mut config = AnchorConfig::new(aggregator::AnchorNetwork::Regtest);
    config.confirmations = 2;
    let mut anchorer = Anchorer::new(
        h.store.clone(),
        h.fake.clone(),
        config,
        Arc::new(FixedClock::new(1)),
    );
    anchorer.step().expect("anchors");
    let (_, rec) = call(&h, Method::GET, &format!("/v1/records/{id}"), None, None).await;
    assert_eq!(rec["status"], "batched");
    let (_, status) = call(&h, Method::GET, "/v1/chains/chain-a/status", None, None).await;
    assert_eq!(
        (
            status["latest_submitted_height"].clone(),
            status["latest_anchored"].clone()
        ),
        (json!(8), Value::Null)
    );

    h.fake.mine(1);
    anchorer.step().expect("reconciles");
    let (_, rec) = call(&h, Method::GET, &format!("/v1/records/{id}"), None, None).await;
    assert_eq!(
        (rec["status"].clone(), rec["confirmations"].clone()),
        (json!("anchored"), json!(1))
    );
    let (_, status) = call(&h, Method::GET, "/v1/chains/chain-a/status", None, None).await;
    assert_eq!(
        (
            status["latest_anchored"]["height"].clone(),
            status["latest_confirmed"].clone()
        ),
        (json!(8), Value::Null)
    );

    h.fake.mine(1);
    anchorer.step().expect("reconciles");
    let (_, status) = call(&h, Method::GET, "/v1/chains/chain-a/status", None, None).await;
    assert_eq!(status["latest_confirmed"]["height"], 8);
    assert_eq!(status["latest_confirmed"]["confirmations"], 2);
    let (status, proof) = call(
        &h,
        Method::GET,
        &format!("/v1/records/{id}/proof"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let proof: aggregator::Proof = serde_json::from_value(proof).expect("proof document");
    let v = verify(&proof, &Expect::default()).expect("verifies");
    assert_eq!(v.anchor.map(|a| a.confirmations), Some(2));
    let (status, batch) = call(&h, Method::GET, "/v1/batches/0", None, None).await;
    assert_eq!(
        (
            status,
            batch["size"].clone(),
            batch["anchor"]["status"].clone()
        ),
        (StatusCode::OK, json!(2), json!("confirmed"))
    );

    // A reorg of the anchor block: the status drops at the next poll.
    h.fake.reorg(2, 3);
    anchorer.step().expect("reconciles");
    let (_, status) = call(&h, Method::GET, "/v1/chains/chain-a/status", None, None).await;
    assert_eq!(
        (
            status["latest_anchored"].clone(),
            status["latest_confirmed"].clone()
        ),
        (Value::Null, Value::Null)
    );
}

#[tokio::test]
async fn bad_read_parameters_are_4xx() {
    let h = harness(|_| {});
    for (uri, status, code) in [
        (
            "/v1/records/zz",
            StatusCode::BAD_REQUEST,
            "invalid_record_id",
        ),
        (
            &*format!("/v1/records/{}", "00".repeat(32)),
            StatusCode::NOT_FOUND,
            "record_not_found",
        ),
        (
            &*format!("/v1/records/{}/proof", "00".repeat(32)),
            StatusCode::NOT_FOUND,
            "record_not_found",
        ),
        ("/v1/batches/x", StatusCode::BAD_REQUEST, "invalid_batch"),
        ("/v1/batches/5", StatusCode::NOT_FOUND, "batch_not_found"),
        (
            "/v1/chains/a/blocks/-1",
            StatusCode::BAD_REQUEST,
            "invalid_height",
        ),
        (
            "/v1/chains/a%2Fb/status",
            StatusCode::BAD_REQUEST,
            "invalid_chain_id",
        ),
        ("/nope", StatusCode::NOT_FOUND, "no_such_route"),
    ] {
        let (got, body) = call(&h, Method::GET, uri, None, None).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{uri}");
    }
    let (got, body) = call(&h, Method::DELETE, "/v1/batches/1", None, None).await;
    assert_eq!(
        (got, body["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn a_read_token_guards_reads_when_configured() {
    let mut h = harness(|_| {});
    let state = Arc::get_mut(&mut h.state).expect("unique");
    state.credentials.read = Some(TokenHash::of("reader"));
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("token-a"), StatusCode::FORBIDDEN),
        (Some("reader"), StatusCode::OK),
        (Some("admin"), StatusCode::OK),
    ] {
        let (got, _) = call(&h, Method::GET, "/v1/chains/chain-a/status", token, None).await;
        assert_eq!(got, status, "{token:?}");
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let h = harness(|_| {});
    assert_eq!(
        call(&h, Method::GET, "/healthz", None, None).await.0,
        StatusCode::OK
    );
    let (status, ready) = call(&h, Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, ready["network"].clone()),
        (StatusCode::OK, json!("regtest"))
    );
    h.fake.set_down(true);
    let (status, body) = call(&h, Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!("node_unavailable"))
    );
}

#[tokio::test]
async fn the_served_spec_is_the_file_and_lists_every_route() {
    let h = harness(|_| {});
    let response = app(h.state.clone())
        .oneshot(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .expect("spec");
    assert_eq!(std::str::from_utf8(&bytes).expect("utf-8"), file);
    assert_eq!(OPENAPI, file);
    let spec: Value = serde_json::from_str(&file).expect("json");
    let paths = spec["paths"].as_object().expect("paths");
    let mut in_spec: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    in_spec.sort();
    served.sort();
    assert_eq!(in_spec, served);
    // And ROUTES is what the router really serves: none falls through.
    for (method, path) in ROUTES {
        let uri = path
            .replace("{chain_id}", "chain-a")
            .replace("{height}", "1")
            .replace("{id}", &"00".repeat(32))
            .replace("{seq}", "0");
        let (_, body) = call(
            &h,
            method.to_uppercase().parse().expect("method"),
            &uri,
            Some("token-a"),
            Some("{}".into()),
        )
        .await;
        assert_ne!(body["code"], "no_such_route", "{method} {path}");
        assert_ne!(body["code"], "method_not_allowed", "{method} {path}");
    }
}
