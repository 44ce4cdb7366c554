//! Tests of the reference backend: every primitive's gradient against central finite
//! differences, golden forward values of the composites, autodiff semantics, and errors.

mod autodiff;
mod composites;
mod errors;
mod grads;
mod model;

use orz_core::Result;
use orz_core::backend::{Backend, DType};

use crate::{Reference, Tensor};

/// Deterministic uniform draws in `[lo, hi)` (splitmix64), so the tests need no RNG crate.
pub(crate) fn uniform(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            lo + (hi - lo) * (z >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// An f32 constant from f64 values.
pub(crate) fn f32t(b: &Reference, data: &[f64], shape: &[usize]) -> Tensor {
    b.tensor_f64(data, shape, DType::F32).unwrap()
}

/// The values of a tensor.
pub(crate) fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec()
}

/// Asserts `|x - y| <= abs + rel * max(|x|, |y|)` element-wise, naming the first bad index.
pub(crate) fn assert_close(what: &str, got: &[f64], want: &[f64], abs: f64, rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        let ok = (x - y).abs() <= abs + rel * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan());
        assert!(ok, "{what}: index {i}: got {x}, want {y}\n got {got:?}\nwant {want:?}");
    }
}

/// One input of a gradient check: values and shape.
pub(crate) type Input<'a> = (&'a [f64], &'a [usize]);

/// Checks the reverse-mode gradient of `f` at `inputs` against central finite differences:
/// the scalar is `L(x) = Σ w ⊙ f(x)` for a fixed random `w`; each input element is perturbed by
/// `±h` with `h = 1e-6` (all in f64) and `(L(x + h) - L(x - h)) / 2h` must match the gradient the
/// tape computes for `sum_all(f(x) * w)` within `1e-6 + 1e-6 * magnitude`.
pub(crate) fn check_grad(
    name: &str,
    inputs: &[Input<'_>],
    f: impl Fn(&Reference, &[Tensor]) -> Result<Tensor>,
) {
    const H: f64 = 1e-6;
    let b = Reference::new();
    let params: Vec<Tensor> = inputs.iter().map(|(d, s)| b.param(&f32t(&b, d, s)).unwrap()).collect();
    let out = f(&b, &params).unwrap();
    let w = uniform(0xC0FFEE, out.numel(), -1.0, 1.0);
    let loss = b.sum_all(&b.mul(&out, &f32t(&b, &w, out.shape())).unwrap()).unwrap();
    let grads = b.backward(&loss).unwrap();
    let value_at = |xs: &[Vec<f64>]| -> f64 {
        let consts: Vec<Tensor> = xs.iter().zip(inputs).map(|(x, (_, s))| f32t(&b, x, s)).collect();
        vals(&f(&b, &consts).unwrap()).iter().zip(&w).map(|(y, w)| y * w).sum()
    };
    let base: Vec<Vec<f64>> = inputs.iter().map(|(d, _)| d.to_vec()).collect();
    let mut largest = 0.0f64;
    for (i, p) in params.iter().enumerate() {
        let analytic =
            vals(&b.grad(&grads, p).unwrap().unwrap_or_else(|| panic!("{name}: input {i} got no gradient")));
        let numeric: Vec<f64> = (0..base[i].len())
            .map(|j| {
                let (mut plus, mut minus) = (base.clone(), base.clone());
                plus[i][j] += H;
                minus[i][j] -= H;
                (value_at(&plus) - value_at(&minus)) / (2.0 * H)
            })
            .collect();
        assert_close(&format!("{name}: gradient of input {i}"), &analytic, &numeric, 1e-6, 1e-6);
        largest = analytic.iter().fold(largest, |m, g| m.max(g.abs()));
    }
    assert!(largest > 1e-3, "{name}: every gradient is (nearly) zero, so the check proves nothing");
}
