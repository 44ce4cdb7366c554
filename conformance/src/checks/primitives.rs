//! Level 1, element-wise and reductions: every primitive's forward values and gradient against
//! the reference, host transfer, and the autodiff contract. Layout and indexing primitives are in
//! [`super::layout`].

use orz_core::Result;
use orz_core::backend::{Backend, DType};
use proptest::prelude::*;

use super::{broadcast_pair, element, mask, tensor, tensor_and_dim, values};
use crate::harness::{Harness, Input, Mode, TensorOp};
use crate::runner::CheckOutcome;

/// A primitive with its scalar parameters, applied to the inputs in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Prim {
    /// `add(x0, x1)`.
    Add,
    /// `sub(x0, x1)`.
    Sub,
    /// `mul(x0, x1)`.
    Mul,
    /// `div(x0, x1)`.
    Div,
    /// `maximum(x0, x1)`.
    Maximum,
    /// `minimum(x0, x1)`.
    Minimum,
    /// `neg(x0)`.
    Neg,
    /// `exp(x0)`.
    Exp,
    /// `log(x0)`.
    Log,
    /// `sqrt(x0)`.
    Sqrt,
    /// `sigmoid(x0)`.
    Sigmoid,
    /// `tanh(x0)`.
    Tanh,
    /// `powf(x0, p)`.
    Powf(f64),
    /// `affine(x0, mul, add)`.
    Affine(f64, f64),
    /// `clamp(x0, lo, hi)`.
    Clamp(f64, f64),
    /// `eq(x0, x1)`.
    Eq,
    /// `gt(x0, x1)`.
    Gt,
    /// `ge(x0, x1)`.
    Ge,
    /// `where_(x0, x1, x2)`.
    Where,
    /// `sum(x0, dim, keepdim)`.
    Sum(usize, bool),
    /// `max(x0, dim, keepdim)`.
    Max(usize, bool),
    /// `cumsum(x0, dim)`.
    Cumsum(usize),
    /// `sort(x0, dim, descending)`: values and indices.
    Sort(usize, bool),
    /// `cast(x0, dtype)` to every dtype: three floats, I64 (of `trunc`-safe values), Bool.
    CastAll,
}

impl TensorOp for Prim {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let x = &xs[0];
        let y = || &xs[1];
        let one = |t: Result<C::Tensor>| t.map(|t| vec![t]);
        match *self {
            Prim::Add => one(b.add(x, y())),
            Prim::Sub => one(b.sub(x, y())),
            Prim::Mul => one(b.mul(x, y())),
            Prim::Div => one(b.div(x, y())),
            Prim::Maximum => one(b.maximum(x, y())),
            Prim::Minimum => one(b.minimum(x, y())),
            Prim::Neg => one(b.neg(x)),
            Prim::Exp => one(b.exp(x)),
            Prim::Log => one(b.log(x)),
            Prim::Sqrt => one(b.sqrt(x)),
            Prim::Sigmoid => one(b.sigmoid(x)),
            Prim::Tanh => one(b.tanh(x)),
            Prim::Powf(p) => one(b.powf(x, p)),
            Prim::Affine(m, a) => one(b.affine(x, m, a)),
            Prim::Clamp(lo, hi) => one(b.clamp(x, lo, hi)),
            Prim::Eq => one(b.eq(x, y())),
            Prim::Gt => one(b.gt(x, y())),
            Prim::Ge => one(b.ge(x, y())),
            Prim::Where => one(b.where_(x, y(), &xs[2])),
            Prim::Sum(d, k) => one(b.sum(x, d, k)),
            Prim::Max(d, k) => one(b.max(x, d, k)),
            Prim::Cumsum(d) => one(b.cumsum(x, d)),
            Prim::Sort(d, desc) => b.sort(x, d, desc).map(|(v, i)| vec![v, i]),
            Prim::CastAll => DType::ALL.iter().map(|&d| b.cast(x, d)).collect::<Result<Vec<_>>>(),
        }
    }
}

/// A unary primitive on inputs in `[lo, hi)`, forward and gradient.
fn unary<B: Backend>(
    backend: &B,
    dtype: DType,
    check: &'static str,
    op: Prim,
    lo: f64,
    hi: f64,
) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run(check, tensor(3, 5, lo, hi), |(shape, x), stats| {
        h.check_op(&op, &[h.float(shape, x)], Mode::Grad, stats)
    })
}

