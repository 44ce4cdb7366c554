//! Per-token KL estimators between the policy and a reference policy (Schulman 2020,
//! "Approximating KL Divergence"), the building block of KL penalties (issue 16: a KL term in
//! the reward or in the loss; ORZ's presets use none).
//!
//! With `logp` the policy's log-prob of the sampled token and `logp_ref` the reference's, and
//! `log r = logp_ref − logp`:
//!
//! | estimator | per token | sign | peers |
//! |---|---|---|---|
//! | [`KlEstimator::K1`] | `−log r = logp − logp_ref` | any | OpenRLHF `k1`, veRL `kl`/`k1`, ORZ's `compute_approx_kl` |
//! | [`KlEstimator::K2`] | `½ (log r)²` | ≥ 0 | OpenRLHF `k2`, veRL `mse`/`k2` |
//! | [`KlEstimator::K3`] | `r − 1 − log r` | ≥ 0 | OpenRLHF `k3`, veRL `low_var_kl`/`k3` (veRL clamps it to ±10; orz-rs does not) |
//!
//! Over tokens drawn from the policy, K1 and K3 are unbiased estimates of `KL(π ‖ π_ref)` (K3
//! with lower variance); K2 is biased but its gradient is that of the KL.

use alloc::vec::Vec;
use num_traits::Float;

use crate::Result;
use crate::error::{check_finite, check_len};

/// Which per-token estimate of `KL(π ‖ π_ref)` (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum KlEstimator {
    /// `logp − logp_ref`.
    K1,
    /// `½ (logp_ref − logp)²`.
    K2,
    /// `exp(logp_ref − logp) − 1 − (logp_ref − logp)`.
    K3,
}

impl KlEstimator {
    /// The estimate for one token from the policy's and the reference's log-probs.
    pub fn per_token<F: Float>(self, logp: F, logp_ref: F) -> F {
        let log_r = logp_ref - logp;
        match self {
            KlEstimator::K1 => -log_r,
            KlEstimator::K2 => log_r * log_r / (F::one() + F::one()),
            // exp_m1 keeps the small-|log r| case accurate: r − 1 − log r ≈ (log r)² / 2.
            KlEstimator::K3 => log_r.exp_m1() - log_r,
        }
    }

    /// The estimate for every token of aligned `logp` and `logp_ref` (host, f64 or f32).
    /// Errors: lengths that differ, a non-finite log-prob.
    pub fn host<F: Float>(self, logp: &[F], logp_ref: &[F]) -> Result<Vec<F>> {
        const OP: &str = "kl estimate";
        check_len(OP, ("logp", logp.len()), ("logp_ref", logp_ref.len()))?;
        check_finite(OP, "logp", logp)?;
        check_finite(OP, "logp_ref", logp_ref)?;
        Ok(logp.iter().zip(logp_ref).map(|(&l, &r)| self.per_token(l, r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        // logp = ln 0.5, logp_ref = ln 0.25: log r = −ln 2.
        let (l, r) = (0.5f64.ln(), 0.25f64.ln());
        let ln2 = 2f64.ln();
        assert!((KlEstimator::K1.per_token(l, r) - ln2).abs() < 1e-15);
        assert!((KlEstimator::K2.per_token(l, r) - 0.5 * ln2 * ln2).abs() < 1e-15);
        assert!((KlEstimator::K3.per_token(l, r) - (0.5 - 1.0 + ln2)).abs() < 1e-15);
        for k in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            assert_eq!(k.per_token(-1.3, -1.3), 0.0, "{k:?} at equal log-probs");
        }
        assert!(KlEstimator::K3.host(&[0.0], &[0.0, 1.0]).is_err());
        assert!(KlEstimator::K3.host(&[f64::NAN], &[0.0]).is_err());
    }
}
