//! When the anchoring loop seals the next batch: the glue between the
//! store, the node and the cadence rules of [`crate::cadence`] (cadence,
//! latency budgets, fee patience, the daily fee budget), plus the spending
//! figures and the snapshot the API shows.

use std::collections::BTreeMap;

use aggregator::anchor::AnchorRecord;
use aggregator::{ChainId, StoreError};
use tracing::{debug, info, warn};

use super::{AnchorError, Anchorer};
use crate::cadence::{
    self, AnchoringSnapshot, AnchoringView, Cadence, Decision, Hold, Situation, Spending, Why,
};
use crate::node::{BitcoinNode, NodeError};

/// What the cadence rules ([`cadence::decide`]) need to remember between
/// steps. Arrival heights live in memory: records pending when the loop
/// starts count as having waited their whole budget already (the loop
/// cannot know how long they did), so a restart anchors them at once.
#[derive(Debug, Default)]
pub(super) struct Timing {
    /// The tip's height, once seen.
    pub(super) tip_height: Option<u64>,
    /// The node's fee estimate at this tip, once asked.
    pub(super) fee_estimate: Option<Option<u64>>,
    /// Arrival heights are known (a tip was seen before the records).
    pub(super) following: bool,
    /// The tip height when the oldest pending record was first seen.
    pub(super) since: Option<u64>,
    /// The same for each chain with a budget of its own.
    pub(super) chain_since: BTreeMap<ChainId, u64>,
    /// Records before this sequence number were looked at for their chain.
    pub(super) scanned_upto: u64,
    /// What holds the next anchor back, if anything.
    pub(super) hold: Option<Hold>,
    /// This month's spending, refreshed on every new block.
    pub(super) spending: Spending,
    /// Shared with the API.
    pub(super) view: AnchoringView,
}

impl<N: BitcoinNode> Anchorer<N> {
    /// Seals every pending record into one batch when the next anchor can be
    /// built: no sealed batch waits for an anchor, and either no anchor
    /// waits for its first confirmation and the cadence rules
    /// ([`cadence::decide`]) say it is time, or (`max_unconfirmed` > 1)
    /// another may and `early_anchor_at` records are pending (the daily fee
    /// budget permitting). Nothing is sealed while the slot is taken, so
    /// records never queue up in batches behind one another: the next
    /// anchor commits all of them, whatever the rate. `ask_node`: the fee
    /// estimate may be asked for (not before the node answered this step).
    pub(super) fn seal_if_due(&mut self, ask_node: bool) -> Result<(), AnchorError> {
        let pending = self.store.pending_count()?;
        if pending == 0 {
            // Records from now on arrive at a known tip.
            self.timing.following = self.timing.tip_height.is_some();
            self.timing.since = None;
            self.timing.chain_since.clear();
            self.set_hold(None);
            return Ok(());
        }
        if self.store.next_unanchored_batch()?.is_some() {
            return Ok(());
        }
        self.track_arrivals()?;
        let recent = self.store.recent_anchors(self.config.watch)?;
        let unconfirmed = recent.iter().filter(|a| a.is_unconfirmed()).count();
        let by_slot = unconfirmed == 0;
        let by_size =
            unconfirmed < self.config.max_unconfirmed && pending >= self.config.early_anchor_at;
        if !by_slot && !by_size {
            return Ok(());
        }
        let situation = self.situation(&recent, ask_node)?;
        let decision = cadence::decide(&self.config.cadence, &self.config.fees, &situation);
        let why = match decision {
            Decision::Anchor(why) => why,
            Decision::Wait(hold @ Hold::BudgetExhausted { .. }) => {
                self.set_hold(Some(hold));
                return Ok(());
            }
            Decision::Wait(_) if by_size => Why::Cadence,
            Decision::Wait(hold) => {
                self.set_hold(Some(hold));
                return Ok(());
            }
        };
        self.set_hold(None);
        if let Some(batch) = self.store.seal_batch(u64::MAX)? {
            if why == Why::LatencyBudget {
                info!(batch = %batch.seq, tip = ?situation.tip, "anchor brought forward: a pending record reached its latency budget");
            }
            let why = match why {
                Why::Cadence => "cadence",
                Why::LatencyBudget => "latency_budget",
            };
            metrics::counter!("btcts_anchor_sealed_total", "why" => why).increment(1);
            self.timing.since = None;
            self.timing.chain_since.clear();
            self.timing.scanned_upto = batch.first_record + batch.size;
        }
        Ok(())
    }

