//! When the next anchor goes out, and what anchoring costs.
//!
//! An anchor pays the same fee whatever it commits, so fewer anchors cost
//! less: the cadence spaces them out, a latency budget brings one forward for
//! records that cannot wait longer, fee patience holds one back while fees
//! are high (never past a budget), and a daily fee budget stops spending
//! altogether until the next UTC day. `docs/anchoring.md` (Cost) explains
//! each setting with a worked example.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use aggregator::anchor::{AnchorRecord, AnchorTx};
use aggregator::ChainId;

use crate::fees::FeePolicy;

/// Blocks a day assumed by projections (Bitcoin's ten-minute blocks).
pub const BLOCKS_PER_DAY: u64 = 144;

/// Days in the month of projections.
pub const DAYS_PER_MONTH: u64 = 30;

/// The vsize assumed for an anchor before any was built: one input, the
/// OP_RETURN output and change (measured: 166 vB).
pub const TYPICAL_ANCHOR_VSIZE: u64 = 166;

const DAY_MS: u64 = 86_400_000;

/// How often anchors go out and how long a record may wait for one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// Blocks from one anchor's block to the next one's: 1 anchors in every
    /// block while records arrive, 6 in about every sixth.
    pub min_blocks_between_anchors: u32,
    /// Every record is in a block at most this many blocks after the block
    /// that was the tip when it arrived (the anchor in flight permitting).
    pub max_anchor_delay_blocks: u32,
    /// Tighter budgets for some chains' records.
    pub chain_delay_blocks: BTreeMap<ChainId, u32>,
}

impl Cadence {
    /// Anchor in every block; a record waits at most 144 blocks.
    pub fn every_block() -> Self {
        Cadence {
            min_blocks_between_anchors: 1,
            max_anchor_delay_blocks: 144,
            chain_delay_blocks: BTreeMap::new(),
        }
    }

    /// The tip height at which a record that arrived with the tip at
    /// `arrival` must be anchored to be in a block within `budget` blocks.
    pub fn deadline(arrival: u64, budget: u32) -> u64 {
        arrival + u64::from(budget.max(1)) - 1
    }
}

/// What the anchoring loop knows when it could seal the next batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Situation {
    /// The node's tip height, once known.
    pub tip: Option<u64>,
    /// The height of the block holding the most recent mined anchor.
    pub last_anchor_block: Option<u64>,
    /// The tip height by which the most pressed pending record must be
    /// anchored (see [`Cadence::deadline`]).
    pub deadline: Option<u64>,
    /// The node's fee estimate, sat/vB (when it was asked).
    pub fee_estimate: Option<u64>,
    /// Fees of the anchors first built today (UTC), sat.
    pub spent_today_sat: u64,
    /// What the next anchor should cost, sat.
    pub next_cost_sat: u64,
}

/// Whether to seal and anchor now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Seal everything pending and anchor it.
    Anchor(Why),
    /// Not now.
    Wait(Hold),
}

/// Why an anchor goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The cadence allows it.
    Cadence,
    /// A pending record would otherwise pass its latency budget.
    LatencyBudget,
}

/// Why no anchor goes out yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The cadence asks for more blocks since the last anchor; with the tip
    /// known, the next anchor is built at tip `next_at`.
    Cadence {
        /// The tip height from which the cadence allows the next anchor.
        next_at: Option<u64>,
    },
    /// Fees are above `patience_above`; waiting for a cheaper block.
    FeePatience {
        /// The node's estimate, sat/vB.
        estimate: u64,
    },
    /// The next anchor would pass the daily fee budget.
    BudgetExhausted {
        /// Spent today, sat.
        spent: u64,
        /// The budget, sat.
        budget: u64,
    },
}

impl Hold {
    /// A short name for logs, metrics and `GET /v1/anchoring`.
    pub fn name(&self) -> &'static str {
        match self {
            Hold::Cadence { .. } => "cadence",
            Hold::FeePatience { .. } => "fee_patience",
            Hold::BudgetExhausted { .. } => "budget_exhausted",
        }
    }
}

