//! Where the blocks go: btcts's submit route. [`Sink`] is the narrow trait
//! the feeder is written against; [`crate::HttpSink`] implements it over
//! `POST /v1/chains/{chain_id}/blocks`, tests use fakes.

use std::future::Future;
use std::time::Duration;

use aggregator::ChainId;

use crate::source::ChainBlock;

/// What btcts said about one submitted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAck {
    /// The record was already stored (a re-post): nothing new was written.
    pub duplicate: bool,
    /// btcts holds another block hash for this chain at this height: a fork
    /// (or a wrong submission under this chain's token).
    pub conflict: bool,
}

/// Why a submission was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// 429 or 503: btcts asks to come back later, maybe saying when.
    #[error("btcts is busy (HTTP {status}){}", retry_hint(*retry_after))]
    Busy {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// Not reachable, timed out, or a server error: worth retrying.
    #[error("btcts unreachable: {0}")]
    Unreachable(String),
    /// A 4xx other than 429: this request will never be accepted as it is.
    #[error("btcts refused the submission (HTTP {status} {code}): {message}{}", hint(*status, code))]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The stable error code of the body (`unauthorized`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// A 2xx answer that is not what the API promises.
    #[error("btcts answered unexpectedly: {0}")]
    Protocol(String),
}

fn retry_hint(after: Option<Duration>) -> String {
    after.map_or_else(String::new, |d| format!("; retry after {} s", d.as_secs()))
}

fn hint(status: u16, code: &str) -> &'static str {
    match (status, code) {
        (401, _) => " (is the token file this chain's token?)",
        (403, _) => " (the token belongs to another chain)",
        (404, "unknown_chain") => " (add the chain to [auth.chains] on the server)",
        (413, "too_many_records") => {
            " (lower --batch to the server's limits.max_records_per_request)"
        }
        (413, _) => " (lower --batch: the body exceeds the server's limits.max_body_bytes)",
        _ => "",
    }
}

impl SinkError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Busy { .. } | SinkError::Unreachable(_))
    }

    /// How long btcts asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// btcts, as a destination for one chain's blocks.
pub trait Sink: Send + Sync {
    /// Submits `blocks` (at most the server's per-request limit, in height
    /// order) for `chain`. `Ok` means btcts has durably stored every one and
    /// returns one ack per block, in order. Idempotent: re-submitting a
    /// stored block is acknowledged as a duplicate, so a retry after an
    /// unknown outcome is safe.
    fn submit(
        &self,
        chain: &ChainId,
        blocks: &[ChainBlock],
    ) -> impl Future<Output = Result<Vec<RecordAck>, SinkError>> + Send;
}
