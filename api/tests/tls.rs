//! TLS out, on loopback: a test CA and a server certificate for 127.0.0.1
//! (rcgen), and a TLS proxy ([`btcts_tests::tls::TlsProxy`]) in front of
//! (a) the API served on a socket — `btcts proof --url https://… --ca` and
//! the feeder's HTTPS sink; (b) a test consumer chain's gRPC port — the
//! relay's gRPC client; (c) the same port — the feeder's gRPC source. Each
//! works with the CA configured and fails, naming the certificate, without.

use std::net::SocketAddr;
use std::process::Command;

use aggregator::{AnchorNetwork, ChainId, Tag};
use axum::http::Method;
use btcts_api::server::app;
use btcts_consumer::{ConsumerParams, TrustedHeader};
use btcts_feeder::{BlockSource, CaFile, ChainBlock, HttpSink, Sink, SinkError, Token};
use btcts_tests::network::TestConsumer;
use btcts_tests::tls::{TestPki, TlsProxy};
use ibc_relay::grpc::{ConsumerNode, GrpcNode};
use serde_json::json;

mod inproc;
use inproc::{anchor_to_depth, harness, send};

/// Whether `text` says the peer's certificate was not trusted.
fn names_the_certificate(text: &str) -> bool {
    let t = text.to_lowercase();
    t.contains("certificate") || t.contains("unknownissuer")
}

/// A test consumer chain `tls-1` (its gRPC port is what the proxy fronts).
fn consumer() -> TestConsumer {
    let genesis = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
    TestConsumer::start(
        "tls-1",
        TrustedHeader {
            height: 0,
            header: genesis.header,
        },
        ConsumerParams {
            chain_id: ChainId::new("tls-1").expect("id"),
            network: AnchorNetwork::LitecoinRegtest,
            tag: Tag::DEFAULT,
            k: 2,
        },
        &[],
    )
    .expect("test consumer")
}

fn backend(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("a loopback address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn btcts_proof_downloads_over_https_with_the_ca_and_names_the_certificate_without_it() {
    let h = harness(|_| {});
    let body = json!({ "blocks": [{
        "height": 7,
        "block_hash": "11".repeat(32),
        "staker_set_digest": "22".repeat(32),
    }]});
    let (status, _, answer) = send(
        &h,
        Method::POST,
        "/v1/chains/chain-a/blocks",
        Some("token-a"),
        Some("application/json"),
        body.to_string(),
    )
    .await;
    assert_eq!(status, 202);
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("json");
    let id = answer["records"][0]["id"].as_str().expect("id").to_owned();
    anchor_to_depth(&h, 2);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let plain = listener.local_addr().expect("addr");
    let router = app(h.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let pki = TestPki::generate().expect("test CA");
    let proxy = TlsProxy::start(&pki, plain).expect("TLS proxy");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("test-ca.pem");
    pki.write_ca(&ca).expect("write CA");

    let out = dir.path().join("proof.json");
    let url = proxy.url();
    let (with_ca, without_ca) = tokio::task::spawn_blocking({
        let (id, ca, out, url) = (id.clone(), ca.clone(), out.clone(), url.clone());
        move || {
            let btcts = |extra: &[&std::ffi::OsStr]| {
                Command::new(env!("CARGO_BIN_EXE_btcts"))
                    .args(["proof", &id, "--url", &url])
                    .args(extra)
                    .output()
                    .expect("runs btcts")
            };
            (
                btcts(&[
                    "--ca".as_ref(),
                    ca.as_os_str(),
                    "-o".as_ref(),
                    out.as_os_str(),
                ]),
                btcts(&[]),
            )
        }
    })
    .await
    .expect("join");
    assert!(
        with_ca.status.success(),
        "btcts proof --ca: {}",
        String::from_utf8_lossy(&with_ca.stderr)
    );
    let proof = aggregator::Proof::from_json(&std::fs::read_to_string(&out).expect("written"))
        .expect("a proof document");
    aggregator::verify(&proof, &aggregator::Expect::default()).expect("the proof verifies");
    assert_eq!(proof.leaf.hash.to_string(), id);

    assert!(
        !without_ca.status.success(),
        "trusted a test CA it was not given"
    );
    let stderr = String::from_utf8_lossy(&without_ca.stderr);
    assert!(names_the_certificate(&stderr), "{stderr}");

    // The feeder's sink is the same client: it submits over HTTPS with the CA.
    let ca_file = CaFile::read("--btcts-ca", &ca).expect("CA file");
    let block = ChainBlock {
        height: 8,
        block_hash: aggregator::PosBlockHash([3; 32]),
        staker_set_digest: aggregator::StakerSetDigest([4; 32]),
    };
    let chain = ChainId::new("chain-a").expect("id");
    let token = Token::new("token-a").expect("token");
    let sink = HttpSink::new(&url, token.clone(), Some(&ca_file)).expect("sink");
    let acks = sink.submit(&chain, &[block]).await.expect("submitted");
    assert_eq!(acks.len(), 1);
    let untrusting = HttpSink::new(&url, token, None).expect("sink");
    match untrusting.submit(&chain, &[block]).await {
        Err(e @ SinkError::Unreachable(_)) => {
            assert!(names_the_certificate(&e.to_string()), "{e}")
        }
        other => panic!("submitted without trusting the server: {other:?}"),
    }
}

#[test]
fn the_relay_calls_a_consumer_behind_tls_with_its_ca_and_not_without() {
    let chain = consumer();
    let pki = TestPki::generate().expect("test CA");
    let proxy = TlsProxy::start(&pki, backend(&chain.url())).expect("TLS proxy");

    let node = GrpcNode::with_ca(&proxy.url(), Some(pki.ca_pem.as_bytes())).expect("node");
    let block = node.latest_block().expect("a call over TLS");
    assert_eq!(block.chain_id, "tls-1");

    let untrusting = GrpcNode::new(&proxy.url()).expect("node");
    let e = untrusting
        .latest_block()
        .expect_err("trusted a test CA it was not given");
    assert!(names_the_certificate(&e.to_string()), "{e}");
    assert!(e.is_transient(), "retried until the CA is fixed: {e}");
}

#[tokio::test]
async fn the_feeder_reads_a_chain_behind_tls_with_its_ca_and_not_without() {
    let chain = consumer();
    let pki = TestPki::generate().expect("test CA");
    let proxy = TlsProxy::start(&pki, backend(&chain.url())).expect("TLS proxy");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca).expect("write CA");
    let ca = CaFile::read("--grpc-ca", &ca).expect("CA file");

    let source = btcts_feeder::GrpcSource::new(&proxy.url(), Some(&ca)).expect("source");
    let tip = source.tip().await.expect("a call over TLS");
    assert_eq!(tip.chain_id, "tls-1");

    let untrusting = btcts_feeder::GrpcSource::new(&proxy.url(), None).expect("source");
    let e = untrusting
        .tip()
        .await
        .expect_err("trusted a test CA it was not given");
    assert!(names_the_certificate(&e.to_string()), "{e}");
    assert!(e.is_transient(), "retried until the CA is fixed: {e}");
}
