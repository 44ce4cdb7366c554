//! The argument checks of every [`Backend`](super::Backend) method, in one place: the checked
//! layer runs them before it calls a kernel, so every backend rejects the same inputs with the
//! same errors, and a kernel may assume what its doc says arrives checked.
//!
//! Each check reads only shapes and dtypes (never tensor values, which may live on a device).

use alloc::format;

use super::DType;
use super::families::CompareOp;
use super::kernels::Primitives;
use super::shape::{
    broadcast_shapes, check_dim, check_float, check_range, check_same_dtype, matmul_shape, numel,
};
use crate::{Error, Result};

/// The largest magnitude up to which every integer is exact in f64: the bound of an I64 `full`.
pub const EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Host data for a float tensor: a float dtype and a length that fills `shape`.
pub fn new_float(op: &'static str, len: usize, shape: &[usize], dtype: DType) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::dtype(
            op,
            format!("dtype {dtype} is not a float dtype; use tensor_i64 or tensor_bool"),
        ));
    }
    super::shape::check_data_len(op, len, shape)
}

/// `to_host_i64`: an I64 or Bool tensor.
pub fn host_i64(dtype: DType) -> Result<()> {
    if dtype.is_float() {
        return Err(Error::dtype("to_host_i64", format!("tensor has dtype {dtype}; cast it to i64 first")));
    }
    Ok(())
}

/// `full`: a countable shape and, for I64, an integer that f64 holds exactly. Returns the
/// value the kernel stores (0 or 1 for Bool).
pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<f64> {
    numel("full", shape)?;
    match dtype {
        DType::Bool => Ok(f64::from(u8::from(value != 0.0))),
        DType::I64 if num_traits::Float::fract(value) != 0.0 || value.abs() > EXACT_INT => {
            Err(Error::invalid("full", format!("{value} is not an integer that i64 holds exactly")))
        }
        _ => Ok(value),
    }
}

/// A float operand of a unary op or reduction.
pub fn float<K: Primitives + ?Sized>(k: &K, op: &'static str, x: &K::Tensor) -> Result<()> {
    check_float(op, "the input", k.dtype_impl(x))
}

/// `clamp`'s bounds: an interval, no NaN.
pub fn clamp_bounds(lo: f64, hi: f64) -> Result<()> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(Error::invalid("clamp", format!("bounds [{lo}, {hi}] are not an interval")));
    }
    Ok(())
}

/// Float operands of one dtype that broadcast together.
pub fn binary<K: Primitives + ?Sized>(k: &K, op: &'static str, a: &K::Tensor, b: &K::Tensor) -> Result<()> {
    let (da, db) = (k.dtype_impl(a), k.dtype_impl(b));
    check_float(op, "the left operand", da)?;
    check_float(op, "the right operand", db)?;
    check_same_dtype(op, da, db)?;
    broadcast_shapes(op, &k.shape_impl(a), &k.shape_impl(b)).map(|_| ())
}

/// Operands of a comparison: one dtype (Bool has no order), broadcasting.
pub fn compare<K: Primitives + ?Sized>(k: &K, op: CompareOp, a: &K::Tensor, b: &K::Tensor) -> Result<()> {
    let (da, db) = (k.dtype_impl(a), k.dtype_impl(b));
    check_same_dtype(op.name(), da, db)?;
    if op.is_ordered() && da == DType::Bool {
        return Err(Error::dtype(op.name(), "bool operands have no order; cast them first"));
    }
    broadcast_shapes(op.name(), &k.shape_impl(a), &k.shape_impl(b)).map(|_| ())
}