/// Decides whether the next anchor goes out now. In order: the daily fee
/// budget (nothing passes it), a latency budget (an anchor goes out even
/// against the cadence or high fees), the cadence, fee patience.
pub fn decide(cadence: &Cadence, fees: &FeePolicy, s: &Situation) -> Decision {
    if let Some(budget) = fees.daily_budget_sat {
        if s.spent_today_sat.saturating_add(s.next_cost_sat) > budget {
            return Decision::Wait(Hold::BudgetExhausted {
                spent: s.spent_today_sat,
                budget,
            });
        }
    }
    let every_block = cadence.min_blocks_between_anchors <= 1;
    let Some(tip) = s.tip else {
        // Without a tip (node not reached yet) only an every-block cadence
        // can tell that an anchor is due.
        return if every_block {
            Decision::Anchor(Why::Cadence)
        } else {
            Decision::Wait(Hold::Cadence { next_at: None })
        };
    };
    if s.deadline.is_some_and(|d| tip >= d) {
        return Decision::Anchor(Why::LatencyBudget);
    }
    if let Some(last) = s.last_anchor_block {
        // An anchor built at tip T is mined at T + 1 at the earliest.
        let next_at = (last + u64::from(cadence.min_blocks_between_anchors)).saturating_sub(1);
        if tip < next_at {
            return Decision::Wait(Hold::Cadence {
                next_at: Some(next_at),
            });
        }
    }
    if let (Some(patience), Some(estimate)) = (fees.patience_above, s.fee_estimate) {
        if estimate > patience {
            return Decision::Wait(Hold::FeePatience { estimate });
        }
    }
    Decision::Anchor(Why::Cadence)
}

/// What anchoring has cost, from the anchors built since the start of the
/// month (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Spending {
    /// Fees of the anchors first built today, sat.
    pub today_sat: u64,
    /// Anchors first built today.
    pub today_anchors: u64,
    /// Fees of the anchors first built this month, sat.
    pub month_sat: u64,
    /// Anchors first built this month.
    pub month_anchors: u64,
    /// Mean vsize of this month's anchors (the typical 166 vB before any).
    pub avg_vsize: u64,
    /// Mean fee rate this month, sat/vB (0 before any anchor).
    pub avg_fee_rate_sat_vb: f64,
}

impl Spending {
    /// Sums `anchors` (those built since [`month_start_ms`]) as of `now_ms`.
    /// An anchor costs what its mined transaction paid, or what its current
    /// one offers while unmined; it counts on the day its first transaction
    /// was built.
    pub fn of(anchors: &[AnchorRecord], now_ms: u64) -> Spending {
        let day = now_ms - now_ms % DAY_MS;
        let month = month_start_ms(now_ms);
        let mut s = Spending::default();
        let mut vsize = 0u64;
        for a in anchors {
            let Some(first) = a.txs.first() else { continue };
            if first.built_unix_ms < month {
                continue;
            }
            let (fee, size) = paid(a).map_or((0, 0), |t| (t.fee_sat, t.vsize));
            s.month_sat += fee;
            s.month_anchors += 1;
            vsize += size;
            if first.built_unix_ms >= day {
                s.today_sat += fee;
                s.today_anchors += 1;
            }
        }
        s.avg_vsize = vsize
            .checked_div(s.month_anchors)
            .unwrap_or(TYPICAL_ANCHOR_VSIZE);
        if vsize > 0 {
            s.avg_fee_rate_sat_vb = s.month_sat as f64 / vsize as f64;
        }
        s
    }

    /// The fee of one more anchor at `rate` sat/vB.
    pub fn next_cost(&self, rate: u64) -> u64 {
        let vsize = match self.avg_vsize {
            0 => TYPICAL_ANCHOR_VSIZE,
            v => v,
        };
        vsize.saturating_mul(rate)
    }
}

/// The transaction an anchor pays for: the mined one, or the current one
/// while unmined.
pub fn paid(a: &AnchorRecord) -> Option<&AnchorTx> {
    a.mined
        .as_ref()
        .and_then(|m| a.txs.iter().find(|t| t.txid == m.txid))
        .or(a.txs.last())
}

