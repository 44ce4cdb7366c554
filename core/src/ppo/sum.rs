//! Compensated summation shared by the reductions of this module.

use num_traits::Float;

/// Neumaier (improved Kahan) summation: the error does not grow with the number of terms, which
/// keeps f32 means and variances over a million tokens accurate.
pub(crate) fn compensated_sum<F: Float>(xs: impl IntoIterator<Item = F>) -> F {
    let mut sum = F::zero();
    let mut carry = F::zero();
    for x in xs {
        let t = sum + x;
        carry = carry + if sum.abs() >= x.abs() { (sum - t) + x } else { (x - t) + sum };
        sum = t;
    }
    sum + carry
}

/// `n` as a float (exact for every count below 2^24 in f32 and 2^53 in f64).
pub(crate) fn count<F: Float>(n: usize) -> F {
    F::from(n).unwrap_or_else(F::infinity)
}