/// A broadcasting binary primitive, `x0` in `[-3, 3)` and `x1` from `rhs`; `mode` says whether
/// gradients are checked.
fn binary<B: Backend>(
    backend: &B,
    dtype: DType,
    check: &'static str,
    op: Prim,
    rhs: BoxedStrategy<f64>,
    mode: Mode,
) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = broadcast_pair(3, 4).prop_flat_map(move |(sa, sb)| {
        let (na, nb): (usize, usize) = (sa.iter().product(), sb.iter().product());
        (Just(sa), Just(sb), values(na, -3.0, 3.0), proptest::collection::vec(rhs.clone(), nb))
    });
    h.run(check, strategy, |(sa, sb, a, b), stats| {
        h.check_op(&op, &[h.float(sa, a), h.float(sb, b)], mode, stats)
    })
}

/// `add`, broadcasting.
pub fn check_add<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "add", Prim::Add, element(-3.0, 3.0), Mode::Grad)
}
/// `sub`, broadcasting.
pub fn check_sub<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "sub", Prim::Sub, element(-3.0, 3.0), Mode::Grad)
}
/// `mul`, broadcasting.
pub fn check_mul<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "mul", Prim::Mul, element(-3.0, 3.0), Mode::Grad)
}
/// `div`, broadcasting, divisors in `±[0.5, 2)`.
pub fn check_div<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    let divisor = (any::<bool>(), element(0.5, 2.0)).prop_map(|(s, v)| if s { v } else { -v }).boxed();
    binary(b, dtype, "div", Prim::Div, divisor, Mode::Grad)
}
/// `maximum`, broadcasting, with ties (gradient split half and half).
pub fn check_maximum<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "maximum", Prim::Maximum, element(-3.0, 3.0), Mode::Grad)
}
/// `minimum`, broadcasting, with ties.
pub fn check_minimum<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "minimum", Prim::Minimum, element(-3.0, 3.0), Mode::Grad)
}
/// `eq`, broadcasting (Bool result, exact).
pub fn check_eq<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "eq", Prim::Eq, element(-3.0, 3.0), Mode::Forward)
}
/// `gt`, broadcasting.
pub fn check_gt<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "gt", Prim::Gt, element(-3.0, 3.0), Mode::Forward)
}
/// `ge`, broadcasting.
pub fn check_ge<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    binary(b, dtype, "ge", Prim::Ge, element(-3.0, 3.0), Mode::Forward)
}
/// `neg`.
pub fn check_neg<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    unary(b, dtype, "neg", Prim::Neg, -3.0, 3.0)
}
/// `exp` on `[-4, 4)`.
pub fn check_exp<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    unary(b, dtype, "exp", Prim::Exp, -4.0, 4.0)
}
/// `log` on `[0.05, 8)`.
pub fn check_log<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    unary(b, dtype, "log", Prim::Log, 0.05, 8.0)
}
/// `sqrt` on `[0.05, 8)`.
pub fn check_sqrt<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    unary(b, dtype, "sqrt", Prim::Sqrt, 0.05, 8.0)
}
/// `sigmoid`.
pub fn check_sigmoid<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    unary(b, dtype, "sigmoid", Prim::Sigmoid, -6.0, 6.0)
}
/// `tanh`.
pub fn check_tanh<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    unary(b, dtype, "tanh", Prim::Tanh, -3.0, 3.0)
}

/// `powf` for exponents -0.5, 0.5, 1.5, 2, 3 on `[0.25, 4)`.
pub fn check_powf<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let p = prop_oneof![Just(-0.5), Just(0.5), Just(1.5), Just(2.0), Just(3.0)];
    h.run("powf", (tensor(3, 5, 0.25, 4.0), p), |((shape, x), p), stats| {
        h.check_op(&Prim::Powf(*p), &[h.float(shape, x)], Mode::Grad, stats)
    })
}

/// `affine` with scalars in `[-2, 2)`.
pub fn check_affine<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run(
        "affine",
        (tensor(3, 5, -3.0, 3.0), element(-2.0, 2.0), element(-2.0, 2.0)),
        |((s, x), m, a), st| h.check_op(&Prim::Affine(*m, *a), &[h.float(s, x)], Mode::Grad, st),
    )
}

