//! Layout and indexing: reshape, transpose, narrow, cat, index_select, gather, the in-place
//! slice write, and the batched matrix product. Shapes and dtypes arrive checked; index values
//! are checked here.

use candle_core::Tensor;
use orz_core::backend::shape::matmul_shape;
use orz_core::{Error, Result};

use crate::{Candle, OrBackend};

/// Checks that every index of `idx` (I64) lies in `0..size`, reading it on the host (index
/// tensors are small: token ids, head maps), so that no out-of-range index reaches a kernel.
pub(crate) fn check_indices(
    op: &'static str,
    idx: &Tensor,
    size: usize,
    context: impl Fn() -> String,
) -> Result<()> {
    let values: Vec<i64> = idx.flatten_all().and_then(|f| f.to_vec1()).or_backend(op)?;
    match values.iter().find(|&&v| v < 0 || v as u64 >= size as u64) {
        Some(&index) => Err(Error::IndexOutOfRange { op, index, size, context: context() }),
        None => Ok(()),
    }
}

impl Candle {
    pub(crate) fn reshape_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        Ok(self.out(x.reshape(shape).or_backend("reshape")?))
    }

    pub(crate) fn transpose_dims(&self, x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
        Ok(self.out(x.transpose(d0, d1).or_backend("transpose")?))
    }

    pub(crate) fn narrow_dim(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        Ok(self.out(x.narrow(dim, start, len).or_backend("narrow")?))
    }

    pub(crate) fn concat(&self, xs: &[Tensor], dim: usize) -> Result<Tensor> {
        let first = xs.first().ok_or_else(|| Error::shape("cat", "no tensors to concatenate"))?;
        if xs.len() == 1 {
            return Ok(first.clone());
        }
        Ok(self.out(Tensor::cat(xs, dim).or_backend("cat")?))
    }

    pub(crate) fn select_index(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        check_indices(OP, idx, x.dims()[dim], || format!("dimension {dim} of shape {:?}", x.dims()))?;
        Ok(self.out(x.index_select(idx, dim).or_backend(OP)?))
    }

    pub(crate) fn gather_dim(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        let xs = x.dims();
        check_indices(OP, idx, xs[dim], || format!("dimension {dim} of shape {xs:?}"))?;
        let run = || idx.contiguous().and_then(|i| x.gather(&i, dim));
        Ok(self.out(run().or_backend(OP)?))
    }

    pub(crate) fn write_into(&self, dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()> {
        const OP: &str = "write_slice";
        let ss = src.dims();
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
