//! Layout and indexing: reshape, transpose, narrow, cat, index_select, gather, the in-place
//! slice write, and the batched matrix product.

use candle_core::Tensor;
use orz_core::backend::DType;
use orz_core::backend::shape::{check_dim, check_float, check_range, check_same_dtype, matmul_shape, numel};
use orz_core::{Error, Result};

use crate::{Candle, OrBackend, orz_dtype};

/// Checks that `idx` is I64 and every index lies in `0..size`, reading it on the host (index
/// tensors are small: token ids, head maps), so that no out-of-range index reaches a kernel.
pub(crate) fn check_indices(
    op: &'static str,
    idx: &Tensor,
    size: usize,
    context: impl Fn() -> String,
) -> Result<()> {
    let dt = orz_dtype(idx.dtype());
    if dt != DType::I64 {
        return Err(Error::dtype(op, format!("indices have dtype {dt}, i64 is required")));
    }
    let values: Vec<i64> = idx.flatten_all().and_then(|f| f.to_vec1()).or_backend(op)?;
    match values.iter().find(|&&v| v < 0 || v as u64 >= size as u64) {
        Some(&index) => Err(Error::IndexOutOfRange { op, index, size, context: context() }),
        None => Ok(()),
    }
}

impl Candle {
    pub(crate) fn reshape_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        if numel("reshape", shape)? != x.elem_count() {
            let from = x.dims();
            return Err(Error::shape("reshape", format!("cannot reshape {from:?} into {shape:?}")));
        }
        Ok(self.out(x.reshape(shape).or_backend("reshape")?))
    }

    pub(crate) fn transpose_dims(&self, x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
        check_dim("transpose", x.dims(), d0)?;
        check_dim("transpose", x.dims(), d1)?;
        Ok(self.out(x.transpose(d0, d1).or_backend("transpose")?))
    }

    pub(crate) fn narrow_dim(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        check_range("narrow", x.dims(), dim, start, len)?;
        Ok(self.out(x.narrow(dim, start, len).or_backend("narrow")?))
    }

    pub(crate) fn concat(&self, xs: &[Tensor], dim: usize) -> Result<Tensor> {
        let first = xs.first().ok_or_else(|| Error::shape("cat", "no tensors to concatenate"))?;
        check_dim("cat", first.dims(), dim)?;
        for x in xs {
            check_same_dtype("cat", orz_dtype(first.dtype()), orz_dtype(x.dtype()))?;
            let (a, b) = (first.dims(), x.dims());
            let fits =
                a.len() == b.len() && a.iter().zip(b).enumerate().all(|(d, (p, q))| d == dim || p == q);
            if !fits {
                return Err(Error::shape(
                    "cat",
                    format!("shapes {a:?} and {b:?} differ outside dimension {dim}"),
                ));
            }
        }
        if xs.len() == 1 {
            return Ok(first.clone());
        }
        Ok(self.out(Tensor::cat(xs, dim).or_backend("cat")?))
    }

    pub(crate) fn select_index(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        check_dim(OP, x.dims(), dim)?;
        if idx.rank() != 1 {
            return Err(Error::shape(OP, format!("indices must be 1-D, got shape {:?}", idx.dims())));
        }
        check_indices(OP, idx, x.dims()[dim], || format!("dimension {dim} of shape {:?}", x.dims()))?;
        Ok(self.out(x.index_select(idx, dim).or_backend(OP)?))
    }

    pub(crate) fn gather_dim(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        check_dim(OP, x.dims(), dim)?;
        let (xs, is) = (x.dims(), idx.dims());
        if xs.len() != is.len() || xs.iter().zip(is).enumerate().any(|(d, (a, b))| d != dim && a != b) {
            return Err(Error::shape(
                OP,
                format!("index of shape {is:?} does not fit input of shape {xs:?} along dimension {dim}"),
            ));
        }
        check_indices(OP, idx, xs[dim], || format!("dimension {dim} of shape {xs:?}"))?;
        let run = || idx.contiguous().and_then(|i| x.gather(&i, dim));
        Ok(self.out(run().or_backend(OP)?))
    }

    pub(crate) fn write_into(&self, dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()> {
        const OP: &str = "write_slice";
        if dst.track_op() {
            return Err(Error::invalid(
                OP,
                "the destination is a parameter or depends on one (no gradient through writes)",
            ));
        }
        check_same_dtype(OP, orz_dtype(dst.dtype()), orz_dtype(src.dtype()))?;
        let (ds, ss) = (dst.dims(), src.dims());
        if ds.len() != ss.len() || ds.iter().zip(ss).enumerate().any(|(d, (a, b))| d != dim && a != b) {
            return Err(Error::shape(
                OP,
                format!(
                    "source of shape {ss:?} does not fit destination of shape {ds:?} along dimension {dim}"
                ),
            ));
        }
        check_range(OP, ds, dim, start, ss[dim])?;
        if !dst.is_contiguous() {
            return Err(Error::invalid(
                OP,
                "the destination is a strided view; write into a tensor with storage of its own",
            ));
        }
        if ss[dim] == 0 || src.elem_count() == 0 {
            return Ok(());
        }
        // A fresh contiguous copy of the source: slice_set needs it contiguous and in storage of
        // its own (never the destination's).
        let src = src.detach().contiguous().and_then(|s| s.copy()).or_backend(OP)?;
        dst.slice_set(&src, dim, start).or_backend(OP)
    }

    pub(crate) fn matmul_batched(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        check_float("matmul", "the left operand", orz_dtype(a.dtype()))?;
        check_float("matmul", "the right operand", orz_dtype(b.dtype()))?;
        check_same_dtype("matmul", orz_dtype(a.dtype()), orz_dtype(b.dtype()))?;
        let shape = matmul_shape("matmul", a.dims(), b.dims())?;
        if shape.contains(&0) || a.dims()[a.rank() - 1] == 0 {
            // Empty products (candle's gemm rejects zero sizes): zeros, no gradient.
            return Tensor::zeros(shape.as_slice(), a.dtype(), a.device()).or_backend("matmul");
        }
        let run = || -> candle_core::Result<Tensor> {
            let same_batch = a.dims()[..a.rank() - 2] == b.dims()[..b.rank() - 2];
            let go = |a: &Tensor, b: &Tensor| if same_batch { a.matmul(b) } else { a.broadcast_matmul(b) };
            match go(a, b) {
                Ok(y) => Ok(y),
                // Layouts gemm cannot read directly: retry on contiguous copies.
                Err(_) => go(&a.contiguous()?, &b.contiguous()?),
            }
        };
        Ok(self.out(run().or_backend("matmul")?))
    }
}
