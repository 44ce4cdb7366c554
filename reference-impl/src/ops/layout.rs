//! Layout and indexing: reshape, transpose, narrow, cat, index_select, gather, sort and the
//! in-place slice write. Shapes and dtypes arrive checked; index values are checked here.

use std::rc::Rc;

use orz_core::backend::DType;
use orz_core::backend::shape::{sort_order as compare, split_at_dim};
use orz_core::{Error, Result};

use super::index::{strided_map, strides};
use crate::Reference;
use crate::tensor::Tensor;

/// Reads an I64 index tensor, checking every index against `size`.
fn indices(op: &'static str, idx: &Tensor, size: usize, context: impl Fn() -> String) -> Result<Vec<usize>> {
    idx.values()
        .iter()
        .map(|&v| {
            if v >= 0.0 && (v as usize) < size {
                Ok(v as usize)
            } else {
                Err(Error::IndexOutOfRange { op, index: v as i64, size, context: context() })
            }
        })
        .collect()
}

impl Reference {
    pub(crate) fn reshape_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        // Same row-major order: share the values, pass the gradient through unchanged.
        Ok(self.record(shape.to_vec(), x.dtype(), x.values(), vec![x.clone()], |g| vec![Some(g.to_vec())]))
    }

    pub(crate) fn transpose_dims(&self, x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
        let (mut shape, mut st) = (x.shape().to_vec(), strides(x.shape()));
        shape.swap(d0, d1);
        st.swap(d0, d1);
        let map = strided_map(&shape, &st, 0);
        Ok(self.remap1(x, shape, map))
    }

    pub(crate) fn narrow_dim(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        let st = strides(x.shape());
        let mut shape = x.shape().to_vec();
        shape[dim] = len;
        let map = strided_map(&shape, &st, start * st[dim]);
        Ok(self.remap1(x, shape, map))
    }

    pub(crate) fn concat(&self, xs: &[Tensor], dim: usize) -> Result<Tensor> {
        let first = xs.first().ok_or_else(|| Error::shape("cat", "no tensors to concatenate"))?;
        let mut shape = first.shape().to_vec();
        shape[dim] = xs.iter().map(|x| x.shape()[dim]).sum();
        let (outer, _, inner) = split_at_dim(first.shape(), dim);
        let mut map = Vec::with_capacity(shape.iter().product());
        for o in 0..outer {
            for (s, x) in xs.iter().enumerate() {
                let n = x.shape()[dim];
                map.extend((o * n * inner..(o + 1) * n * inner).map(|i| (s, i)));
            }
        }
        Ok(self.remap(xs, shape, map))
    }

    pub(crate) fn select_index(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        let (outer, n, inner) = split_at_dim(x.shape(), dim);
        let rows = indices(OP, idx, n, || format!("dimension {dim} of shape {:?}", x.shape()))?;
        let mut shape = x.shape().to_vec();
        shape[dim] = rows.len();
        let mut map = Vec::with_capacity(outer * rows.len() * inner);
        for o in 0..outer {
            for &r in &rows {
                map.extend((0..inner).map(|i| (o * n + r) * inner + i));
            }
        }
        Ok(self.remap1(x, shape, map))
    }

    pub(crate) fn gather_dim(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        let (xs, is) = (x.shape(), idx.shape());
        let (_, n, inner) = split_at_dim(xs, dim);
        let picks = indices(OP, idx, n, || format!("dimension {dim} of shape {xs:?}"))?;
        let m = is[dim];
        // Output element k sits at (outer o, position j along dim, inner i) of the index's layout;
        // it reads x at (o, picks[k], i).
        let map = (0..picks.len()).map(|k| (k / (m * inner) * n + picks[k]) * inner + k % inner).collect();
        Ok(self.remap1(x, is.to_vec(), map))
    }

    pub(crate) fn sort_dim(&self, x: &Tensor, dim: usize, descending: bool) -> Result<(Tensor, Tensor)> {
        let (outer, n, inner) = split_at_dim(x.shape(), dim);
        let xv = x.values();
        let (mut map, mut order) = (vec![0; xv.len()], vec![0.0; xv.len()]);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| (o * n + k) * inner + i;
                let mut lane: Vec<usize> = (0..n).collect();
                if descending {
                    lane.sort_by(|&a, &b| compare(xv[at(b)], xv[at(a)]));
                } else {
                    lane.sort_by(|&a, &b| compare(xv[at(a)], xv[at(b)]));
                }
                for (k, &src) in lane.iter().enumerate() {
                    map[at(k)] = at(src);
                    order[at(k)] = src as f64;
                }
            }
        }
        let values = self.remap1(x, x.shape().to_vec(), map);
        Ok((values, Tensor::constant(x.shape().to_vec(), DType::I64, order)))
    }

    pub(crate) fn write_into(&self, dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()> {
        let (ds, ss) = (dst.shape(), src.shape());
        let (outer, n, inner) = split_at_dim(ds, dim);
        let m = ss[dim];
        let values = src.values();
        let mut data = dst.0.data.borrow_mut();
        let data = Rc::make_mut(&mut data);
        for o in 0..outer {
            let (from, to) = (o * m * inner, (o * n + start) * inner);
            data[to..to + m * inner].copy_from_slice(&values[from..from + m * inner]);
        }
        Ok(())
    }
}
