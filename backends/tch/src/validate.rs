//! The checks only a kernel can make, on tensor values: index entries in range and non-finite
//! values cast to I64. Shapes and dtypes arrive checked by [`orz_core::backend::Backend`].

use orz_core::{Error, Result};
use tch::Tensor;

use crate::{Tch, TchTensor, i64_of, scalar, tch_err};

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

    /// Checks that every entry of an I64 index tensor lies in `0..size`; the error names the
    /// first bad entry (found on the host, only when there is one).
    pub(crate) fn check_indices(
        &self,
        op: &'static str,
        idx: &Tensor,
        size: usize,
        context: impl Fn() -> String,
    ) -> Result<()> {
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
