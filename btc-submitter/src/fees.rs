//! Fee policy: what an anchor pays first, and how much more each replacement
//! pays, always between a floor and a cap (sat/vB).

/// The fee policy. All rates in sat/vB. It is also the `[fees]` section of
/// the configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeePolicy {
    /// Confirmation target handed to `estimatesmartfee`, in blocks.
    pub conf_target: u16,
    /// Used when the node has no estimate (regtest always, new nodes often).
    pub fallback: u64,
    /// Never pay less.
    pub floor: u64,
    /// Never pay more; an anchor still unconfirmed at the cap is flagged.
    pub cap: u64,
    /// Each replacement pays at least this percentage of the previous rate.
    pub bump_percent: u64,
    /// … and at least this many sat/vB more (the relay rule's increment).
    pub min_bump: u64,
    /// While the node's estimate is above this rate, an anchor that is due
    /// by the cadence waits for a cheaper block — never past a latency
    /// budget. `None`: never wait for fees.
    pub patience_above: Option<u64>,
    /// Most sat the anchors first built in one UTC day may pay; once the next
    /// anchor would pass it, anchoring pauses until the next UTC day (records
    /// are still accepted and sealed later). Replacements of an anchor
    /// already out still pay what the bump rule says. `None`: no budget.
    pub daily_budget_sat: Option<u64>,
}

impl Default for FeePolicy {
    fn default() -> Self {
        FeePolicy {
            conf_target: 2,
            fallback: 2,
            floor: 1,
            cap: 100,
            bump_percent: 150,
            min_bump: 1,
            patience_above: None,
            daily_budget_sat: None,
        }
    }
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeePolicyError {
    /// The floor is above the cap, or either is zero.
    #[error("fee floor ({floor}) must be at least 1 and at most the cap ({cap}) sat/vB")]
    Bounds {
        /// The floor.
        floor: u64,
        /// The cap.
        cap: u64,
    },
    /// A replacement would not pay more.
    #[error("bump_percent must be above 100 or min_bump above 0")]
    NoBump,
}

impl FeePolicy {
    /// Checks the policy once, at start-up.
    pub fn validate(&self) -> Result<(), FeePolicyError> {
        if self.floor == 0 || self.floor > self.cap {
            return Err(FeePolicyError::Bounds {
                floor: self.floor,
                cap: self.cap,
            });
        }
        if self.bump_percent <= 100 && self.min_bump == 0 {
            return Err(FeePolicyError::NoBump);
        }
        Ok(())
    }

    fn clamp(&self, rate: u64) -> u64 {
        rate.clamp(self.floor, self.cap)
    }

    /// The rate of a new anchor, given the node's estimate.
    pub fn initial(&self, estimate: Option<u64>) -> u64 {
        self.clamp(estimate.unwrap_or(self.fallback))
    }

    /// The rate of the replacement of a transaction paying `current`, or
    /// `None` when `current` is already at the cap.
    pub fn bump(&self, current: u64, estimate: Option<u64>) -> Option<u64> {
        if current >= self.cap {
            return None;
        }
        let scaled = current.saturating_mul(self.bump_percent) / 100;
        let next = scaled
            .max(current.saturating_add(self.min_bump))
            .max(estimate.unwrap_or(0));
        Some(self.clamp(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_rate_uses_the_estimate_within_bounds() {
        let p = FeePolicy {
            floor: 2,
            cap: 50,
            fallback: 5,
            ..FeePolicy::default()
        };
        assert_eq!(p.initial(None), 5);
        assert_eq!(p.initial(Some(1)), 2);
        assert_eq!(p.initial(Some(20)), 20);
        assert_eq!(p.initial(Some(500)), 50);
    }

    #[test]
    fn bumps_grow_until_the_cap_then_stop() {
        let p = FeePolicy {
            floor: 1,
            cap: 10,
            bump_percent: 150,
            min_bump: 1,
            ..FeePolicy::default()
        };
        let mut rates = vec![1];
        while let Some(next) = p.bump(*rates.last().expect("non-empty"), None) {
            rates.push(next);
        }
        assert_eq!(rates, [1, 2, 3, 4, 6, 9, 10]);
        assert_eq!(p.bump(4, Some(8)), Some(8), "a higher estimate wins");
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(FeePolicy {
            floor: 0,
            ..FeePolicy::default()
        }
        .validate()
        .is_err());
        assert!(FeePolicy {
            floor: 5,
            cap: 4,
            ..FeePolicy::default()
        }
        .validate()
        .is_err());
        assert!(FeePolicy {
            bump_percent: 100,
            min_bump: 0,
            ..FeePolicy::default()
        }
        .validate()
        .is_err());
        assert!(FeePolicy::default().validate().is_ok());
    }
}