/// `clamp` with values exactly at, just inside and just outside the bounds (the gradient passes
/// at the bounds, inclusive).
pub fn check_clamp<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let bounds = (element(-2.0, 0.0), element(0.0, 2.0));
    let strategy = (super::shape(3, 5), bounds).prop_flat_map(|(shape, (lo, hi))| {
        let n: usize = shape.iter().product();
        let near =
            |c: f64| prop_oneof![Just(c), Just(c + 0.004), Just(c - 0.004), Just(c + 0.02), Just(c - 0.02)];
        let x = prop_oneof![2 => element(-3.0, 3.0), 1 => near(lo), 1 => near(hi)];
        (Just(shape), Just((lo, hi)), proptest::collection::vec(x, n))
    });
    h.run("clamp", strategy, |(shape, (lo, hi), x), stats| {
        let (lo, hi) = (dtype.round(*lo), dtype.round(*hi));
        h.check_op(&Prim::Clamp(lo, hi), &[h.float(shape, x)], Mode::Grad, stats)
    })
}

/// `where_` with a broadcast condition; NaN and inf in the branch not taken must reach neither
/// the result nor the gradients.
pub fn check_where<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = (tensor(3, 4, -3.0, 3.0), any::<bool>()).prop_flat_map(|((shape, a), poison)| {
        let n: usize = shape.iter().product();
        (Just(shape), Just(a), values(n, -3.0, 3.0), mask(n), Just(poison))
    });
    h.run("where", strategy, |(shape, a, b, cond, poison), stats| {
        let (mut a, mut b) = (a.clone(), b.clone());
        if *poison {
            for (i, &c) in cond.iter().enumerate() {
                if c { b[i] = f64::NAN } else { a[i] = f64::INFINITY }
            }
        }
        let inputs = [Input::mask(shape, cond), h.float(shape, &a), h.float(shape, &b)];
        h.check_op(&Prim::Where, &inputs, Mode::Grad, stats)
    })
}

/// `sum`, `max` (ties split the gradient evenly) and `cumsum` along each dimension.
fn reduction<B: Backend>(
    backend: &B,
    dtype: DType,
    check: &'static str,
    op: fn(usize, bool) -> Prim,
) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run(check, (tensor_and_dim(3, 5, -3.0, 3.0), any::<bool>()), |((shape, dim, x), keep), stats| {
        h.check_op(&op(*dim, *keep), &[h.float(shape, x)], Mode::Grad, stats)
    })
}

/// `sum` along a dimension.
pub fn check_sum<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    reduction(b, dtype, "sum", Prim::Sum)
}
/// `max` along a dimension, with tied maxima.
pub fn check_max<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    reduction(b, dtype, "max", Prim::Max)
}
/// `cumsum` along a dimension.
pub fn check_cumsum<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    reduction(b, dtype, "cumsum", |d, _| Prim::Cumsum(d))
}
/// Stable `sort`, both directions, with ties: values (and their gradient) and indices (exact).
pub fn check_sort<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    reduction(b, dtype, "sort", Prim::Sort)
}

/// `cast` to every dtype (float to float rounds, to I64 truncates, to Bool is `!= 0`), with the
/// gradient through the float casts.
pub fn check_cast<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run("cast", tensor(3, 4, -5.0, 5.0), |(shape, x), stats| {
        h.check_op(&Prim::CastAll, &[h.float(shape, x)], Mode::Grad, stats)
    })
}

