//! Every metric btcts exports, in one place: its kind, its `# HELP` text
//! and, for histograms, its buckets. [`install`] sets up the Prometheus
//! recorder with them; the emitting code (`metrics::counter!` and friends
//! across the crates) uses the same names. docs/operations.md, "Metrics and
//! alerts", explains each one to operators.

use std::path::PathBuf;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// A metric's kind, for `describe_*!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only ever increases.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// One exported metric.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// Its full name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric name the code emits (a test greps the sources for more).
pub const METRICS: &[Metric] = &[
    m(
        "btcts_http_requests_total",
        Counter,
        "HTTP requests answered, by route and status code.",
    ),
    m(
        "btcts_http_request_duration_seconds",
        Histogram,
        "HTTP request duration in seconds, by route.",
    ),
    m(
        "btcts_api_records_accepted_total",
        Counter,
        "Records accepted by POST /v1/records.",
    ),
    m(
        "btcts_ots_exports_total",
        Counter,
        "OpenTimestamps .ots files exported.",
    ),
    m(
        "btcts_calendar_digests_total",
        Counter,
        "Calendar digests received, by whether they were duplicates.",
    ),
    m(
        "btcts_calendar_refused_total",
        Counter,
        "Calendar digests refused, by reason (quota, busy).",
    ),
    m(
        "btcts_calendar_upgrades_total",
        Counter,
        "Calendar timestamp upgrade requests, by result.",
    ),
    m(
        "btcts_store_pending_records",
        Gauge,
        "Records waiting to be sealed into a batch.",
    ),
    m(
        "btcts_event_streams",
        Gauge,
        "Event streams (Server-Sent Events) open now.",
    ),
    m(
        "btcts_events_sent_total",
        Counter,
        "Events written to event streams.",
    ),
    m(
        "btcts_store_write_wait_seconds",
        Histogram,
        "Time a store write transaction waited for the writer, by op.",
    ),
    m(
        "btcts_store_write_hold_seconds",
        Histogram,
        "Time a store write transaction held the writer (commit included), by op.",
    ),
    m(
        "btcts_store_commit_seconds",
        Histogram,
        "Time a store write transaction took to commit, by op.",
    ),
    m(
        "btcts_store_disk_bytes",
        Gauge,
        "Size of the redb store file in bytes (measured at each scrape).",
    ),
    m(
        "btcts_wallet_balance_sat",
        Gauge,
        "Trusted balance of the anchoring wallet in satoshis (refreshed once per block).",
    ),
    m(
        "btcts_anchoring_failing",
        Gauge,
        "1 while anchoring steps fail (node down, wallet error), 0 otherwise.",
    ),
    m(
        "btcts_anchor_last_confirmed_timestamp_seconds",
        Gauge,
        "Block time (Unix seconds) of the newest anchor with k confirmations.",
    ),
    m(
        "btcts_anchor_recent",
        Gauge,
        "Recent anchors by status (built, broadcast, mined, confirmed).",
    ),
    m(
        "btcts_anchor_at_fee_cap",
        Gauge,
        "Recent anchors unconfirmed at the fee cap.",
    ),
    m(
        "btcts_anchor_outages_total",
        Counter,
        "Anchoring outages (a failing step after a good one).",
    ),
    m(
        "btcts_anchor_sealed_total",
        Counter,
        "Batches sealed, by why (size, cadence, deadline...).",
    ),
    m(
        "btcts_anchor_transactions_total",
        Counter,
        "Anchor transactions built, by kind (first, replacement, rebuild).",
    ),
    m(
        "btcts_anchor_rebuilds_total",
        Counter,
        "Anchor transactions rebuilt, by reason.",
    ),
    m(
        "btcts_anchor_reorgs_total",
        Counter,
        "Anchors whose block left the best chain.",
    ),
    m(
        "btcts_anchor_fees_paid_sat_total",
        Counter,
        "Fees paid by mined anchors in satoshis.",
    ),
    m(
        "btcts_anchor_batch_records",
        Histogram,
        "Records per anchored batch.",
    ),
    m(
        "btcts_anchor_time_to_first_confirmation_seconds",
        Histogram,
        "Seconds from building an anchor to its first confirmation.",
    ),
    m(
        "btcts_anchor_budget_exhausted",
        Gauge,
        "1 while the daily fee budget holds anchoring back.",
    ),
    m(
        "btcts_anchor_fee_patience",
        Gauge,
        "1 while anchoring waits for the fee estimate to fall below patience_above.",
    ),
    m(
        "btcts_anchor_spent_today_sat",
        Gauge,
        "Fees spent on anchors today (UTC) in satoshis.",
    ),
    m(
        "btcts_anchor_spent_month_sat",
        Gauge,
        "Fees spent on anchors this month (UTC) in satoshis.",
    ),
    m(
        "btcts_anchor_anchors_today",
        Gauge,
        "Anchors mined today (UTC).",
    ),
    m(
        "btcts_anchor_avg_vsize",
        Gauge,
        "Average anchor transaction size in vbytes.",
    ),
    m(
        "btcts_anchor_avg_fee_rate_sat_vb",
        Gauge,
        "Average anchor fee rate in sat/vB.",
    ),
    m(
        "btcts_anchor_projected_monthly_sat",
        Gauge,
        "Projected monthly anchoring cost in satoshis at the current cadence and fees.",
    ),
    m(
        "btcts_webhook_deliveries_total",
        Counter,
        "Webhook delivery attempts, by chain and result (ok, http_error, network_error).",
    ),
    m(
        "btcts_webhook_dropped_total",
        Counter,
        "Webhook events dropped undelivered after webhooks.max_age_secs, by chain.",
    ),
    m(
        "btcts_webhook_backlog",
        Gauge,
        "Event ids a chain's webhook is behind the last event written (approximate: counts other chains' ids).",
    ),
    m(
        "btcts_ibc_chain_halted",
        Gauge,
        "1 when IBC delivery to the chain is halted or has failed 5 polls in a row.",
    ),
    m(
        "btcts_ibc_errors_total",
        Counter,
        "IBC delivery step errors, by chain and kind.",
    ),
    m(
        "btcts_ibc_packets_total",
        Counter,
        "IBC packets, by chain and state.",
    ),
    m(
        "btcts_ibc_before_checkpoint_total",
        Counter,
        "Records anchored before the consumer's checkpoint, not sent.",
    ),
    m(
        "btcts_ibc_sequence_resyncs_total",
        Counter,
        "Consumer account sequence resynchronisations, by chain.",
    ),
    m(
        "btcts_ibc_solo_machine_sequence",
        Gauge,
        "The solo machine's sequence on the consumer, by chain.",
    ),
    m(
        "btcts_feeder_chain_height",
        Gauge,
        "Height of the followed Cosmos chain (btcts feed).",
    ),
    m(
        "btcts_feeder_cursor_height",
        Gauge,
        "Last height submitted by btcts feed.",
    ),
    m(
        "btcts_feeder_lag_blocks",
        Gauge,
        "Blocks btcts feed is behind the followed chain.",
    ),
    m(
        "btcts_feeder_records_new_total",
        Counter,
        "Records btcts feed submitted that were new.",
    ),
    m(
        "btcts_feeder_records_duplicate_total",
        Counter,
        "Records btcts feed submitted that were already known.",
    ),
    m(
        "btcts_feeder_conflicts_total",
        Counter,
        "Conflicting records btcts feed met.",
    ),
    m(
        "btcts_feeder_retries_total",
        Counter,
        "Retries of btcts feed.",
    ),
];

