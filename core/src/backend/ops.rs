//! Default bodies of the provided layout helpers and math composites of [`Backend`], built from
//! its primitives. A backend overriding one of them can still call these, e.g. as a fallback.

use alloc::format;
use alloc::vec::Vec;

use super::shape::{broadcast_shapes, check_dim, check_float};
use super::{Backend, DType};
use crate::{Error, Result};

/// Runs `f` with graph recording off, restoring the previous state afterwards (also on error).
pub fn no_grad<B: Backend + ?Sized, R>(b: &B, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let previous = b.set_grad_enabled(false);
    let out = f();
    b.set_grad_enabled(previous);
    out
}

/// The last dimension of `x` (an error for a scalar).
pub fn last_dim<B: Backend + ?Sized>(b: &B, op: &'static str, x: &B::Tensor) -> Result<usize> {
    b.shape(x)
        .len()
        .checked_sub(1)
        .ok_or_else(|| Error::shape(op, "a scalar (shape []) has no last dimension"))
}

/// A 1-D I64 tensor `[0, 1, .., n - 1]`.
pub fn arange<B: Backend + ?Sized>(b: &B, n: usize) -> Result<B::Tensor> {
    let data: Vec<i64> = (0..n as i64).collect();
    b.tensor_i64(&data, &[n])
}

/// Default of [`Backend::unsqueeze`].
pub fn unsqueeze<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize) -> Result<B::Tensor> {
    let mut shape = b.shape(x);
    if dim > shape.len() {
        return Err(Error::shape("unsqueeze", format!("cannot insert dimension {dim} into shape {shape:?}")));
    }
    shape.insert(dim, 1);
    b.reshape(x, &shape)
}

/// Default of [`Backend::squeeze`].
pub fn squeeze<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize) -> Result<B::Tensor> {
    let mut shape = b.shape(x);
    check_dim("squeeze", &shape, dim)?;
    if shape[dim] != 1 {
        return Err(Error::shape(
            "squeeze",
            format!("dimension {dim} of shape {shape:?} does not have size 1"),
        ));
    }
    shape.remove(dim);
    b.reshape(x, &shape)
}

/// Default of [`Backend::broadcast_to`]: `where_(true, x, x)` over the target shape, which works
/// for every dtype and sums the gradient back over the broadcast dimensions.
pub fn broadcast_to<B: Backend + ?Sized>(b: &B, x: &B::Tensor, shape: &[usize]) -> Result<B::Tensor> {
    let from = b.shape(x);
    if broadcast_shapes("broadcast_to", &from, shape)? != shape {
        return Err(Error::shape("broadcast_to", format!("shape {from:?} cannot be broadcast to {shape:?}")));
    }
    let all = b.full(shape, 1.0, DType::Bool)?;
    b.where_(&all, x, x)
}

/// Default of [`Backend::logical_and`]: `where_(a, b, a)`.
pub fn logical_and<B: Backend + ?Sized>(b: &B, x: &B::Tensor, y: &B::Tensor) -> Result<B::Tensor> {
    for t in [x, y] {
        if b.dtype(t) != DType::Bool {
            return Err(Error::dtype(
                "logical_and",
                format!("operand has dtype {}, bool is required", b.dtype(t)),
            ));
        }
    }
    b.where_(x, y, x)
}

/// Default of [`Backend::sum_all`]: flatten, then sum.
pub fn sum_all<B: Backend + ?Sized>(b: &B, x: &B::Tensor) -> Result<B::Tensor> {
    let n = super::shape::numel("sum_all", &b.shape(x))?;
    b.sum(&b.reshape(x, &[n])?, 0, false)
}

/// Default of [`Backend::argmax`]: the first index of a stable descending sort.
pub fn argmax<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize, keepdim: bool) -> Result<B::Tensor> {
    let (_, idx) = b.sort(x, dim, true)?;
    let first = b.narrow(&idx, dim, 0, 1)?;
    if keepdim { Ok(first) } else { b.squeeze(&first, dim) }
}

/// Default of [`Backend::mean`]: `sum * (1 / size)`.
pub fn mean<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize, keepdim: bool) -> Result<B::Tensor> {
    let shape = b.shape(x);
    check_dim("mean", &shape, dim)?;
    b.affine(&b.sum(x, dim, keepdim)?, 1.0 / shape[dim] as f64, 0.0)
}

