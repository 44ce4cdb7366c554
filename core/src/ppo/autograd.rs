//! PyTorch autograd conventions at the kinks of `clamp`, `minimum` and `maximum`, which the
//! loss gradients of this module follow so that backends built on autograd agree bit for bit.
//!
//! Source: PyTorch `tools/autograd/derivatives.yaml`: `clamp` passes the gradient where
//! `min <= x <= max` (inclusive bounds); binary `minimum`/`maximum` (what `torch.min(a, b)` and
//! `torch.max(a, b)` call) give `grad / 2` to each input on a tie.

use num_traits::Float;

/// Derivative of `clamp(x, lo, hi)` with respect to `x`: 1 on the closed interval `[lo, hi]`
/// (bounds included, PyTorch `clamp_backward`), else 0.
#[inline]
pub fn clamp_grad<F: Float>(x: F, lo: F, hi: F) -> F {
    if x >= lo && x <= hi { F::one() } else { F::zero() }
}

/// Share of the upstream gradient each input of a tied binary `minimum`/`maximum` receives
/// (PyTorch: `grad / 2`; JAX's `lax.min` also splits evenly).
pub const TIE_GRAD_SHARE: f64 = 0.5;

/// Derivative of `min(a, b)` given the derivatives `da`, `db` of its inputs: the smaller input's
/// derivative, the average of both on a tie ([`TIE_GRAD_SHARE`]).
#[inline]
pub fn minimum_grad<F: Float>(a: F, b: F, da: F, db: F) -> F {
    select_grad(a < b, a > b, da, db)
}

/// Derivative of `max(a, b)` given the derivatives `da`, `db` of its inputs: the larger input's
/// derivative, the average of both on a tie ([`TIE_GRAD_SHARE`]).
#[inline]
pub fn maximum_grad<F: Float>(a: F, b: F, da: F, db: F) -> F {
    select_grad(a > b, a < b, da, db)
}

#[inline]
fn select_grad<F: Float>(a_wins: bool, b_wins: bool, da: F, db: F) -> F {
    match (a_wins, b_wins) {
        (true, _) => da,
        (_, true) => db,
        _ => (da + db) * F::from(TIE_GRAD_SHARE).unwrap_or_else(F::zero),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_kink_conventions() {
        // derivatives.yaml: minimum/maximum split a tie evenly; clamp's bounds are inclusive.
        assert_eq!(minimum_grad(1.0, 1.0, 2.0, 4.0), 3.0);
        assert_eq!(minimum_grad(0.5, 1.0, 2.0, 4.0), 2.0);
        assert_eq!(maximum_grad(0.5, 1.0, 2.0, 4.0), 4.0);
        assert_eq!(maximum_grad(1.0, 1.0, 2.0, 4.0), 3.0);
        assert_eq!(clamp_grad(1.2, 0.8, 1.2), 1.0);
        assert_eq!(clamp_grad(1.2000001, 0.8, 1.2), 0.0);
    }
}
