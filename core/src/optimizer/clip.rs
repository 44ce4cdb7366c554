//! Global L2 gradient-norm clipping with PyTorch `torch.nn.utils.clip_grad_norm_` semantics:
//! the tensor version the optimizer trains with ([`clip_grad_norm`], the default of
//! [`Backend::clip_grad_norm`]), its host oracle ([`global_norm`], [`clip_grad_norm_host`]), and
//! the one clip factor both use ([`clip_factor`]).
//!
//! `total_norm = sqrt(Σ g²)` over every gradient of the model, then every gradient is scaled by
//! `min(1, max_norm / (total_norm + 1e-6))` ([`TORCH_CLIP_EPS`]). ORZ clips at 1.0
//! ([`ORZ_MAX_GRAD_NORM`]). The tensor version takes the norm in f32 whatever the gradients'
//! dtype (PyTorch takes per-tensor norms in the gradient's dtype) and returns a non-finite norm
//! with the gradients unscaled, so the optimizer can skip the step; the host oracle makes a
//! non-finite norm an error (PyTorch would scale the gradients by NaN unless
//! `error_if_nonfinite`). tch's `backward_step_clip` clamps values instead, and candle has no
//! clipping.

use alloc::vec::Vec;

use num_traits::Float;

use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::error::{Error, Result};
use crate::ppo::layout::check_param;
use crate::ppo::sum::compensated_sum;

/// The epsilon PyTorch adds to the norm: `clip_coef = max_norm / (total_norm + 1e-6)`.
pub const TORCH_CLIP_EPS: f64 = 1e-6;
/// ORZ's `max_norm`: 1.0 (ORZ's presets).
pub const ORZ_MAX_GRAD_NORM: f64 = 1.0;

/// The measured norm and the factor every gradient must be multiplied by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradClip<F> {
    /// Global L2 norm before clipping.
    pub total_norm: F,
    /// `min(1, max_norm / (total_norm + 1e-6))`.
    pub factor: F,
}

/// Host oracle: the global L2 norm of many gradient slices (compensated sum of squares).
///
/// Errors: [`Error::NonFinite`] naming the first gradient slice (`index`) that holds a NaN or an
/// infinity, or an invalid-argument error when finite gradients overflow the sum of squares.
pub fn global_norm<F: Float>(grads: &[&[F]]) -> Result<F> {
    const OP: &str = "global_norm";
    if let Some(index) = grads.iter().position(|g| g.iter().any(|x| !x.is_finite())) {
        return Err(Error::NonFinite { op: OP, what: "gradient slices", index });
    }
    let norm = compensated_sum(grads.iter().flat_map(|g| g.iter().map(|&x| x * x))).sqrt();
    if norm.is_finite() {
        Ok(norm)
    } else {
        Err(Error::invalid(OP, "the sum of squared gradients overflows"))
    }
}

/// The PyTorch clip factor for a measured norm: `min(1, max_norm / (total_norm + 1e-6))`; the one
/// formula behind [`clip_grad_norm`], its backend overrides, [`clip_grad_norm_host`] and the
/// optimizer's [`crate::optimizer::StepReport::clip_factor`].
///
/// Errors: a non-finite `total_norm` (skip the step), a negative or non-finite `max_norm`.
pub fn clip_factor<F: Float>(total_norm: F, max_norm: F) -> Result<F> {
    const OP: &str = "clip_factor";
    if !total_norm.is_finite() {
        return Err(Error::NonFinite { op: OP, what: "total_norm", index: 0 });
    }
    check_param(OP, "max_norm", max_norm, 0.0, f64::MAX)?;
    let eps = F::from(TORCH_CLIP_EPS).unwrap_or_else(F::epsilon);
    Ok((max_norm / (total_norm + eps)).min(F::one()))
}

/// Default of [`Backend::clip_grad_norm`], what the optimizer trains with: per-tensor sums of
/// squares in f32, gathered into one tensor so that the norm needs a single host transfer;
/// scaling by [`clip_factor`] happens in each gradient's dtype. Returns the scaled gradients and
/// the norm; a non-finite norm comes back with the gradients unscaled (the caller skips the step).
pub fn clip_grad_norm<B: Backend + ?Sized>(
    b: &B,
    grads: &[B::Tensor],
    max_norm: f64,
) -> Result<(Vec<B::Tensor>, f64)> {
    if grads.is_empty() {
        return Ok((Vec::new(), 0.0));
    }
    no_grad(b, || {
        let squares = grads
            .iter()
            .map(|g| {
                let g = b.cast(g, DType::F32)?;
                b.reshape(&b.sum_all(&b.mul(&g, &g)?)?, &[1])
            })
            .collect::<Result<Vec<_>>>()?;
        let total = b.to_host_f64(&b.sum_all(&b.cat(&squares, 0)?)?)?;
        let norm = Float::sqrt(total.first().copied().unwrap_or(0.0));
        if !norm.is_finite() {
            return Ok((grads.to_vec(), norm));
        }
        let factor = clip_factor(norm, max_norm)?;
        let scaled = grads.iter().map(|g| b.affine(g, factor, 0.0)).collect::<Result<Vec<_>>>()?;
        Ok((scaled, norm))
    })
}

/// Host oracle: measures the global norm of `grads` and scales them in place by the clip factor.
pub fn clip_grad_norm_host<F: Float>(grads: &mut [&mut [F]], max_norm: F) -> Result<GradClip<F>> {
    let views: Vec<&[F]> = grads.iter().map(|g| &**g).collect();
    let total_norm = global_norm(&views)?;
    let factor = clip_factor(total_norm, max_norm)?;
    for x in grads.iter_mut().flat_map(|g| g.iter_mut()) {
        *x = *x * factor;
    }
    Ok(GradClip { total_norm, factor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_norm_and_factor() {
        // ‖(3, 4, 12)‖ = 13 → factor 1 / (13 + 1e-6).
        let (mut a, mut b) = ([3.0f64, 4.0], [12.0f64]);
        let c = clip_grad_norm_host(&mut [&mut a, &mut b], 1.0).unwrap();
        assert_eq!(c.total_norm, 13.0);
        assert!((c.factor - 1.0 / (13.0 + 1e-6)).abs() < 1e-15);
        assert!((a[0] - 3.0 * c.factor).abs() < 1e-15);
        // Below max_norm the factor is exactly 1.
        assert_eq!(clip_factor(0.5f64, 1.0).unwrap(), 1.0);
    }

    #[test]
    fn non_finite_gradients_are_reported() {
        let e = global_norm(&[&[1.0f32][..], &[f32::NAN][..]]).unwrap_err();
        assert_eq!(e, Error::NonFinite { op: "global_norm", what: "gradient slices", index: 1 });
        assert!(global_norm(&[&[1e30f32, 1e30][..]]).is_err());
        assert!(clip_factor(f64::INFINITY, 1.0).is_err());
        assert!(clip_factor(1.0, -1.0).is_err());
    }
}
