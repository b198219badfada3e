//! The sections of the configuration file other than `[ibc]`: their fields,
//! defaults and (for `[limits]`) their checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aggregator::StoreOptions;
use serde::{Deserialize, Serialize};

use super::{in_range, invalid, ConfigError};

/// `[store]`: how the store file in `data_dir` is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// MiB of redb's page cache. Memory grows with the data written until
    /// the cache is full, then stays (docs/operations.md, Memory).
    pub cache_mb: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            cache_mb: (StoreOptions::DEFAULT_CACHE_BYTES >> 20) as u64,
        }
    }
}

impl StoreSection {
    /// Checks `cache_mb` against [`super::RANGES`] and gives the store's options.
    pub fn validate(&self) -> Result<StoreOptions, ConfigError> {
        let key = "store.cache_mb";
        in_range(key, key, self.cache_mb)?;
        let cache_bytes = self
            .cache_mb
            .checked_mul(1 << 20)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| invalid(key, "does not fit in this machine's address space"))?;
        Ok(StoreOptions { cache_bytes })
    }
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` (one human-readable line per event) or `json` (one JSON
    /// object per line). Colour only when stderr is a terminal.
    pub format: LogFormat,
    /// A line per HTTP request at `info` (an access log). Off: requests
    /// are logged at `debug` (`RUST_LOG=btcts_api=debug`), 5xx at `warn`.
    pub access: bool,
}

/// The log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[opentimestamps]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtsSection {
    /// Serve the calendar protocol (`POST /digest`, `GET /timestamp/{commitment}`).
    pub calendar: bool,
    /// The base URL clients reach this server at, written into pending
    /// attestations. Default: `http://` and the address the server listens on.
    pub public_url: Option<String>,
    /// Digests each client (a calendar credential, else an address) may
    /// submit per second, sustained.
    pub digests_per_second: u32,
    /// Digests a client may submit at once above that rate.
    pub digest_burst: u32,
    /// Beyond this many records waiting for an anchor (of any kind), the
    /// calendar answers 503 `calendar_busy`; consumer chains are never
    /// refused by it.
    pub max_pending: u64,
}

impl Default for OtsSection {
    fn default() -> Self {
        OtsSection {
            calendar: true,
            public_url: None,
            digests_per_second: 50,
            digest_burst: 200,
            max_pending: 1_000_000,
        }
    }
}

/// Validated `[opentimestamps]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtsSettings {
    /// Whether the calendar routes are served.
    pub calendar: bool,
    /// The configured public URL, if any: a bare origin without a final `/`,
    /// a URL with a path (behind a proxy) with one.
    pub public_url: Option<String>,
    /// Digests per second per client.
    pub digests_per_second: u32,
    /// Burst of digests per client.
    pub digest_burst: u32,
    /// Records pending beyond which the calendar answers 503.
    pub max_pending: u64,
}

impl Default for OtsSettings {
    /// The calendar served with the default limits; no public URL.
    fn default() -> Self {
        let d = OtsSection::default();
        OtsSettings {
            calendar: d.calendar,
            public_url: None,
            digests_per_second: d.digests_per_second,
            digest_burst: d.digest_burst,
            max_pending: d.max_pending,
        }
    }
}

/// `[node]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// `http://host:port` of the node's RPC.
    pub url: String,
    /// RPC user (with `password`), or use `cookie_file`.
    pub user: Option<String>,
    /// RPC password.
    pub password: Option<String>,
    /// The node's `.cookie` file.
    pub cookie_file: Option<PathBuf>,
    /// The wallet that funds anchors.
    pub wallet: String,
    /// The anchoring loop's fallback timer, in ms: it wakes on every new
    /// block (a long poll), and also steps this long after its last step.
    pub poll_ms: u64,
}