/// The start of the UTC day of `now_ms`.
pub fn day_start_ms(now_ms: u64) -> u64 {
    now_ms - now_ms % DAY_MS
}

/// The start of the UTC month of `now_ms`.
pub fn month_start_ms(now_ms: u64) -> u64 {
    let day = day_start_ms(now_ms);
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp((day / 1000) as i64) else {
        return day;
    };
    day - u64::from(at.day() - 1) * DAY_MS
}

/// Anchors a month at `cadence` with records arriving all the time (an upper
/// bound: no anchor goes out while nothing is pending).
pub fn anchors_per_month(cadence: &Cadence) -> u64 {
    DAYS_PER_MONTH * BLOCKS_PER_DAY / u64::from(cadence.min_blocks_between_anchors.max(1))
}

/// What the anchoring loop last saw, for `GET /v1/anchoring` and the
/// status page.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct AnchoringSnapshot {
    /// When this was taken (Unix ms); 0 before the loop's first step.
    pub updated_unix_ms: u64,
    /// `anchoring` (an anchor is due or in flight), `idle` (nothing
    /// pending), or the [`Hold::name`] of what holds the next anchor back.
    pub state: String,
    /// The node's tip height.
    pub tip_height: Option<u64>,
    /// The tip height from which the cadence allows the next anchor.
    pub next_anchor_at_height: Option<u64>,
    /// The tip height by which a pending record's latency budget forces one.
    pub deadline_height: Option<u64>,
    /// Records waiting for a batch.
    pub pending_records: u64,
    /// `[batching] min_blocks_between_anchors`.
    pub min_blocks_between_anchors: u32,
    /// `[batching] max_anchor_delay_blocks`.
    pub max_anchor_delay_blocks: u32,
    /// The node's fee estimate, sat/vB, when it has one.
    pub fee_estimate_sat_vb: Option<u64>,
    /// The rate a new anchor would pay now, sat/vB.
    pub next_fee_rate_sat_vb: u64,
    /// `[fees] patience_above`.
    pub patience_above_sat_vb: Option<u64>,
    /// `[fees] daily_budget_sat`.
    pub daily_budget_sat: Option<u64>,
    /// What anchoring has cost.
    pub spending: Spending,
    /// Anchors a month at this cadence with steady traffic.
    pub projected_monthly_anchors: u64,
    /// Their fees at the current rate and this month's mean vsize, sat.
    pub projected_monthly_sat: u64,
}

/// The anchoring loop's latest [`AnchoringSnapshot`], shared with the API.
#[derive(Clone, Debug, Default)]
pub struct AnchoringView(Arc<RwLock<AnchoringSnapshot>>);