/// `(x - m, m)` with `m` the detached maximum along `dim` (kept as size 1), replaced by 0 where
/// it is infinite, so that a row of `-inf` stays `-inf` instead of becoming NaN. Every softmax
/// default shifts by it and never adds `m` back before the shifted values are used: with
/// `|m|` much larger than the log of the row's mass, `x - (m + log s)` would lose `log s` to
/// rounding (a fully masked attention row, filled with the dtype's minimum, would sum its
/// values instead of averaging them).
fn shift_by_max<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize) -> Result<(B::Tensor, B::Tensor)> {
    let dtype = b.dtype(x);
    let m = b.detach(&b.max(x, dim, true)?)?;
    let finite = b.logical_and(
        &b.gt(&m, &b.full(&[], f64::NEG_INFINITY, dtype)?)?,
        &b.lt(&m, &b.full(&[], f64::INFINITY, dtype)?)?,
    )?;
    let m = b.where_(&finite, &m, &b.zeros(&[], dtype)?)?;
    Ok((b.sub(x, &m)?, m))
}

/// Default of [`Backend::logsumexp`]: `log(sum(exp(x - m))) + m` with `m` the max along `dim`.
pub fn logsumexp<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize, keepdim: bool) -> Result<B::Tensor> {
    let (z, m) = shift_by_max(b, x, dim)?;
    let lse = b.add(&b.log(&b.sum(&b.exp(&z)?, dim, true)?)?, &m)?;
    if keepdim { Ok(lse) } else { b.squeeze(&lse, dim) }
}

/// Default of [`Backend::log_softmax`]: `(x - m) - log(sum(exp(x - m)))`.
pub fn log_softmax<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize) -> Result<B::Tensor> {
    let (z, _) = shift_by_max(b, x, dim)?;
    b.sub(&z, &b.log(&b.sum(&b.exp(&z)?, dim, true)?)?)
}

/// Default of [`Backend::softmax`]: `e / sum(e)` with `e = exp(x - m)`.
pub fn softmax<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: usize) -> Result<B::Tensor> {
    let (z, _) = shift_by_max(b, x, dim)?;
    let e = b.exp(&z)?;
    b.div(&e, &b.sum(&e, dim, true)?)
}

/// Default of [`Backend::silu`]: `x * sigmoid(x)`.
pub fn silu<B: Backend + ?Sized>(b: &B, x: &B::Tensor) -> Result<B::Tensor> {
    b.mul(x, &b.sigmoid(x)?)
}

fn check_mask<B: Backend + ?Sized>(b: &B, op: &'static str, x: &B::Tensor, mask: &B::Tensor) -> Result<()> {
    check_float(op, "x", b.dtype(x))?;
    if b.dtype(mask) != DType::Bool {
        return Err(Error::dtype(op, format!("mask has dtype {}, bool is required", b.dtype(mask))));
    }
    let (xs, ms) = (b.shape(x), b.shape(mask));
    if xs != ms {
        return Err(Error::shape(op, format!("x has shape {xs:?} but mask has shape {ms:?}")));
    }
    Ok(())
}

fn reduce<B: Backend + ?Sized>(b: &B, x: &B::Tensor, dim: Option<usize>) -> Result<B::Tensor> {
    match dim {
        None => b.sum_all(x),
        Some(d) => b.sum(x, d, false),
    }
}

/// Default of [`Backend::masked_sum`]: `sum(where_(mask, x, 0))`.
pub fn masked_sum<B: Backend + ?Sized>(
    b: &B,
    x: &B::Tensor,
    mask: &B::Tensor,
    dim: Option<usize>,
) -> Result<B::Tensor> {
    check_mask(b, "masked_sum", x, mask)?;
    reduce(b, &b.where_(mask, x, &b.zeros(&[], b.dtype(x))?)?, dim)
}

/// Default of [`Backend::masked_mean`]: `masked_sum / max(count, 1)`, the count taken in f32 (exact
/// up to 2^24 selected elements) and cast to `x`'s dtype.
pub fn masked_mean<B: Backend + ?Sized>(
    b: &B,
    x: &B::Tensor,
    mask: &B::Tensor,
    dim: Option<usize>,
) -> Result<B::Tensor> {
    check_mask(b, "masked_mean", x, mask)?;
    let total = b.masked_sum(x, mask, dim)?;
    let count = reduce(b, &b.cast(mask, DType::F32)?, dim)?;
    let count = b.cast(&b.maximum(&count, &b.full(&[], 1.0, DType::F32)?)?, b.dtype(x))?;
    b.div(&total, &count)
}

/// Default of [`Backend::selective_log_prob`]: `gather(log_softmax(logits), targets)` along the
/// last dimension.
pub fn selective_log_prob<B: Backend + ?Sized>(
    b: &B,
    logits: &B::Tensor,
    targets: &B::Tensor,
) -> Result<B::Tensor> {
    let last = last_dim(b, "selective_log_prob", logits)?;
    let logp = b.log_softmax(logits, last)?;
    b.squeeze(&b.gather(&logp, last, &b.unsqueeze(targets, last)?)?, last)
}