/// Request durations: 1 ms to 10 s.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Store write transactions: 50 µs to 5 s.
const STORE_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];
/// Build to first confirmation: 1 min to 1 day.
const CONFIRMATION_BUCKETS: &[f64] = &[
    60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];
/// Records per batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];

/// Installs the Prometheus recorder with histogram buckets and describes
/// every metric; `None` if a recorder was already installed in this
/// process (in-process tests).
pub fn install() -> Option<PrometheusHandle> {
    let handle = builder().ok()?.install_recorder().ok()?;
    describe();
    Some(handle)
}

fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("btcts_http_request_duration_seconds".into()),
            REQUEST_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("btcts_anchor_time_to_first_confirmation_seconds".into()),
            CONFIRMATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("btcts_anchor_batch_records".into()),
            BATCH_BUCKETS,
        )?
        .set_buckets_for_metric(Matcher::Prefix("btcts_store_".into()), STORE_BUCKETS)
}

fn describe() {
    for metric in METRICS {
        let unit = unit(metric.name);
        match (metric.kind, unit) {
            (Kind::Counter, Some(u)) => metrics::describe_counter!(metric.name, u, metric.help),
            (Kind::Counter, None) => metrics::describe_counter!(metric.name, metric.help),
            (Kind::Gauge, Some(u)) => metrics::describe_gauge!(metric.name, u, metric.help),
            (Kind::Gauge, None) => metrics::describe_gauge!(metric.name, metric.help),
            (Kind::Histogram, Some(u)) => metrics::describe_histogram!(metric.name, u, metric.help),
            (Kind::Histogram, None) => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

fn unit(name: &str) -> Option<Unit> {
    if name.ends_with("_seconds") {
        Some(Unit::Seconds)
    } else if name.ends_with("_bytes") {
        Some(Unit::Bytes)
    } else {
        None
    }
}

/// Sets `btcts_store_disk_bytes` to the size of `file` (left as it was
/// if the file cannot be read). Called on every scrape, so the figure is
/// never older than the scrape.
pub async fn measure_disk_bytes(file: PathBuf) {
    if let Ok(Ok(meta)) = tokio::task::spawn_blocking(move || std::fs::metadata(file)).await {
        metrics::gauge!("btcts_store_disk_bytes").set(meta.len() as f64);
    }
}
