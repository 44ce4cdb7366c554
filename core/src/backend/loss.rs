//! Default bodies of the PPO losses of [`Backend`], per token, following the ORZ code
//! (`orz/ppo/models/loss.py`): the same formulas as the host functions of [`crate::ppo`].
//!
//! Gradient conventions at the kinks, which the host gradients must match: `min`/`max` of the
//! two surrogates split the gradient half and half on a tie (PyTorch `torch.min`/`torch.max` of
//! two tensors), and `clamp` passes the gradient at its bounds (inclusive). Inside the clip
//! range the two surrogates are equal, so the policy gradient there is the full `-A * r`.

use alloc::format;

use super::Backend;
use crate::{Error, Result};

fn check_clip(op: &'static str, what: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(op, format!("{what} must be finite and non-negative, got {value}")))
    }
}

/// Default of [`Backend::policy_loss`]:
/// `ratio = exp(logp - detach(logp_old))`, `s1 = ratio * A`, `s2 = clamp(ratio, 1 - eps, 1 + eps) * A`,
/// `loss = -minimum(s1, s2)` with `A = detach(advantages)`.
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

/// Default of [`Backend::value_loss`]:
/// `V_clip = detach(V_old) + clamp(V - detach(V_old), -c, c)`,
/// `loss = 0.5 * maximum((V_clip - R)², (V - R)²)` with `R = detach(returns)`.
pub fn value_loss<B: Backend + ?Sized>(
    b: &B,
    values: &B::Tensor,
    values_old: &B::Tensor,
    returns: &B::Tensor,
    clip: f64,
) -> Result<B::Tensor> {
    check_clip("value_loss", "clip", clip)?;
    let (old, ret) = (b.detach(values_old)?, b.detach(returns)?);
    let clipped = b.add(&old, &b.clamp(&b.sub(values, &old)?, -clip, clip)?)?;
    let (d1, d2) = (b.sub(&clipped, &ret)?, b.sub(values, &ret)?);
    let surr = b.maximum(&b.mul(&d1, &d1)?, &b.mul(&d2, &d2)?)?;
    b.affine(&surr, 0.5, 0.0)
}
