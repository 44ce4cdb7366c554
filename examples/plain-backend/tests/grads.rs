//! Every differentiable primitive's gradient through core's `Tape` over the plain kernels,
//! against central finite differences of the same kernels, away from kinks, with broadcasting
//! where the op broadcasts (the reference's `tests/grads.rs`, on the example backend).

mod common;

use common::{check_grad, f32t, uniform};
use orz_core::backend::Backend;

fn r(seed: u64, n: usize) -> Vec<f64> {
    uniform(seed, n, -2.0, 2.0)
}

fn pos(seed: u64, n: usize) -> Vec<f64> {
    uniform(seed, n, 0.5, 3.0)
}

/// Shape pairs exercising NumPy broadcasting both ways.
const BROADCASTS: [(&[usize], &[usize]); 4] =
    [(&[2, 3], &[2, 3]), (&[2, 3], &[3]), (&[2, 1, 3], &[4, 1]), (&[1], &[2, 2])];

#[test]
fn binary_ops_broadcast() {
    for (k, (sa, sb)) in BROADCASTS.iter().enumerate() {
        let (na, nb) = (sa.iter().product(), sb.iter().product());
        let (a, b, bp) = (r(k as u64, na), r(100 + k as u64, nb), pos(200 + k as u64, nb));
        let ins = [(&a[..], *sa), (&b[..], *sb)];
        check_grad("add", &ins, |be, x| be.add(&x[0], &x[1]));
        check_grad("sub", &ins, |be, x| be.sub(&x[0], &x[1]));
        check_grad("mul", &ins, |be, x| be.mul(&x[0], &x[1]));
        check_grad("maximum", &ins, |be, x| be.maximum(&x[0], &x[1]));
        check_grad("minimum", &ins, |be, x| be.minimum(&x[0], &x[1]));
        check_grad("div", &[(&a, sa), (&bp, sb)], |be, x| be.div(&x[0], &x[1]));
    }
}

#[test]
fn unary_ops() {
    let (x, p) = (r(1, 6), pos(2, 6));
    let shape: &[usize] = &[2, 3];
    check_grad("neg", &[(&x, shape)], |b, t| b.neg(&t[0]));
    check_grad("exp", &[(&x, shape)], |b, t| b.exp(&t[0]));
    check_grad("log", &[(&p, shape)], |b, t| b.log(&t[0]));
    check_grad("sqrt", &[(&p, shape)], |b, t| b.sqrt(&t[0]));
    check_grad("sigmoid", &[(&x, shape)], |b, t| b.sigmoid(&t[0]));
    check_grad("tanh", &[(&x, shape)], |b, t| b.tanh(&t[0]));
    check_grad("powf 1.7", &[(&p, shape)], |b, t| b.powf(&t[0], 1.7));
    check_grad("powf -0.5", &[(&p, shape)], |b, t| b.powf(&t[0], -0.5));
    check_grad("affine", &[(&x, shape)], |b, t| b.affine(&t[0], -1.5, 0.25));
    check_grad("clamp", &[(&x, shape)], |b, t| b.clamp(&t[0], -0.7531, 0.9137));
    // `cast` rounds in this backend (a staircase to finite differences): see
    // `tests/autodiff.rs`, `casts_pass_the_gradient_back_in_the_parameter_dtype`.
}

#[test]
fn where_broadcasts_and_routes() {
    let (a, c) = (r(3, 6), r(4, 3));
    check_grad("where_", &[(&a, &[2, 3]), (&c, &[3])], |b, x| {
        let cond = b.tensor_bool(&[true, false, true, false, false, true], &[2, 3])?;
        b.where_(&cond, &x[0], &x[1])
    });
}

#[test]
fn reductions_and_scans() {
    let x = r(5, 24);
    let shape: &[usize] = &[2, 3, 4];
    for dim in 0..3 {
        for keepdim in [false, true] {
            check_grad("sum", &[(&x, shape)], |b, t| b.sum(&t[0], dim, keepdim));
            check_grad("max", &[(&x, shape)], |b, t| b.max(&t[0], dim, keepdim));
        }
        check_grad("cumsum", &[(&x, shape)], |b, t| b.cumsum(&t[0], dim));
        check_grad("sort values", &[(&x, shape)], |b, t| Ok(b.sort(&t[0], dim, dim == 1)?.0));
    }
}

