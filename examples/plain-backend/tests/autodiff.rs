//! Autodiff semantics of core's `Tape` on the example backend: parameters, in-place updates,
//! detach, no-grad, fresh gradient stores, fan-out accumulation, the tie and mask conventions,
//! dtypes, cache writes, deep graphs, and the values the kernels still check.

mod common;

use common::{f32t, vals};
use orz_core::Error;
use orz_core::backend::{Autodiff, Backend, DType, Primitives};
use orz_plain_backend::Plain;

#[test]
fn fan_out_accumulates_and_unused_params_get_none() {
    let b = Plain::default();
    let x = b.param(&f32t(&b, &[3.0], &[1])).unwrap();
    let unused = b.param(&f32t(&b, &[1.0], &[1])).unwrap();
    // y = x * x + x: dy/dx = 2x + 1 = 7.
    let y = b.add(&b.mul(&x, &x).unwrap(), &x).unwrap();
    let grads = b.backward(&y).unwrap();
    assert_eq!(vals(&b, &b.grad(&grads, &x).unwrap().unwrap()), [7.0]);
    assert!(b.grad(&grads, &unused).unwrap().is_none());
    assert_eq!(grads.len(), 1);
    // Reached only through a zero-gradient path: Some(zeros).
    let z = b.mul(&unused, &f32t(&b, &[0.0], &[1])).unwrap();
    assert_eq!(vals(&b, &b.grad(&b.backward(&z).unwrap(), &unused).unwrap().unwrap()), [0.0]);
}

#[test]
fn each_backward_is_fresh() {
    let b = Plain::default();
    let x = b.param(&f32t(&b, &[2.0], &[])).unwrap();
    let y = b.mul(&x, &x).unwrap();
    let first = b.backward(&y).unwrap();
    let second = b.backward(&y).unwrap();
    assert_eq!(vals(&b, &b.grad(&first, &x).unwrap().unwrap()), [4.0]);
    assert_eq!(vals(&b, &b.grad(&second, &x).unwrap().unwrap()), [4.0]);
    let g = b.grad(&first, &x).unwrap().unwrap();
    assert!(!b.requires_grad(&g) && !b.is_param(&g), "a gradient carries no graph");
}

#[test]
fn detach_and_no_grad_stop_gradients() {
    let b = Plain::default();
    let x = b.param(&f32t(&b, &[2.0], &[1])).unwrap();
    assert!(b.is_param(&x) && b.requires_grad(&x));
    let y = b.mul(&x, &b.detach(&x).unwrap()).unwrap();
    assert_eq!(vals(&b, &b.grad(&b.backward(&y).unwrap(), &x).unwrap().unwrap()), [2.0]);
    assert!(b.set_grad_enabled(false), "recording starts on");
    let z = b.mul(&x, &x).unwrap();
    assert!(!b.requires_grad(&z), "recorded under no-grad: a constant");
    assert!(!b.set_grad_enabled(true));
    assert!(b.backward(&z).unwrap().is_empty());
}

#[test]
fn assign_param_updates_every_handle_and_keeps_recorded_graphs() {
    let b = Plain::default();
    let p = b.param(&f32t(&b, &[1.0, 2.0], &[2])).unwrap();
    let alias = p.clone();
    let y = b.sum_all(&b.mul(&p, &p).unwrap()).unwrap();
    b.assign_param(&p, &f32t(&b, &[5.0, 6.0], &[2])).unwrap();
    assert_eq!(vals(&b, &alias), [5.0, 6.0]);
    // The graph built before the update differentiates at the old values, and reports the
    // gradient for the same handle.
    assert_eq!(vals(&b, &b.grad(&b.backward(&y).unwrap(), &alias).unwrap().unwrap()), [2.0, 4.0]);
    let y = b.sum_all(&b.mul(&alias, &alias).unwrap()).unwrap();
    assert_eq!(vals(&b, &y), [61.0]);
    // Casting on assignment keeps the parameter's dtype.
    let bf = b.param(&b.cast(&f32t(&b, &[1.0], &[1]), DType::BF16).unwrap()).unwrap();
    b.assign_param(&bf, &f32t(&b, &[3.0], &[1])).unwrap();
    assert_eq!((b.dtype(&bf), vals(&b, &bf)), (DType::BF16, vec![3.0]));
    // A parameter holds a copy: writing into the tensor it was made from does not change it.
    let cache = b.zeros(&[2], DType::F32).unwrap();
    let q = b.param(&cache).unwrap();
    b.write_slice(&cache, 0, 0, &f32t(&b, &[7.0], &[1])).unwrap();
    assert_eq!(vals(&b, &q), [0.0, 0.0]);
    assert!(b.assign_param(&cache, &q).is_err(), "only parameters can be assigned");
}

