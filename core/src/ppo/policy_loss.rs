//! The clipped PPO policy loss: the tensor version the trainer trains with ([`policy_loss`], the
//! default of [`Backend::policy_loss`]), its host oracle per token with the gradient with
//! respect to the new log-prob ([`policy_loss_token`], [`policy_loss_host`]), and the rule for
//! when the clip binds ([`clip_binds`]).
//!
//! ORZ (Open-Reasoner-Zero `orz/ppo/models/loss.py`, OpenRLHF's `PolicyLoss` without dual clip):
//! `ratio = exp(logp − logp_old)`, `loss = −min(ratio·A, clamp(ratio, 1 − ε, 1 + ε)·A)`,
//! ε = 0.2 ([`ORZ_CLIP_EPS`]). Options, all off in ORZ's presets ([`PolicyClip`]):
//! - **clip-higher** (DAPO): `clamp(ratio, 1 − ε_low, 1 + ε_high)` with `ε_high > ε_low`
//!   (DAPO: 0.2 and 0.28; OpenRLHF `--eps_clip_low_high`, veRL `clip_ratio_low`/`clip_ratio_high`,
//!   TRL `epsilon_high`);
//! - **dual clip** (Ye et al. 2020; OpenRLHF `--dual_clip`, veRL `clip_ratio_c` = 3): for a
//!   negative advantage the loss is at most `c·|A|` (`min(loss, −c·A)`), `c > 1`;
//! - **log-ratio clamp**: `logp − logp_old` clamped to `[−c, c]` before `exp` (veRL uses 20),
//!   so a stale or broken log-prob cannot overflow the ratio; the gradient is 0 where it clamps.
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

/// The clip rules of the policy loss: PPO's symmetric ε (ORZ), and the options DAPO, OpenRLHF
/// and veRL add (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyClip {
    /// The ratio's lower bound is `1 − eps_low` (PPO's ε; ORZ: 0.2).
    pub eps_low: f64,
    /// The ratio's upper bound is `1 + eps_high` (PPO: `eps_low`; DAPO's clip-higher: 0.28).
    pub eps_high: f64,
    /// Dual clip `c > 1`: for `A < 0` the loss is at most `−c·A` (`None`: off).
    pub dual_clip: Option<f64>,
    /// `logp − logp_old` clamped to `[−c, c]` before `exp` (`None`: off).
    pub log_ratio_clamp: Option<f64>,
}

impl PolicyClip {
    /// PPO's clip, `[1 − ε, 1 + ε]`, without the options.
    pub fn symmetric(eps: f64) -> PolicyClip {
        PolicyClip { eps_low: eps, eps_high: eps, dual_clip: None, log_ratio_clamp: None }
    }

    /// Whether this is PPO's plain symmetric clip (what [`Backend::policy_loss`] computes).
    pub fn is_symmetric(&self) -> bool {
        *self == PolicyClip::symmetric(self.eps_low)
    }

    /// Checks the bounds, naming the bad one: `eps_low` in `[0, 1]`, `eps_high` finite and at
    /// least 0, a dual clip above 1, a log-ratio clamp above 0.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "policy clip";
        check_param(OP, "eps_low", self.eps_low, 0.0, 1.0)?;
        check_param(OP, "eps_high", self.eps_high, 0.0, f64::MAX)?;
        if let Some(c) = self.dual_clip {
            check_param(OP, "dual_clip", c, 1.0, f64::MAX)?;
            if c == 1.0 {
                return Err(crate::Error::invalid(OP, "`dual_clip` must be above 1"));
            }
        }
        if let Some(c) = self.log_ratio_clamp {
            check_param(OP, "log_ratio_clamp", c, f64::MIN_POSITIVE, f64::MAX)?;
        }
        Ok(())
    }

    /// Whether the clip binds for one token: the clipped surrogate is strictly the smaller
    /// (OpenRLHF's and TRL's clip fraction: `surr2 < surr1`), so the token's gradient is 0.
    pub fn binds<F: Float>(&self, ratio: F, advantage: F) -> bool {
        let (surr1, surr2) = self.surrogates(ratio, advantage);
        surr2 < surr1
    }

    /// Whether the ratio lies outside `[1 − ε_low, 1 + ε_high]`, whatever the advantage's sign
    /// (ORZ's `clip_ratio` metric).
    pub fn outside<F: Float>(&self, ratio: F) -> bool {
        let (lo, hi) = self.bounds::<F>();
        ratio < lo || ratio > hi
    }

    /// `(1 − ε_low, 1 + ε_high)` in `F`.
    fn bounds<F: Float>(&self) -> (F, F) {
        let f = |x: f64| F::from(x).unwrap_or_else(F::nan);
        (f(1.0 - self.eps_low), f(1.0 + self.eps_high))
    }

    /// The two surrogates of one token: `(ratio·A, clamp(ratio, 1 − ε_low, 1 + ε_high)·A)`.
    fn surrogates<F: Float>(&self, ratio: F, advantage: F) -> (F, F) {
        let (lo, hi) = self.bounds::<F>();
        (ratio * advantage, ratio.max(lo).min(hi) * advantage)
    }
}

