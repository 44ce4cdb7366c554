//! The checks, one ordinary generic function per property, by level, and the small proptest
//! strategies they draw their inputs from (tensors of a few elements per dimension).

pub mod composites;
pub mod engine;
pub mod errors;
pub mod iteration;
pub mod layout;
pub mod model;
pub mod ppo;
pub mod primitives;
pub mod sampling;
pub mod tiny;
pub mod training;

use proptest::collection::vec;
use proptest::prelude::*;

/// A shape of rank `1..=max_rank` with sizes `1..=max_dim`.
pub fn shape(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    vec(1..=max_dim, 1..=max_rank)
}

/// One value in `[lo, hi)`: mostly uniform, sometimes a multiple of 1/4 (so that ties, exact
/// bounds and exactly representable values occur in every dtype).
pub fn element(lo: f64, hi: f64) -> BoxedStrategy<f64> {
    let (klo, khi) = ((lo * 4.0).ceil() as i64, (hi * 4.0).ceil() as i64 - 1);
    if klo > khi {
        return (lo..hi).boxed();
    }
    prop_oneof![3 => lo..hi, 1 => (klo..=khi).prop_map(|k| k as f64 / 4.0)].boxed()
}

/// `n` values from [`element`].
pub fn values(n: usize, lo: f64, hi: f64) -> impl Strategy<Value = Vec<f64>> {
    vec(element(lo, hi), n)
}

/// A shape from [`shape`] and values in `[lo, hi)` filling it.
pub fn tensor(
    max_rank: usize,
    max_dim: usize,
    lo: f64,
    hi: f64,
) -> impl Strategy<Value = (Vec<usize>, Vec<f64>)> {
    shape(max_rank, max_dim).prop_flat_map(move |s| {
        let n = s.iter().product();
        (Just(s), values(n, lo, hi))
    })
}

/// A shape, one of its dimensions, and values filling it.
pub fn tensor_and_dim(
    max_rank: usize,
    max_dim: usize,
    lo: f64,
    hi: f64,
) -> impl Strategy<Value = (Vec<usize>, usize, Vec<f64>)> {
    tensor(max_rank, max_dim, lo, hi).prop_flat_map(|(s, v)| {
        let rank = s.len();
        (Just(s), 0..rank, Just(v))
    })
}

/// `n` booleans.
pub fn mask(n: usize) -> impl Strategy<Value = Vec<bool>> {
    vec(any::<bool>(), n)
}

/// Two shapes that broadcast together (NumPy rules): a common shape, from which each operand
/// may drop leading dimensions and set others to 1.
pub fn broadcast_pair(max_rank: usize, max_dim: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape(max_rank, max_dim).prop_flat_map(|out| {
        let rank = out.len();
        let operand = |out: Vec<usize>| {
            (0..=rank, vec(any::<bool>(), rank)).prop_map(move |(drop, ones)| {
                out.iter()
                    .zip(&ones)
                    .skip(drop.min(rank - 1))
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .collect()
            })
        };
        (operand(out.clone()), operand(out))
    })
}
