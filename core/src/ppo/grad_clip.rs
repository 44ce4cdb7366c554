//! Global L2 gradient-norm clipping with PyTorch `torch.nn.utils.clip_grad_norm_` semantics.
//!
//! `total_norm = sqrt(Σ g²)` over every gradient of the model, then every gradient is scaled by
//! `min(1, max_norm / (total_norm + 1e-6))` ([`TORCH_CLIP_EPS`]). ORZ clips at 1.0
//! ([`ORZ_MAX_GRAD_NORM`]). A non-finite norm is an error here (PyTorch would scale the
//! gradients by NaN unless `error_if_nonfinite`), so the trainer can skip the step. tch's
//! `backward_step_clip` clamps values instead, and candle has no clipping.

use num_traits::Float;

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

/// The global L2 norm of many gradient slices (compensated sum of squares).
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

/// The PyTorch clip factor for a measured norm: `min(1, max_norm / (total_norm + 1e-6))`.
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

/// Measures the global norm of `grads` and scales them in place by the clip factor.
pub fn clip_grad_norm<F: Float>(grads: &mut [&mut [F]], max_norm: F) -> Result<GradClip<F>> {
    let views: alloc::vec::Vec<&[F]> = grads.iter().map(|g| &**g).collect();
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
        let c = clip_grad_norm(&mut [&mut a, &mut b], 1.0).unwrap();
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
