//! Element-wise operations: the binary, unary and comparison families, `where_` and casts.
//! Arguments arrive checked ([`orz_core::backend::check`]).

use candle_core::{DType as CDType, Tensor};
use orz_core::backend::shape::broadcast_shapes;
use orz_core::backend::{BinaryOp, CompareOp, DType, UnaryOp};
use orz_core::{Error, Result};

use crate::{Candle, OrBackend, candle_dtype, orz_dtype};

/// A Bool (`U8`) mask of the NaN positions of a float tensor.
pub(crate) fn is_nan(x: &Tensor) -> candle_core::Result<Tensor> {
    x.ne(x)
}

/// Broadcasts `t` to `shape` (a no-op when it already has it).
pub(crate) fn expand(t: &Tensor, shape: &[usize]) -> candle_core::Result<Tensor> {
    if t.dims() == shape { Ok(t.clone()) } else { t.broadcast_as(shape) }
}

impl Candle {
    /// A broadcasting binary float op.
    pub(crate) fn binary_op(&self, kind: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let op = kind.name();
        let shape = broadcast_shapes(op, a.dims(), b.dims())?;
        let run = || -> candle_core::Result<Tensor> {
            let same = a.dims() == b.dims();
            match kind {
                BinaryOp::Add if same => a.add(b),
                BinaryOp::Add => a.broadcast_add(b),
                BinaryOp::Sub if same => a.sub(b),
                BinaryOp::Sub => a.broadcast_sub(b),
                BinaryOp::Mul if same => a.mul(b),
                BinaryOp::Mul => a.broadcast_mul(b),
                BinaryOp::Div if same => a.div(b),
                BinaryOp::Div => a.broadcast_div(b),
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    let (a, b) = (expand(a, &shape)?, expand(b, &shape)?);
                    let y = if matches!(kind, BinaryOp::Maximum) { a.maximum(&b)? } else { a.minimum(&b)? };
                    // candle's kernels drop a NaN operand; the trait propagates it (and, as PyTorch,
                    // passes the gradient to both operands there, through `a + b`).
                    let nan = is_nan(&a)?.maximum(&is_nan(&b)?)?;
                    nan.where_cond(&a.add(&b)?, &y)
                }
            }
        };
        Ok(self.out(run().or_backend(op)?))
    }

    /// A unary float op.
    pub(crate) fn unary_op(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        let y = match op {
            UnaryOp::Neg => x.neg(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.log(),
            UnaryOp::Sqrt => x.sqrt(),
            // candle-nn's fused sigmoid has a backward (`s (1 - s)`).
            UnaryOp::Sigmoid => candle_nn::ops::sigmoid(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Powf(p) => x.powf(p),
            UnaryOp::Affine { mul, add } => x.affine(mul, add),
            UnaryOp::Clamp { lo, hi } => return self.clamp_op(x, lo, hi),
        };
        Ok(self.out(y.or_backend(op.name())?))
    }

    /// `min(max(x, lo), hi)`, NaN kept, gradient `g` on `lo <= x <= hi` (inclusive).
    pub(crate) fn clamp_op(&self, x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let clamped = x.clamp(lo, hi)?;
            let nan = is_nan(x)?;
            let base = nan.where_cond(x, &clamped)?;
            if !self.records(&[x]) {
                return Ok(base);
            }
            let inside = x.ge(lo)?.mul(&x.le(hi)?)?;
            inside.where_cond(x, &base.detach())
        };
        Ok(self.out(run().or_backend("clamp")?))
    }

    /// A broadcasting comparison giving Bool.
    pub(crate) fn compare_op(&self, kind: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let op = kind.name();
        let y = match kind {
            CompareOp::Eq => a.broadcast_eq(b),
            CompareOp::Gt => a.broadcast_gt(b),
            CompareOp::Ge => a.broadcast_ge(b),
        }
        .or_backend(op)?;
        Ok(y.detach())
    }

    /// `cond ? a : b`, all three broadcast together.
    pub(crate) fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "where_";
        let shape =
            broadcast_shapes(OP, &broadcast_shapes(OP, cond.dims(), a.dims())?, b.dims()).map_err(|_| {
                let (c, a, b) = (cond.dims(), a.dims(), b.dims());
                Error::shape(OP, format!("shapes {c:?}, {a:?} and {b:?} do not broadcast"))
            })?;
        let run = || -> candle_core::Result<Tensor> {
            expand(cond, &shape)?.where_cond(&expand(a, &shape)?, &expand(b, &shape)?)
        };
        Ok(self.out(run().or_backend(OP)?))
    }

    /// Converts to `dtype` (see [`orz_core::backend::Backend::cast`]).
    pub(crate) fn cast_to(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        const OP: &str = "cast";
        // `Backend::cast` returns `x` itself for its own dtype before calling this.
        let from = orz_dtype(x.dtype());
        let run = || -> Result<Tensor> {
            match dtype {
                DType::Bool => x.ne(0f64).or_backend(OP),
                DType::I64 if from.is_float() => {
                    let x32 = x.to_dtype(CDType::F32).or_backend(OP)?;
                    let bad = x32
                        .abs()
                        .and_then(|a| a.ge(f64::INFINITY)?.maximum(&is_nan(&x32)?))
                        .or_backend(OP)?;
                    let flat = bad.flatten_all().or_backend(OP)?.to_vec1::<u8>().or_backend(OP)?;
                    if let Some(index) = flat.iter().position(|&v| v != 0) {
                        return Err(Error::NonFinite { op: OP, what: "x (cast to i64)", index });
                    }
                    x32.to_dtype(CDType::I64).or_backend(OP)
                }
                _ => x.to_dtype(candle_dtype(dtype)).or_backend(OP),
            }
        };
        let y = run()?;
        Ok(if from.is_float() && dtype.is_float() { self.out(y) } else { y.detach() })
    }
}
