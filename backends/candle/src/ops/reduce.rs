//! Reductions and scans along one dimension: sum, max (ties share the gradient), cumsum
//! (blocked, linear in the dimension's size) and a stable sort.

use candle_core::{D, DType as CDType, Tensor};
use orz_core::Result;
use orz_core::backend::shape::sort_order as compare;

use super::elementwise::is_nan;
use crate::{Candle, OrBackend};

/// Block size of the scan: within a block, a product with a `BLOCK x BLOCK` triangle.
const BLOCK: usize = 64;

/// Inclusive cumulative sum along the last dimension of a 2-D tensor `[rows, n]`: a triangular
/// product within blocks of [`BLOCK`], plus the (recursively scanned) totals of the blocks before.
/// Differentiable (matmul, narrow, cat), O(n · BLOCK) instead of candle's O(n²) triangle.
fn scan_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    let (rows, n) = x.dims2()?;
    if n <= BLOCK {
        let tri = Tensor::triu2(n, x.dtype(), x.device())?;
        return x.matmul(&tri);
    }
    let blocks = n.div_ceil(BLOCK);
    let padded = if blocks * BLOCK == n {
        x.clone()
    } else {
        Tensor::cat(&[x.clone(), Tensor::zeros((rows, blocks * BLOCK - n), x.dtype(), x.device())?], 1)?
    };
    let tri = Tensor::triu2(BLOCK, x.dtype(), x.device())?;
    let within = padded.reshape((rows * blocks, BLOCK))?.matmul(&tri)?.reshape((rows, blocks, BLOCK))?;
    let totals = within.narrow(2, BLOCK - 1, 1)?.squeeze(2)?;
    let before = scan_rows(&totals)?.sub(&totals)?;
    let out = within.broadcast_add(&before.unsqueeze(2)?)?.reshape((rows, blocks * BLOCK))?;
    out.narrow(1, 0, n)
}

impl Candle {
    pub(crate) fn sum_dim(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        // Half-precision sums accumulate in f32 (as PyTorch does), then round once.
        let run = || -> candle_core::Result<Tensor> {
            let wide = matches!(x.dtype(), CDType::BF16 | CDType::F16);
            let xw = if wide { x.to_dtype(CDType::F32)? } else { x.clone() };
            let y = if keepdim { xw.sum_keepdim(dim)? } else { xw.sum(dim)? };
            if wide { y.to_dtype(x.dtype()) } else { Ok(y) }
        };
        Ok(self.out(run().or_backend("sum")?))
    }

    /// Maximum along `dim`, NaN propagating; tied maxima share the gradient evenly: the value is
    /// `m + sum(where(x == m, x - m, 0)) / count` with `m` the detached maximum, which is `m`
    /// exactly and has gradient `1 / count` at each tie.
    pub(crate) fn max_dim(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let m = x.max_keepdim(dim)?.detach();
            let nan = is_nan(x)?.max_keepdim(dim)?;
            let m =
                nan.where_cond(&Tensor::full(f32::NAN, m.dims(), m.device())?.to_dtype(m.dtype())?, &m)?;
            let y = if self.records(&[x]) {
                let tie = x.broadcast_eq(&m)?;
                let count = tie.to_dtype(x.dtype())?.sum_keepdim(dim)?;
                let zeros = Tensor::zeros(x.dims(), x.dtype(), x.device())?;
                let share = tie.where_cond(&x.broadcast_sub(&m)?, &zeros)?.sum_keepdim(dim)?.div(&count)?;
                m.add(&share)?
            } else {
                m
            };
            if keepdim { Ok(y) } else { y.squeeze(dim) }
        };
        Ok(self.out(run().or_backend("max")?))
    }

    /// Inclusive cumulative sum along `dim` (blocked scan, see `scan_rows`).
    pub(crate) fn cumsum_dim(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let last = x.rank() - 1;
            let t = if dim == last { x.clone() } else { x.transpose(dim, last)?.contiguous()? };
            let moved = t.dims().to_vec();
            let n = moved[last];
            let rows: usize = moved[..last].iter().product();
            if rows == 0 || n == 0 {
                return Ok(x.clone());
            }
            let scanned = scan_rows(&t.reshape((rows, n))?)?.reshape(moved)?;
            if dim == last { Ok(scanned) } else { scanned.transpose(dim, last)?.contiguous() }
        };
        Ok(self.out(run().or_backend("cumsum")?))
    }

    /// Stable sort along `dim`: the order is computed on the host (exact tie and NaN rules on
    /// every device), the values gathered on the device (so the gradient scatters back).
    pub(crate) fn sort_dim(&self, x: &Tensor, dim: usize, descending: bool) -> Result<(Tensor, Tensor)> {
        const OP: &str = "sort";
        let last = x.rank() - 1;
        let t = if dim == last { x.clone() } else { x.transpose(dim, last).or_backend(OP)? };
        let moved = t.dims().to_vec();
        let n = moved[last];
        let host: Vec<f64> =
            t.flatten_all().and_then(|f| f.to_dtype(CDType::F64)?.to_vec1()).or_backend(OP)?;
        let mut order: Vec<i64> = Vec::with_capacity(host.len());
        if n > 0 {
            for lane in host.chunks(n) {
                let mut idx: Vec<usize> = (0..n).collect();
                if descending {
                    idx.sort_by(|&a, &b| compare(lane[b], lane[a]));
                } else {
                    idx.sort_by(|&a, &b| compare(lane[a], lane[b]));
                }
                order.extend(idx.into_iter().map(|i| i as i64));
            }
        }
        let run = || -> candle_core::Result<(Tensor, Tensor)> {
            let idx = Tensor::from_vec(order, moved.as_slice(), x.device())?;
            let values = t.contiguous()?.gather(&idx, D::Minus1)?;
            if dim == last {
                Ok((values, idx))
            } else {
                Ok((values.transpose(dim, last)?.contiguous()?, idx.transpose(dim, last)?.contiguous()?))
            }
        };
        let (values, idx) = run().or_backend(OP)?;
        Ok((self.out(values), idx.detach()))
    }
}
