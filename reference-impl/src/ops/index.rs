//! Index arithmetic on row-major tensors, and the one gather-style operation that every layout
//! op (broadcast, transpose, narrow, cat, index_select, gather, sort) is expressed with.

use std::rc::Rc;

use crate::Reference;
use crate::tensor::Tensor;

/// Row-major strides of a shape.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    let mut stride = 1;
    for d in (0..shape.len()).rev() {
        out[d] = stride;
        stride *= shape[d];
    }
    out
}

/// For each element of a tensor of shape `out` (row-major), the flat index
/// `base + Σ index[d] * strides[d]` into some source.
pub(crate) fn strided_map(out: &[usize], strides: &[usize], base: usize) -> Vec<usize> {
    let rank = out.len();
    let n: usize = out.iter().product();
    let mut map = Vec::with_capacity(n);
    let (mut index, mut flat) = (vec![0usize; rank], base);
    for _ in 0..n {
        map.push(flat);
        for d in (0..rank).rev() {
            index[d] += 1;
            flat += strides[d];
            if index[d] < out[d] {
                break;
            }
            flat -= strides[d] * index[d];
            index[d] = 0;
        }
    }
    map
}

/// For each element of a tensor of shape `out`, the flat index of the element of a tensor of
/// shape `from` that NumPy broadcasting maps onto it (`from` must broadcast to `out`).
/// Scatter-adding a gradient through this map sums it over the broadcast dimensions.
pub(crate) fn broadcast_map(from: &[usize], out: &[usize]) -> Vec<usize> {
    let offset = out.len() - from.len();
    let mut aligned = vec![0; out.len()];
    for (d, (&size, stride)) in from.iter().zip(strides(from)).enumerate() {
        if size != 1 {
            aligned[d + offset] = stride;
        }
    }
    strided_map(out, &aligned, 0)
}

impl Reference {
    /// `out[k] = sources[map[k].0][map[k].1]`, of shape `shape` and the first source's dtype.
    /// Gradient: `g[k]` scatter-added back to `sources[map[k].0][map[k].1]`.
    pub(crate) fn remap(&self, sources: &[Tensor], shape: Vec<usize>, map: Vec<(usize, usize)>) -> Tensor {
        let values: Vec<Rc<Vec<f64>>> = sources.iter().map(Tensor::values).collect();
        let data: Vec<f64> = map.iter().map(|&(s, i)| values[s][i]).collect();
        let lens: Vec<usize> = values.iter().map(|v| v.len()).collect();
        self.record(shape, sources[0].dtype(), data, sources.to_vec(), move |g| {
            let mut grads: Vec<Vec<f64>> = lens.iter().map(|&n| vec![0.0; n]).collect();
            for (k, &(s, i)) in map.iter().enumerate() {
                grads[s][i] += g[k];
            }
            grads.into_iter().map(Some).collect()
        })
    }

    /// [`Reference::remap`] from a single source.
    pub(crate) fn remap1(&self, x: &Tensor, shape: Vec<usize>, map: Vec<usize>) -> Tensor {
        self.remap(std::slice::from_ref(x), shape, map.into_iter().map(|i| (0, i)).collect())
    }
}