#[test]
fn layout_ops() {
    let x = r(6, 24);
    let shape: &[usize] = &[2, 3, 4];
    check_grad("reshape", &[(&x, shape)], |b, t| b.reshape(&t[0], &[4, 6]));
    check_grad("transpose", &[(&x, shape)], |b, t| b.transpose(&t[0], 0, 2));
    check_grad("narrow", &[(&x, shape)], |b, t| b.narrow(&t[0], 2, 1, 2));
    let y = r(7, 8);
    check_grad("cat", &[(&x, shape), (&y, &[2, 1, 4])], |b, t| b.cat(t, 1));
    check_grad("index_select (repeats)", &[(&x, shape)], |b, t| {
        b.index_select(&t[0], 1, &b.tensor_i64(&[2, 0, 2, 1], &[4])?)
    });
    check_grad("gather", &[(&x, shape)], |b, t| {
        let idx: Vec<i64> = (0..12).map(|i| (i * 7 % 4) as i64).collect();
        b.gather(&t[0], 2, &b.tensor_i64(&idx, &[2, 3, 2])?)
    });
    check_grad("gather (dim 0, repeats)", &[(&x, shape)], |b, t| {
        let idx: Vec<i64> = (0..36).map(|i| (i * 5 % 2) as i64).collect();
        b.gather(&t[0], 0, &b.tensor_i64(&idx, &[3, 3, 4])?)
    });
    check_grad("embedding", &[(&y, &[4, 2])], |b, t| {
        b.embedding(&t[0], &b.tensor_i64(&[3, 0, 3, 1, 3], &[5])?)
    });
    check_grad("broadcast_to", &[(&y, &[2, 1, 4])], |b, t| b.broadcast_to(&t[0], &[3, 2, 5, 4]));
}

#[test]
fn matmul_batched_and_broadcast() {
    let cases: [(&[usize], &[usize]); 3] =
        [(&[3, 4], &[4, 2]), (&[2, 3, 4], &[4, 5]), (&[2, 1, 3, 4], &[3, 4, 2])];
    for (k, (sa, sb)) in cases.iter().enumerate() {
        let (a, bb) = (r(10 + k as u64, sa.iter().product()), r(20 + k as u64, sb.iter().product()));
        check_grad("matmul", &[(&a, sa), (&bb, sb)], |b, t| b.matmul(&t[0], &t[1]));
    }
}

#[test]
fn composites() {
    let x = r(30, 12);
    let shape: &[usize] = &[3, 4];
    check_grad("log_softmax", &[(&x, shape)], |b, t| b.log_softmax(&t[0], 1));
    check_grad("softmax", &[(&x, shape)], |b, t| b.softmax(&t[0], 0));
    check_grad("logsumexp", &[(&x, shape)], |b, t| b.logsumexp(&t[0], 1, false));
    check_grad("silu", &[(&x, shape)], |b, t| b.silu(&t[0]));
    let w = r(31, 4);
    check_grad("rms_norm", &[(&x, shape), (&w, &[4])], |b, t| b.rms_norm(&t[0], &t[1], 1e-6));
    check_grad("selective_log_prob", &[(&x, shape)], |b, t| {
        b.selective_log_prob(&t[0], &b.tensor_i64(&[3, 0, 2], &[3])?)
    });
    let q = r(40, 2 * 4 * 3 * 4);
    let (k, v) = (r(41, 2 * 2 * 3 * 4), r(42, 2 * 2 * 3 * 4));
    let (qs, ks): (&[usize], &[usize]) = (&[2, 4, 3, 4], &[2, 2, 3, 4]);
    check_grad("causal_attention (GQA, packed)", &[(&q, qs), (&k, ks), (&v, ks)], |b, t| {
        let seg = b.tensor_i64(&[0, 0, 1, 0, 1, 1], &[2, 3])?;
        b.causal_attention(&t[0], &t[1], &t[2], &seg)
    });
    let (logp, adv) = (uniform(50, 8, -1.0, 1.0), r(51, 8));
    check_grad("policy_loss", &[(&logp, &[8])], |b, t| {
        b.policy_loss(&t[0], &f32t(b, &[0.0; 8], &[8]), &f32t(b, &adv, &[8]), 0.2)
    });
}

#[test]
#[should_panic(expected = "gradient of input 0")]
fn the_checker_catches_a_wrong_gradient() {
    // d(x * detach(x))/dx is x, not 2x: the finite differences must disagree.
    let x = r(60, 4);
    check_grad("x * detach(x)", &[(&x, &[4])], |b, t| b.mul(&t[0], &b.detach(&t[0])?));
}
