//! Autodiff semantics: parameters, in-place updates, detach, no-grad, fresh gradient stores,
//! fan-out accumulation, cache writes.

use orz_core::backend::{Backend, DType};

use super::{f32t, vals};
use crate::Reference;

#[test]
fn fan_out_accumulates_and_unused_params_get_none() {
    let b = Reference::new();
    let x = b.param(&f32t(&b, &[3.0], &[1])).unwrap();
    let unused = b.param(&f32t(&b, &[1.0], &[1])).unwrap();
    // y = x * x + x: dy/dx = 2x + 1 = 7.
    let y = b.add(&b.mul(&x, &x).unwrap(), &x).unwrap();
    let grads = b.backward(&y).unwrap();
    assert_eq!(vals(&b.grad(&grads, &x).unwrap().unwrap()), [7.0]);
    assert!(b.grad(&grads, &unused).unwrap().is_none());
    // Reached only through a zero-gradient path: Some(zeros).
    let z = b.mul(&unused, &f32t(&b, &[0.0], &[1])).unwrap();
    assert_eq!(vals(&b.grad(&b.backward(&z).unwrap(), &unused).unwrap().unwrap()), [0.0]);
}

#[test]
fn each_backward_is_fresh() {
    let b = Reference::new();
    let x = b.param(&f32t(&b, &[2.0], &[])).unwrap();
    let y = b.mul(&x, &x).unwrap();
    let first = b.backward(&y).unwrap();
    let second = b.backward(&y).unwrap();
    assert_eq!(vals(&b.grad(&first, &x).unwrap().unwrap()), [4.0]);
    assert_eq!(vals(&b.grad(&second, &x).unwrap().unwrap()), [4.0]);
}

#[test]
fn detach_and_no_grad_stop_gradients() {
    let b = Reference::new();
    let x = b.param(&f32t(&b, &[2.0], &[1])).unwrap();
    let y = b.mul(&x, &b.detach(&x).unwrap()).unwrap();
    assert_eq!(vals(&b.grad(&b.backward(&y).unwrap(), &x).unwrap().unwrap()), [2.0]);
    assert!(b.set_grad_enabled(false), "recording starts on");
    let z = b.mul(&x, &x).unwrap();
    assert!(!b.set_grad_enabled(true));
    assert!(b.backward(&z).unwrap().is_empty(), "recorded under no-grad: a constant");
}

#[test]
fn assign_param_updates_every_handle_and_keeps_recorded_graphs() {
    let b = Reference::new();
    let p = b.param(&f32t(&b, &[1.0, 2.0], &[2])).unwrap();
    let alias = p.clone();
    let y = b.sum_all(&b.mul(&p, &p).unwrap()).unwrap();
    b.assign_param(&p, &f32t(&b, &[5.0, 6.0], &[2])).unwrap();
    assert_eq!(vals(&alias), [5.0, 6.0]);
    // The graph built before the update differentiates at the old values.
    assert_eq!(vals(&b.grad(&b.backward(&y).unwrap(), &p).unwrap().unwrap()), [2.0, 4.0]);
    // A new forward sees the new values.
    let y = b.sum_all(&b.mul(&alias, &alias).unwrap()).unwrap();
    assert_eq!(vals(&y), [61.0]);
    // Casting on assignment keeps the parameter's dtype.
    let bf = b.param(&b.cast(&f32t(&b, &[1.0], &[1]), DType::BF16).unwrap()).unwrap();
    b.assign_param(&bf, &f32t(&b, &[3.0], &[1])).unwrap();
    assert_eq!((bf.dtype(), vals(&bf)), (DType::BF16, vec![3.0]));
}

#[test]
fn write_slice_is_seen_by_clones_not_by_earlier_results() {
    let b = Reference::new();
    let cache = b.zeros(&[1, 4, 2], DType::F32).unwrap();
    let alias = cache.clone();
    let before = b.affine(&cache, 1.0, 1.0).unwrap();
    let reshaped = b.reshape(&cache, &[8]).unwrap();
    b.write_slice(&cache, 1, 1, &f32t(&b, &[1.0, 2.0, 3.0, 4.0], &[1, 2, 2])).unwrap();
    assert_eq!(vals(&alias), [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
    assert_eq!(vals(&before), [1.0; 8]);
    assert_eq!(vals(&reshaped), [0.0; 8], "results computed earlier keep their values");
    // Writing a tensor into itself is fine.
    b.write_slice(&cache, 1, 0, &b.narrow(&cache, 1, 1, 2).unwrap()).unwrap();
    assert_eq!(vals(&alias), [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 0.0, 0.0]);
}

#[test]
fn dtypes_are_recorded_not_promoted() {
    let b = Reference::new();
    let x = b.tensor_f32(&[1.0, 2.0], &[2], DType::BF16).unwrap();
    let y = b.exp(&b.add(&x, &x).unwrap()).unwrap();
    assert_eq!(b.dtype(&y), DType::BF16);
    assert_eq!(b.dtype(&b.gt(&x, &x).unwrap()), DType::Bool);
    assert_eq!(b.dtype(&b.sort(&x, 0, false).unwrap().1), DType::I64);
    assert_eq!(b.to_host_f32(&b.tensor_bool(&[true, false], &[2]).unwrap()).unwrap(), [1.0, 0.0]);
}

#[test]
fn long_chains_neither_overflow_backward_nor_drop() {
    let b = Reference::new();
    let x = b.param(&f32t(&b, &[1.0], &[1])).unwrap();
    let mut y = x.clone();
    for _ in 0..100_000 {
        y = b.affine(&y, 1.0, 1e-5).unwrap();
    }
    assert_eq!(vals(&b.grad(&b.backward(&y).unwrap(), &x).unwrap().unwrap()), [1.0]);
    drop(y);
}
