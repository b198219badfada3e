//! The HTTP server: the router with its limits, auth, logging and metrics,
//! and the daemon that runs it beside the store writer and the anchoring loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::{Ingestor, Store, SystemClock};
use anyhow::Context;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use btc_submitter::{Anchorer, BitcoinNode, CoreRpcNode};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::{GovernorError, GovernorLayer};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::auth::Credentials;
use crate::config::{LimitsSection, Settings};
use crate::error::ApiError;
use crate::ratelimit::{ClientKeys, LimiterHandle};
use crate::{calendar, routes};

/// What every handler shares.
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The group-commit writer.
    pub ingestor: Ingestor,
    /// The node (proof completion and readiness).
    pub node: Arc<dyn BitcoinNode>,
    /// Credentials.
    pub credentials: Credentials,
    /// Request limits.
    pub limits: LimitsSection,
    /// k.
    pub confirmations: u32,
    /// The configured anchor network (readiness checks it).
    pub network: aggregator::AnchorNetwork,
    /// Prometheus rendering.
    pub metrics: Option<PrometheusHandle>,
    /// The store's file, measured for `btcts_store_disk_bytes` on every scrape.
    pub store_file: Option<std::path::PathBuf>,
    /// Recent best-chain headers, when a refresher keeps them current.
    pub tips: Option<Arc<btc_submitter::TipCache>>,
    /// OpenTimestamps: whether the calendar is served, and its public URL.
    pub ots: OtsState,
    /// IBC delivery, by consumer chain id.
    pub ibc: std::collections::BTreeMap<String, crate::ibc::IbcView>,
    /// What the anchoring loop last saw (`GET /v1/anchoring`), when one runs.
    pub anchoring: Option<btc_submitter::AnchoringView>,
    /// Event streams: their limit, heartbeat and the closing signal.
    pub events: crate::events::EventStreams,
    /// Log every request at `info` (`[log] access`); otherwise requests are
    /// logged at `debug`, and those answered 5xx at `warn`.
    pub access_log: bool,
}

/// The OpenTimestamps part of [`AppState`].
#[derive(Debug, Clone)]
pub struct OtsState {
    /// Whether `POST /digest` and `GET /timestamp/{commitment}` are served.
    pub calendar: bool,
    /// The calendar URL pending attestations point at.
    pub public_url: String,
    /// Digests per second per client (`POST /digest`).
    pub digests_per_second: u32,
    /// Burst of digests per client.
    pub digest_burst: u32,
    /// Records pending beyond which `POST /digest` answers 503.
    pub max_pending: u64,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("network", &self.network)
            .finish()
    }
}

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi/openapi.json");

