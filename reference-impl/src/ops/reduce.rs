//! Reductions and scans along one dimension: sum, max, cumsum.

use orz_core::Result;
use orz_core::backend::BinaryOp;
use orz_core::backend::shape::{reduced_shape, split_at_dim};

use crate::Reference;
use crate::tensor::Tensor;

/// `max` that propagates NaN (as `torch.amax` does; `f64::max` would drop it).
fn nan_max(a: f64, b: f64) -> f64 {
    BinaryOp::Maximum.apply(a, b)
}

impl Reference {
    pub(crate) fn sum_dim(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        let (outer, n, inner) = split_at_dim(x.shape(), dim);
        let xv = x.values();
        let mut data = vec![0.0; outer * inner];
        for o in 0..outer {
            for k in 0..n {
                for i in 0..inner {
                    data[o * inner + i] += xv[(o * n + k) * inner + i];
                }
            }
        }
        let shape = reduced_shape(x.shape(), dim, keepdim);
        Ok(self.record(shape, x.dtype(), data, vec![x.clone()], move |g| {
            let gx = (0..outer * n * inner).map(|j| g[(j / (n * inner)) * inner + j % inner]).collect();
            vec![Some(gx)]
        }))
    }

    pub(crate) fn max_dim(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        let (outer, n, inner) = split_at_dim(x.shape(), dim);
        let xv = x.values();
        let out_index = move |j: usize| (j / (n * inner)) * inner + j % inner;
        let mut data = vec![f64::NEG_INFINITY; outer * inner];
        for (j, &v) in xv.iter().enumerate() {
            data[out_index(j)] = nan_max(data[out_index(j)], v);
        }
        // Ties share the gradient evenly (PyTorch `amax`).
        let mut ties = vec![0usize; outer * inner];
        for (j, &v) in xv.iter().enumerate() {
            ties[out_index(j)] += usize::from(v == data[out_index(j)]);
        }
        let maxima = data.clone();
        let shape = reduced_shape(x.shape(), dim, keepdim);
        Ok(self.record(shape, x.dtype(), data, vec![x.clone()], move |g| {
            let gx = xv
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let r = out_index(j);
                    if v == maxima[r] { g[r] / ties[r] as f64 } else { 0.0 }
                })
                .collect();
            vec![Some(gx)]
        }))
    }

    pub(crate) fn cumsum_dim(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        let (outer, n, inner) = split_at_dim(x.shape(), dim);
        // Running sums along each lane; `reverse` runs them from the end (the gradient).
        let scan = move |v: &[f64], reverse: bool| {
            let mut out = v.to_vec();
            for o in 0..outer {
                for i in 0..inner {
                    let mut acc = 0.0;
                    for step in 0..n {
                        let k = if reverse { n - 1 - step } else { step };
                        let j = (o * n + k) * inner + i;
                        acc += v[j];
                        out[j] = acc;
                    }
                }
            }
            out
        };
        let data = scan(&x.values(), false);
        Ok(self
            .record(x.shape().to_vec(), x.dtype(), data, vec![x.clone()], move |g| vec![Some(scan(g, true))]))
    }
}
