//! Advantage whitening (normalization) over all valid tokens of a batch.
//!
//! ORZ normalizes the advantages over every response token of the whole iteration with the
//! mean, the **biased** variance and a variance floor ([`WhiteningConvention::OrzBiased`]);
//! TRL's and veRL's `masked_whiten` use the Bessel-corrected variance and an additive epsilon
//! ([`WhiteningConvention::Bessel`]). Returns are not whitened in ORZ.

use alloc::vec::Vec;
use num_traits::Float;

use crate::error::{Error, Result};
use crate::ppo::layout::{check_finite_valid, check_mask, is_valid};
use crate::ppo::sum::{compensated_sum, count};

/// ORZ's variance floor: `(A − mean) / sqrt(max(var, 1e-8))` (Open-Reasoner-Zero `orz/ppo`).
pub const ORZ_VAR_FLOOR: f64 = 1e-8;
/// TRL's and veRL's additive epsilon: `(A − mean) · rsqrt(var + 1e-8)` (`masked_whiten`).
pub const TRL_VAR_EPS: f64 = 1e-8;

/// How the variance is estimated and guarded against zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum WhiteningConvention {
    /// ORZ: biased variance `Σ(x − mean)² / n`, scale `1 / sqrt(max(var, 1e-8))`
    /// ([`ORZ_VAR_FLOOR`]).
    OrzBiased,
    /// TRL/veRL `masked_whiten`: unbiased variance `Σ(x − mean)² / (n − 1)` (it needs n ≥ 2),
    /// scale `rsqrt(var + 1e-8)` ([`TRL_VAR_EPS`]).
    Bessel,
}

impl WhiteningConvention {
    /// The factor that multiplies `x − mean`, given this convention's variance.
    pub fn scale<F: Float>(self, var: F) -> F {
        match self {
            Self::OrzBiased => F::one() / var.max(constant(ORZ_VAR_FLOOR)).sqrt(),
            Self::Bessel => F::one() / (var + constant(TRL_VAR_EPS)).sqrt(),
        }
    }
}

/// Mean and variance (under a [`WhiteningConvention`]) of the valid values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments<F> {
    /// Mean of the valid values.
    pub mean: F,
    /// Variance of the valid values: biased for `OrzBiased`, unbiased for `Bessel`.
    pub var: F,
    /// Number of valid values.
    pub count: usize,
}

/// Mean and variance of the valid values of `xs` (two-pass, compensated sums).
///
/// Errors: no valid value, a mask of the wrong length, a non-finite valid value, or a single
/// valid value under `Bessel` (TRL and veRL raise there too: `n − 1 = 0`).
pub fn moments<F: Float>(
    xs: &[F],
    mask: Option<&[bool]>,
    convention: WhiteningConvention,
) -> Result<Moments<F>> {
    const OP: &str = "whiten";
    check_mask(OP, mask, ("values", xs.len()))?;
    check_finite_valid(OP, "values", xs, mask)?;
    let valid = || xs.iter().enumerate().filter(|&(i, _)| is_valid(mask, i)).map(|(_, &x)| x);
    let n = valid().count();
    if n == 0 {
        return Err(Error::Empty { op: OP, what: "values (valid positions)" });
    }
    let divisor = match convention {
        WhiteningConvention::OrzBiased => n,
        WhiteningConvention::Bessel if n >= 2 => n - 1,
        WhiteningConvention::Bessel => {
            return Err(Error::invalid(OP, "Bessel variance needs at least 2 valid values (n − 1 = 0)"));
        }
    };
    let mean = compensated_sum(valid()) / count(n);
    let var = compensated_sum(valid().map(|x| (x - mean) * (x - mean))) / count(divisor);
    Ok(Moments { mean, var, count: n })
}

