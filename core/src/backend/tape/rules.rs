//! The vector-Jacobian product of every op the [`Tape`](super::Tape) records, each written once
//! with the inner backend's kernels and following the conventions of the
//! [backend docs](crate::backend): `clamp` passes the gradient on `lo <= x <= hi`,
//! `maximum`/`minimum` split it half and half on ties, the `max` reduction splits it evenly
//! among tied maxima, `where_` gives exactly 0 to the untaken branch, and broadcast operands get
//! it summed over the broadcast dimensions. Gradients keep their input's dtype.

use alloc::vec;
use alloc::vec::Vec;

use crate::Result;
use crate::backend::DType;
use crate::backend::families::{BinaryOp, CompareOp, ReduceOp, UnaryOp};
use crate::backend::kernels::Primitives;

/// What an op's gradient needs: the op and the inner tensors (or shapes) it saved.
pub(super) enum Rule<T> {
    /// `y = op(x)`.
    Unary { op: UnaryOp, x: T, y: T },
    /// `y = op(a, b)`, broadcast.
    Binary { op: BinaryOp, a: T, b: T, y: T },
    /// `where_(cond, a, b)`; inputs `[cond, a, b]`, the branches' shapes saved.
    Where { cond: T, a: Vec<usize>, b: Vec<usize> },
    /// `y = op(x)` along `dim` (`y` with or without the dimension).
    Reduce { op: ReduceOp, x: T, y: T, dim: usize },
    /// Inclusive cumulative sum along `dim`.
    Cumsum { dim: usize },
    /// The values of a sort along `dim`, with the positions `idx` they came from.
    Sort { idx: T, dim: usize },
    /// A reshape of an input of shape `shape`.
    Reshape { shape: Vec<usize> },
    /// A transpose of `d0` and `d1`.
    Transpose { d0: usize, d1: usize },
    /// The slice at `start` along `dim` of an input of shape `shape`.
    Narrow { shape: Vec<usize>, dim: usize, start: usize },
    /// A concatenation along `dim` of inputs of sizes `lens` there.
    Cat { dim: usize, lens: Vec<usize> },
    /// `index_select` of an input of shape `shape`; inputs `[x, idx]`.
    IndexSelect { shape: Vec<usize>, dim: usize, idx: T },
    /// `gather` of an input of shape `shape`; inputs `[x, idx]`.
    Gather { shape: Vec<usize>, dim: usize, idx: T },
    /// `a @ b`, batch dimensions broadcast.
    Matmul { a: T, b: T },
    /// A cast between float dtypes from `from`.
    Cast { from: DType },
}

