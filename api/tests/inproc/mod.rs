//! The router in process over a real store and the fake node, shared by
//! the tests that call it with `oneshot` or serve it on a loopback socket.
#![allow(dead_code)]

use std::sync::Arc;

use aggregator::clock::FixedClock;
use aggregator::{Ingestor, Store};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use btc_submitter::fake::FakeNode;
use btc_submitter::{AnchorConfig, Anchorer};
use btcts_api::auth::{Credentials, TokenHash};
use btcts_api::config::Config;
use btcts_api::server::{app, AppState, OtsState};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The public URL the harness's calendar writes into pending attestations.
pub const CALENDAR: &str = "http://127.0.0.1:8080";

pub struct Harness {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub fake: Arc<FakeNode>,
    pub state: Arc<AppState>,
}

pub fn harness(tweak: impl FnOnce(&mut btcts_api::config::LimitsSection)) -> Harness {
    harness_with(tweak, |_| {})
}

pub fn harness_with(
    tweak: impl FnOnce(&mut btcts_api::config::LimitsSection),
    tweak_credentials: impl FnOnce(&mut Credentials),
) -> Harness {
    harness_full(tweak, tweak_credentials, |_| {})
}

/// The harness with the calendar's settings changed too.
pub fn harness_ots(tweak_ots: impl FnOnce(&mut OtsState)) -> Harness {
    harness_full(|_| {}, |_| {}, tweak_ots)
}

pub fn harness_full(
    tweak: impl FnOnce(&mut btcts_api::config::LimitsSection),
    tweak_credentials: impl FnOnce(&mut Credentials),
    tweak_ots: impl FnOnce(&mut OtsState),
) -> Harness {
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
    tweak_credentials(&mut credentials);
    let mut ots = OtsState {
        calendar: true,
        public_url: CALENDAR.into(),
        digests_per_second: 1000,
        digest_burst: 1000,
        max_pending: 1_000_000,
    };
    tweak_ots(&mut ots);
    let state = Arc::new(AppState {
        store: store.clone(),
        ingestor,
        node: fake.clone(),
        credentials,
        limits,
        confirmations: 2,
        network: aggregator::AnchorNetwork::Regtest,
        metrics: None,
        store_file: None,
        tips: None,
        ots,
        ibc: Default::default(),
        anchoring: None,
        events: btcts_api::events::EventStreams::new(&Default::default()),
        access_log: false,
    });
    Harness {
        _dir: dir,
        store,
        fake,
        state,
    }
}

/// One request through the router: status, content type and body bytes.
pub async fn send(
    h: &Harness,
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let response = app(h.state.clone())
        .oneshot(req.body(body.into()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, content_type, bytes.to_vec())
}

/// An anchorer over the harness's store and fake node (k = 2).
pub fn anchorer(h: &Harness) -> Anchorer<Arc<FakeNode>> {
    let mut config = AnchorConfig::new(aggregator::AnchorNetwork::Regtest);
    config.confirmations = 2;
    Anchorer::new(
        h.store.clone(),
        h.fake.clone(),
        config,
        Arc::new(FixedClock::new(1)),
    )
}

/// Anchors everything pending and mines until the anchor is `depth` deep.
pub fn anchor_to_depth(h: &Harness, depth: u32) {
    let mut anchorer = anchorer(h);
    anchorer.step().expect("anchors");
    for _ in 0..depth {
        h.fake.mine(1);
        anchorer.step().expect("reconciles");
    }
}