/// Whitens every value of `xs`: `(x − mean) · scale(var)`, plus `mean` again when `shift_mean`
/// is false (TRL's `shift_mean=False` keeps the original mean).
pub fn whiten<F: Float>(xs: &[F], convention: WhiteningConvention, shift_mean: bool) -> Result<Vec<F>> {
    whiten_impl(xs, None, convention, shift_mean)
}

/// Whitens the valid values of `xs` with moments over the valid values only; masked positions
/// get 0 (TRL/veRL leave them whitened with the same moments; orz-rs zeroes them so that a NaN
/// stored there never leaks).
pub fn whiten_masked<F: Float>(
    xs: &[F],
    mask: &[bool],
    convention: WhiteningConvention,
    shift_mean: bool,
) -> Result<Vec<F>> {
    whiten_impl(xs, Some(mask), convention, shift_mean)
}

fn whiten_impl<F: Float>(
    xs: &[F],
    mask: Option<&[bool]>,
    convention: WhiteningConvention,
    shift_mean: bool,
) -> Result<Vec<F>> {
    let m = moments(xs, mask, convention)?;
    let scale = convention.scale(m.var);
    let offset = if shift_mean { F::zero() } else { m.mean };
    let out = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| if is_valid(mask, i) { (x - m.mean) * scale + offset } else { F::zero() })
        .collect();
    Ok(out)
}

fn constant<F: Float>(x: f64) -> F {
    F::from(x).unwrap_or_else(F::epsilon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    // Input x = [1, 2, 3, 6] (+ a masked NaN); mean 3, Σ(x − mean)² = 4 + 1 + 0 + 9 = 14.
    const X: [f64; 5] = [1.0, 2.0, f64::NAN, 3.0, 6.0];
    const MASK: [bool; 5] = [true, true, false, true, true];

    #[test]
    fn orz_biased_hand_computed() {
        // ORZ: var = 14 / 4 = 3.5, scale = 1 / sqrt(3.5).
        let w = whiten_masked(&X, &MASK, WhiteningConvention::OrzBiased, true).unwrap();
        let s = 1.0 / 3.5f64.sqrt();
        assert!(close(&w, &[-2.0 * s, -s, 0.0, 0.0, 3.0 * s], 1e-12), "{w:?}");
    }

    #[test]
    fn trl_verl_bessel_hand_computed() {
        // TRL/veRL masked_whiten: var = 14 / 3, scale = rsqrt(14/3 + 1e-8).
        let w = whiten_masked(&X, &MASK, WhiteningConvention::Bessel, true).unwrap();
        let s = 1.0 / (14.0f64 / 3.0 + 1e-8).sqrt();
        assert!(close(&w, &[-2.0 * s, -s, 0.0, 0.0, 3.0 * s], 1e-12), "{w:?}");
        // shift_mean = false adds the mean (3) back to the valid positions.
        let w = whiten_masked(&X, &MASK, WhiteningConvention::Bessel, false).unwrap();
        assert!(close(&w, &[3.0 - 2.0 * s, 3.0 - s, 0.0, 3.0, 3.0 + 3.0 * s], 1e-12), "{w:?}");
    }

    #[test]
    fn constant_input_hits_the_floor_not_a_division_by_zero() {
        let w = whiten(&[2.0f32; 3], WhiteningConvention::OrzBiased, true).unwrap();
        assert_eq!(w, [0.0; 3]);
        let w = whiten(&[5.0f64], WhiteningConvention::OrzBiased, true).unwrap();
        assert_eq!(w, [0.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(whiten::<f64>(&[], WhiteningConvention::OrzBiased, true).is_err());
        assert!(whiten(&[1.0], WhiteningConvention::Bessel, true).is_err());
        assert!(whiten_masked(&[1.0, 2.0], &[true], WhiteningConvention::OrzBiased, true).is_err());
        assert!(whiten_masked(&[1.0, 2.0], &[false, false], WhiteningConvention::OrzBiased, true).is_err());
        assert!(whiten(&[1.0, f64::NAN], WhiteningConvention::OrzBiased, true).is_err());
    }
}