#[test]
fn ties_split_and_masks_route_exact_zeros() {
    let b = Plain::default();
    // maximum / minimum on a tie: half to each operand.
    let (x, y) =
        (b.param(&f32t(&b, &[1.0, 2.0], &[2])).unwrap(), b.param(&f32t(&b, &[1.0, 0.0], &[2])).unwrap());
    type Op = fn(&Plain, &common::T, &common::T) -> orz_core::Result<common::T>;
    let cases: [(Op, [f64; 2], [f64; 2]); 2] =
        [(Plain::maximum, [0.5, 1.0], [0.5, 0.0]), (Plain::minimum, [0.5, 0.0], [0.5, 1.0])];
    for (op, want_x, want_y) in cases {
        let grads = b.backward(&b.sum_all(&op(&b, &x, &y).unwrap()).unwrap()).unwrap();
        assert_eq!(vals(&b, &b.grad(&grads, &x).unwrap().unwrap()), want_x);
        assert_eq!(vals(&b, &b.grad(&grads, &y).unwrap().unwrap()), want_y);
    }
    // The max reduction splits evenly among tied maxima.
    let m = b.param(&f32t(&b, &[3.0, 1.0, 3.0, 3.0, 2.0, 0.0], &[2, 3])).unwrap();
    let grads = b.backward(&b.sum_all(&b.max(&m, 1, false).unwrap()).unwrap()).unwrap();
    assert_eq!(vals(&b, &b.grad(&grads, &m).unwrap().unwrap()), [0.5, 0.0, 0.5, 1.0, 0.0, 0.0]);
    // clamp passes the gradient at its bounds (inclusive).
    let c = b.param(&f32t(&b, &[-1.0, -0.5, 0.5, 1.0, 2.0], &[5])).unwrap();
    let grads = b.backward(&b.sum_all(&b.clamp(&c, -0.5, 1.0).unwrap()).unwrap()).unwrap();
    assert_eq!(vals(&b, &b.grad(&grads, &c).unwrap().unwrap()), [0.0, 1.0, 1.0, 1.0, 0.0]);
    // where_: an inf in the untaken branch reaches neither the result nor the gradient.
    let (a, inf) = (
        b.param(&f32t(&b, &[1.0, 2.0], &[2])).unwrap(),
        b.param(&f32t(&b, &[f64::INFINITY; 2], &[2])).unwrap(),
    );
    let cond = b.tensor_bool(&[true, false], &[2]).unwrap();
    let out = b.where_(&cond, &a, &inf).unwrap();
    let grads = b.backward(&b.sum_all(&b.mul(&out, &f32t(&b, &[3.0, 0.0], &[2])).unwrap()).unwrap()).unwrap();
    assert_eq!(vals(&b, &b.grad(&grads, &a).unwrap().unwrap()), [3.0, 0.0]);
    assert_eq!(vals(&b, &b.grad(&grads, &inf).unwrap().unwrap()), [0.0, 0.0]);
}