/// `[batching]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingSection {
    /// With `max_unconfirmed` > 1: start a further anchor before the
    /// previous one is mined once this many records are pending. (Every
    /// anchor commits all pending records; this key was once
    /// `max_records_per_batch` and capped a batch, which let records queue
    /// behind one another — the old name is still read.)
    #[serde(alias = "max_records_per_batch")]
    pub early_anchor_at: u64,
    /// Anchors allowed to wait for their first confirmation at once.
    pub max_unconfirmed: usize,
    /// Blocks from one anchor's block to the next one's while records keep
    /// arriving (docs/anchoring.md, Cost). Unset: 6 on the mainnets, 1
    /// (every block) on test networks and in the demo.
    pub min_blocks_between_anchors: Option<u32>,
    /// Every record is in a block at most this many blocks after the tip
    /// it arrived at: an anchor goes out before the cadence (or fee
    /// patience) would send it when a record would wait longer.
    pub max_anchor_delay_blocks: u32,
    /// Tighter budgets for some chains: chain id → blocks.
    pub max_anchor_delay_blocks_by_chain: BTreeMap<String, u32>,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most records in one submission.
    pub max_records_per_request: usize,
    /// Sustained requests per second per credential (or per client address).
    pub rate_per_second: u32,
    /// Burst allowance on top of the rate.
    pub rate_burst: u32,
    /// Longest time a request may take, ms.
    pub request_timeout_ms: u64,
    /// Most requests in flight at once.
    pub max_concurrent_requests: usize,
    /// Most open client connections; further ones wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// A connection that has not sent a complete request head within this
    /// many ms is closed (slowloris).
    pub header_read_timeout_ms: u64,
    /// Reverse proxies (CIDRs, e.g. `"10.0.0.0/8"`, `"::1/128"`) whose
    /// `Forwarded` / `X-Forwarded-For` headers name the client; from
    /// anyone else those headers are ignored. Empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// SHA-256 (hex) of the admin token.
    pub admin_token_sha256: Option<String>,
    /// SHA-256 (hex) of a token required for reads; reads are public without it.
    pub read_token_sha256: Option<String>,
    /// SHA-256 (hex) of a token the calendar routes require; open without it
    /// (like public OpenTimestamps calendars).
    pub calendar_token_sha256: Option<String>,
    /// Chain id → SHA-256 (hex) of each token allowed to submit for it,
    /// as a list, or a table that can also name the chain's webhook.
    pub chains: BTreeMap<String, super::ChainAuth>,
    /// With a read token set, `/metrics` and `/readyz` need it too (they
    /// are public otherwise, for monitoring).
    pub monitoring_requires_read_token: bool,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            url: "http://127.0.0.1:18443".into(),
            user: None,
            password: None,
            cookie_file: None,
            wallet: "btcts".into(),
            poll_ms: 1000,
        }
    }
}

impl Default for BatchingSection {
    fn default() -> Self {
        BatchingSection {
            early_anchor_at: 100_000,
            max_unconfirmed: 1,
            min_blocks_between_anchors: None,
            max_anchor_delay_blocks: 144,
            max_anchor_delay_blocks_by_chain: BTreeMap::new(),
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_body_bytes: 1 << 20,
            max_records_per_request: 1000,
            rate_per_second: 100,
            rate_burst: 200,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1024,
            max_connections: 4096,
            header_read_timeout_ms: 10_000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[events]`: `GET /v1/chains/{id}/events` and `GET /v1/events`
/// (docs/events.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// Most event streams open at once; more get 503 `too_many_streams`.
    pub max_streams: usize,
    /// Seconds between heartbeat comments on an idle stream.
    pub heartbeat_secs: u64,
    /// Days events are kept for resuming streams and late webhooks.
    pub retention_days: u64,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            max_streams: 1024,
            heartbeat_secs: 15,
            retention_days: 30,
        }
    }
}

impl EventsSection {
    /// Checks every value against [`super::RANGES`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("events.max_streams", self.max_streams as u64),
            ("events.heartbeat_secs", self.heartbeat_secs),
            ("events.retention_days", self.retention_days),
        ] {
            in_range(key, key, v)?;
        }
        Ok(())
    }
}

impl LimitsSection {
    /// Checks every limit against [`super::RANGES`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("limits.max_body_bytes", self.max_body_bytes as u64),
            (
                "limits.max_records_per_request",
                self.max_records_per_request as u64,
            ),
            ("limits.rate_per_second", u64::from(self.rate_per_second)),
            ("limits.rate_burst", u64::from(self.rate_burst)),
            ("limits.request_timeout_ms", self.request_timeout_ms),
            (
                "limits.max_concurrent_requests",
                self.max_concurrent_requests as u64,
            ),
            ("limits.max_connections", self.max_connections as u64),
            ("limits.header_read_timeout_ms", self.header_read_timeout_ms),
        ] {
            in_range(key, key, v)?;
        }
        Ok(())
    }
}
