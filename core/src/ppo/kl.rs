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
//!
//! Two forms: per token on the host ([`KlEstimator::per_token`], with its derivative with
//! respect to `logp`, [`KlEstimator::grad_logp`], the oracle of the loss term) and as a tensor
//! ([`KlEstimator::tensor`], differentiable in `logp`, the reference log-probs detached), which
//! the trainer adds to the policy loss under `use_kl_loss` (veRL's `kl_loss`, GRPO's β term).
//! In configs the estimators are named `k1`, `k2`, `k3` (OpenRLHF's `--kl_estimator` values).

use alloc::vec::Vec;
use num_traits::Float;

use crate::Result;
use crate::backend::Backend;
use crate::error::{check_finite, check_len};

/// Which per-token estimate of `KL(π ‖ π_ref)` (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum KlEstimator {
    /// `logp − logp_ref`.
    #[cfg_attr(feature = "serde", serde(rename = "k1", alias = "K1"))]
    K1,
    /// `½ (logp_ref − logp)²`.
    #[cfg_attr(feature = "serde", serde(rename = "k2", alias = "K2"))]
    K2,
    /// `exp(logp_ref − logp) − 1 − (logp_ref − logp)`.
    #[cfg_attr(feature = "serde", serde(rename = "k3", alias = "K3"))]
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

    /// `d estimate / d logp` for one token (the reference's log-prob is a constant): K1: 1;
    /// K2: `logp − logp_ref`; K3: `1 − exp(logp_ref − logp)`.
    pub fn grad_logp<F: Float>(self, logp: F, logp_ref: F) -> F {
        let log_r = logp_ref - logp;
        match self {
            KlEstimator::K1 => F::one(),
            KlEstimator::K2 => -log_r,
            KlEstimator::K3 => -log_r.exp_m1(),
        }
    }

    /// The estimate of every element of `logp` against `logp_ref` (same shape) as a tensor,
    /// differentiable in `logp`; `logp_ref` is detached (the reference model is frozen).
    pub fn tensor<B: Backend + ?Sized>(
        self,
        b: &B,
        logp: &B::Tensor,
        logp_ref: &B::Tensor,
    ) -> Result<B::Tensor> {
        let log_r = b.sub(&b.detach(logp_ref)?, logp)?;
        match self {
            KlEstimator::K1 => b.neg(&log_r),
            KlEstimator::K2 => b.affine(&b.mul(&log_r, &log_r)?, 0.5, 0.0),
            // r − 1 − log r, the two terms of exp_m1 as a tensor.
            KlEstimator::K3 => b.sub(&b.affine(&b.exp(&log_r)?, 1.0, -1.0)?, &log_r),
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
        // Gradients by hand at log r = −ln 2: K1 1, K2 ln 2, K3 1 − 1/2.
        assert_eq!(KlEstimator::K1.grad_logp(l, r), 1.0);
        assert!((KlEstimator::K2.grad_logp(l, r) - ln2).abs() < 1e-15);
        assert!((KlEstimator::K3.grad_logp(l, r) - 0.5).abs() < 1e-15);
    }

    proptest::proptest! {
        #[test]
        fn gradient_matches_finite_differences(logp in -6.0f64..0.0, logp_ref in -6.0f64..0.0) {
            let h = 1e-6;
            for k in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
                let fd = (k.per_token(logp + h, logp_ref) - k.per_token(logp - h, logp_ref)) / (2.0 * h);
                let g = k.grad_logp(logp, logp_ref);
                proptest::prop_assert!((fd - g).abs() <= 1e-6 * (1.0 + g.abs()), "{:?}: {} vs {}", k, fd, g);
            }
            proptest::prop_assert!(KlEstimator::K2.per_token(logp, logp_ref) >= 0.0);
            proptest::prop_assert!(KlEstimator::K3.per_token(logp, logp_ref) >= 0.0);
        }
    }
}