    /// Notes the tip height at which pending records were first seen: for
    /// every record (the oldest pending), and for each chain with a budget
    /// of its own (following new records by sequence number).
    fn track_arrivals(&mut self) -> Result<(), StoreError> {
        let t = &mut self.timing;
        let arrival = match (t.following, t.tip_height) {
            (true, Some(tip)) => tip,
            _ => 0,
        };
        t.since.get_or_insert(arrival);
        if !self.config.cadence.chain_delay_blocks.is_empty() {
            let (chains, next) = self.store.pending_chains(t.scanned_upto, 200_000)?;
            for chain in chains {
                if self.config.cadence.chain_delay_blocks.contains_key(&chain) {
                    t.chain_since.entry(chain).or_insert(arrival);
                }
            }
            t.scanned_upto = next;
        }
        t.following = t.tip_height.is_some();
        Ok(())
    }

    /// The tip height by which the most pressed pending record must be anchored.
    fn deadline(&self) -> Option<u64> {
        let c = &self.config.cadence;
        let t = &self.timing;
        let global = t
            .since
            .map(|a| Cadence::deadline(a, c.max_anchor_delay_blocks));
        let chains = t.chain_since.iter().filter_map(|(chain, &a)| {
            c.chain_delay_blocks
                .get(chain)
                .map(|&b| Cadence::deadline(a, b))
        });
        global.into_iter().chain(chains).min()
    }

    /// The node's fee estimate at this tip (asked once per block).
    fn fee_estimate(&mut self) -> Result<Option<u64>, NodeError> {
        if let Some(e) = self.timing.fee_estimate {
            return Ok(e);
        }
        let e = self.node.estimate_fee_rate(self.config.fees.conf_target)?;
        self.timing.fee_estimate = Some(e);
        Ok(e)
    }

    fn situation(
        &mut self,
        recent: &[AnchorRecord],
        ask_node: bool,
    ) -> Result<Situation, AnchorError> {
        let fees = self.config.fees;
        let needs_estimate = fees.patience_above.is_some() || fees.daily_budget_sat.is_some();
        let fee_estimate = match (needs_estimate, ask_node) {
            (true, true) => self.fee_estimate()?,
            _ => self.timing.fee_estimate.flatten(),
        };
        let (spent_today_sat, next_cost_sat) = match fees.daily_budget_sat {
            Some(_) => {
                let now = self.clock.now_unix_ms();
                let today = self.store.anchors_built_since(cadence::day_start_ms(now))?;
                let spending = Spending::of(&today, now);
                (
                    spending.today_sat,
                    spending.next_cost(fees.initial(fee_estimate)),
                )
            }
            None => (0, 0),
        };
        Ok(Situation {
            tip: self.timing.tip_height,
            last_anchor_block: recent
                .iter()
                .filter_map(|a| a.mined.as_ref().map(|m| u64::from(m.height)))
                .max(),
            deadline: self.deadline(),
            fee_estimate,
            spent_today_sat,
            next_cost_sat,
        })
    }