impl AnchoringView {
    /// The latest snapshot.
    pub fn get(&self) -> AnchoringSnapshot {
        match self.0.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn set(&self, snapshot: AnchoringSnapshot) {
        match self.0.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cadence(n: u32) -> Cadence {
        Cadence {
            min_blocks_between_anchors: n,
            ..Cadence::every_block()
        }
    }

    fn at(tip: u64, last: u64) -> Situation {
        Situation {
            tip: Some(tip),
            last_anchor_block: Some(last),
            ..Situation::default()
        }
    }

    #[test]
    fn the_cadence_spaces_anchor_blocks() {
        let fees = FeePolicy::default();
        // Last anchor in block 100, cadence 6: build at tip 105, mined in 106.
        for tip in 100..105 {
            assert_eq!(
                decide(&cadence(6), &fees, &at(tip, 100)),
                Decision::Wait(Hold::Cadence { next_at: Some(105) }),
                "tip {tip}"
            );
        }
        assert_eq!(
            decide(&cadence(6), &fees, &at(105, 100)),
            Decision::Anchor(Why::Cadence)
        );
        // Cadence 1 is every block; no anchor yet is always due.
        assert_eq!(
            decide(&cadence(1), &fees, &at(100, 100)),
            Decision::Anchor(Why::Cadence)
        );
        let first = Situation {
            tip: Some(7),
            ..Situation::default()
        };
        assert_eq!(
            decide(&cadence(6), &fees, &first),
            Decision::Anchor(Why::Cadence)
        );
        // No tip: only every block can tell.
        assert_eq!(
            decide(&cadence(6), &fees, &Situation::default()),
            Decision::Wait(Hold::Cadence { next_at: None })
        );
        assert_eq!(
            decide(&cadence(1), &fees, &Situation::default()),
            Decision::Anchor(Why::Cadence)
        );
    }

    #[test]
    fn a_latency_budget_beats_the_cadence_and_fee_patience() {
        let fees = FeePolicy {
            patience_above: Some(10),
            ..FeePolicy::default()
        };
        // Arrived at tip 101 with a 2-block budget: anchored at tip 102, in block 103.
        let deadline = Cadence::deadline(101, 2);
        assert_eq!(deadline, 102);
        let mut s = Situation {
            deadline: Some(deadline),
            fee_estimate: Some(50),
            ..at(101, 100)
        };
        assert!(matches!(
            decide(&cadence(6), &fees, &s),
            Decision::Wait(Hold::Cadence { .. })
        ));
        s.tip = Some(102);
        assert_eq!(
            decide(&cadence(6), &fees, &s),
            Decision::Anchor(Why::LatencyBudget)
        );
        assert_eq!(
            Cadence::deadline(5, 1),
            5,
            "a 1-block budget is due at once"
        );
    }

    #[test]
    fn fee_patience_holds_a_due_anchor_while_fees_are_high() {
        let fees = FeePolicy {
            patience_above: Some(10),
            ..FeePolicy::default()
        };
        let mut s = Situation {
            fee_estimate: Some(11),
            ..at(200, 100)
        };
        assert_eq!(
            decide(&cadence(6), &fees, &s),
            Decision::Wait(Hold::FeePatience { estimate: 11 })
        );
        s.fee_estimate = Some(10);
        assert_eq!(
            decide(&cadence(6), &fees, &s),
            Decision::Anchor(Why::Cadence)
        );
        s.fee_estimate = None;
        assert_eq!(
            decide(&cadence(6), &fees, &s),
            Decision::Anchor(Why::Cadence),
            "no estimate: no reason to wait"
        );
    }

    #[test]
    fn the_daily_budget_stops_everything_even_a_latency_budget() {
        let fees = FeePolicy {
            daily_budget_sat: Some(1000),
            ..FeePolicy::default()
        };
        let mut s = Situation {
            deadline: Some(0),
            spent_today_sat: 700,
            next_cost_sat: 332,
            ..at(200, 100)
        };
        assert_eq!(
            decide(&cadence(1), &fees, &s),
            Decision::Wait(Hold::BudgetExhausted {
                spent: 700,
                budget: 1000
            })
        );
        s.next_cost_sat = 300;
        assert_eq!(
            decide(&cadence(1), &fees, &s),
            Decision::Anchor(Why::LatencyBudget),
            "exactly the budget is allowed"
        );
    }

    #[test]
    fn months_and_days_start_at_utc_midnight() {
        // 2026-12-01T02:43:17Z and 2026-11-30T23:59:59.999Z.
        let dec_1 = 1_796_092_997_000;
        assert_eq!(day_start_ms(dec_1), 1_796_083_200_000);
        assert_eq!(month_start_ms(dec_1), 1_796_083_200_000);
        let nov_30 = 1_796_083_199_999;
        assert_eq!(day_start_ms(nov_30), 1_796_083_200_000 - DAY_MS);
        // 2026-11-01T00:00:00Z.
        assert_eq!(month_start_ms(nov_30), 1_793_491_200_000);
    }

    #[test]
    fn projections_follow_the_cadence() {
        assert_eq!(anchors_per_month(&cadence(1)), 4320);
        assert_eq!(anchors_per_month(&cadence(6)), 720);
        let s = Spending::default();
        assert_eq!(s.next_cost(5), 830, "no anchors: the typical vsize");
        let s = Spending::of(&[], 1_796_092_997_000);
        assert_eq!(s.avg_vsize, TYPICAL_ANCHOR_VSIZE);
        assert_eq!(s.next_cost(5), 830);
    }
}
