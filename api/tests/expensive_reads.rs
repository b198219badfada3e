//! Reads that used to cost more than a request should (issue 15, finding 5):
//! the fast-unbonding status, unpaginated lists, store reads on the async
//! workers and node calls behind `/readyz`.

use aggregator::leaf::leaf_hash;
use aggregator::{ChainId, LeafHash, PosBlock, PosBlockHash, Record, StakerSetDigest};
use axum::http::{Method, StatusCode};
use serde_json::Value;

mod inproc;
use inproc::{anchor_to_depth, harness, send, Harness};

fn block(chain: &str, height: u64, hash: u8) -> (LeafHash, Record) {
    let r = Record::PosBlock(PosBlock {
        chain_id: ChainId::new(chain).expect("valid"),
        height,
        block_hash: PosBlockHash([hash; 32]),
        staker_set_digest: StakerSetDigest([0x5a; 32]),
    });
    (leaf_hash(&r), r)
}

async fn get_json(h: &Harness, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(h, Method::GET, uri, Some("token-a"), None, Vec::new()).await;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

/// Heights `from..to` of chain-a, stored in chunks (one transaction each).
fn store_heights(h: &Harness, from: u64, to: u64) {
    let mut at = from;
    while at < to {
        let end = (at + 20_000).min(to);
        let records: Vec<_> = (at..end)
            .map(|height| block("chain-a", height, 1))
            .collect();
        h.store.submit(&records).expect("stored");
        at = end;
    }
}

/// The status answer does not depend on how many heights sit above the
/// newest timestamped one: 200k unanchored heights on top of 100 anchored
/// ones used to hide them (the route scanned at most 100k heights and
/// answered `null`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_finds_the_anchored_height_below_200k_newer_ones() {
    let h = harness(|_| {});
    store_heights(&h, 0, 100);
    anchor_to_depth(&h, 3);
    store_heights(&h, 100, 200_100);
    h.store.seal_batch(u64::MAX).expect("sealed");

    let (status, body) = get_json(&h, "/v1/chains/chain-a/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["latest_submitted_height"], 200_099);
    assert_eq!(body["latest_anchored"]["height"], 99, "{body}");
    assert_eq!(body["latest_confirmed"]["height"], 99, "{body}");
    assert_eq!(
        body["latest_confirmed"]["record_id"],
        serde_json::to_value(block("chain-a", 99, 1).0).expect("json")
    );
}

/// Record `n` of many at one height: a block hash of its own.
fn fork(chain: &str, height: u64, n: u32) -> (LeafHash, Record) {
    let mut hash = [0xf0; 32];
    hash[..4].copy_from_slice(&n.to_be_bytes());
    let r = Record::PosBlock(PosBlock {
        chain_id: ChainId::new(chain).expect("valid"),
        height,
        block_hash: PosBlockHash(hash),
        staker_set_digest: StakerSetDigest([0x5a; 32]),
    });
    (leaf_hash(&r), r)
}

/// Follows `next` from the first page; every page within `limit`.
async fn all_pages(h: &Harness, path: &str, field: &str, limit: Option<usize>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut uri = format!("{path}?");
        if let Some(l) = limit {
            uri.push_str(&format!("limit={l}&"));
        }
        if let Some(a) = &after {
            uri.push_str(&format!("after={a}"));
        }
        let (status, body) = get_json(h, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        let items = body[field].as_array().expect("list").clone();
        assert!(
            items.len() <= limit.unwrap_or(100),
            "{uri}: {} items",
            items.len()
        );
        out.extend(items);
        match body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_come_in_pages_that_cover_each_once() {
    let h = harness(|_| {});
    // 1,250 heights with three blocks each: 2,500 conflicts.
    let records: Vec<_> = (0..1_250u64)
        .flat_map(|height| (0..3).map(move |n| fork("chain-a", height, n)))
        .collect();
    h.store.submit(&records).expect("stored");
    let chain = ChainId::new("chain-a").expect("id");
    let want: Vec<Value> = h
        .store
        .conflicts(&chain)
        .expect("query")
        .into_iter()
        .map(|c| serde_json::json!({ "height": c.height, "first": c.first, "other": c.other }))
        .collect();
    assert_eq!(want.len(), 2_500);
    for limit in [None, Some(1), Some(7), Some(1_000)] {
        if limit == Some(1) {
            // One item per page: only the first pages, for time.
            let (_, body) = get_json(&h, "/v1/chains/chain-a/conflicts?limit=1").await;
            assert_eq!(body["conflicts"].as_array().map(Vec::len), Some(1));
            let next = body["next"].as_str().expect("more").to_owned();
            let uri = format!("/v1/chains/chain-a/conflicts?limit=1&after={next}");
            let (_, body) = get_json(&h, &uri).await;
            assert_eq!(body["conflicts"][0], want[1]);
            continue;
        }
        let got = all_pages(&h, "/v1/chains/chain-a/conflicts", "conflicts", limit).await;
        assert_eq!(got, want, "limit {limit:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_at_a_height_come_in_pages_that_cover_each_once() {
    let h = harness(|_| {});
    let records: Vec<_> = (0..2_345).map(|n| fork("chain-a", 7, n)).collect();
    h.store.submit(&records).expect("stored");
    h.store.submit(&[fork("chain-a", 8, 0)]).expect("stored");
    for limit in [None, Some(1_000), Some(999)] {
        let got = all_pages(&h, "/v1/chains/chain-a/blocks/7", "records", limit).await;
        let ids: Vec<&str> = got.iter().filter_map(|r| r["id"].as_str()).collect();
        let want: Vec<String> = records.iter().map(|(id, _)| id.to_string()).collect();
        assert_eq!(
            ids, want,
            "limit {limit:?}: every record once, in arrival order"
        );
    }
    // A fork is a fork on every page; one record is none.
    let (_, page) = get_json(&h, "/v1/chains/chain-a/blocks/7?limit=1").await;
    assert_eq!(page["fork"], true);
    let (_, single) = get_json(&h, "/v1/chains/chain-a/blocks/8").await;
    assert_eq!(single["fork"], false);
    assert_eq!(single["next"], Value::Null);
    assert_eq!(single["records"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn bad_page_parameters_are_refused_with_400() {
    let h = harness(|_| {});
    for (uri, code) in [
        ("/v1/chains/chain-a/conflicts?limit=0", "invalid_limit"),
        ("/v1/chains/chain-a/conflicts?limit=1001", "invalid_limit"),
        ("/v1/chains/chain-a/conflicts?limit=ten", "invalid_limit"),
        ("/v1/chains/chain-a/conflicts?after=12", "invalid_cursor"),
        ("/v1/chains/chain-a/conflicts?after=a.b", "invalid_cursor"),
        ("/v1/chains/chain-a/blocks/7?limit=-1", "invalid_limit"),
        ("/v1/chains/chain-a/blocks/7?after=x", "invalid_cursor"),
    ] {
        let (status, body) = get_json(&h, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["code"], code, "{uri}");
    }
}

/// On a one-thread runtime, a store read that takes long (here: blocked
/// until the test lets it go) must not hold up other requests: reads run
/// on the blocking pool. When a handler read on the async worker, the
/// runtime stood still until the read gave up waiting.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_store_read_does_not_hold_up_other_requests() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;

    let h = harness(|_| {});
    let (id, record) = block("chain-a", 1, 1);
    h.store.submit(&[(id, record)]).expect("stored");
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let armed = Arc::new(AtomicBool::new(true));
    let stalled = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(tokio::sync::Notify::new());
    h.store
        .set_access_hook(Some(aggregator::store::AccessHook(Arc::new({
            let (armed, stalled, entered) = (armed.clone(), stalled.clone(), entered.clone());
            move || {
                if !armed.swap(false, Ordering::SeqCst) {
                    return;
                }
                entered.notify_one();
                let waited = released
                    .lock()
                    .expect("lock")
                    .recv_timeout(Duration::from_secs(3));
                stalled.store(waited.is_err(), Ordering::SeqCst);
            }
        }))));

    let slow = tokio::spawn({
        let h_state = h.state.clone();
        async move {
            let uri = format!("/v1/records/{id}");
            let req = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .expect("request");
            tower::ServiceExt::oneshot(btcts_api::server::app(h_state), req)
                .await
                .expect("response")
                .status()
        }
    });
    entered.notified().await;
    let (status, _) = get_json(&h, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let _ = release.send(());
    assert_eq!(slow.await.expect("joined"), StatusCode::OK);
    assert!(
        !stalled.load(Ordering::SeqCst),
        "the runtime could not serve /healthz while a store read waited"
    );
}

/// `/readyz` answers from a node check at most a second old (a burst of
/// probes costs one node RPC, not one each) and counts against the
/// client's rate limit like the API routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_costs_one_node_call_a_second_and_is_rate_limited() {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use btc_submitter::fake::{Event, Hooked};
    use btcts_api::server::{app, AppState};

    const BURST: usize = 20;
    let h = harness(|l| {
        l.rate_per_second = 2;
        l.rate_burst = BURST as u32;
        l.max_concurrent_requests = 1_000;
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let node = Hooked::new(h.fake.clone(), {
        let calls = calls.clone();
        move |e| {
            if e == Event::Call("chain_info") {
                calls.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
    });
    let s = &h.state;
    let state = Arc::new(AppState {
        store: s.store.clone(),
        ingestor: s.ingestor.clone(),
        node: Arc::new(node),
        credentials: s.credentials.clone(),
        limits: s.limits.clone(),
        confirmations: s.confirmations,
        network: s.network,
        metrics: None,
        store_file: None,
        tips: None,
        ots: s.ots.clone(),
        ibc: Default::default(),
        anchoring: None,
        events: btcts_api::events::EventStreams::new(&Default::default()),
        access_log: false,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/readyz", listener.local_addr().expect("addr"));
    let router = app(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();

    let started = Instant::now();
    let probes = (0..BURST).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { client.get(url).send().await.expect("response").status() })
    });
    for probe in probes.collect::<Vec<_>>() {
        assert_eq!(probe.await.expect("joined").as_u16(), 200);
    }
    let elapsed = started.elapsed();
    let made = calls.load(Ordering::SeqCst);
    assert!(
        made as u64 <= 1 + elapsed.as_secs(),
        "{BURST} probes in {elapsed:?} made {made} node calls"
    );

    // The burst is spent: more probes from this client are refused.
    let mut limited = 0;
    for _ in 0..10 {
        let r = client.get(&url).send().await.expect("response");
        if r.status().as_u16() == 429 {
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["code"], "rate_limited");
            limited += 1;
        }
    }
    assert!(
        limited >= 5,
        "only {limited} of 10 probes over the burst were limited"
    );
}
