//! The clipped PPO policy loss: the tensor version the trainer trains with ([`policy_loss`], the
//! default of [`Backend::policy_loss`]), its host oracle per token with the gradient with
//! respect to the new log-prob ([`policy_loss_token`], [`policy_loss_host`]), and the rule for
//! when the clip binds ([`clip_binds`]).
//!
//! ORZ (Open-Reasoner-Zero `orz/ppo/models/loss.py`, OpenRLHF's `PolicyLoss` without dual clip):
//! `ratio = exp(logp − logp_old)`, `loss = −min(ratio·A, clamp(ratio, 1 − ε, 1 + ε)·A)`,
//! ε = 0.2 ([`ORZ_CLIP_EPS`]). No dual clip (OpenRLHF's and veRL's `dual_clip` option), no
//! log-ratio clamp (veRL clamps `logp − logp_old` to ±20 before `exp`), no KL, no entropy.
//!
//! Gradient conventions at the kinks are PyTorch autograd's ([`crate::ppo::autograd`]): the
//! clamp passes the gradient on `[1 − ε, 1 + ε]` inclusive, and a tie of the two surrogates
//! splits the gradient evenly. Inside the clip range both surrogates are equal and so are their
//! gradients, hence `d loss / d logp = −ratio·A` there. The tensor version gets these from the
//! backend's autodiff; the host oracle writes them out; the conformance suite compares the two.

use alloc::vec::Vec;
use num_traits::Float;

use crate::backend::Backend;
use crate::error::Result;
use crate::ppo::autograd::{clamp_grad, minimum_grad};
use crate::ppo::layout::{check_clip, check_param, map_tokens};

/// ORZ's policy clip ε: 0.2 (ORZ's `playground/orz_*_ppo.py` presets).
pub const ORZ_CLIP_EPS: f64 = 0.2;

/// The policy loss of one token, its gradient and whether the clip binds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyLossToken<F> {
    /// `−min(ratio·A, clamp(ratio, 1 − ε, 1 + ε)·A)`.
    pub loss: F,
    /// `d loss / d logp` (PyTorch autograd conventions at the kinks).
    pub grad_logp: F,
    /// The clip binds ([`clip_binds`]); false inside `[1 − ε, 1 + ε]` and at masked positions.
    pub clipped: bool,
}

impl<F: Float> Default for PolicyLossToken<F> {
    /// What a masked token gets: zero loss, zero gradient, not clipped.
    fn default() -> Self {
        PolicyLossToken { loss: F::zero(), grad_logp: F::zero(), clipped: false }
    }
}

/// Default of [`Backend::policy_loss`], the loss the trainer trains with, per token:
/// `ratio = exp(logp − detach(logp_old))`, `s1 = ratio·A`, `s2 = clamp(ratio, 1 − ε, 1 + ε)·A`,
/// `loss = −minimum(s1, s2)` with `A = detach(advantages)`.
///
/// Errors: a negative or non-finite `eps`, and whatever the backend's ops reject.
pub fn policy_loss<B: Backend + ?Sized>(
    b: &B,
    logp: &B::Tensor,
    logp_old: &B::Tensor,
    advantages: &B::Tensor,
    eps: f64,
) -> Result<B::Tensor> {
    check_clip("policy_loss", "eps", eps)?;
    let (old, adv) = (b.detach(logp_old)?, b.detach(advantages)?);
    let ratio = b.exp(&b.sub(logp, &old)?)?;
    let surr1 = b.mul(&ratio, &adv)?;
    let surr2 = b.mul(&b.clamp(&ratio, 1.0 - eps, 1.0 + eps)?, &adv)?;
    b.neg(&b.minimum(&surr1, &surr2)?)
}

/// The two surrogates of one token: `(ratio·A, clamp(ratio, 1 − ε, 1 + ε)·A)`.
fn surrogates<F: Float>(ratio: F, advantage: F, eps: F) -> (F, F) {
    (ratio * advantage, ratio.max(F::one() - eps).min(F::one() + eps) * advantage)
}

/// Whether the clip binds for one token: the clipped surrogate is strictly the smaller
/// (OpenRLHF's and TRL's clip fraction: `surr2 < surr1`), so the token's gradient is 0.
pub fn clip_binds<F: Float>(ratio: F, advantage: F, eps: F) -> bool {
    let (surr1, surr2) = surrogates(ratio, advantage, eps);
    surr2 < surr1
}

/// Whether the ratio lies outside `[1 − ε, 1 + ε]`, whatever the advantage's sign: ORZ's
/// `clip_ratio` metric (`orz/ppo`), which counts more tokens than [`clip_binds`] (a ratio
/// above `1 + ε` with a negative advantage is outside but does not bind).
pub fn ratio_outside<F: Float>(ratio: F, eps: F) -> bool {
    ratio < F::one() - eps || ratio > F::one() + eps
}

/// Host oracle: the policy loss of one token from its new and old log-probs and its advantage.
pub fn policy_loss_token<F: Float>(logp: F, logp_old: F, advantage: F, eps: F) -> PolicyLossToken<F> {
    let (lo, hi) = (F::one() - eps, F::one() + eps);
    let ratio = (logp - logp_old).exp();
    let (surr1, surr2) = surrogates(ratio, advantage, eps);
    // d ratio / d logp = ratio.
    let d1 = ratio * advantage;
    let d2 = clamp_grad(ratio, lo, hi) * ratio * advantage;
    PolicyLossToken {
        loss: -surr1.min(surr2),
        grad_logp: -minimum_grad(surr1, surr2, d1, d2),
        clipped: clip_binds(ratio, advantage, eps),
    }
}

