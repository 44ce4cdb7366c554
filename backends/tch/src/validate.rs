//! Argument checks run before any libtorch call, with the reference's errors and messages (built
//! from [`orz_core::backend::shape`]), so that bad input never reaches libtorch.

use orz_core::backend::DType;
use orz_core::backend::shape::{broadcast_shapes, check_float, check_same_dtype};
use orz_core::{Error, Result};
use tch::Tensor;

use crate::convert::{dtype_of, shape_of};
use crate::{Tch, TchTensor, i64_of, scalar, tch_err};

/// Float operands of one dtype that broadcast together; returns the broadcast shape.
pub(crate) fn binary(op: &'static str, a: &TchTensor, b: &TchTensor) -> Result<Vec<usize>> {
    let (da, db) = (dtype_of(&a.t), dtype_of(&b.t));
    check_float(op, "the left operand", da)?;
    check_float(op, "the right operand", db)?;
    check_same_dtype(op, da, db)?;
    broadcast_shapes(op, &shape_of(&a.t), &shape_of(&b.t))
}

/// A float operand.
pub(crate) fn unary(op: &'static str, x: &TchTensor) -> Result<()> {
    check_float(op, "the input", dtype_of(&x.t))
}

/// Operands of a comparison: one dtype (Bool has no order), broadcasting.
pub(crate) fn compare(op: &'static str, a: &TchTensor, b: &TchTensor, ordered: bool) -> Result<()> {
    let (da, db) = (dtype_of(&a.t), dtype_of(&b.t));
    check_same_dtype(op, da, db)?;
    if ordered && da == DType::Bool {
        return Err(Error::dtype(op, "bool operands have no order; cast them first"));
    }
    broadcast_shapes(op, &shape_of(&a.t), &shape_of(&b.t)).map(|_| ())
}

/// Operands of `where_`: a Bool condition, branches of one dtype, all three broadcasting.
pub(crate) fn select(cond: &TchTensor, a: &TchTensor, b: &TchTensor) -> Result<()> {
    const OP: &str = "where_";
    let dc = dtype_of(&cond.t);
    if dc != DType::Bool {
        return Err(Error::dtype(OP, format!("the condition has dtype {dc}, bool is required")));
    }
    check_same_dtype(OP, dtype_of(&a.t), dtype_of(&b.t))?;
    let (c, a, b) = (shape_of(&cond.t), shape_of(&a.t), shape_of(&b.t));
    broadcast_shapes(OP, &broadcast_shapes(OP, &c, &a)?, &b)
        .map_err(|_| Error::shape(OP, format!("shapes {c:?}, {a:?} and {b:?} do not broadcast")))?;
    Ok(())
}

/// Checks that `x` and its other operand fit along every dimension but `dim` (same rank).
pub(crate) fn fits_except(x: &[usize], y: &[usize], dim: usize) -> bool {
    x.len() == y.len() && x.iter().zip(y).enumerate().all(|(d, (p, q))| d == dim || p == q)
}

impl Tch {
    /// Runs an indexing op whose index tensor `idx` must hold I64 values in `0..size`. On CUDA the
    /// indices are checked first (a bad index there is a device-side assert, which kills the
    /// process); on the CPU libtorch itself rejects bad indices with a catchable error, so the op
    /// runs first and the indices are examined only when it fails, for the reference's error.
    pub(crate) fn indexed(
        &self,
        op: &'static str,
        idx: &Tensor,
        size: usize,
        context: impl Fn() -> String,
        f: impl FnOnce() -> std::result::Result<Tensor, tch::TchError>,
    ) -> Result<TchTensor> {
        if self.device != tch::Device::Cpu {
            self.check_indices(op, idx, size, context)?;
            return self.run(op, f);
        }
        match self.run(op, f) {
            Ok(t) => Ok(t),
            Err(e) => {
                self.check_indices(op, idx, size, context)?;
                Err(e)
            }
        }
    }

    /// Checks that an index tensor is I64 and every entry lies in `0..size`; the error names the
    /// first bad entry (found on the host, only when there is one).
    pub(crate) fn check_indices(
        &self,
        op: &'static str,
        idx: &Tensor,
        size: usize,
        context: impl Fn() -> String,
    ) -> Result<()> {
        let d = dtype_of(idx);
        if d != DType::I64 {
            return Err(Error::dtype(op, format!("indices have dtype {d}, i64 is required")));
        }
        if idx.numel() == 0 {
            return Ok(());
        }
        let bad = {
            let _guard = tch::no_grad_guard();
            scalar::scalar_for(idx, 0.0)
                .and_then(|zero| idx.f_lt_tensor(&zero))
                .and_then(|lo| lo.f_logical_or(&idx.f_ge_tensor(&scalar::scalar_for(idx, size as f64)?)?))
                .and_then(|bad| bad.f_any())
                .and_then(|any| any.f_int64_value(&[]))
                .map_err(|e| tch_err(op, e))?
        };
        if bad == 0 {
            return Ok(());
        }
        let host: Vec<i64> = self.download(op, idx)?;
        let index = host.into_iter().find(|&v| v < 0 || v >= i64_of(size)).unwrap_or(-1);
        Err(Error::IndexOutOfRange { op, index, size, context: context() })
    }

    /// The index of the first non-finite element of a float tensor, if any.
    pub(crate) fn first_non_finite(&self, op: &'static str, x: &Tensor) -> Result<Option<usize>> {
        let all_finite = {
            let _guard = tch::no_grad_guard();
            x.f_isfinite()
                .and_then(|f| f.f_all())
                .and_then(|a| a.f_int64_value(&[]))
                .map_err(|e| tch_err(op, e))?
        };
        if all_finite != 0 {
            return Ok(None);
        }
        let host: Vec<f64> = self.download(op, x)?;
        Ok(host.iter().position(|v| !v.is_finite()))
    }
}
