//! The clipped value (critic) loss: the tensor version the trainer trains with ([`value_loss`],
//! the default of [`Backend::value_loss`]) and its host oracle per token with the gradient with
//! respect to the new value ([`value_loss_token`], [`value_loss_host`]).
//!
//! ORZ (Open-Reasoner-Zero `orz/ppo/models/loss.py`, OpenRLHF's `ValueLoss`):
//! `V_clip = V_old + clamp(V − V_old, −c, c)`, `loss = 0.5·max((V_clip − R)², (V − R)²)`,
//! c = 0.2 ([`ORZ_VALUE_CLIP`]), `V_old` the values computed before this iteration's critic
//! steps. Some libraries use the unclipped MSE (OpenRLHF with `value_clip = None`); TRL clips
//! the same way (`vf_losses = max(vf_losses1, vf_losses2)`).
//!
//! Gradient conventions at the kinks are PyTorch autograd's ([`crate::ppo::autograd`]): the
//! clamp passes the gradient on `[−c, c]` inclusive, a tie of the two squared errors splits it.
//! The tensor version gets them from the backend's autodiff; the host oracle writes them out.

use alloc::vec::Vec;
use num_traits::Float;

use crate::backend::Backend;
use crate::error::Result;
use crate::ppo::autograd::{clamp_grad, maximum_grad};
use crate::ppo::layout::{check_clip, check_param, map_tokens};

/// ORZ's value clip c: 0.2 (ORZ's `playground/orz_*_ppo.py` presets).
pub const ORZ_VALUE_CLIP: f64 = 0.2;

/// The value loss of one token, its gradient and whether the clipped error is the larger one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueLossToken<F> {
    /// `0.5·max((V_clip − R)², (V − R)²)`.
    pub loss: F,
    /// `d loss / d V` (PyTorch autograd conventions at the kinks).
    pub grad_value: F,
    /// The clipped squared error is strictly larger, so it is the one used (TRL's value clip
    /// fraction: `vf_losses2 > vf_losses1`); false at masked positions.
    pub clipped: bool,
}

impl<F: Float> Default for ValueLossToken<F> {
    /// What a masked token gets: zero loss, zero gradient, not clipped.
    fn default() -> Self {
        ValueLossToken { loss: F::zero(), grad_value: F::zero(), clipped: false }
    }
}

/// Default of [`Backend::value_loss`], the loss the trainer trains with, per token:
/// `V_clip = detach(V_old) + clamp(V − detach(V_old), −c, c)`,
/// `loss = 0.5·maximum((V_clip − R)², (V − R)²)` with `R = detach(returns)`.
///
/// Errors: a negative or non-finite `clip`, and whatever the backend's ops reject.
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

/// Host oracle: the value loss of one token from its new and old values and its return.
pub fn value_loss_token<F: Float>(value: F, value_old: F, ret: F, clip: F) -> ValueLossToken<F> {
    let half = F::from(0.5).unwrap_or_else(F::zero);
    let two = F::one() + F::one();
    let diff = value - value_old;
    // Computed as PyTorch does (`V_old + clamp(V − V_old)`), which may differ from V by an ulp.
    let value_clipped = value_old + diff.max(-clip).min(clip);
    let err_clipped = (value_clipped - ret) * (value_clipped - ret);
    let err = (value - ret) * (value - ret);
    let d_clipped = two * (value_clipped - ret) * clamp_grad(diff, -clip, clip);
    let d_err = two * (value - ret);
    ValueLossToken {
        loss: half * err_clipped.max(err),
        grad_value: half * maximum_grad(err_clipped, err, d_clipped, d_err),
        clipped: err_clipped > err,
    }
}

/// Host oracle: the value loss of every token. `values`, `values_old` and `returns` are aligned
/// per-token slices; masked tokens get a zero loss and gradient and are not checked.
///
/// Errors: empty or mismatched inputs, a negative or non-finite clip, a non-finite valid input.
pub fn value_loss_host<F: Float>(
    values: &[F],
    values_old: &[F],
    returns: &[F],
    mask: Option<&[bool]>,
    clip: F,
) -> Result<Vec<ValueLossToken<F>>> {
    const OP: &str = "value_loss";
    check_param(OP, "clip", clip, 0.0, f64::MAX)?;
    map_tokens(OP, ["values", "values_old", "returns"], [values, values_old, returns], mask, |v, o, r| {
        value_loss_token(v, o, r, clip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_tokens() {
        // Inside the clip: V = 0.5, V_old = 0.4, R = 1 → 0.5·0.25 = 0.125, grad V − R = −0.5.
        let t = value_loss_token(0.5f64, 0.4, 1.0, 0.2);
        assert!((t.loss - 0.125).abs() < 1e-12 && (t.grad_value + 0.5).abs() < 1e-12);
        // Clipped away from R: V = 1.0, V_old = 0.0, R = 2 → V_clip = 0.2; errors 3.24 vs 1;
        // the max is the clipped one, whose clamp is saturated: loss 1.62, gradient 0.
        let t = value_loss_token(1.0f64, 0.0, 2.0, 0.2);
        assert!((t.loss - 1.62).abs() < 1e-12 && t.grad_value == 0.0 && t.clipped);
        // Clipped towards R: V = 1.0, V_old = 0.0, R = 0.1 → errors 0.01 vs 0.81: unclipped wins.
        let t = value_loss_token(1.0f64, 0.0, 0.1, 0.2);
        assert!((t.loss - 0.405).abs() < 1e-12 && (t.grad_value - 0.9).abs() < 1e-12 && !t.clipped);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(value_loss_host::<f64>(&[], &[], &[], None, 0.2).is_err());
        assert!(value_loss_host(&[0.0], &[0.0], &[1.0, 2.0], None, 0.2).is_err());
        assert!(value_loss_host(&[0.0], &[0.0], &[1.0], None, f64::NAN).is_err());
        assert!(value_loss_host(&[0.0], &[f64::INFINITY], &[1.0], None, 0.2).is_err());
    }
}