/// Host oracle: the policy loss of every token. `logp`, `logp_old` and `advantages` are aligned
/// per-token slices; masked tokens (where `mask` is false) get a zero loss and gradient and are
/// not checked, so a NaN there never leaks.
///
/// Errors: empty or mismatched inputs, ε not in `[0, 1]`, a non-finite valid input.
pub fn policy_loss_host<F: Float>(
    logp: &[F],
    logp_old: &[F],
    advantages: &[F],
    mask: Option<&[bool]>,
    eps: F,
) -> Result<Vec<PolicyLossToken<F>>> {
    const OP: &str = "policy_loss";
    check_param(OP, "eps", eps, 0.0, 1.0)?;
    map_tokens(OP, ["logp", "logp_old", "advantages"], [logp, logp_old, advantages], mask, |l, o, a| {
        policy_loss_token(l, o, a, eps)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrlhf_token_mean_batch() {
        // OpenRLHF tests/test_loss_aggregation.py, test_policy_loss_token_mean_aggregation_
        // matches_full_batch: PolicyLoss(clip_eps_low = clip_eps_high = 0.2) on a 3×3 batch with
        // old = logp − delta; the full-batch token mean it computes is −0.136414 (the test itself
        // asserts only micro-batch invariance; the value is from evaluating its definition).
        let logp = [-0.20, -0.40, -0.10, -0.70, -0.30, -0.20, -0.60, -0.10, -0.50];
        let delta = [0.03, -0.04, 0.01, 0.02, 0.05, -0.03, 0.04, 0.0, -0.02];
        let adv = [1.0, -0.5, 0.0, 0.3, -1.2, 0.5, 1.5, 0.0, -0.7];
        let mask = [true, true, false, true, true, true, true, false, true];
        let old: Vec<f64> = logp.iter().zip(delta).map(|(l, d)| l - d).collect();
        let tokens = policy_loss_host(&logp, &old, &adv, Some(&mask), 0.2).unwrap();
        let mean = tokens.iter().map(|t| t.loss).sum::<f64>() / 7.0;
        assert!((mean - -0.136414).abs() < 1e-6, "{mean}");
        assert!(tokens.iter().all(|t| !t.clipped));
    }

    #[test]
    fn clip_binds_outside_the_range() {
        // ratio = e^0.5 ≈ 1.6487 > 1.2 with A = 1: loss = −1.2·1, gradient 0 (clamp saturated).
        let t = policy_loss_token(0.5f64, 0.0, 1.0, 0.2);
        assert!((t.loss + 1.2).abs() < 1e-12 && t.grad_logp == 0.0 && t.clipped);
        // Same ratio with A = −1: the unclipped surrogate −1.6487 is the minimum; gradient r·1.
        let t = policy_loss_token(0.5f64, 0.0, -1.0, 0.2);
        let r = 0.5f64.exp();
        assert!((t.loss - r).abs() < 1e-12 && (t.grad_logp - r).abs() < 1e-12 && !t.clipped);
        // The rule alone: below 1 − ε it binds for A < 0 only; on a bound (a tie) it does not.
        assert!(clip_binds(0.5f64, -1.0, 0.2) && !clip_binds(0.5f64, 1.0, 0.2));
        assert!(!clip_binds(1.25f64, 1.0, 0.25) && !clip_binds(1.0f64, 0.0, 0.2));
    }

    #[test]
    fn at_the_clip_boundary_the_clamp_passes_the_gradient() {
        // ratio exactly 1 + ε (ε = 0.25, exact in binary): both surrogates tie, clamp grad is 1.
        let t = policy_loss_token(1.25f64.ln(), 0.0, 2.0, 1.25f64.ln().exp() - 1.0);
        assert!((t.grad_logp + 1.25 * 2.0).abs() < 1e-12, "{t:?}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(policy_loss_host::<f64>(&[], &[], &[], None, 0.2).is_err());
        assert!(policy_loss_host(&[0.0], &[0.0, 1.0], &[1.0], None, 0.2).is_err());
        assert!(policy_loss_host(&[0.0], &[0.0], &[1.0], None, -0.1).is_err());
        assert!(policy_loss_host(&[f64::NAN], &[0.0], &[1.0], None, 0.2).is_err());
        let masked = policy_loss_host(&[f64::NAN, 0.0], &[0.0, 0.0], &[1.0, 1.0], Some(&[false, true]), 0.2);
        assert_eq!(masked.unwrap()[0], PolicyLossToken::default());
    }

    #[test]
    fn orz_clip_ratio_counts_every_ratio_outside_the_range() {
        let eps = 0.2;
        // Outside above with a negative advantage: outside, but the clip does not bind.
        assert!(ratio_outside(1.5, eps) && !clip_binds(1.5, -1.0, eps));
        assert!(ratio_outside(1.5, eps) && clip_binds(1.5, 1.0, eps));
        assert!(ratio_outside(0.5, eps) && !ratio_outside(1.0, eps) && !ratio_outside(1.2, eps));
    }
}