/// Every route the router serves: the OpenAPI test holds the spec to this list.
pub const ROUTES: [(&str, &str); 19] = [
    ("post", "/v1/chains/{chain_id}/blocks"),
    ("get", "/v1/chains/{chain_id}/blocks/{height}"),
    ("get", "/v1/chains/{chain_id}/status"),
    ("get", "/v1/chains/{chain_id}/conflicts"),
    ("get", "/v1/chains/{chain_id}/ibc"),
    ("get", "/v1/records/{id}"),
    ("get", "/v1/records/{id}/proof"),
    ("get", "/v1/batches/{seq}"),
    ("get", "/v1/anchoring"),
    ("get", "/v1/chains/{chain_id}/events"),
    ("get", "/v1/events"),
    ("get", "/"),
    ("get", "/status"),
    ("post", "/digest"),
    ("get", "/timestamp/{commitment}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// The router, without a listener (tests call it with `oneshot`).
pub fn app(state: Arc<AppState>) -> Router {
    let limits = state.limits.clone();
    let v1 = Router::new()
        .route("/v1/chains/{chain_id}/blocks", post(routes::submit))
        .route(
            "/v1/chains/{chain_id}/blocks/{height}",
            get(routes::blocks_at),
        )
        .route("/v1/chains/{chain_id}/status", get(routes::chain_status))
        .route("/v1/chains/{chain_id}/conflicts", get(routes::conflicts))
        .route("/v1/chains/{chain_id}/ibc", get(crate::ibc::status))
        .route("/v1/records/{id}", get(routes::get_record))
        .route("/v1/records/{id}/proof", get(routes::get_proof))
        .route("/v1/batches/{seq}", get(routes::batch))
        .route("/v1/anchoring", get(routes::anchoring))
        .route(
            "/v1/chains/{chain_id}/events",
            get(crate::events::chain_events),
        )
        .route("/v1/events", get(crate::events::all_events))
        .route("/", get(crate::status::page))
        .route("/status", get(crate::status::json));
    let v1 = if state.ots.calendar {
        // Digests become durable records: each client has a quota of its
        // own, on top of the request rate below.
        let ots = &state.ots;
        let quota_keys = ClientKeys::new(&state.credentials, limits.trusted_proxies.clone());
        let quota = GovernorConfigBuilder::default()
            .period(Duration::from_nanos(
                1_000_000_000 / u64::from(ots.digests_per_second.max(1)),
            ))
            .burst_size(ots.digest_burst.max(1))
            .key_extractor(quota_keys.clone())
            .finish()
            .map(|config| {
                attach(&quota_keys, config.limiter());
                GovernorLayer::new(config).error_handler(calendar::over_quota)
            });
        let digest = post(calendar::digest);
        let digest = match quota {
            Some(layer) => digest.route_layer(layer),
            None => digest,
        };
        v1.route("/digest", digest)
            .route("/timestamp/{commitment}", get(calendar::timestamp))
    } else {
        v1
    };
    let period = Duration::from_nanos(1_000_000_000 / u64::from(limits.rate_per_second.max(1)));
    let keys = ClientKeys::new(&state.credentials, limits.trusted_proxies.clone());
    let governor = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(limits.rate_burst.max(1))
        .key_extractor(keys.clone())
        .finish()
        .map(|config| {
            attach(&keys, config.limiter());
            GovernorLayer::new(config).error_handler(rate_limited)
        });
    // Readiness and metrics cost more than a route lookup (a node check, a
    // render of every series): they count against the client's rate too.
    let check = Arc::new(crate::ready::NodeCheck::default());
    let v1 = v1
        .route(
            "/readyz",
            get(
                move |state: State<Arc<AppState>>, headers: axum::http::HeaderMap| {
                    crate::ready::readyz(state, headers, check.clone())
                },
            ),
        )
        .route("/metrics", get(render_metrics));
    let v1 = match governor {
        Some(layer) => v1.layer(layer),
        None => v1,
    };
    Router::new()
        .merge(v1)
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::not_found("no_such_route", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "method not allowed".into(),
                retry_after: None,
            }
        })
        .layer(middleware::from_fn_with_state(state.access_log, observe))
        .layer(middleware::from_fn_with_state(
            Guard {
                limits: limits.clone(),
                in_flight: Arc::default(),
            },
            guard,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state)
}

/// Hands `keys` the size and pruning of `limiter`, so that the keyed map
/// stays bounded ([`ClientKeys`]).
fn attach(
    keys: &ClientKeys,
    limiter: &tower_governor::governor::SharedRateLimiter<
        crate::ratelimit::ClientKey,
        governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    >,
) {
    let (len, prune) = (limiter.clone(), limiter.clone());
    keys.attach(LimiterHandle {
        len: Box::new(move || len.len()),
        prune: Box::new(move || {
            prune.retain_recent();
            prune.shrink_to_fit();
        }),
    });
}

fn rate_limited(e: GovernorError) -> Response {
    let (wait, status) = match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            (wait_time.max(1), StatusCode::TOO_MANY_REQUESTS)
        }
        _ => (1, StatusCode::TOO_MANY_REQUESTS),
    };
    ApiError {
        status,
        code: "rate_limited",
        message: format!("too many requests; retry in {wait} s"),
        retry_after: Some(wait),
    }
    .into_response()
}

