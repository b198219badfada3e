//! The rate limit over real sockets: a bearer token the configuration does
//! not know buys no bucket of its own (issue 15, finding 1).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use btcts_api::server::app;

mod inproc;
use inproc::harness;

const RATE: u32 = 20;
const BURST: u32 = 20;
const CONNECTIONS: usize = 64;
const PER_CONNECTION: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bearer_tokens_share_the_client_s_bucket() {
    let h = harness(|l| {
        l.rate_per_second = RATE;
        l.rate_burst = BURST;
        l.max_concurrent_requests = 1_000;
    });
    let url = serve(&h).await;

    let limited = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (url, limited, served) = (url.clone(), limited.clone(), served.clone());
            tokio::spawn(async move {
                // One client, one connection each.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("client");
                for i in 0..PER_CONNECTION {
                    let status = client
                        .get(format!("{url}/v1/records/{}", "ab".repeat(32)))
                        .bearer_auth(format!("random-{c}-{i}"))
                        .send()
                        .await
                        .expect("response")
                        .status()
                        .as_u16();
                    match status {
                        429 => limited.fetch_add(1, Ordering::Relaxed),
                        404 => served.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected status {other}"),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = CONNECTIONS * PER_CONNECTION;
    let (limited, served) = (
        limited.load(Ordering::Relaxed),
        served.load(Ordering::Relaxed),
    );
    assert_eq!(limited + served, total);
    // Within the limit: the burst and the rate over the run (and a little
    // slack for the clock). Everything over it must be refused.
    let allowed = BURST as f64 + RATE as f64 * elapsed + 2.0;
    let over = total as f64 - allowed;
    assert!(
        served as f64 <= allowed && limited as f64 >= 0.95 * over,
        "{served} served, {limited} limited of {total} in {elapsed:.2} s (at most {allowed:.0} allowed)"
    );
}

/// Serves `h` on a loopback socket; its base URL.
async fn serve(h: &inproc::Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app(h.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Statuses of `n` reads claiming to come from `forwarded_for`.
async fn reads(url: &str, forwarded_for: &str, n: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for _ in 0..n {
        let r = client
            .get(format!("{url}/v1/records/{}", "ab".repeat(32)))
            .header("x-forwarded-for", forwarded_for)
            .send()
            .await
            .expect("response");
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_count_apart_only_behind_a_trusted_proxy() {
    let limits = |proxies: &[&str]| {
        let proxies: Vec<ipnet::IpNet> = proxies.iter().map(|p| p.parse().expect("cidr")).collect();
        move |l: &mut btcts_api::config::LimitsSection| {
            l.rate_per_second = 1;
            l.rate_burst = 2;
            l.trusted_proxies = proxies;
        }
    };
    // Behind a trusted proxy (loopback here), each forwarded client has its
    // own bucket.
    let h = harness(limits(&["127.0.0.0/8"]));
    let url = serve(&h).await;
    assert_eq!(reads(&url, "203.0.113.1", 3).await, [404, 404, 429]);
    assert_eq!(reads(&url, "203.0.113.2", 2).await, [404, 404]);
    // From an untrusted peer the header is the client's own claim: ignored.
    let h = harness(limits(&[]));
    let url = serve(&h).await;
    assert_eq!(reads(&url, "203.0.113.1", 2).await, [404, 404]);
    assert_eq!(reads(&url, "203.0.113.2", 1).await, [429]);
}