/// The gradients of an op's inputs (one entry per input, `None` where `needs` is false or the
/// input takes none) given `g`, the gradient of its result.
pub(super) fn vjp<F: Primitives>(
    f: &F,
    rule: &Rule<F::Tensor>,
    g: &F::Tensor,
    needs: &[bool],
) -> Result<Vec<Option<F::Tensor>>> {
    let need = |i: usize| needs.get(i).copied().unwrap_or(false);
    // Computes an input's gradient only when it is needed.
    let only = |i: usize, grad: &dyn Fn() -> Result<F::Tensor>| -> Result<Option<F::Tensor>> {
        if need(i) { grad().map(Some) } else { Ok(None) }
    };
    Ok(match rule {
        Rule::Unary { op, x, y } => vec![Some(unary(f, *op, x, y, g)?)],
        Rule::Binary { op, a, b, y } => {
            let (sa, sb) = (f.shape_impl(a), f.shape_impl(b));
            vec![
                only(0, &|| sum_to(f, &binary(f, *op, false, a, b, y, g)?, &sa))?,
                only(1, &|| sum_to(f, &binary(f, *op, true, a, b, y, g)?, &sb))?,
            ]
        }
        Rule::Where { cond, a, b } => {
            let zero = f.full_impl(&[], 0.0, f.dtype_impl(g))?;
            vec![
                None,
                only(1, &|| sum_to(f, &f.where_impl(cond, g, &zero)?, a))?,
                only(2, &|| sum_to(f, &f.where_impl(cond, &zero, g)?, b))?,
            ]
        }
        Rule::Reduce { op, x, y, dim } => vec![Some(reduce(f, *op, x, y, *dim, g)?)],
        Rule::Cumsum { dim } => {
            // The reversed cumulative sum: flip, cumsum, flip back (exact, no cancellation).
            let n = f.shape_impl(g)[*dim];
            let reversed: Vec<i64> = (0..n as i64).rev().collect();
            let flip = f.tensor_i64_impl(&reversed, &[n])?;
            let summed = f.cumsum_impl(&f.index_select_impl(g, *dim, &flip)?, *dim)?;
            vec![Some(f.index_select_impl(&summed, *dim, &flip)?)]
        }
        Rule::Sort { idx, dim } => {
            // Sorting the indices gives the inverse permutation: where each input position went.
            let (_, inverse) = f.sort_impl(idx, *dim, false)?;
            vec![Some(f.gather_impl(g, *dim, &inverse)?)]
        }
        Rule::Reshape { shape } => vec![Some(f.reshape_impl(g, shape)?)],
        Rule::Transpose { d0, d1 } => vec![Some(f.transpose_impl(g, *d0, *d1)?)],
        Rule::Narrow { shape, dim, start } => vec![Some(pad(f, g, shape, *dim, *start)?)],
        Rule::Cat { dim, lens } => {
            let mut start = 0;
            let mut out = Vec::with_capacity(lens.len());
            for (i, &len) in lens.iter().enumerate() {
                out.push(only(i, &|| f.narrow_impl(g, *dim, start, len))?);
                start += len;
            }
            out
        }
        Rule::IndexSelect { shape, dim, idx } => {
            vec![Some(f.index_add_impl(&f.full_impl(shape, 0.0, f.dtype_impl(g))?, *dim, idx, g)?), None]
        }
        Rule::Gather { shape, dim, idx } => {
            vec![Some(f.scatter_add_impl(&f.full_impl(shape, 0.0, f.dtype_impl(g))?, *dim, idx, g)?), None]
        }
        Rule::Matmul { a, b } => {
            let t = |x: &F::Tensor| {
                let r = f.shape_impl(x).len();
                f.transpose_impl(x, r - 2, r - 1)
            };
            vec![
                only(0, &|| sum_to(f, &f.matmul_impl(g, &t(b)?)?, &f.shape_impl(a)))?,
                only(1, &|| sum_to(f, &f.matmul_impl(&t(a)?, g)?, &f.shape_impl(b)))?,
            ]
        }
        Rule::Cast { from } => vec![Some(f.cast_impl(g, *from)?)],
    })
}

/// `x * mul + add` with the inner kernel.
fn affine<F: Primitives>(f: &F, x: &F::Tensor, mul: f64, add: f64) -> Result<F::Tensor> {
    f.unary(UnaryOp::Affine { mul, add }, x)
}

/// `g * dy/dx`, [`UnaryOp::derivative`] written with the inner kernels.
fn unary<F: Primitives>(
    f: &F,
    op: UnaryOp,
    x: &F::Tensor,
    y: &F::Tensor,
    g: &F::Tensor,
) -> Result<F::Tensor> {
    let mul = |a: &F::Tensor, b: &F::Tensor| f.binary(BinaryOp::Mul, a, b);
    match op {
        UnaryOp::Neg => f.unary(UnaryOp::Neg, g),
        UnaryOp::Exp => mul(g, y),
        UnaryOp::Log => f.binary(BinaryOp::Div, g, x),
        UnaryOp::Sqrt => f.binary(BinaryOp::Div, &affine(f, g, 0.5, 0.0)?, y),
        UnaryOp::Sigmoid => mul(g, &mul(y, &affine(f, y, -1.0, 1.0)?)?),
        UnaryOp::Tanh => mul(g, &affine(f, &mul(y, y)?, -1.0, 1.0)?),
        UnaryOp::Powf(p) => mul(g, &affine(f, &f.unary(UnaryOp::Powf(p - 1.0), x)?, p, 0.0)?),
        UnaryOp::Affine { mul, .. } => affine(f, g, mul, 0.0),
        UnaryOp::Clamp { lo, hi } => {
            // Inclusive bounds, compared in f32 (exact for every float dtype).
            let xf = if f.dtype_impl(x) == DType::F32 { x.clone() } else { f.cast_impl(x, DType::F32)? };
            let above = f.compare(CompareOp::Ge, &xf, &f.full_impl(&[], lo, DType::F32)?)?;
            let below = f.compare(CompareOp::Ge, &f.full_impl(&[], hi, DType::F32)?, &xf)?;
            let inside = f.where_impl(&above, &below, &above)?;
            f.where_impl(&inside, g, &f.full_impl(&[], 0.0, f.dtype_impl(g))?)
        }
    }
}

/// `g` where `wins`, 0 where `loses`, `g / 2` elsewhere (ties): the share of one operand of
/// `maximum`/`minimum` ([`BinaryOp::derivatives`]).
fn split<F: Primitives>(f: &F, wins: &F::Tensor, loses: &F::Tensor, g: &F::Tensor) -> Result<F::Tensor> {
    let zero = f.full_impl(&[], 0.0, f.dtype_impl(g))?;
    f.where_impl(wins, g, &f.where_impl(loses, &zero, &affine(f, g, 0.5, 0.0)?)?)
}