/// Operands of `where_`: a Bool condition, branches of one dtype, all three broadcasting.
pub fn where_<K: Primitives + ?Sized>(k: &K, cond: &K::Tensor, a: &K::Tensor, b: &K::Tensor) -> Result<()> {
    const OP: &str = "where_";
    let dc = k.dtype_impl(cond);
    if dc != DType::Bool {
        return Err(Error::dtype(OP, format!("the condition has dtype {dc}, bool is required")));
    }
    check_same_dtype(OP, k.dtype_impl(a), k.dtype_impl(b))?;
    let (c, a, b) = (k.shape_impl(cond), k.shape_impl(a), k.shape_impl(b));
    broadcast_shapes(OP, &broadcast_shapes(OP, &c, &a)?, &b)
        .map_err(|_| Error::shape(OP, format!("shapes {c:?}, {a:?} and {b:?} do not broadcast")))?;
    Ok(())
}

/// A float input and a valid dimension (`nonempty`: of size at least 1, for `max`).
pub fn along<K: Primitives + ?Sized>(
    k: &K,
    op: &'static str,
    x: &K::Tensor,
    dim: usize,
    nonempty: bool,
) -> Result<()> {
    float(k, op, x)?;
    let shape = k.shape_impl(x);
    check_dim(op, &shape, dim)?;
    if nonempty && shape[dim] == 0 {
        return Err(Error::shape(op, format!("dimension {dim} of shape {shape:?} is empty")));
    }
    Ok(())
}

/// `sort`: a float or I64 input, a valid dimension.
pub fn sort<K: Primitives + ?Sized>(k: &K, x: &K::Tensor, dim: usize) -> Result<()> {
    check_dim("sort", &k.shape_impl(x), dim)?;
    if k.dtype_impl(x) != DType::I64 {
        check_float("sort", "the input", k.dtype_impl(x))?;
    }
    Ok(())
}

/// `reshape`: the same element count.
pub fn reshape<K: Primitives + ?Sized>(k: &K, x: &K::Tensor, shape: &[usize]) -> Result<()> {
    let from = k.shape_impl(x);
    if numel("reshape", shape)? != numel("reshape", &from)? {
        return Err(Error::shape("reshape", format!("cannot reshape {from:?} into {shape:?}")));
    }
    Ok(())
}

/// `transpose`: two valid dimensions.
pub fn transpose<K: Primitives + ?Sized>(k: &K, x: &K::Tensor, d0: usize, d1: usize) -> Result<()> {
    let shape = k.shape_impl(x);
    check_dim("transpose", &shape, d0)?;
    check_dim("transpose", &shape, d1)
}

/// Whether two shapes have one rank and equal sizes in every dimension but `dim`.
pub fn fits_except(x: &[usize], y: &[usize], dim: usize) -> bool {
    x.len() == y.len() && x.iter().zip(y).enumerate().all(|(d, (p, q))| d == dim || p == q)
}

/// `cat`: at least one tensor, one dtype, equal sizes outside `dim`.
pub fn cat<K: Primitives + ?Sized>(k: &K, xs: &[K::Tensor], dim: usize) -> Result<()> {
    let first = xs.first().ok_or_else(|| Error::shape("cat", "no tensors to concatenate"))?;
    let a = k.shape_impl(first);
    check_dim("cat", &a, dim)?;
    for x in xs {
        check_same_dtype("cat", k.dtype_impl(first), k.dtype_impl(x))?;
        let b = k.shape_impl(x);
        if !fits_except(&a, &b, dim) {
            return Err(Error::shape(
                "cat",
                format!("shapes {a:?} and {b:?} differ outside dimension {dim}"),
            ));
        }
    }
    Ok(())
}

fn index_dtype<K: Primitives + ?Sized>(k: &K, op: &'static str, idx: &K::Tensor) -> Result<()> {
    let dt = k.dtype_impl(idx);
    if dt != DType::I64 {
        return Err(Error::dtype(op, format!("indices have dtype {dt}, i64 is required")));
    }
    Ok(())
}