#[derive(Clone)]
struct Guard {
    limits: LimitsSection,
    in_flight: Arc<AtomicU64>,
}

/// Body-size precheck (so an oversized body is refused before it is read),
/// concurrency and the request timeout, all answering in the JSON error form.
async fn guard(
    State(Guard { limits, in_flight }): State<Guard>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes) {
        return ApiError::too_large(format!("request body over {} bytes", limits.max_body_bytes))
            .into_response();
    }
    let slot = InFlight::take(&in_flight, limits.max_concurrent_requests as u64);
    if slot.is_none() {
        return ApiError::unavailable("overloaded", "too many requests in flight").into_response();
    }
    let timeout = Duration::from_millis(limits.request_timeout_ms);
    let response = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable("timeout", "the request took too long").into_response(),
    };
    drop(slot);
    // axum's own body-limit rejection is plain text: give it the JSON form.
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&response) {
        return ApiError::too_large(format!("request body over {} bytes", limits.max_body_bytes))
            .into_response();
    }
    response
}

/// One of the `max_concurrent_requests` slots, given back on drop (also when
/// the request future is cancelled).
struct InFlight(Arc<AtomicU64>);

impl InFlight {
    fn take(counter: &Arc<AtomicU64>, max: u64) -> Option<InFlight> {
        if counter.fetch_add(1, Ordering::SeqCst) >= max {
            counter.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(InFlight(counter.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_json(r: &Response) -> bool {
    r.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// Request id, a log line per request (at `info` with `[log] access`,
/// else at `debug`; 5xx always at `warn`), and Prometheus counters by
/// route and status. Writing a line per request serialises every request
/// on stderr, so it is off by default (issue 18).
async fn observe(State(access_log): State<bool>, req: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().clone();
    let started = Instant::now();
    let span = info_span!("request", id, %method, route = %route);
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let ms = elapsed.as_secs_f64() * 1e3;
    span.in_scope(|| match status {
        500.. => warn!(status, ms, "request"),
        _ if access_log => info!(status, ms, "request"),
        _ => debug!(status, ms, "request"),
    });
    metrics::counter!("btcts_http_requests_total", "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("btcts_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// `/metrics` and `/readyz` are public unless configured to need the read token.
pub(crate) fn check_monitoring(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<(), ApiError> {
    if state.credentials.monitoring_requires_read {
        state.credentials.check_read(headers)?;
    }
    Ok(())
}

async fn render_metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(e) = check_monitoring(&state, &headers) {
        return e.into_response();
    }
    if let Some(file) = state.store_file.clone() {
        crate::metrics_catalog::measure_disk_bytes(file).await;
    }
    match &state.metrics {
        Some(h) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            h.render(),
        )
            .into_response(),
        None => ApiError::not_found("metrics_disabled", "metrics are not enabled").into_response(),
    }
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// How many recent headers the proof route keeps (two days of blocks).
const TIP_CACHE_DEPTH: u32 = 288;

/// Keeps `tips` at the node's best chain, polling every `poll`.
async fn follow_tip(
    tips: Arc<btc_submitter::TipCache>,
    node: Arc<CoreRpcNode>,
    poll: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (t, n) = (tips.clone(), node.clone());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || t.refresh(&n)).await {
            tracing::debug!(error = %e, "tip cache not refreshed");
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs the daemon until `shutdown` resolves: store, group-commit writer,
/// anchoring loop and HTTP server; then drains requests and stops the loop.
pub async fn serve(
    settings: Settings,
    metrics: Option<PrometheusHandle>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let clock = Arc::new(SystemClock);
    let store = Store::open_with_options(
        settings.data_dir.join("btcts.redb"),
        clock.clone(),
        settings.store,
    )?;
    let (ingestor, writer) = Ingestor::start(store.clone())?;
    let node = Arc::new(CoreRpcNode::new(&settings.rpc)?);
    // The anchoring loop gets a connection of its own: an RPC client is one
    // connection behind a lock, and HTTP handlers and the tip refresher
    // queueing on it must not delay anchoring (or the other way round).
    let anchor_node = Arc::new(CoreRpcNode::new(&settings.rpc)?);
    let anchor_config = settings.anchor.clone();
    let anchorer = tokio::task::spawn_blocking({
        let store = store.clone();
        move || Anchorer::connect(store, anchor_node, anchor_config, clock)
    })
    .await??;
    // Listen before anything runs beside the server: a taken address ends
    // start-up with nothing to stop.
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The relays are opened, run and dropped on threads of their own (their
    // gRPC clients own runtimes); if this returns early, dropping `stop_tx`
    // ends every loop started so far.
    let (deliveries, ibc) = tokio::task::spawn_blocking({
        let (ibc, store, stop) = (settings.ibc.clone(), store.clone(), stop_rx.clone());
        let node: Arc<dyn BitcoinNode> = node.clone();
        move || crate::ibc::Deliveries::start(ibc.as_ref(), &store, &node, &stop)
    })
    .await??;
    let poll = settings.anchor.poll;
    let anchoring_view = anchorer.view();
    let anchoring = tokio::spawn(anchorer.run(stop_rx.clone()));
    // Webhooks: a task per chain that names one, apart from anchoring and
    // the API (docs/events.md, Webhooks).
    let webhooks =
        crate::webhooks::start(&settings.webhooks, &store, Arc::new(SystemClock), &stop_rx)?;
    let tips = Arc::new(btc_submitter::TipCache::new(TIP_CACHE_DEPTH));
    let refresher = tokio::spawn(follow_tip(
        tips.clone(),
        node.clone(),
        poll,
        stop_rx.clone(),
    ));
    let ots = OtsState {
        calendar: settings.ots.calendar,
        digests_per_second: settings.ots.digests_per_second,
        digest_burst: settings.ots.digest_burst,
        max_pending: settings.ots.max_pending,
        public_url: match &settings.ots.public_url {
            Some(url) => url.clone(),
            None => {
                if local.ip().is_unspecified() {
                    warn!("listening on {local} without opentimestamps.public_url: pending .ots files will point at an address clients cannot reach");
                }
                format!("http://{local}")
            }
        },
    };
    info!(listen = %local, network = %settings.anchor.network, calendar = %ots.public_url, "btcts serving");
    let events = crate::events::EventStreams::new(&settings.events);
    tokio::spawn(crate::events::prune(
        store.clone(),
        Duration::from_secs(settings.events.retention_days * 86_400),
        stop_rx.clone(),
    ));
    let state = Arc::new(AppState {
        store,
        ingestor,
        node,
        credentials: settings.credentials.clone(),
        limits: settings.limits.clone(),
        confirmations: settings.anchor.confirmations,
        network: settings.anchor.network,
        metrics,
        store_file: Some(settings.data_dir.join("btcts.redb")),
        tips: Some(tips),
        ots,
        ibc,
        anchoring: Some(anchoring_view),
        events: events.clone(),
        access_log: settings.access_log,
    });
    let connections = crate::listener::ConnectionLimits {
        max_connections: settings.limits.max_connections,
        header_read_timeout: Duration::from_millis(settings.limits.header_read_timeout_ms),
    };
    // Streams never end by themselves: end them when shutdown starts, so
    // the drain does not wait for them.
    let shutdown = async move {
        shutdown.await;
        events.close();
    };
    crate::listener::serve(listener, app(state), connections, shutdown).await;
    info!("HTTP drained; stopping the anchoring loop");
    let _ = stop_tx.send(true);
    let _ = refresher.await;
    for webhook in webhooks {
        let _ = webhook.await;
    }
    tokio::task::spawn_blocking(move || deliveries.join()).await?;
    if anchoring.await.ok().flatten().is_none() {
        warn!("the anchoring loop had stopped on its own");
    }
    // The router (and with it every Ingestor handle) is gone: the writer ends.
    tokio::task::spawn_blocking(move || writer.join()).await?;
    info!("btcts stopped");
    Ok(())
}
