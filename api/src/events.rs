//! `GET /v1/chains/{chain_id}/events` and `GET /v1/events`: the event log
//! as Server-Sent Events (docs/events.md).
//!
//! A stream reads the store's event log a page at a time and waits on the
//! store's "events committed" signal when it has caught up, so an idle
//! stream costs a parked task and its connection. `Last-Event-ID` (or
//! `?after=`) resumes from the log: nothing acknowledged is missed, nothing
//! is sent twice.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aggregator::events::Event;
use aggregator::{ChainId, Store};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::auth::bearer;
use crate::config::EventsSection;
use crate::error::ApiError;
use crate::routes::parse_chain;
use crate::server::AppState;

/// Events read from the store at a time.
const PAGE: usize = 256;

/// The streams' shared limits and the server's "closing" signal.
#[derive(Debug, Clone)]
pub struct EventStreams {
    permits: Arc<Semaphore>,
    heartbeat: Duration,
    closing: watch::Receiver<bool>,
    /// Keeps `closing` open while any clone lives.
    closer: Arc<watch::Sender<bool>>,
}

impl EventStreams {
    /// Limits from `[events]`.
    pub fn new(config: &EventsSection) -> Self {
        let (closer, closing) = watch::channel(false);
        EventStreams {
            permits: Arc::new(Semaphore::new(config.max_streams.max(1))),
            heartbeat: Duration::from_secs(config.heartbeat_secs.max(1)),
            closing,
            closer: Arc::new(closer),
        }
    }

    /// Ends every open stream (the server is shutting down: streams would
    /// otherwise hold the drain open).
    pub fn close(&self) {
        self.closer.send_replace(true);
    }
}

/// `?after=`: the same as `Last-Event-ID`, for clients that cannot set headers.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    after: Option<String>,
}

/// `GET /v1/chains/{chain_id}/events`: one chain's events. Read access, or
/// the chain's own submit token.
pub(crate) async fn chain_events(
    State(state): State<Arc<AppState>>,
    Path(chain): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let chain = parse_chain(&chain)?;
    if !state.credentials.chains.contains_key(&chain) {
        return Err(ApiError::not_found(
            "unknown_chain",
            format!("chain {chain} is not configured on this server"),
        ));
    }
    let own_token = bearer(&headers)?.is_some_and(|t| {
        state
            .credentials
            .chains
            .get(&chain)
            .is_some_and(|tokens| tokens.contains(&t))
    });
    if !own_token {
        state.credentials.check_read(&headers)?;
    }
    open(&state, Some(chain), &headers, query).await
}

/// `GET /v1/events`: every chain's events, for the admin token only.
pub(crate) async fn all_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let token =
        bearer(&headers)?.ok_or_else(|| ApiError::unauthorized("the admin token is required"))?;
    match state.credentials.admin {
        Some(admin) if admin == token => {}
        Some(_) => {
            return Err(ApiError::forbidden(
                "only the admin token reads every chain's events",
            ))
        }
        None => {
            return Err(ApiError::forbidden(
                "no admin token is configured (auth.admin_token_sha256)",
            ))
        }
    }
    open(&state, None, &headers, query).await
}

/// The event id to resume after: `Last-Event-ID`, else `?after=`.
fn resume_point(
    headers: &HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Option<u64>, ApiError> {
    let query = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| bad_id("Last-Event-ID is not text"))?
                .to_owned(),
        ),
        None => query.0.after,
    };
    raw.map(|r| {
        r.trim()
            .parse::<u64>()
            .map_err(|_| bad_id(&format!("`{r}` is not an event id (a whole number)")))
    })
    .transpose()
}

fn bad_id(message: &str) -> ApiError {
    ApiError::bad_request("invalid_last_event_id", message)
}

async fn open(
    state: &AppState,
    chain: Option<ChainId>,
    headers: &HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let after = resume_point(headers, query)?;
    let permit = state
        .events
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError {
            retry_after: Some(5),
            ..ApiError::unavailable("too_many_streams", "too many event streams are open")
        })?;
    let bounds = crate::reads::blocking(&state.store, |s| Ok(s.event_bounds()?)).await?;
    let after = match after {
        None => bounds.last,
        Some(a) if a > bounds.last => {
            return Err(ApiError::bad_request(
                "invalid_last_event_id",
                format!(
                    "event {a} was never written here (the last is {})",
                    bounds.last
                ),
            ))
        }
        Some(a) if a.saturating_add(1) < bounds.oldest => {
            return Err(ApiError {
                status: axum::http::StatusCode::GONE,
                code: "events_pruned",
                message: format!(
                    "events after {a} are no longer kept (the oldest is {}); read the records' status and resume from the newest event",
                    bounds.oldest
                ),
                retry_after: None,
            })
        }
        Some(a) => a,
    };
    let mut changed = state.store.subscribe_events();
    changed.borrow_and_update();
    let cursor = Cursor {
        store: state.store.clone(),
        chain,
        after,
        buffer: VecDeque::new(),
        changed,
        closing: state.events.closing.clone(),
        _open: Open::new(permit),
    };
    let stream = futures_util::stream::unfold(cursor, next_event);
    Ok(Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(state.events.heartbeat)
                .text("heartbeat"),
        )
        .into_response())
}

/// A stream's place in the log.
struct Cursor {
    store: Store,
    chain: Option<ChainId>,
    after: u64,
    buffer: VecDeque<Event>,
    changed: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    _open: Open,
}

/// Counts the stream in `btcts_event_streams` and holds its slot while it lives.
struct Open(#[allow(dead_code)] OwnedSemaphorePermit);

impl Open {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::gauge!("btcts_event_streams").increment(1.0);
        Open(permit)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("btcts_event_streams").decrement(1.0);
    }
}

async fn next_event(mut c: Cursor) -> Option<(Result<sse::Event, Infallible>, Cursor)> {
    loop {
        if *c.closing.borrow() {
            return None;
        }
        if let Some(event) = c.buffer.pop_front() {
            let sse = sse::Event::default()
                .id(event.id.to_string())
                .event(event.kind.as_str())
                .json_data(&event)
                .ok()?;
            metrics::counter!("btcts_events_sent_total").increment(1);
            return Some((Ok(sse), c));
        }
        // Mark the signal seen before reading: a commit after this read
        // wakes the wait below.
        c.changed.borrow_and_update();
        let (store, chain, after) = (c.store.clone(), c.chain.clone(), c.after);
        let page =
            tokio::task::spawn_blocking(move || store.events_after(after, chain.as_ref(), PAGE))
                .await;
        // A store failure ends the stream; the client resumes from its
        // last id once the store is back.
        let page = page.ok()?.ok()?;
        let moved = page.next > c.after;
        c.after = page.next;
        c.buffer.extend(page.events);
        if !c.buffer.is_empty() || moved {
            continue;
        }
        tokio::select! {
            r = c.changed.changed() => r.ok()?,
            r = c.closing.changed() => r.ok()?,
        }
    }
}

/// How often events past their retention are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Removes events older than `retention` now and every [`PRUNE_EVERY`]
/// until `stop`.
pub(crate) async fn prune(store: Store, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let cutoff = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(retention)
            .as_millis() as u64;
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.prune_events(cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(entries = n, "pruned events past their retention"),
            Ok(Err(e)) => tracing::warn!(error = %e, "pruning events failed; retrying in an hour"),
            Err(e) => tracing::warn!(error = %e, "pruning events failed; retrying in an hour"),
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