/// The gradient of `a` (of `b` when `second`) in `y = op(a, b)`, in the broadcast shape (before
/// the reduction to the operand's shape): [`BinaryOp::derivatives`] written with the inner kernels.
fn binary<F: Primitives>(
    f: &F,
    op: BinaryOp,
    second: bool,
    a: &F::Tensor,
    b: &F::Tensor,
    y: &F::Tensor,
    g: &F::Tensor,
) -> Result<F::Tensor> {
    let (this, other) = if second { (b, a) } else { (a, b) };
    let gt = |x: &F::Tensor, z: &F::Tensor| f.compare(CompareOp::Gt, x, z);
    match op {
        BinaryOp::Add => Ok(g.clone()),
        BinaryOp::Sub if second => f.unary(UnaryOp::Neg, g),
        BinaryOp::Sub => Ok(g.clone()),
        BinaryOp::Mul => f.binary(BinaryOp::Mul, g, other),
        // -g a / b² = -(g / b) * y, without squaring b (no overflow).
        BinaryOp::Div if second => {
            f.unary(UnaryOp::Neg, &f.binary(BinaryOp::Mul, &f.binary(BinaryOp::Div, g, b)?, y)?)
        }
        BinaryOp::Div => f.binary(BinaryOp::Div, g, b),
        BinaryOp::Maximum => split(f, &gt(this, other)?, &gt(other, this)?, g),
        BinaryOp::Minimum => split(f, &gt(other, this)?, &gt(this, other)?, g),
    }
}

/// The gradient of a reduction along `dim`: `g` broadcast back (`Sum`), or split evenly among
/// the positions equal to the maximum (`Max`, as PyTorch's `amax`).
fn reduce<F: Primitives>(
    f: &F,
    op: ReduceOp,
    x: &F::Tensor,
    y: &F::Tensor,
    dim: usize,
    g: &F::Tensor,
) -> Result<F::Tensor> {
    let shape = f.shape_impl(x);
    let mut kept = shape.clone();
    kept[dim] = 1;
    let g = f.reshape_impl(g, &kept)?;
    match op {
        ReduceOp::Sum => expand(f, &g, &shape),
        ReduceOp::Max => {
            let hit = f.compare(CompareOp::Eq, x, &f.reshape_impl(y, &kept)?)?;
            let count = f.reduce(ReduceOp::Sum, &f.cast_impl(&hit, f.dtype_impl(x))?, dim, true)?;
            let share = f.binary(BinaryOp::Div, &g, &count)?;
            f.where_impl(&hit, &share, &f.full_impl(&[], 0.0, f.dtype_impl(x))?)
        }
    }
}

/// `x` broadcast to `shape` (`where_(true, x, x)`, exact for every dtype).
fn expand<F: Primitives>(f: &F, x: &F::Tensor, shape: &[usize]) -> Result<F::Tensor> {
    f.where_impl(&f.full_impl(shape, 1.0, DType::Bool)?, x, x)
}

/// `g` summed over the dimensions along which an operand of shape `shape` was broadcast, then
/// reshaped to `shape`.
fn sum_to<F: Primitives>(f: &F, g: &F::Tensor, shape: &[usize]) -> Result<F::Tensor> {
    let from = f.shape_impl(g);
    if from == shape {
        return Ok(g.clone());
    }
    let lead = from.len() - shape.len();
    let mut out = g.clone();
    for (d, &n) in from.iter().enumerate() {
        if n != 1 && (d < lead || shape[d - lead] == 1) {
            out = f.reduce(ReduceOp::Sum, &out, d, true)?;
        }
    }
    f.reshape_impl(&out, shape)
}

/// `g` placed at `start` along `dim` in zeros of `shape` (the adjoint of `narrow`).
fn pad<F: Primitives>(f: &F, g: &F::Tensor, shape: &[usize], dim: usize, start: usize) -> Result<F::Tensor> {
    let len = f.shape_impl(g)[dim];
    let mut parts = Vec::with_capacity(3);
    for (at, n) in [(0, start), (1, len), (2, shape[dim] - start - len)] {
        if at == 1 {
            parts.push(g.clone());
        } else if n > 0 {
            let mut s = shape.to_vec();
            s[dim] = n;
            parts.push(f.full_impl(&s, 0.0, f.dtype_impl(g))?);
        }
    }
    if parts.len() == 1 { Ok(g.clone()) } else { f.cat_impl(&parts, dim) }
}
