//! Element-wise operations: broadcasting binary arithmetic, unary functions, clamp, comparisons,
//! `where_` and casts.

use candle_core::{DType as CDType, Tensor};
use orz_core::backend::DType;
use orz_core::backend::shape::{broadcast_shapes, check_float, check_same_dtype};
use orz_core::{Error, Result};

use crate::{Candle, OrBackend, candle_dtype, orz_dtype};

/// The binary float operations.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
}

/// The comparisons.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Compare {
    Eq,
    Gt,
    Ge,
}

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
    pub(crate) fn binary(&self, kind: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let op = match kind {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Maximum => "maximum",
            Binary::Minimum => "minimum",
        };
        let (da, db) = (orz_dtype(a.dtype()), orz_dtype(b.dtype()));
        check_float(op, "the left operand", da)?;
        check_float(op, "the right operand", db)?;
        check_same_dtype(op, da, db)?;
        let shape = broadcast_shapes(op, a.dims(), b.dims())?;
        let run = || -> candle_core::Result<Tensor> {
            let same = a.dims() == b.dims();
            match kind {
                Binary::Add if same => a.add(b),
                Binary::Add => a.broadcast_add(b),
                Binary::Sub if same => a.sub(b),
                Binary::Sub => a.broadcast_sub(b),
                Binary::Mul if same => a.mul(b),
                Binary::Mul => a.broadcast_mul(b),
                Binary::Div if same => a.div(b),
                Binary::Div => a.broadcast_div(b),
                Binary::Maximum | Binary::Minimum => {
                    let (a, b) = (expand(a, &shape)?, expand(b, &shape)?);
                    let y = if matches!(kind, Binary::Maximum) { a.maximum(&b)? } else { a.minimum(&b)? };
                    // candle's kernels drop a NaN operand; the trait propagates it (and, as PyTorch,
                    // passes the gradient to both operands there, through `a + b`).
                    let nan = is_nan(&a)?.maximum(&is_nan(&b)?)?;
                    nan.where_cond(&a.add(&b)?, &y)
                }
            }
        };
        Ok(self.out(run().or_backend(op)?))
    }

    /// A unary float op, `f` on a checked input.
    pub(crate) fn unary(
        &self,
        op: &'static str,
        x: &Tensor,
        f: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        check_float(op, "the input", orz_dtype(x.dtype()))?;
        Ok(self.out(f(x).or_backend(op)?))
    }

    /// `min(max(x, lo), hi)`, NaN kept, gradient `g` on `lo <= x <= hi` (inclusive).
    pub(crate) fn clamp_op(&self, x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::invalid("clamp", format!("bounds [{lo}, {hi}] are not an interval")));
        }
        check_float("clamp", "the input", orz_dtype(x.dtype()))?;
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

    /// A broadcasting comparison giving Bool; `ordered` ones reject Bool operands.
    pub(crate) fn compare(&self, kind: Compare, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let op = match kind {
            Compare::Eq => "eq",
            Compare::Gt => "gt",
            Compare::Ge => "ge",
        };
        let (da, db) = (orz_dtype(a.dtype()), orz_dtype(b.dtype()));
        check_same_dtype(op, da, db)?;
        if !matches!(kind, Compare::Eq) && da == DType::Bool {
            return Err(Error::dtype(op, "bool operands have no order; cast them first"));
        }
        broadcast_shapes(op, a.dims(), b.dims())?;
        let y = match kind {
            Compare::Eq => a.broadcast_eq(b),
            Compare::Gt => a.broadcast_gt(b),
            Compare::Ge => a.broadcast_ge(b),
        }
        .or_backend(op)?;
        Ok(y.detach())
    }

    /// `cond ? a : b`, all three broadcast together.
    pub(crate) fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "where_";
        let dc = orz_dtype(cond.dtype());
        if dc != DType::Bool {
            return Err(Error::dtype(OP, format!("the condition has dtype {dc}, bool is required")));
        }
        check_same_dtype(OP, orz_dtype(a.dtype()), orz_dtype(b.dtype()))?;
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
        let from = orz_dtype(x.dtype());
        if from == dtype {
            return Ok(x.clone());
        }
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
