//! The OpenTimestamps calendar protocol on the btcts server: what the stock
//! `ots` client calls when btcts is given as its calendar (`-c URL`).
//!
//! - `POST /digest` with 1–64 raw bytes: the digest becomes a raw-digest
//!   record (as is when it has 32 bytes, else its SHA-256), and the answer is
//!   the timestamp from the digest to the record's leaf hash, ending in a
//!   pending attestation at this server's public URL.
//! - `GET /timestamp/{leaf hash}` (of a calendar digest, or of any record
//!   whose exported `.ots` file is pending): the timestamp from that commitment to the
//!   Bitcoin block-header attestation, once the anchor is `confirmations`
//!   deep; until then 404 with a plain-text reason, as OpenTimestamps
//!   calendars answer.

use std::sync::Arc;

use aggregator::leaf::{KIND_DIGEST, LEAF_PREFIX};
use aggregator::ots::{Attestation, Op, Timestamp, MEDIA_TYPE};
use aggregator::types::RawDigest;
use aggregator::{LeafHash, Record};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bitcoin::hashes::{sha256, Hash};

use crate::error::ApiError;
use crate::server::AppState;

/// Longest digest the calendar accepts, as OpenTimestamps calendars do.
pub const MAX_DIGEST_LEN: usize = 64;

/// `Retry-After` of a `calendar_busy` answer: about when the pending
/// records have gone into an anchor on a fast chain; clients back off more
/// on their own.
pub const BUSY_RETRY_AFTER_SECS: u64 = 30;

/// The answer to a client over its digest quota: 429 `calendar_quota`.
pub(crate) fn over_quota(e: tower_governor::GovernorError) -> Response {
    let wait = match e {
        tower_governor::GovernorError::TooManyRequests { wait_time, .. } => wait_time.max(1),
        _ => 1,
    };
    metrics::counter!("btcts_calendar_refused_total", "reason" => "quota").increment(1);
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "calendar_quota",
        message: format!("over this client's digest quota; retry in {wait} s"),
        retry_after: Some(wait),
    }
    .into_response()
}

pub(crate) async fn digest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.credentials.check_calendar(&headers)?;
    // The calendar is open to anyone; consumer chains are not. Beyond the
    // pending cap digests wait outside (the records already pending are
    // all in the next anchor), so no amount of calendar traffic delays a
    // consumer chain's record by more than that anchor.
    let pending = crate::reads::blocking(&state.store, |s| Ok(s.pending_count()?)).await?;
    if pending >= state.ots.max_pending {
        metrics::counter!("btcts_calendar_refused_total", "reason" => "busy").increment(1);
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "calendar_busy",
            message: format!(
                "over {} records wait for the next anchor; retry after it",
                state.ots.max_pending
            ),
            retry_after: Some(BUSY_RETRY_AFTER_SECS),
        });
    }
    if body.is_empty() || body.len() > MAX_DIGEST_LEN {
        return Err(ApiError::bad_request(
            "invalid_digest",
            format!(
                "the body must be the raw digest, 1 to {MAX_DIGEST_LEN} bytes; got {}",
                body.len()
            ),
        ));
    }
    let mut ops = Vec::new();
    let digest: [u8; 32] = match <[u8; 32]>::try_from(body.as_ref()) {
        Ok(d) => d,
        Err(_) => {
            ops.push(Op::Sha256);
            sha256::Hash::hash(&body).to_byte_array()
        }
    };
    ops.push(Op::Prepend(vec![LEAF_PREFIX, KIND_DIGEST]));
    ops.push(Op::Sha256);
    let pending = Attestation::pending(&state.ots.public_url).map_err(ApiError::internal)?;
    let bytes = Timestamp::chain(ops, pending)
        .to_bytes()
        .map_err(ApiError::internal)?;
    let acks = state
        .ingestor
        .submit(vec![Record::Digest {
            digest: RawDigest(digest),
        }])
        .await?;
    let duplicate = acks.first().is_some_and(|a| a.duplicate);
    metrics::counter!("btcts_calendar_digests_total", "duplicate" => duplicate.to_string())
        .increment(1);
    Ok(([(header::CONTENT_TYPE, MEDIA_TYPE)], bytes).into_response())
}

pub(crate) async fn timestamp(
    State(state): State<Arc<AppState>>,
    Path(commitment): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.credentials.check_calendar(&headers)?;
    let id: LeafHash = commitment.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_commitment",
            "a commitment is 64 hex characters (a leaf hash)",
        )
    })?;
    let (result, response) = upgrade(&state, &id, &headers).await?;
    metrics::counter!("btcts_calendar_upgrades_total", "result" => result).increment(1);
    Ok(response)
}

/// The upgrade answer for `id` and a word for the metrics.
async fn upgrade(
    state: &Arc<AppState>,
    id: &LeafHash,
    headers: &HeaderMap,
) -> Result<(&'static str, Response), ApiError> {
    let not_found = |reason: String| (StatusCode::NOT_FOUND, reason).into_response();
    match crate::reads::record(&state.store, *id).await? {
        None => return Ok(("unknown", not_found("Commitment not found".into()))),
        // Exported `.ots` files of consumer-chain records point here too;
        // they are as readable as the records themselves. A caller who may
        // not read them gets the answer for an unknown commitment, so that
        // the calendar does not tell who exists.
        Some(r) if !matches!(r.record, Record::Digest { .. }) => {
            if state.credentials.check_read(headers).is_err() {
                return Ok(("unknown", not_found("Commitment not found".into())));
            }
        }
        Some(_) => {}
    }
    let proof = crate::reads::current_proof(state, id).await?;
    let depth = proof
        .as_ref()
        .and_then(|p| p.anchor.as_ref())
        .map_or(0, |a| 1 + a.headers_after.len() as u64);
    let needed = u64::from(state.confirmations);
    let Some(proof) = proof.filter(|_| depth >= needed) else {
        return Ok((
            "pending",
            not_found(format!(
                "Pending confirmation in Bitcoin blockchain; {depth} of {needed} confirmations"
            )),
        ));
    };
    let bytes = aggregator::ots::timestamp_of(&proof, None)
        .and_then(|t| t.to_bytes())
        .map_err(|e| ApiError::unprocessable("ots_unrepresentable", e.to_string()))?;
    Ok((
        "complete",
        ([(header::CONTENT_TYPE, MEDIA_TYPE)], bytes).into_response(),
    ))
}