/// `index_select`: a valid dimension and 1-D I64 indices.
pub fn index_select<K: Primitives + ?Sized>(k: &K, x: &K::Tensor, dim: usize, idx: &K::Tensor) -> Result<()> {
    const OP: &str = "index_select";
    check_dim(OP, &k.shape_impl(x), dim)?;
    index_dtype(k, OP, idx)?;
    let is = k.shape_impl(idx);
    if is.len() != 1 {
        return Err(Error::shape(OP, format!("indices must be 1-D, got shape {is:?}")));
    }
    Ok(())
}

/// `gather`: a valid dimension and I64 indices of `x`'s rank and sizes outside `dim`.
pub fn gather<K: Primitives + ?Sized>(k: &K, x: &K::Tensor, dim: usize, idx: &K::Tensor) -> Result<()> {
    const OP: &str = "gather";
    let (xs, is) = (k.shape_impl(x), k.shape_impl(idx));
    check_dim(OP, &xs, dim)?;
    index_dtype(k, OP, idx)?;
    if !fits_except(&xs, &is, dim) {
        return Err(Error::shape(
            OP,
            format!("index of shape {is:?} does not fit input of shape {xs:?} along dimension {dim}"),
        ));
    }
    Ok(())
}

/// `write_slice`: one dtype, `src` fits `dst` outside `dim` and inside the range along it.
pub fn write_slice<K: Primitives + ?Sized>(
    k: &K,
    dst: &K::Tensor,
    dim: usize,
    start: usize,
    src: &K::Tensor,
) -> Result<()> {
    const OP: &str = "write_slice";
    check_same_dtype(OP, k.dtype_impl(dst), k.dtype_impl(src))?;
    let (ds, ss) = (k.shape_impl(dst), k.shape_impl(src));
    if !fits_except(&ds, &ss, dim) {
        return Err(Error::shape(
            OP,
            format!("source of shape {ss:?} does not fit destination of shape {ds:?} along dimension {dim}"),
        ));
    }
    check_range(OP, &ds, dim, start, ss[dim])
}

/// `matmul`: float operands of one dtype with compatible shapes.
pub fn matmul<K: Primitives + ?Sized>(k: &K, a: &K::Tensor, b: &K::Tensor) -> Result<()> {
    let (da, db) = (k.dtype_impl(a), k.dtype_impl(b));
    check_float("matmul", "the left operand", da)?;
    check_float("matmul", "the right operand", db)?;
    check_same_dtype("matmul", da, db)?;
    matmul_shape("matmul", &k.shape_impl(a), &k.shape_impl(b)).map(|_| ())
}

/// `backward`: the loss is one float element.
pub fn loss<K: Primitives + ?Sized>(k: &K, loss: &K::Tensor) -> Result<()> {
    let (shape, dtype) = (k.shape_impl(loss), k.dtype_impl(loss));
    if numel("backward", &shape)? != 1 || !dtype.is_float() {
        return Err(Error::shape(
            "backward",
            format!("the loss must be one float element, got shape {shape:?} of dtype {dtype}"),
        ));
    }
    Ok(())
}

/// `assign_param`'s value: a float tensor of the parameter's shape.
pub fn assign_value<K: Primitives + ?Sized>(k: &K, param: &K::Tensor, value: &K::Tensor) -> Result<()> {
    check_float("assign_param", "the new value", k.dtype_impl(value))?;
    let (p, v) = (k.shape_impl(param), k.shape_impl(value));
    if p != v {
        return Err(Error::shape(
            "assign_param",
            format!("parameter has shape {p:?} but the value has shape {v:?}"),
        ));
    }
    Ok(())
}

/// The last dimension of a shape (an error for a scalar).
pub fn last_dim(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape.len().checked_sub(1).ok_or_else(|| Error::shape(op, "a scalar (shape []) has no last dimension"))
}