/// Host transfer and creation: `tensor_f32`/`tensor_f64` with `to_host_f32`/`to_host_f64`,
/// `tensor_i64`/`to_host_i64`, `tensor_bool`, `full` and `zeros` in every dtype, `shape`, `dtype`.
pub fn check_host_transfer<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = tensor(3, 4, -100.0, 100.0).prop_flat_map(|(s, x)| {
        let n = s.iter().product();
        (Just(s), Just(x), proptest::collection::vec(-1000i64..1000, n), mask(n), -8i64..8)
    });
    h.run("host_transfer", strategy, |(shape, x, ids, m, fill), stats| {
        let data: Vec<f64> = x.iter().map(|&v| dtype.round(v)).collect();
        h.check_op(&Transfer { fill: *fill as f64 }, &[Input::mask(shape, m)], Mode::Forward, stats)?;
        let b = h.backend;
        let f32s: Vec<f32> = data.iter().map(|&v| v as f32).collect();
        let failed = |e: orz_core::Error| format!("host transfer failed: {e}");
        let t32 = b.tensor_f32(&f32s, shape, dtype).map_err(failed)?;
        let t64 = b.tensor_f64(&data, shape, dtype).map_err(failed)?;
        let back32: Vec<f64> = b.to_host_f32(&t32).map_err(failed)?.into_iter().map(f64::from).collect();
        let (back64, via64) = (b.to_host_f64(&t32).map_err(failed)?, b.to_host_f64(&t64).map_err(failed)?);
        let back_ids = b.tensor_i64(ids, shape).and_then(|i| b.to_host_i64(&i)).map_err(failed)?;
        let (got_shape, got_dtype) = (b.shape(&t64), b.dtype(&t64));
        for (what, got) in [
            ("tensor_f32 -> to_host_f32", &back32),
            ("tensor_f32 -> to_host_f64", &back64),
            ("tensor_f64 -> to_host_f64", &via64),
        ] {
            crate::harness::compare(what, shape, got, &data, crate::tolerance::Tolerance::EXACT, stats)?;
        }
        if back_ids != *ids || got_shape != *shape || got_dtype != dtype {
            return Err(format!(
                "i64 round trip, shape or dtype differ: {back_ids:?} / {got_shape:?} / {got_dtype}"
            ));
        }
        Ok(())
    })
}

/// `full` and `zeros` in every dtype and the Bool mask's values, compared with the reference.
#[derive(Debug)]
struct Transfer {
    fill: f64,
}

impl TensorOp for Transfer {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let shape = b.shape(&xs[0]);
        let mut out = vec![xs[0].clone(), b.cast(&xs[0], DType::F32)?];
        for d in DType::ALL {
            out.push(b.full(&shape, self.fill, d)?);
            out.push(b.zeros(&shape, d)?);
        }
        Ok(out)
    }
}

/// The autodiff contract, run alike on both sides with the gradients as outputs: a parameter the
/// loss does not use gets no gradient, `detach` stops the gradient, `backward` accumulates
/// nothing across calls, `assign_param` is seen by every clone, and results computed with
/// recording off carry no gradient.
pub fn check_autodiff<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = tensor(2, 4, -2.0, 2.0).prop_flat_map(|(s, x)| {
        let n = s.iter().product();
        (Just(s), Just(x), values(n, -2.0, 2.0))
    });
    h.run("autodiff", strategy, |(shape, x, y), stats| {
        h.check_op(&Autodiff, &[h.float(shape, x), h.float(shape, y)], Mode::Forward, stats)
    })
}

/// The program of [`check_autodiff`]; a missing gradient is returned as an empty tensor.
#[derive(Debug)]
struct Autodiff;

impl TensorOp for Autodiff {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let dtype = b.dtype(&xs[0]);
        let (x, unused) = (b.param(&xs[0])?, b.param(&xs[1])?);
        let grad_or_empty = |g: Option<C::Tensor>| g.map_or_else(|| b.zeros(&[0], dtype), Ok);
        // sum(detach(x) * x + x*x computed without recording): gradient detach(x) = x.
        let previous = b.set_grad_enabled(false);
        let untracked = b.mul(&x, &x);
        b.set_grad_enabled(previous);
        let loss = b.sum_all(&b.add(&b.mul(&b.detach(&x)?, &x)?, &untracked?)?)?;
        let (g1, g2) = (b.backward(&loss)?, b.backward(&loss)?);
        let mut out = vec![grad_or_empty(b.grad(&g1, &x)?)?, grad_or_empty(b.grad(&g2, &x)?)?];
        out.push(grad_or_empty(b.grad(&g1, &unused)?)?);
        // assign_param: the clone sees the new values; a new graph uses them.
        let alias = x.clone();
        b.assign_param(&x, &xs[1])?;
        out.push(b.detach(&alias)?);
        let g3 = b.backward(&b.sum_all(&b.mul(&x, &x)?)?)?;
        out.push(grad_or_empty(b.grad(&g3, &alias)?)?);
        Ok(out)
    }
}