/// Default of [`Backend::policy_loss`], the loss the trainer trains with, per token:
/// [`clipped_policy_loss`] with PPO's symmetric clip ε.
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
    clipped_policy_loss(b, logp, logp_old, advantages, &PolicyClip::symmetric(eps))
}

/// The policy loss per token under `clip`: `log r = logp − detach(logp_old)` (clamped to
/// `[−c, c]` with a log-ratio clamp), `ratio = exp(log r)`, `s1 = ratio·A`,
/// `s2 = clamp(ratio, 1 − ε_low, 1 + ε_high)·A`, `loss = −minimum(s1, s2)` with
/// `A = detach(advantages)`; with a dual clip `c`, `loss = where(A < 0, minimum(loss, −c·A),
/// loss)`. Errors: an invalid `clip` ([`PolicyClip::validate`]).
pub fn clipped_policy_loss<B: Backend + ?Sized>(
    b: &B,
    logp: &B::Tensor,
    logp_old: &B::Tensor,
    advantages: &B::Tensor,
    clip: &PolicyClip,
) -> Result<B::Tensor> {
    clip.validate()?;
    let (old, adv) = (b.detach(logp_old)?, b.detach(advantages)?);
    let mut log_ratio = b.sub(logp, &old)?;
    if let Some(c) = clip.log_ratio_clamp {
        log_ratio = b.clamp(&log_ratio, -c, c)?;
    }
    let ratio = b.exp(&log_ratio)?;
    let surr1 = b.mul(&ratio, &adv)?;
    let surr2 = b.mul(&b.clamp(&ratio, 1.0 - clip.eps_low, 1.0 + clip.eps_high)?, &adv)?;
    let loss = b.neg(&b.minimum(&surr1, &surr2)?)?;
    match clip.dual_clip {
        None => Ok(loss),
        Some(c) => {
            let negative = b.lt(&adv, &b.zeros(&[1], b.dtype(&adv))?)?;
            let capped = b.minimum(&loss, &b.affine(&adv, -c, 0.0)?)?;
            b.where_(&negative, &capped, &loss)
        }
    }
}

/// Whether the clip binds for one token under PPO's symmetric ε ([`PolicyClip::binds`]).
pub fn clip_binds<F: Float>(ratio: F, advantage: F, eps: F) -> bool {
    PolicyClip::symmetric(eps.to_f64().unwrap_or(f64::NAN)).binds(ratio, advantage)
}

/// Whether the ratio lies outside `[1 − ε, 1 + ε]`, whatever the advantage's sign: ORZ's
/// `clip_ratio` metric (`orz/ppo`), which counts more tokens than [`clip_binds`] (a ratio
/// above `1 + ε` with a negative advantage is outside but does not bind).
pub fn ratio_outside<F: Float>(ratio: F, eps: F) -> bool {
    PolicyClip::symmetric(eps.to_f64().unwrap_or(f64::NAN)).outside(ratio)
}

/// Host oracle: the policy loss of one token from its new and old log-probs and its advantage,
/// under PPO's symmetric clip ε.
pub fn policy_loss_token<F: Float>(logp: F, logp_old: F, advantage: F, eps: F) -> PolicyLossToken<F> {
    let clip = PolicyClip::symmetric(eps.to_f64().unwrap_or(f64::NAN));
    clipped_policy_loss_token(logp, logp_old, advantage, &clip)
}

/// Host oracle of [`clipped_policy_loss`] for one token, with the gradient with respect to
/// `logp` (PyTorch autograd conventions at the kinks).
pub fn clipped_policy_loss_token<F: Float>(
    logp: F,
    logp_old: F,
    advantage: F,
    clip: &PolicyClip,
) -> PolicyLossToken<F> {
    let f = |x: f64| F::from(x).unwrap_or_else(F::nan);
    let (lo, hi) = clip.bounds::<F>();
    let raw = logp - logp_old;
    // d log r / d logp: 1, or the clamp's gradient (0 where it clamps).
    let (log_ratio, d_log_ratio) = match clip.log_ratio_clamp {
        Some(c) => (raw.max(f(-c)).min(f(c)), clamp_grad(raw, f(-c), f(c))),
        None => (raw, F::one()),
    };
    let ratio = log_ratio.exp();
    let (surr1, surr2) = clip.surrogates(ratio, advantage);
    // d ratio / d logp = ratio · d log r / d logp.
    let d_ratio = ratio * d_log_ratio;
    let (d1, d2) = (d_ratio * advantage, clamp_grad(ratio, lo, hi) * d_ratio * advantage);
    let (loss, grad) = (-surr1.min(surr2), -minimum_grad(surr1, surr2, d1, d2));
    let (loss, grad) = match clip.dual_clip {
        Some(c) if advantage < F::zero() => {
            let bound = -f(c) * advantage;
            (loss.min(bound), minimum_grad(loss, bound, grad, F::zero()))
        }
        _ => (loss, grad),
    };
    PolicyLossToken { loss, grad_logp: grad, clipped: clip.binds(ratio, advantage) }
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