/// `selective_log_prob`: float logits `[..., vocab]`, I64 targets `[...]`.
pub fn selective_log_prob<K: Primitives + ?Sized>(
    k: &K,
    logits: &K::Tensor,
    targets: &K::Tensor,
) -> Result<()> {
    const OP: &str = "selective_log_prob";
    check_float(OP, "the logits", k.dtype_impl(logits))?;
    index_dtype(k, OP, targets)?;
    let (ls, ts) = (k.shape_impl(logits), k.shape_impl(targets));
    let last = last_dim(OP, &ls)?;
    if ts[..] != ls[..last] {
        return Err(Error::shape(
            OP,
            format!("logits of shape {ls:?} need targets of shape {:?}, got {ts:?}", &ls[..last]),
        ));
    }
    Ok(())
}

/// `linear`: float `x [..., in]`, `w [out, in]`, optional `bias [out]`, one dtype.
pub fn linear<K: Primitives + ?Sized>(
    k: &K,
    x: &K::Tensor,
    w: &K::Tensor,
    bias: Option<&K::Tensor>,
) -> Result<()> {
    let (xs, ws) = (k.shape_impl(x), k.shape_impl(w));
    check_float("linear", "the input", k.dtype_impl(x))?;
    check_same_dtype("linear", k.dtype_impl(x), k.dtype_impl(w))?;
    if ws.len() != 2 || xs.last() != Some(&ws[1]) {
        return Err(Error::shape(
            "linear",
            format!("input of shape {xs:?} does not fit weight of shape {ws:?}"),
        ));
    }
    if let Some(bias) = bias {
        check_same_dtype("linear", k.dtype_impl(x), k.dtype_impl(bias))?;
        let bs = k.shape_impl(bias);
        if bs[..] != ws[..1] {
            return Err(Error::shape("linear", format!("bias has shape {bs:?}, expected [{}]", ws[0])));
        }
    }
    Ok(())
}

/// `rms_norm`: float `x [..., hidden]`, `weight [hidden]` of `x`'s dtype.
pub fn rms_norm<K: Primitives + ?Sized>(k: &K, x: &K::Tensor, weight: &K::Tensor) -> Result<()> {
    check_float("rms_norm", "the input", k.dtype_impl(x))?;
    check_same_dtype("rms_norm", k.dtype_impl(x), k.dtype_impl(weight))?;
    let (xs, ws) = (k.shape_impl(x), k.shape_impl(weight));
    let last = last_dim("rms_norm", &xs)?;
    if ws[..] != xs[last..] {
        return Err(Error::shape(
            "rms_norm",
            format!("weight of shape {ws:?} does not fit input of shape {xs:?}"),
        ));
    }
    Ok(())
}

/// `attention`: `q [b, hq, sq, d]`, `k [b, hkv, skv, d]`, `v [b, hkv, skv, dv]` with `hkv`
/// dividing `hq`, float of one dtype, a Bool mask broadcasting to `[b, hq, sq, skv]`.
pub fn attention<K: Primitives + ?Sized>(
    k: &K,
    q: &K::Tensor,
    key: &K::Tensor,
    v: &K::Tensor,
    mask: &K::Tensor,
) -> Result<()> {
    const OP: &str = "attention";
    let (qs, ks, ms) = (k.shape_impl(q), k.shape_impl(key), k.shape_impl(mask));
    qkv(OP, k, q, key, v)?;
    let mask_dtype = k.dtype_impl(mask);
    if mask_dtype != DType::Bool {
        return Err(Error::dtype(OP, format!("mask has dtype {mask_dtype}, bool is required")));
    }
    let scores_shape = [qs[0], qs[1], qs[2], ks[2]];
    if broadcast_shapes(OP, &ms, &scores_shape).ok().as_deref() != Some(&scores_shape[..]) {
        return Err(Error::shape(OP, format!("mask of shape {ms:?} does not broadcast to {scores_shape:?}")));
    }
    Ok(())
}

