//! The HTTP API in process (`oneshot` on the router) over a real store and
//! the fake node: auth, limits, bad input, and the read routes.

use std::sync::Arc;

use aggregator::{verify, Expect};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use btcts_api::auth::TokenHash;
use btcts_api::server::{app, OPENAPI, ROUTES};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

mod inproc;
use inproc::{anchor_to_depth, harness, harness_with, send, Harness, CALENDAR};

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
    let json = body.is_some().then_some("application/json");
    let (status, _, bytes) = send(h, method, uri, token, json, body.unwrap_or_default()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `GET /v1/records/{id}/proof`, without a token.
async fn get_proof(h: &Harness, id: &str) -> (StatusCode, Value) {
    call(
        h,
        Method::GET,
        &format!("/v1/records/{id}/proof"),
        None,
        None,
    )
    .await
}

/// Submits one block for chain-a and returns its record's id.
async fn submit_one(h: &Harness, height: u64, hash: u8) -> String {
    let (status, body) = submit(
        h,
        "chain-a",
        Some("token-a"),
        json!({ "blocks": [block(height, hash)] }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["records"][0]["id"].as_str().expect("id").to_owned()
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
    let (status, err) = get_proof(&h, &id).await;
    assert_eq!(
        (status, err["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_batched_yet"))
    );

    let mut anchorer = inproc::anchorer(&h);
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
    let (status, proof) = get_proof(&h, &id).await;
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
    // The calendar upgrade of a consumer-chain record is a read too; the
    // calendar's own digests stay open.
    let id = submit_one(&h, 1, 1).await;
    // Without the token the calendar answers as for an unknown commitment.
    let (status, _, body) =
        call_raw(&h, Method::GET, &format!("/timestamp/{id}"), None, vec![]).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).into_owned()),
        (StatusCode::NOT_FOUND, "Commitment not found".to_owned())
    );
    let (status, _, _) = call_raw(
        &h,
        Method::GET,
        &format!("/timestamp/{id}"),
        Some("reader"),
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "pending");
    let (status, _, body) = call_raw(&h, Method::POST, "/digest", None, vec![3; 32]).await;
    assert_eq!(status, StatusCode::OK);
    let leaf = aggregator::leaf::leaf_hash(&aggregator::Record::Digest {
        digest: aggregator::types::RawDigest([3; 32]),
    });
    let (status, _, _) =
        call_raw(&h, Method::GET, &format!("/timestamp/{leaf}"), None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "pending, not unauthorized");
    assert!(!body.is_empty());
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
        // An event stream never ends: a bad resume point answers 400 at once.
        let uri = match uri.ends_with("/events") {
            true => format!("{uri}?after=x"),
            false => uri,
        };
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

/// A request with a raw body: status, content type and body bytes.
async fn call_raw(
    h: &Harness,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String, Vec<u8>) {
    send(h, method, uri, token, None, body).await
}

#[tokio::test]
async fn the_calendar_takes_a_digest_and_upgrades_it_once_deep_enough() {
    use aggregator::ots::{Attestation, Timestamp};
    let h = harness(|_| {});
    let digest = [0x5au8; 32];
    let (status, content_type, body) =
        call_raw(&h, Method::POST, "/digest", None, digest.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, aggregator::ots::MEDIA_TYPE);
    let pending = Timestamp::from_bytes(&body).expect("a timestamp");
    let atts = pending.replay(&digest).expect("replays");
    let leaf = aggregator::leaf::leaf_hash(&aggregator::Record::Digest {
        digest: aggregator::types::RawDigest(digest),
    });
    assert_eq!(
        atts,
        vec![(
            leaf.as_bytes().to_vec(),
            Attestation::Pending {
                uri: CALENDAR.into()
            }
        )]
    );
    // The digest is a record now; submitting it again is idempotent.
    let (status, _, again) = call_raw(&h, Method::POST, "/digest", None, digest.to_vec()).await;
    assert_eq!((status, again), (StatusCode::OK, body));
    assert_eq!(h.store.pending_count().expect("count"), 1);
    // Other lengths are hashed first.
    let (status, _, short) = call_raw(&h, Method::POST, "/digest", None, vec![1; 20]).await;
    assert_eq!(status, StatusCode::OK);
    let atts = Timestamp::from_bytes(&short)
        .and_then(|t| t.replay(&[1; 20]))
        .expect("replays");
    let hashed = bitcoin::hashes::Hash::to_byte_array(
        <bitcoin::hashes::sha256::Hash as bitcoin::hashes::Hash>::hash(&[1; 20]),
    );
    let short_leaf = aggregator::leaf::leaf_hash(&aggregator::Record::Digest {
        digest: aggregator::types::RawDigest(hashed),
    });
    assert_eq!(atts[0].0, short_leaf.as_bytes().to_vec());

    let upgrade = format!("/timestamp/{leaf}");
    let (status, content_type, reason) = call_raw(&h, Method::GET, &upgrade, None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(
        String::from_utf8_lossy(&reason),
        "Pending confirmation in Bitcoin blockchain; 0 of 2 confirmations"
    );
    anchor_to_depth(&h, 1);
    let (status, _, reason) = call_raw(&h, Method::GET, &upgrade, None, vec![]).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&reason).into_owned()),
        (
            StatusCode::NOT_FOUND,
            "Pending confirmation in Bitcoin blockchain; 1 of 2 confirmations".into()
        )
    );
    h.fake.mine(1);
    let (status, content_type, body) = call_raw(&h, Method::GET, &upgrade, None, vec![]).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, aggregator::ots::MEDIA_TYPE)
    );
    let upgraded = Timestamp::from_bytes(&body).expect("a timestamp");
    let atts = upgraded.replay(leaf.as_bytes()).expect("replays");
    // It ends in the anchor block's Merkle root, at the anchor block's height.
    let (_, proof) = call(
        &h,
        Method::GET,
        &format!("/v1/records/{leaf}/proof"),
        None,
        None,
    )
    .await;
    let proof: aggregator::Proof = serde_json::from_value(proof).expect("proof");
    verify(&proof, &Expect::default()).expect("the JSON proof verifies");
    let anchor = proof.anchor.expect("anchored");
    let header: bitcoin::block::Header =
        bitcoin::consensus::deserialize(&anchor.block.header.0).expect("header");
    assert_eq!(
        atts,
        vec![(
            bitcoin::hashes::Hash::as_byte_array(&header.merkle_root).to_vec(),
            Attestation::Bitcoin {
                height: u64::from(anchor.block.height)
            }
        )]
    );
}

