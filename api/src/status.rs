//! The status page: `GET /` (server-rendered HTML: no JavaScript, no
//! external assets, readable in any browser or `curl`) and `GET /status`
//! (the same facts as JSON, for scripts). Both are reads: public, or behind
//! the read token when one is set. Everything printed into the HTML goes
//! through [`esc`].

use std::fmt::Write as _;
use std::sync::Arc;

use aggregator::anchor::AnchorStatus;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::reads;
use crate::routes::Reader;
use crate::server::AppState;

/// Batches shown.
pub const RECENT_BATCHES: usize = 20;
/// Chains shown (the configured ones, in order).
pub const MAX_CHAINS: usize = 100;

/// What the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The btcts version.
    pub version: &'static str,
    /// The anchor network.
    pub network: String,
    /// k.
    pub confirmations: u32,
    /// The node's tip height, as the anchoring loop last saw it.
    pub tip_height: Option<u64>,
    /// Records stored, duplicates counted once.
    pub records: u64,
    /// Records waiting for a batch.
    pub pending_records: u64,
    /// The wallet and what it pays for, when the node answered.
    pub wallet: Option<Wallet>,
    /// Cadence, budget and spending (`GET /v1/anchoring`).
    pub anchoring: Option<btc_submitter::AnchoringSnapshot>,
    /// The most recent batches, newest first.
    pub batches: Vec<BatchRow>,
    /// Configured chains.
    pub chains: Vec<ChainRow>,
    /// The OpenTimestamps calendar.
    pub calendar: Calendar,
}

/// The anchoring wallet.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Wallet {
    /// Confirmed and pending balance, sat.
    pub balance_sat: u64,
    /// The rate a new anchor would pay, sat/vB.
    pub fee_rate_sat_vb: u64,
    /// What one anchor costs at that rate, sat.
    pub anchor_cost_sat: u64,
    /// How many anchors the balance pays for at that rate.
    pub anchors_it_pays_for: u64,
    /// Days those last at the cadence with records arriving all the time
    /// (144 blocks a day).
    pub days_left: Option<u64>,
}

/// One batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// Its number.
    pub seq: u64,
    /// Records in it.
    pub size: u64,
    /// `sealed`, `built`, `broadcast`, `mined`, `confirmed`.
    pub state: &'static str,
    /// The transaction that is (or would be) in the chain.
    pub txid: Option<String>,
    /// Its fee, sat.
    pub fee_sat: Option<u64>,
    /// Confirmations of its block (0 until mined).
    pub confirmations: u32,
    /// Its block's height.
    pub block_height: Option<u32>,
}

/// One chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainRow {
    /// The chain id.
    pub chain_id: String,
    /// The highest height submitted.
    pub latest_submitted_height: Option<u64>,
    /// The highest height timestamped ≥ k deep.
    pub latest_confirmed_height: Option<u64>,
    /// IBC delivery, when configured: `halted`, `ready` or `setting up`.
    pub ibc: Option<String>,
}

/// The calendar.
#[derive(Debug, Clone, Serialize)]
pub struct Calendar {
    /// Whether `/digest` is served.
    pub enabled: bool,
    /// The URL pending `.ots` files name.
    pub public_url: String,
    /// Records pending beyond which `/digest` answers 503.
    pub max_pending: u64,
}

/// `GET /status`.
pub(crate) async fn json(
    _: Reader,
    State(state): State<Arc<AppState>>,
) -> Result<Json<Status>, ApiError> {
    Ok(Json(collect(state).await?))
}

/// `GET /`.
pub(crate) async fn page(
    _: Reader,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let status = collect(state).await?;
    Ok(Html(render(&status)).into_response())
}