/// The shapes and dtypes of attention's `q`, `k`, `v`.
fn qkv<K: Primitives + ?Sized>(
    op: &'static str,
    k: &K,
    q: &K::Tensor,
    key: &K::Tensor,
    v: &K::Tensor,
) -> Result<()> {
    let (qs, ks, vs) = (k.shape_impl(q), k.shape_impl(key), k.shape_impl(v));
    let fits = qs.len() == 4
        && ks.len() == 4
        && vs.len() == 4
        && qs[0] == ks[0]
        && ks[..3] == vs[..3]
        && qs[3] == ks[3]
        && ks[1] > 0
        && qs[1].is_multiple_of(ks[1]);
    if !fits {
        return Err(Error::shape(
            op,
            format!(
                "q {qs:?}, k {ks:?}, v {vs:?} are incompatible (need [b, hq, sq, d], [b, hkv, skv, d], [b, hkv, skv, dv] with hkv dividing hq)"
            ),
        ));
    }
    check_float(op, "q", k.dtype_impl(q))?;
    check_same_dtype(op, k.dtype_impl(q), k.dtype_impl(key))?;
    check_same_dtype(op, k.dtype_impl(q), k.dtype_impl(v))
}

/// `causal_attention`: attention's `q`, `k`, `v` with `sq = skv = s`, I64 `segment_ids [b, s]`.
pub fn causal_attention<K: Primitives + ?Sized>(
    k: &K,
    q: &K::Tensor,
    key: &K::Tensor,
    v: &K::Tensor,
    segment_ids: &K::Tensor,
) -> Result<()> {
    const OP: &str = "causal_attention";
    let (qs, ks, ss) = (k.shape_impl(q), k.shape_impl(key), k.shape_impl(segment_ids));
    if qs.len() != 4 || ks.len() != 4 || ss.len() != 2 || ss[..] != [qs[0], qs[2]] || ks[2] != qs[2] {
        return Err(Error::shape(
            OP,
            format!(
                "segment_ids of shape {ss:?} do not fit q {qs:?} and k {ks:?} (need [b, s] with sq = skv = s)"
            ),
        ));
    }
    let dt = k.dtype_impl(segment_ids);
    if dt != DType::I64 {
        return Err(Error::dtype(OP, format!("segment_ids have dtype {dt}, i64 is required")));
    }
    qkv(OP, k, q, key, v)
}

/// `adamw_update`: step from 1; a float parameter and gradient of one shape, f32 moments of it.
pub fn adamw<K: Primitives + ?Sized>(
    k: &K,
    param: &K::Tensor,
    grad: &K::Tensor,
    m: &K::Tensor,
    v: &K::Tensor,
    step: u64,
) -> Result<()> {
    const OP: &str = "adamw_update";
    if step == 0 {
        return Err(Error::invalid(OP, "step counts from 1"));
    }
    check_float(OP, "the parameter", k.dtype_impl(param))?;
    check_float(OP, "the gradient", k.dtype_impl(grad))?;
    let shape = k.shape_impl(param);
    for (what, t) in [("the gradient", grad), ("m", m), ("v", v)] {
        let s = k.shape_impl(t);
        if s != shape {
            return Err(Error::shape(
                OP,
                format!("{what} has shape {s:?} but the parameter has shape {shape:?}"),
            ));
        }
    }
    for (what, t) in [("m", m), ("v", v)] {
        let dt = k.dtype_impl(t);
        if dt != DType::F32 {
            return Err(Error::dtype(OP, format!("{what} has dtype {dt}, f32 is required")));
        }
    }
    Ok(())
}

/// `clip_grad_norm`: a finite positive bound and float gradients.
pub fn clip<K: Primitives + ?Sized>(k: &K, grads: &[K::Tensor], max_norm: f64) -> Result<()> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::invalid(
            "clip_grad_norm",
            format!("max_norm must be finite and positive, got {max_norm}"),
        ));
    }
    grads.iter().try_for_each(|g| check_float("clip_grad_norm", "a gradient", k.dtype_impl(g)))
}
