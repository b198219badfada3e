//! The v1 HTTP handlers: submission, record status and proofs, the
//! fast-unbonding status of a chain, forks, batches.

use std::sync::Arc;

use aggregator::anchor::AnchorRecord;
use aggregator::store::ConflictCursor;
use aggregator::{
    BatchSeq, ChainId, Height, LeafHash, PosBlock, PosBlockHash, Record, StakerSetDigest,
    StoredRecord,
};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::reads;
use crate::server::AppState;

/// `POST /v1/chains/{chain_id}/blocks` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    blocks: Vec<SubmitBlock>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBlock {
    height: Height,
    block_hash: String,
    staker_set_digest: String,
}

/// One submitted record in the response.
#[derive(Debug, Serialize)]
struct SubmitAck {
    id: LeafHash,
    status: &'static str,
    duplicate: bool,
    conflict: bool,
}

/// A request allowed to read: extracting it checks the read credential.
pub(crate) struct Reader;

impl axum::extract::FromRequestParts<Arc<AppState>> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        state.credentials.check_read(&parts.headers)?;
        Ok(Reader)
    }
}

pub(crate) fn parse_chain(raw: &str) -> Result<ChainId, ApiError> {
    ChainId::new(raw).map_err(|e| ApiError::bad_request("invalid_chain_id", e.to_string()))
}

fn parse_id(raw: &str) -> Result<LeafHash, ApiError> {
    raw.parse().map_err(|e: aggregator::types::ParseError| {
        ApiError::bad_request("invalid_record_id", e.to_string())
    })
}

/// The records of a `POST /v1/chains/{chain_id}/blocks` body for `chain`:
/// JSON `{"blocks": [...]}`, 1 to `max` entries, hex hashes. Public so the
/// fuzz target (`fuzz/fuzz_targets/submission_body.rs`) reaches it.
pub fn parse_submission(chain: &ChainId, body: &[u8], max: usize) -> Result<Vec<Record>, ApiError> {
    let body: SubmitBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_body",
            format!("expected {{\"blocks\": [...]}}: {e}"),
        )
    })?;
    if body.blocks.is_empty() {
        return Err(ApiError::unprocessable("no_records", "`blocks` is empty"));
    }
    if body.blocks.len() > max {
        return Err(ApiError {
            code: "too_many_records",
            ..ApiError::too_large(format!(
                "{} records in one request; the limit is {max}",
                body.blocks.len()
            ))
        });
    }
    body.blocks
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let bad = |field: &str, e: aggregator::types::ParseError| {
                ApiError::bad_request("invalid_hex", format!("blocks[{i}].{field}: {e}"))
            };
            Ok(Record::PosBlock(PosBlock {
                chain_id: chain.clone(),
                height: b.height,
                block_hash: b
                    .block_hash
                    .parse::<PosBlockHash>()
                    .map_err(|e| bad("block_hash", e))?,
                staker_set_digest: b
                    .staker_set_digest
                    .parse::<StakerSetDigest>()
                    .map_err(|e| bad("staker_set_digest", e))?,
            }))
        })
        .collect()
}

pub(crate) async fn submit(
    State(state): State<Arc<AppState>>,
    Path(chain): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let chain = parse_chain(&chain)?;
    if !state.credentials.chains.contains_key(&chain) {
        return Err(ApiError::not_found(
            "unknown_chain",
            format!("chain {chain} is not configured on this server"),
        ));
    }
    state.credentials.check_submit(&headers, &chain)?;
    let records = parse_submission(&chain, &body, state.limits.max_records_per_request)?;
    let count = records.len() as u64;
    let acks = state.ingestor.submit(records).await?;
    metrics::counter!("btcts_api_records_accepted_total").increment(count);
    let duplicates = acks.iter().filter(|a| a.duplicate).map(|a| a.id).collect();
    let mut known = reads::statuses(&state.store, duplicates).await?.into_iter();
    let mut out = Vec::with_capacity(acks.len());
    for ack in acks {
        let status = match ack.duplicate {
            true => known.next().unwrap_or("pending"),
            false => "pending",
        };
        out.push(SubmitAck {
            id: ack.id,
            status,
            duplicate: ack.duplicate,
            conflict: ack.conflict,
        });
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "records": out }))))
}