    /// Logs what holds the next anchor back when that changes.
    fn set_hold(&mut self, hold: Option<Hold>) {
        let before = self.timing.hold.map(|h| h.name());
        let after = hold.map(|h| h.name());
        if before != after {
            match hold {
                Some(Hold::BudgetExhausted { spent, budget }) => warn!(
                    spent_today_sat = spent,
                    daily_budget_sat = budget,
                    "daily fee budget reached: anchoring paused until 00:00 UTC or a higher budget; records are still accepted"
                ),
                Some(Hold::FeePatience { estimate }) => info!(
                    fee_estimate = estimate,
                    patience_above = ?self.config.fees.patience_above,
                    "fees are high: the next anchor waits for a cheaper block, within the latency budget"
                ),
                Some(Hold::Cadence { next_at }) => {
                    debug!(?next_at, "next anchor waits for the cadence")
                }
                None if before == Some("budget_exhausted") => {
                    info!("the daily fee budget allows anchoring again")
                }
                None if before == Some("fee_patience") => {
                    info!("fees are back below patience_above or a budget is due; anchoring")
                }
                None => {}
            }
        }
        let flag = |name: &str| if after == Some(name) { 1.0 } else { 0.0 };
        metrics::gauge!("btcts_anchor_budget_exhausted").set(flag("budget_exhausted"));
        metrics::gauge!("btcts_anchor_fee_patience").set(flag("fee_patience"));
        self.timing.hold = hold;
    }

    /// Re-reads this month's anchors for the spending figures.
    pub(super) fn refresh_spending(&mut self) -> Result<(), AnchorError> {
        let now = self.clock.now_unix_ms();
        let month = self
            .store
            .anchors_built_since(cadence::month_start_ms(now))?;
        let s = Spending::of(&month, now);
        metrics::gauge!("btcts_anchor_spent_today_sat").set(s.today_sat as f64);
        metrics::gauge!("btcts_anchor_spent_month_sat").set(s.month_sat as f64);
        metrics::gauge!("btcts_anchor_anchors_today").set(s.today_anchors as f64);
        metrics::gauge!("btcts_anchor_avg_vsize").set(s.avg_vsize as f64);
        metrics::gauge!("btcts_anchor_avg_fee_rate_sat_vb").set(s.avg_fee_rate_sat_vb);
        self.timing.spending = s;
        // The estimate shown and projected with (once per block).
        self.fee_estimate()?;
        Ok(())
    }

    /// Publishes what the loop sees for `GET /v1/anchoring` and `/metrics`.
    pub(super) fn publish_view(&self) -> Result<(), StoreError> {
        let pending = self.store.pending_count()?;
        let t = &self.timing;
        let c = &self.config.cadence;
        let fees = &self.config.fees;
        let estimate = t.fee_estimate.flatten();
        let rate = fees.initial(estimate);
        let anchors = cadence::anchors_per_month(c);
        let monthly = anchors.saturating_mul(t.spending.next_cost(rate));
        metrics::gauge!("btcts_anchor_projected_monthly_sat").set(monthly as f64);
        let state = match t.hold {
            Some(h) => h.name(),
            None if pending == 0 => "idle",
            None => "anchoring",
        };
        let last_block = self
            .store
            .recent_anchors(1)?
            .first()
            .and_then(|a| a.mined.as_ref().map(|m| u64::from(m.height)));
        t.view.set(AnchoringSnapshot {
            updated_unix_ms: self.clock.now_unix_ms(),
            state: state.into(),
            tip_height: t.tip_height,
            next_anchor_at_height: last_block
                .map(|h| (h + u64::from(c.min_blocks_between_anchors.max(1))).saturating_sub(1)),
            deadline_height: self.deadline(),
            pending_records: pending,
            min_blocks_between_anchors: c.min_blocks_between_anchors,
            max_anchor_delay_blocks: c.max_anchor_delay_blocks,
            fee_estimate_sat_vb: estimate,
            next_fee_rate_sat_vb: rate,
            patience_above_sat_vb: fees.patience_above,
            daily_budget_sat: fees.daily_budget_sat,
            spending: t.spending,
            projected_monthly_anchors: anchors,
            projected_monthly_sat: monthly,
        });
        Ok(())
    }
}