#[tokio::test]
async fn malformed_calendar_input_is_4xx() {
    let h = harness(|_| {});
    for (body, why) in [(vec![], "empty"), (vec![7; 65], "65 bytes")] {
        let (status, _, body) = call_raw(&h, Method::POST, "/digest", None, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        let err: Value = serde_json::from_slice(&body).expect("json error");
        assert_eq!(err["code"], "invalid_digest", "{why}");
    }
    assert_eq!(h.store.pending_count().expect("count"), 0, "nothing stored");
    for path in [
        "/timestamp/zz",
        "/timestamp/not-hex-at-all",
        &format!("/timestamp/{}", "g".repeat(64)),
        &format!("/timestamp/{}", "ab".repeat(31)),
        &format!("/timestamp/{}", "ab".repeat(33)),
    ] {
        let (status, _, body) = call_raw(&h, Method::GET, path, None, vec![]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        let err: Value = serde_json::from_slice(&body).expect("json error");
        assert_eq!(err["code"], "invalid_commitment", "{path}");
    }
    let unknown = format!("/timestamp/{}", "ab".repeat(32));
    let (status, _, reason) = call_raw(&h, Method::GET, &unknown, None, vec![]).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&reason).into_owned()),
        (StatusCode::NOT_FOUND, "Commitment not found".into())
    );
    // A PoS block record's pending export points here too: pending.
    let id = submit_one(&h, 1, 1).await;
    let (status, _, _) = call_raw(&h, Method::GET, &format!("/timestamp/{id}"), None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call_raw(&h, Method::PUT, "/digest", None, vec![1; 32]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_calendar_has_the_api_rate_limit() {
    let h = harness(|l| {
        l.rate_per_second = 1;
        l.rate_burst = 3;
    });
    // One router: the limiter's state lives in it.
    let router = app(h.state.clone());
    let mut statuses = Vec::new();
    for i in 0..5u8 {
        let req = Request::post("/digest")
            .body(Body::from(vec![i; 32]))
            .expect("request");
        statuses.push(
            router
                .clone()
                .oneshot(req)
                .await
                .expect("response")
                .status(),
        );
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    let req = Request::get(format!("/timestamp/{}", "ab".repeat(32)))
        .body(Body::empty())
        .expect("request");
    let status = router.oneshot(req).await.expect("response").status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h.store.pending_count().expect("count"), 3);
}

#[tokio::test]
async fn a_calendar_token_closes_the_calendar_when_configured() {
    let h = harness_with(|_| {}, |c| c.calendar = Some(TokenHash::of("calendar")));
    let (status, _, _) = call_raw(&h, Method::POST, "/digest", None, vec![1; 32]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call_raw(&h, Method::POST, "/digest", Some("token-a"), vec![1; 32]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for token in ["calendar", "admin"] {
        let (status, _, _) = call_raw(&h, Method::POST, "/digest", Some(token), vec![1; 32]).await;
        assert_eq!(status, StatusCode::OK, "{token}");
    }
    let path = format!("/timestamp/{}", "ab".repeat(32));
    let (status, _, _) = call_raw(&h, Method::GET, &path, None, vec![]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn proofs_download_as_ots_and_leaf_preimages() {
    use aggregator::ots::{Attestation, DetachedTimestamp};
    let h = harness(|_| {});
    let (_, body) = submit(
        &h,
        "chain-a",
        Some("token-a"),
        json!({ "blocks": [block(7, 1), block(8, 2), block(9, 3)] }),
    )
    .await;
    let id = body["records"][1]["id"].as_str().expect("id").to_owned();
    let leaf_hash: aggregator::LeafHash = id.parse().expect("id");

    // The leaf preimage hashes to the id (and is the file `ots verify -f` takes).
    let (status, content_type, preimage) = call_raw(
        &h,
        Method::GET,
        &format!("/v1/records/{id}/proof?format=leaf"),
        None,
        vec![],
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/octet-stream")
    );
    assert_eq!(
        bitcoin::hashes::Hash::to_byte_array(
            <bitcoin::hashes::sha256::Hash as bitcoin::hashes::Hash>::hash(&preimage)
        ),
        *leaf_hash.as_bytes()
    );

    // Pending: a pending attestation at this server's calendar.
    let ots_path = format!("/v1/records/{id}/proof?format=ots");
    let (status, content_type, bytes) = call_raw(&h, Method::GET, &ots_path, None, vec![]).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, aggregator::ots::MEDIA_TYPE)
    );
    let file = DetachedTimestamp::from_bytes(&bytes).expect("an .ots file");
    assert_eq!(&file.digest, leaf_hash.as_bytes());
    assert_eq!(
        file.timestamp.replay(&file.digest).expect("replays")[0].1,
        Attestation::Pending {
            uri: CALENDAR.into()
        }
    );

    // Anchored (one confirmation is enough for the export, as for JSON).
    anchor_to_depth(&h, 1);
    let (status, _, bytes) = call_raw(&h, Method::GET, &ots_path, None, vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let file = DetachedTimestamp::from_bytes(&bytes).expect("an .ots file");
    let (_, proof) = get_proof(&h, &id).await;
    let proof: aggregator::Proof = serde_json::from_value(proof).expect("proof");
    let anchor = proof.anchor.expect("anchored");
    let atts = file.timestamp.replay(&file.digest).expect("replays");
    assert_eq!(
        atts[0].1,
        Attestation::Bitcoin {
            height: u64::from(anchor.block.height)
        }
    );

    for (query, code) in [
        ("?format=xml", StatusCode::BAD_REQUEST),
        ("?format=", StatusCode::BAD_REQUEST),
        ("?format=ots&format=leaf", StatusCode::BAD_REQUEST),
    ] {
        let (status, _, _) = call_raw(
            &h,
            Method::GET,
            &format!("/v1/records/{id}/proof{query}"),
            None,
            vec![],
        )
        .await;
        assert_eq!(status, code, "{query}");
    }
    let missing = format!("/v1/records/{}/proof?format=ots", "cd".repeat(32));
    let (status, _, _) = call_raw(&h, Method::GET, &missing, None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn v1_anchoring_reports_the_loop_behind_the_read_token() {
    let mut h = harness(|_| {});
    let (status, body) = call(&h, Method::GET, "/v1/anchoring", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "anchoring_not_running");

    let mut anchorer = inproc::anchorer(&h);
    let state = Arc::get_mut(&mut h.state).expect("unique");
    state.anchoring = Some(anchorer.view());
    state.credentials.read = Some(TokenHash::of("reader"));
    let (status, body) = call(&h, Method::GET, "/v1/anchoring", Some("reader"), None).await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("starting"))
    );

    submit(
        &h,
        "chain-a",
        Some("token-a"),
        json!({ "blocks": [block(1, 1)] }),
    )
    .await;
    anchorer.step().expect("step");
    h.fake.mine(1);
    anchorer.step().expect("step");
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("token-a"), StatusCode::FORBIDDEN),
        (Some("admin"), StatusCode::OK),
    ] {
        let (got, _) = call(&h, Method::GET, "/v1/anchoring", token, None).await;
        assert_eq!(got, status, "{token:?}");
    }
    let (_, v) = call(&h, Method::GET, "/v1/anchoring", Some("reader"), None).await;
    assert_eq!(v["state"], "idle", "{v}");
    assert_eq!(v["min_blocks_between_anchors"], 1);
    assert_eq!(v["spending"]["month_anchors"], 1, "{v}");
    let fee = v["spending"]["month_sat"].as_u64().expect("sat");
    assert!(fee > 0, "{v}");
    assert_eq!(v["projected_monthly_anchors"], 4320);
    // 4320 anchors of the mean vsize at the fallback rate (2 sat/vB).
    let vsize = v["spending"]["avg_vsize"].as_u64().expect("vsize");
    assert_eq!(v["projected_monthly_sat"], 4320 * vsize * 2, "{v}");
}

#[tokio::test]
async fn the_status_page_is_html_without_scripts_and_a_read_like_the_others() {
    let mut h = harness(|_| {});
    submit(
        &h,
        "chain-a",
        Some("token-a"),
        json!({ "blocks": [block(1, 1)] }),
    )
    .await;
    inproc::anchor_to_depth(&h, 2);
    let (status, content_type, body) = call_raw(&h, Method::GET, "/", None, vec![]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = String::from_utf8(body).expect("utf-8");
    assert!(page.contains("<h1>btcts status</h1>") && !page.contains("<script"));
    let (status, v) = call(&h, Method::GET, "/status", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let txid = v["batches"][0]["txid"].as_str().expect("txid");
    assert!(page.contains(txid), "the batch's txid is on the page");
    assert_eq!(v["batches"][0]["state"], "confirmed", "{v}");
    assert_eq!(v["chains"][0]["latest_confirmed_height"], 1, "{v}");

    let state = Arc::get_mut(&mut h.state).expect("unique");
    state.credentials.read = Some(TokenHash::of("reader"));
    for path in ["/", "/status"] {
        let (status, _) = call(&h, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = call(&h, Method::GET, path, Some("reader"), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

/// Proofs anchored below the tip cache's window are completed by the node;
/// many requests that miss at once (as they all do when a new tip drops the
/// kept answers) share one question, and share its failure when the node
/// is down, instead of each asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_proof_requests_below_the_tip_cache_ask_the_node_once() {
    let mut h = harness(|_| {});
    let id = submit_one(&h, 7, 1).await;
    anchor_to_depth(&h, 1);
    h.fake.mine(10);
    let tips = Arc::new(btc_submitter::TipCache::new(2));
    tips.refresh(&*h.fake).expect("refresh");
    let state = Arc::try_unwrap(h.state).expect("the harness's only reference");
    h.state = Arc::new(btcts_api::server::AppState {
        tips: Some(tips.clone()),
        ..state
    });
    let h = Arc::new(h);
    h.fake.set_latency(std::time::Duration::from_millis(20));

    let all_at_once = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (h, uri) = (h.clone(), format!("/v1/records/{id}/proof"));
                tokio::spawn(async move { call(&h, Method::GET, &uri, None, None).await })
            })
            .collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.expect("request"));
            }
            out
        }
    };
    // One completion: the block's status, then a hash and a header for
    // each of the 2 × k = 4 blocks after it.
    let one_question = 1 + 2 * 4;

    let before = h.fake.calls();
    let answers = all_at_once(32).await;
    assert_eq!(
        h.fake.calls() - before,
        one_question,
        "one question for 32 requests"
    );
    for (status, proof) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(proof, &answers[0].1);
        let proof: aggregator::Proof = serde_json::from_value(proof.clone()).expect("proof");
        let v = verify(&proof, &Expect::default()).expect("verifies");
        assert_eq!(v.anchor.map(|a| a.confirmations), Some(5));
    }

    // A new tip drops the kept answer: one question again, a block deeper.
    h.fake.mine(1);
    tips.refresh(&*h.fake).expect("refresh");
    let before = h.fake.calls();
    let answers = all_at_once(32).await;
    assert_eq!(h.fake.calls() - before, one_question);
    assert!(answers
        .iter()
        .all(|(s, p)| *s == StatusCode::OK && p == &answers[0].1));
    assert_ne!(answers[0].1["anchor"]["headers_after"], Value::Null);

    // The node down: one failed question, every request a 503 with the same code.
    h.fake.mine(1);
    tips.refresh(&*h.fake).expect("refresh");
    h.fake.set_down(true);
    let before = h.fake.calls();
    let answers = all_at_once(32).await;
    assert_eq!(h.fake.calls() - before, 1, "one failed call, not 32");
    for (status, err) in &answers {
        assert_eq!(
            (*status, err["code"].clone()),
            (StatusCode::SERVICE_UNAVAILABLE, json!("node_unavailable"))
        );
    }
    // Back up: the next request asks again.
    h.fake.set_down(false);
    let (status, _) = get_proof(&h, &id).await;
    assert_eq!(status, StatusCode::OK);
}
