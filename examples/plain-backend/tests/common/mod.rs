//! Helpers of the tape tests: deterministic draws, tensors from f64 values, and the
//! finite-difference gradient check.

#![allow(dead_code, reason = "each test binary uses a part of the helpers")]
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use orz_core::Result;
use orz_core::backend::{Backend, DType, Primitives};
use orz_plain_backend::Plain;

/// A tensor of the example backend.
pub type T = <Plain as Primitives>::Tensor;

/// Deterministic draws in `[lo, hi)`: the conformance kit's pseudo-random weights (splitmix64),
/// stream `seed`, moved from `[-1, 1)` to the interval.
pub fn uniform(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let w = orz_conformance::harness::weights(seed as usize, n, DType::F32);
    w.into_iter().map(|w| lo + (hi - lo) * (w + 1.0) / 2.0).collect()
}

/// An f32 constant from f64 values.
pub fn f32t(b: &Plain, data: &[f64], shape: &[usize]) -> T {
    b.tensor_f64(data, shape, DType::F32).unwrap()
}

/// The values of a tensor, as f64.
pub fn vals(b: &Plain, t: &T) -> Vec<f64> {
    b.to_host_f64(t).unwrap()
}

/// Asserts `|x - y| <= abs + rel * max(|x|, |y|)` element-wise, naming the first bad index.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], abs: f64, rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        let ok = (x - y).abs() <= abs + rel * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan());
        assert!(ok, "{what}: index {i}: got {x}, want {y}\n got {got:?}\nwant {want:?}");
    }
}

/// One input of a gradient check: values and shape.
pub type Input<'a> = (&'a [f64], &'a [usize]);

/// Checks the tape's gradient of `f` at `inputs` against central finite differences of the
/// forward kernels: `L(x) = Σ w ⊙ f(x)` for fixed random `w`, each input element moved by `±h`.
/// The backend computes in f32, so `h = 1e-3` (rounding error about `1e-7 · |L| / h`, truncation
/// `h² f''' / 6`) and the tolerance is `2e-3 + 2e-3 · magnitude`; the inputs keep more than `h`
/// away from every kink.
pub fn check_grad(name: &str, inputs: &[Input<'_>], f: impl Fn(&Plain, &[T]) -> Result<T>) {
    const H: f64 = 1e-3;
    let b = Plain::default();
    let params: Vec<T> = inputs.iter().map(|(d, s)| b.param(&f32t(&b, d, s)).unwrap()).collect();
    let out = f(&b, &params).unwrap();
    let shape = b.shape(&out);
    let w = uniform(0xC0FFEE, shape.iter().product(), -1.0, 1.0);
    let loss = b.sum_all(&b.mul(&out, &f32t(&b, &w, &shape)).unwrap()).unwrap();
    let grads = b.backward(&loss).unwrap();
    let value_at = |xs: &[Vec<f64>]| -> f64 {
        let consts: Vec<T> = xs.iter().zip(inputs).map(|(x, (_, s))| f32t(&b, x, s)).collect();
        vals(&b, &f(&b, &consts).unwrap()).iter().zip(&w).map(|(y, w)| y * w).sum()
    };
    // The draws as the f32 parameters hold them, so both sides start from the same point.
    let base: Vec<Vec<f64>> =
        inputs.iter().map(|(d, _)| d.iter().map(|&x| f64::from(x as f32)).collect()).collect();
    let mut largest = 0.0f64;
    for (i, p) in params.iter().enumerate() {
        let g = b.grad(&grads, p).unwrap().unwrap_or_else(|| panic!("{name}: input {i} got no gradient"));
        assert_eq!(b.dtype(&g), DType::F32, "{name}: the gradient has the parameter's dtype");
        assert_eq!(b.shape(&g), b.shape(p), "{name}: the gradient has the parameter's shape");
        let analytic = vals(&b, &g);
        let numeric: Vec<f64> = (0..base[i].len())
            .map(|j| {
                let (mut plus, mut minus) = (base.clone(), base.clone());
                plus[i][j] += H;
                minus[i][j] -= H;
                (value_at(&plus) - value_at(&minus)) / (2.0 * H)
            })
            .collect();
        assert_close(&format!("{name}: gradient of input {i}"), &analytic, &numeric, 2e-3, 2e-3);
        largest = analytic.iter().fold(largest, |m, g| m.max(g.abs()));
    }
    assert!(largest > 1e-2, "{name}: every gradient is (nearly) zero, so the check proves nothing");
}
