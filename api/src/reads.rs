//! The store reads behind the read routes, the calendar and the status
//! pages. Every redb read runs on tokio's blocking pool, never on an async
//! worker: a read that waits on the disk (or a long one) then holds up only
//! its own request. Handlers call these instead of `Store` directly.

use std::sync::Arc;

use aggregator::anchor::{AnchorRecord, AnchorStatus, MinedIn};
use aggregator::store::{Conflict, ConflictCursor, Page, RecordsAt};
use aggregator::{BatchInfo, BatchSeq, ChainId, Height, LeafHash, Proof, Store, StoredRecord};

use crate::error::ApiError;
use crate::server::AppState;

/// Runs `f` over the store on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(ApiError::internal)?
}

/// Where a record stands: its status word, the record and its batch's anchor.
pub(crate) struct RecordState {
    pub status: &'static str,
    pub stored: StoredRecord,
    pub anchor: Option<AnchorRecord>,
}

fn record_state(store: &Store, id: &LeafHash) -> Result<RecordState, ApiError> {
    let Some(stored) = store.record(id)? else {
        return Err(ApiError::not_found(
            "record_not_found",
            format!("no record {id}"),
        ));
    };
    let Some((batch, _)) = stored.batch else {
        return Ok(RecordState {
            status: "pending",
            stored,
            anchor: None,
        });
    };
    let anchor = store.anchor(batch)?;
    let status = match anchor.as_ref().map(|a| a.status) {
        Some(AnchorStatus::Confirmed) => "confirmed",
        Some(AnchorStatus::Mined) => "anchored",
        _ => "batched",
    };
    Ok(RecordState {
        status,
        stored,
        anchor,
    })
}

/// Record `id` and where it stands; `404 record_not_found` if unknown.
pub(crate) async fn record_status(store: &Store, id: LeafHash) -> Result<RecordState, ApiError> {
    blocking(store, move |s| record_state(s, &id)).await
}

/// The status words of `ids`, in order (one blocking call for all).
pub(crate) async fn statuses(
    store: &Store,
    ids: Vec<LeafHash>,
) -> Result<Vec<&'static str>, ApiError> {
    // Most submissions have no duplicate: no trip to the blocking pool.
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    blocking(store, move |s| {
        ids.iter()
            .map(|id| record_state(s, id).map(|r| r.status))
            .collect()
    })
    .await
}

/// Record `id`, if stored.
pub(crate) async fn record(store: &Store, id: LeafHash) -> Result<Option<StoredRecord>, ApiError> {
    blocking(store, move |s| Ok(s.record(&id)?)).await
}

/// A chain's fast-unbonding status: latest height, and the latest heights
/// timestamped 1 and `k` deep.
pub(crate) struct ChainStatus {
    pub latest_submitted: Option<Height>,
    pub anchored: Option<(StoredRecord, MinedIn)>,
    pub confirmed: Option<(StoredRecord, MinedIn)>,
}

pub(crate) async fn chain_status(
    store: &Store,
    chain: ChainId,
    k: u32,
) -> Result<ChainStatus, ApiError> {
    blocking(store, move |s| {
        Ok(ChainStatus {
            latest_submitted: s.latest_height(&chain)?,
            anchored: s.latest_timestamped(&chain, 1)?,
            confirmed: s.latest_timestamped(&chain, k)?,
        })
    })
    .await
}

/// A page of the records at `height`, each with its status word.
pub(crate) async fn records_at(
    store: &Store,
    chain: ChainId,
    height: Height,
    after: Option<u64>,
    limit: usize,
) -> Result<(RecordsAt, Vec<&'static str>), ApiError> {
    blocking(store, move |s| {
        let at = s.records_at_page(&chain, height, after, limit)?;
        let statuses = at
            .page
            .items
            .iter()
            .map(|r| record_state(s, &r.id).map(|r| r.status))
            .collect::<Result<_, _>>()?;
        Ok((at, statuses))
    })
    .await
}

/// A page of `chain`'s fork evidence.
pub(crate) async fn conflicts(
    store: &Store,
    chain: ChainId,
    after: Option<ConflictCursor>,
    limit: usize,
) -> Result<Page<Conflict, ConflictCursor>, ApiError> {
    blocking(store, move |s| Ok(s.conflicts_page(&chain, after, limit)?)).await
}

/// Batch `seq` and its anchor; `404 batch_not_found` if not sealed.
pub(crate) async fn batch(
    store: &Store,
    seq: BatchSeq,
) -> Result<(BatchInfo, Option<AnchorRecord>), ApiError> {
    blocking(store, move |s| {
        let b = s
            .batch(seq)?
            .ok_or_else(|| ApiError::not_found("batch_not_found", format!("no batch {seq}")))?;
        Ok((b, s.anchor(seq)?))
    })
    .await
}

/// Record `id`'s proof completed against the best chain (its anchor removed
/// if the block left it); `None` while the record waits for a batch.
pub(crate) async fn current_proof(
    state: &Arc<AppState>,
    id: &LeafHash,
) -> Result<Option<Proof>, ApiError> {
    let key = *id;
    let stored = blocking(&state.store, move |s| match s.proof(&key)? {
        Some(p) => Ok(Some(p)),
        None => match s.record(&key)? {
            Some(_) => Ok(None),
            None => Err(ApiError::not_found(
                "record_not_found",
                format!("no record {key}"),
            )),
        },
    })
    .await?;
    let Some(proof) = stored else {
        return Ok(None);
    };
    if proof.anchor.is_none() {
        return Ok(Some(proof));
    }
    let headers_max = state.confirmations.max(1).saturating_mul(2);
    if let Some(done) = state
        .tips
        .as_ref()
        .and_then(|t| t.complete(proof.clone(), headers_max))
    {
        return Ok(Some(done));
    }
    // Below the cache's window: the node answers, once per anchor block
    // until the tip moves.
    if let Some(done) = state
        .tips
        .as_ref()
        .and_then(|t| t.complete_deep(proof.clone()))
    {
        return Ok(Some(done));
    }
    let node = state.node.clone();
    let tips = state.tips.clone();
    let completed = tokio::task::spawn_blocking(move || {
        let ask = |p| btc_submitter::complete_proof(&node, p, headers_max);
        match tips {
            // One question per anchor block at a time; the others wait for it.
            Some(tips) => tips.complete_deep_once(proof, ask),
            None => ask(proof),
        }
    })
    .await
    .map_err(ApiError::internal)?;
    match completed {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            // The node's own words (addresses, paths) stay in the log.
            tracing::warn!(error = %e, "proof: cannot check the anchor block against the node");
            Err(ApiError::unavailable(
                "node_unavailable",
                "cannot check the anchor block against the node right now",
            ))
        }
    }
}
