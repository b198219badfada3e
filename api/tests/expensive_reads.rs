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