async fn collect(state: Arc<AppState>) -> Result<Status, ApiError> {
    let anchoring = state.anchoring.as_ref().map(|v| v.get());
    let chains: Vec<aggregator::ChainId> = state
        .credentials
        .chains
        .keys()
        .take(MAX_CHAINS)
        .cloned()
        .collect();
    let k = state.confirmations;
    let st = state.clone();
    let (records, pending_records, batches, mut chain_rows) =
        reads::blocking(&state.store, move |s| {
            let mut batches = Vec::new();
            if let Some(b) = s.next_unanchored_batch()? {
                batches.push(BatchRow {
                    seq: b.seq.0,
                    size: b.size,
                    state: "sealed",
                    txid: None,
                    fee_sat: None,
                    confirmations: 0,
                    block_height: None,
                });
            }
            for a in s.recent_anchors(RECENT_BATCHES)?.into_iter().rev() {
                let size = s.batch(a.batch)?.map_or(0, |b| b.size);
                let paid = btc_submitter::cadence::paid(&a);
                batches.push(BatchRow {
                    seq: a.batch.0,
                    size,
                    state: match a.status {
                        AnchorStatus::Built => "built",
                        AnchorStatus::Broadcast => "broadcast",
                        AnchorStatus::Mined => "mined",
                        AnchorStatus::Confirmed => "confirmed",
                    },
                    txid: paid.map(|t| t.txid.to_string()),
                    fee_sat: paid.map(|t| t.fee_sat),
                    confirmations: a.mined.as_ref().map_or(0, |m| m.confirmations),
                    block_height: a.mined.as_ref().map(|m| m.height),
                });
            }
            batches.truncate(RECENT_BATCHES);
            let mut rows = Vec::new();
            for chain in chains {
                let height = |r: Option<(aggregator::StoredRecord, _)>| {
                    r.and_then(|(r, _)| match r.record {
                        aggregator::Record::PosBlock(b) => Some(b.height),
                        aggregator::Record::Digest { .. } => None,
                    })
                };
                rows.push(ChainRow {
                    chain_id: chain.to_string(),
                    latest_submitted_height: s.latest_height(&chain)?,
                    latest_confirmed_height: height(s.latest_timestamped(&chain, k)?),
                    ibc: None,
                });
            }
            Ok((s.record_count()?, s.pending_count()?, batches, rows))
        })
        .await?;
    for row in &mut chain_rows {
        if let Some(view) = st.ibc.get(&row.chain_id) {
            let view = view.clone();
            let ibc = tokio::task::spawn_blocking(move || ibc_state(&view))
                .await
                .map_err(ApiError::internal)?;
            row.ibc = Some(ibc);
        }
    }
    let wallet = wallet(&state, anchoring.as_ref()).await;
    Ok(Status {
        version: env!("CARGO_PKG_VERSION"),
        network: state.network.to_string(),
        confirmations: k,
        tip_height: anchoring.as_ref().and_then(|a| a.tip_height),
        records,
        pending_records,
        wallet,
        anchoring,
        batches,
        chains: chain_rows,
        calendar: Calendar {
            enabled: state.ots.calendar,
            public_url: state.ots.public_url.clone(),
            max_pending: state.ots.max_pending,
        },
    })
}

fn ibc_state(view: &crate::ibc::IbcView) -> String {
    match (view.store.halted(), view.store.setup()) {
        (Ok(Some(_)), _) => "halted".into(),
        (Ok(None), Ok(setup)) if setup.complete() => "ready".into(),
        (Ok(None), Ok(_)) => "setting up".into(),
        (Err(e), _) | (_, Err(e)) => format!("unknown: {e}"),
    }
}