#[test]
fn casts_pass_the_gradient_back_in_the_parameter_dtype() {
    let b = Plain::default();
    let w = [0.1, -0.3, 0.7];
    for dtype in [DType::BF16, DType::F16] {
        let p = b.param(&b.tensor_f64(&[1.0, 2.0, 3.0], &[3], dtype).unwrap()).unwrap();
        let loss = b.sum_all(&b.mul(&b.cast(&p, DType::F32).unwrap(), &f32t(&b, &w, &[3])).unwrap()).unwrap();
        let g = b.grad(&b.backward(&loss).unwrap(), &p).unwrap().unwrap();
        assert_eq!(b.dtype(&g), dtype);
        let want: Vec<f64> = w.iter().map(|&x| dtype.round(x)).collect();
        assert_eq!(vals(&b, &g), want);
        // Through I64 nothing flows: the result is a constant.
        assert!(!b.requires_grad(&b.cast(&p, DType::I64).unwrap()));
    }
}

#[test]
fn write_slice_is_seen_by_clones() {
    let b = Plain::default();
    let cache = b.zeros(&[1, 4, 2], DType::F32).unwrap();
    let alias = cache.clone();
    let before = b.affine(&cache, 1.0, 1.0).unwrap();
    b.write_slice(&cache, 1, 1, &f32t(&b, &[1.0, 2.0, 3.0, 4.0], &[1, 2, 2])).unwrap();
    assert_eq!(vals(&b, &alias), [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
    assert_eq!(vals(&b, &before), [1.0; 8]);
    // Writing a view of a tensor into itself is fine.
    b.write_slice(&cache, 1, 0, &b.narrow(&cache, 1, 1, 2).unwrap()).unwrap();
    assert_eq!(vals(&b, &alias), [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 0.0, 0.0]);
    let p = b.param(&cache).unwrap();
    assert!(
        b.write_slice(&b.affine(&p, 1.0, 0.0).unwrap(), 1, 0, &cache).is_err(),
        "no writes into the graph"
    );
}

#[test]
fn kernels_check_index_values_and_non_finite_casts() {
    let b = Plain::default();
    let x = f32t(&b, &[1.0, 2.0, 3.0], &[3]);
    let e = b.index_select(&x, 0, &b.tensor_i64(&[0, 3], &[2]).unwrap()).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfRange { op: "index_select", index: 3, size: 3, .. }), "{e}");
    let e = b.gather(&x, 0, &b.tensor_i64(&[-1], &[1]).unwrap()).unwrap_err();
    assert!(matches!(e, Error::IndexOutOfRange { op: "gather", index: -1, .. }), "{e}");
    let e = b.cast(&f32t(&b, &[1.0, f64::NAN], &[2]), DType::I64).unwrap_err();
    assert!(matches!(e, Error::NonFinite { op: "cast", index: 1, .. }), "{e}");
    assert_eq!(b.to_host_i64(&b.cast(&f32t(&b, &[-2.7, 2.7], &[2]), DType::I64).unwrap()).unwrap(), [-2, 2]);
}

#[test]
fn long_chains_neither_overflow_backward_nor_drop() {
    let b = Plain::default();
    let x = b.param(&f32t(&b, &[1.0], &[1])).unwrap();
    let mut y = x.clone();
    for _ in 0..100_000 {
        y = b.affine(&y, 1.0, 1e-5).unwrap();
    }
    assert_eq!(vals(&b, &b.grad(&b.backward(&y).unwrap(), &x).unwrap().unwrap()), [1.0]);
    drop(y);
    // A wide fan-in too: a sum of 100 000 products of one parameter.
    let mut acc = b.zeros(&[1], DType::F32).unwrap();
    for _ in 0..100_000 {
        acc = b.add(&acc, &b.mul(&x, &x).unwrap()).unwrap();
    }
    assert_eq!(vals(&b, &b.grad(&b.backward(&acc).unwrap(), &x).unwrap().unwrap()), [200_000.0]);
}

#[test]
fn the_tape_reports_its_inner_backend() {
    let b = Plain::default();
    assert_eq!((b.name(), b.inner().name_impl()), ("plain", "plain"));
}