fn anchor_json(anchor: &AnchorRecord) -> Value {
    json!({
        "status": anchor.status,
        "txid": anchor.mined.as_ref().map(|m| m.txid),
        "block_hash": anchor.mined.as_ref().map(|m| m.block_hash),
        "block_height": anchor.mined.as_ref().map(|m| m.height),
        "confirmations": anchor.mined.as_ref().map_or(0, |m| m.confirmations),
        "at_fee_cap": anchor.at_fee_cap,
        "transactions": anchor.txs.iter().map(|t| json!({
            "txid": t.txid, "fee_rate_sat_vb": t.fee_rate_sat_vb, "fee_sat": t.fee_sat, "vsize": t.vsize,
        })).collect::<Vec<_>>(),
    })
}

pub(crate) async fn get_record(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    _reader: Reader,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let reads::RecordState {
        status,
        stored,
        anchor,
    } = reads::record_status(&state.store, id).await?;
    let mined = anchor.as_ref().and_then(|a| a.mined.as_ref());
    Ok(Json(json!({
        "id": id,
        "record": stored.record,
        "status": status,
        "batch": stored.batch.map(|(b, _)| b),
        "txid": mined.map(|m| m.txid),
        "block_hash": mined.map(|m| m.block_hash),
        "block_height": mined.map(|m| m.height),
        "confirmations": mined.map_or(0, |m| m.confirmations),
        "confirmations_required": state.confirmations,
    })))
}

/// `GET /v1/records/{id}/proof` query.
#[derive(Debug, Deserialize)]
pub(crate) struct ProofQuery {
    format: Option<String>,
}

pub(crate) async fn get_proof(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<ProofQuery>, QueryRejection>,
    _reader: Reader,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let format = query
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?
        .0
        .format;
    match format.as_deref().unwrap_or("json") {
        "json" => match reads::current_proof(&state, &id).await? {
            Some(proof) => Ok(Json(proof).into_response()),
            None => Err(ApiError::not_found(
                "not_batched_yet",
                format!("record {id} is pending; its proof exists once it is sealed into a batch"),
            )),
        },
        "ots" => ots_export(&state, &id).await,
        "leaf" => {
            let stored = reads::record(&state.store, id).await?.ok_or_else(|| {
                ApiError::not_found("record_not_found", format!("no record {id}"))
            })?;
            Ok(download(
                "application/octet-stream",
                &format!("{id}.leaf"),
                aggregator::leaf::encode(&stored.record),
            ))
        }
        other => Err(ApiError::bad_request(
            "invalid_format",
            format!("format must be json, ots or leaf, not {other:?}"),
        )),
    }
}

/// The `.ots` file of record `id`: to the Bitcoin attestation once its
/// batch is in a best-chain block, else a pending attestation at this
/// server's calendar.
async fn ots_export(state: &Arc<AppState>, id: &LeafHash) -> Result<Response, ApiError> {
    let proof = reads::current_proof(state, id).await?;
    let file = match proof {
        Some(p) if p.anchor.is_some() => aggregator::ots::detached_of(&p, None),
        _ if state.ots.calendar => Ok(aggregator::ots::DetachedTimestamp {
            digest: *id.as_bytes(),
            timestamp: aggregator::ots::Timestamp::chain(
                Vec::new(),
                aggregator::ots::Attestation::pending(&state.ots.public_url)
                    .map_err(ApiError::internal)?,
            ),
        }),
        _ => {
            return Err(ApiError::not_found(
                "not_anchored_yet",
                format!("record {id} is not anchored yet and this server runs no calendar to point a pending .ots at"),
            ))
        }
    };
    let bytes = file
        .and_then(|f| f.to_bytes())
        .map_err(|e| ApiError::unprocessable("ots_unrepresentable", e.to_string()))?;
    metrics::counter!("btcts_ots_exports_total").increment(1);
    Ok(download(
        aggregator::ots::MEDIA_TYPE,
        &format!("{id}.ots"),
        bytes,
    ))
}