async fn wallet(
    state: &Arc<AppState>,
    anchoring: Option<&btc_submitter::AnchoringSnapshot>,
) -> Option<Wallet> {
    let node = state.node.clone();
    let balance = tokio::task::spawn_blocking(move || node.wallet_balance_sat())
        .await
        .ok()?
        .ok()?;
    let (rate, spending) = anchoring.map_or((0, Default::default()), |a| {
        (a.next_fee_rate_sat_vb, a.spending)
    });
    // At least 1 sat/vB: never a division by zero.
    let cost = btc_submitter::cadence::Spending::next_cost(&spending, rate.max(1));
    let anchors = balance / cost;
    let days_left = anchoring.map(|a| {
        anchors * u64::from(a.min_blocks_between_anchors.max(1))
            / btc_submitter::cadence::BLOCKS_PER_DAY
    });
    Some(Wallet {
        balance_sat: balance,
        fee_rate_sat_vb: rate,
        anchor_cost_sat: cost,
        anchors_it_pays_for: anchors,
        days_left,
    })
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `n` with thin spaces between groups of three digits.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 2);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| esc(&v.to_string()))
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:64em;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left}\
th{background:#f4f4f4}code{font-size:.9em}.num{text-align:right}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}dt{color:#666}dd{margin:0}\
.confirmed{color:#176117}.mined,.broadcast,.built,.sealed{color:#8a5a00}";

/// The page for `s`.
pub fn render(s: &Status) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>btcts status — {network}</title><style>{STYLE}</style></head><body>\
         <h1>btcts status</h1><dl>\
         <dt>network</dt><dd id=\"network\">{network}</dd>\
         <dt>tip</dt><dd id=\"tip\">{tip}</dd>\
         <dt>confirmations (k)</dt><dd>{k}</dd>\
         <dt>records</dt><dd id=\"records\">{records}</dd>\
         <dt>pending records</dt><dd id=\"pending\">{pending}</dd>\
         <dt>version</dt><dd>{version}</dd></dl>",
        network = esc(&s.network),
        tip = opt(s.tip_height),
        k = s.confirmations,
        records = s.records,
        pending = s.pending_records,
        version = esc(s.version),
    );
    h.push_str("<h2>Wallet and cost</h2><dl>");
    match &s.wallet {
        Some(w) => {
            let _ = write!(
                h,
                "<dt>balance</dt><dd id=\"balance\">{} sat</dd>\
                 <dt>one anchor now</dt><dd>{} sat ({} sat/vB)</dd>\
                 <dt>anchors it pays for</dt><dd id=\"anchors-left\">{}{}</dd>",
                group(w.balance_sat),
                group(w.anchor_cost_sat),
                w.fee_rate_sat_vb,
                group(w.anchors_it_pays_for),
                w.days_left
                    .map(|d| format!(" (about {} days at this cadence)", group(d)))
                    .unwrap_or_default(),
            );
        }
        None => h.push_str("<dt>balance</dt><dd id=\"balance\">the node did not answer</dd>"),
    }
    if let Some(a) = &s.anchoring {
        let _ = write!(
            h,
            "<dt>anchoring</dt><dd id=\"anchoring-state\">{state}</dd>\
             <dt>cadence</dt><dd>an anchor every {cadence} block(s) at most; a record waits at most {delay} blocks</dd>\
             <dt>spent today</dt><dd id=\"spent-today\">{today} sat in {today_n} anchor(s){budget}</dd>\
             <dt>spent this month</dt><dd>{month} sat in {month_n} anchor(s)</dd>\
             <dt>projected month</dt><dd>{proj} sat ({proj_n} anchors)</dd>",
            state = esc(&a.state),
            cadence = a.min_blocks_between_anchors,
            delay = a.max_anchor_delay_blocks,
            today = group(a.spending.today_sat),
            today_n = a.spending.today_anchors,
            budget = a
                .daily_budget_sat
                .map(|b| format!(" of a daily budget of {} sat", group(b)))
                .unwrap_or_default(),
            month = group(a.spending.month_sat),
            month_n = a.spending.month_anchors,
            proj = group(a.projected_monthly_sat),
            proj_n = group(a.projected_monthly_anchors),
        );
    }
    h.push_str("</dl><h2>Latest batches</h2>");
    if s.batches.is_empty() {
        h.push_str("<p>No batch yet.</p>");
    } else {
        h.push_str(
            "<table id=\"batches\"><tr><th>batch</th><th class=\"num\">records</th><th>state</th>\
             <th class=\"num\">confirmations</th><th class=\"num\">block</th><th class=\"num\">fee (sat)</th><th>txid</th></tr>",
        );
        for b in &s.batches {
            let _ = write!(
                h,
                "<tr><td>{seq}</td><td class=\"num\">{size}</td><td class=\"{state}\">{state}</td>\
                 <td class=\"num\">{conf}</td><td class=\"num\">{block}</td><td class=\"num\">{fee}</td><td><code>{txid}</code></td></tr>",
                seq = b.seq,
                size = b.size,
                state = esc(b.state),
                conf = b.confirmations,
                block = opt(b.block_height),
                fee = opt(b.fee_sat),
                txid = opt(b.txid.as_deref()),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Chains</h2>");
    if s.chains.is_empty() {
        h.push_str("<p>No chain configured.</p>");
    } else {
        h.push_str(
            "<table id=\"chains\"><tr><th>chain</th><th class=\"num\">latest submitted</th>\
             <th class=\"num\">latest timestamped k deep</th><th>IBC</th></tr>",
        );
        for c in &s.chains {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&c.chain_id),
                opt(c.latest_submitted_height),
                opt(c.latest_confirmed_height),
                opt(c.ibc.as_deref()),
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>OpenTimestamps calendar</h2><dl><dt>served</dt><dd>{}</dd>\
         <dt>public URL</dt><dd><code>{}</code></dd><dt>pending cap</dt><dd>{} records</dd></dl>\
         <p>The same as JSON: <a href=\"status\">/status</a> · API: <a href=\"openapi.json\">/openapi.json</a> · \
         <a href=\"metrics\">/metrics</a></p></body></html>",
        if s.calendar.enabled { "yes" } else { "no" },
        esc(&s.calendar.public_url),
        group(s.calendar.max_pending),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            version: "0.1.0",
            network: "regtest".into(),
            confirmations: 6,
            tip_height: Some(120),
            records: 10,
            pending_records: 2,
            wallet: None,
            anchoring: None,
            batches: vec![],
            chains: vec![ChainRow {
                chain_id: "chain-a".into(),
                latest_submitted_height: Some(7),
                latest_confirmed_height: None,
                ibc: Some("<b>x</b>".into()),
            }],
            calendar: Calendar {
                enabled: true,
                public_url: "http://x/\"><script>alert(1)</script>".into(),
                max_pending: 5,
            },
        }
    }

    #[test]
    fn everything_printed_is_escaped() {
        let page = render(&status());
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<b>x"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&quot;&gt;"));
        assert_eq!(esc("a&b<'>\""), "a&amp;b&lt;&#39;&gt;&quot;");
        assert_eq!(group(44_999_998_672), "44\u{2009}999\u{2009}998\u{2009}672");
        assert_eq!(group(332), "332");
    }

    #[test]
    fn the_page_has_no_script_and_no_external_asset() {
        let page = render(&status());
        assert!(!page.contains("<script") && !page.contains("src="));
        assert!(!page.contains("href=\"http") && !page.contains("<link") && !page.contains("<img"));
        assert!(page.contains("<dd id=\"tip\">120</dd>"));
        assert!(page.contains("No batch yet."));
    }
}
