//! `/readyz`: the store takes writes and the node answers on the configured
//! chain. The node's answer is cached for [`NODE_CHECK_TTL`], and requests
//! that arrive while it is being refreshed wait for that one call, so
//! probes (or a flood of them) cost at most one node RPC a second.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::server::AppState;

/// How long a node check answers `/readyz`.
pub const NODE_CHECK_TTL: Duration = Duration::from_secs(1);

/// The last node check: when, and the tip height or why not ready.
#[derive(Debug, Default)]
pub(crate) struct NodeCheck {
    last: Mutex<Option<(Instant, Result<u32, ApiError>)>>,
}

impl NodeCheck {
    /// The node's tip height on the configured chain, from a check at most
    /// [`NODE_CHECK_TTL`] old.
    async fn tip_height(&self, state: &Arc<AppState>) -> Result<u32, ApiError> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = last.as_ref() {
            if at.elapsed() < NODE_CHECK_TTL {
                return answer.clone();
            }
        }
        let answer = check_node(state).await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

async fn check_node(state: &Arc<AppState>) -> Result<u32, ApiError> {
    let node = state.node.clone();
    let info = tokio::task::spawn_blocking(move || node.chain_info())
        .await
        .map_err(ApiError::internal)?;
    // The node's own words (addresses, paths, its chain) stay in the log.
    let info = info.map_err(|e| {
        tracing::warn!(error = %e, "readyz: the node is unavailable");
        ApiError::unavailable("node_unavailable", "the Bitcoin node is unavailable")
    })?;
    btc_submitter::check_chain(state.network, &info).map_err(|e| {
        tracing::warn!(error = %e, "readyz: the node is on another chain");
        ApiError::unavailable("wrong_chain", "the Bitcoin node is on another chain")
    })?;
    Ok(info.tip_height)
}

pub(crate) async fn readyz(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    check: Arc<NodeCheck>,
) -> Result<Json<Value>, ApiError> {
    crate::server::check_monitoring(&state, &headers)?;
    // A full disk (or another write failure) makes the store unavailable
    // until it has reopened itself: not ready while that lasts (not cached).
    state.store.check_available()?;
    crate::reads::blocking(&state.store, |s| Ok(s.pending_count()?)).await?;
    let tip_height = check.tip_height(&state).await?;
    Ok(Json(
        json!({ "status": "ready", "network": state.network, "tip_height": tip_height }),
    ))
}