/// A binary download.
pub(crate) fn download(content_type: &'static str, filename: &str, bytes: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

pub(crate) async fn chain_status(
    State(state): State<Arc<AppState>>,
    Path(chain): Path<String>,
    _reader: Reader,
) -> Result<Json<Value>, ApiError> {
    let chain = parse_chain(&chain)?;
    let reads::ChainStatus {
        latest_submitted,
        anchored,
        confirmed,
    } = reads::chain_status(&state.store, chain.clone(), state.confirmations).await?;
    let describe = |found: Option<(StoredRecord, aggregator::anchor::MinedIn)>| {
        found.map(|(r, m)| {
            let (height, hash) = match &r.record {
                Record::PosBlock(b) => (Some(b.height), Some(b.block_hash)),
                Record::Digest { .. } => (None, None),
            };
            json!({
                "height": height, "block_hash": hash, "record_id": r.id,
                "bitcoin_block_height": m.height, "bitcoin_block_hash": m.block_hash,
                "txid": m.txid, "confirmations": m.confirmations,
            })
        })
    };
    Ok(Json(json!({
        "chain_id": chain,
        "confirmations_required": state.confirmations,
        "latest_submitted_height": latest_submitted,
        "latest_anchored": describe(anchored),
        "latest_confirmed": describe(confirmed),
    })))
}

/// `?limit=N&after=CURSOR` of the paged lists.
#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

/// Items per page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

impl PageQuery {
    fn parse(
        query: Result<Query<PageQuery>, QueryRejection>,
    ) -> Result<(usize, Option<String>), ApiError> {
        let query = query
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?
            .0;
        let limit = match query.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_limit",
                        format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        Ok((limit, query.after))
    }
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request(
        "invalid_cursor",
        "after must be the `next` value of a previous page",
    )
}

/// A conflicts cursor: `HEIGHT.SEQ`.
fn parse_conflict_cursor(raw: &str) -> Result<ConflictCursor, ApiError> {
    let (height, seq) = raw.split_once('.').ok_or_else(bad_cursor)?;
    Ok(ConflictCursor {
        height: height.parse().map_err(|_| bad_cursor())?,
        seq: seq.parse().map_err(|_| bad_cursor())?,
    })
}

pub(crate) async fn blocks_at(
    State(state): State<Arc<AppState>>,
    Path((chain, height)): Path<(String, String)>,
    query: Result<Query<PageQuery>, QueryRejection>,
    _reader: Reader,
) -> Result<Json<Value>, ApiError> {
    let chain = parse_chain(&chain)?;
    let height: Height = height.parse().map_err(|_| {
        ApiError::bad_request("invalid_height", "height must be a non-negative integer")
    })?;
    let (limit, after) = PageQuery::parse(query)?;
    let after = after
        .map(|a| a.parse::<u64>().map_err(|_| bad_cursor()))
        .transpose()?;
    let (at, statuses) =
        reads::records_at(&state.store, chain.clone(), height, after, limit).await?;
    let records: Vec<Value> = at
        .page
        .items
        .into_iter()
        .zip(statuses)
        .map(|(r, status)| json!({ "id": r.id, "record": r.record, "status": status }))
        .collect();
    Ok(Json(json!({
        "chain_id": chain, "height": height, "fork": at.fork, "records": records,
        "next": at.page.next.map(|seq| seq.to_string()),
    })))
}

pub(crate) async fn conflicts(
    State(state): State<Arc<AppState>>,
    Path(chain): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    _reader: Reader,
) -> Result<Json<Value>, ApiError> {
    let chain = parse_chain(&chain)?;
    let (limit, after) = PageQuery::parse(query)?;
    let after = after.as_deref().map(parse_conflict_cursor).transpose()?;
    let page = reads::conflicts(&state.store, chain.clone(), after, limit).await?;
    let list: Vec<Value> = page
        .items
        .into_iter()
        .map(|c| json!({ "height": c.height, "first": c.first, "other": c.other }))
        .collect();
    Ok(Json(json!({
        "chain_id": chain, "conflicts": list,
        "next": page.next.map(|c| format!("{}.{}", c.height, c.seq)),
    })))
}

pub(crate) async fn batch(
    State(state): State<Arc<AppState>>,
    Path(seq): Path<String>,
    _reader: Reader,
) -> Result<Json<Value>, ApiError> {
    let seq = BatchSeq(seq.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_batch",
            "batch sequence must be a non-negative integer",
        )
    })?);
    let (b, anchor) = reads::batch(&state.store, seq).await?;
    Ok(Json(json!({
        "seq": b.seq, "root": b.root, "size": b.size, "sealed_unix_ms": b.sealed_unix_ms,
        "anchor": anchor.as_ref().map(anchor_json),
    })))
}

/// `GET /v1/anchoring`: what anchoring costs and when the next anchor goes
/// out (docs/anchoring.md, Cost). Read auth, like the other reads.
pub(crate) async fn anchoring(
    _: Reader,
    State(state): State<Arc<AppState>>,
) -> Result<Json<btc_submitter::AnchoringSnapshot>, ApiError> {
    let view = state.anchoring.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "anchoring_not_running",
            "this process runs no anchoring loop",
        )
    })?;
    let mut snapshot = view.get();
    if snapshot.updated_unix_ms == 0 {
        snapshot.state = "starting".into();
    }
    Ok(Json(snapshot))
}
