//! Batched matrix product.

use orz_core::Result;
use orz_core::backend::shape::matmul_shape;

use super::index::broadcast_map;
use crate::Reference;
use crate::tensor::Tensor;

impl Reference {
    pub(crate) fn matmul_batched(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let shape = matmul_shape("matmul", a.shape(), b.shape())?;
        let (ra, rb, r) = (a.shape().len(), b.shape().len(), shape.len());
        let (m, k, n) = (a.shape()[ra - 2], a.shape()[ra - 1], b.shape()[rb - 1]);
        // For each batch entry of the result, the batch entry of `a` and of `b` it uses.
        let ia = broadcast_map(&a.shape()[..ra - 2], &shape[..r - 2]);
        let ib = broadcast_map(&b.shape()[..rb - 2], &shape[..r - 2]);
        let (av, bv) = (a.values(), b.values());
        let mut data = vec![0.0; ia.len() * m * n];
        for (batch, (&sa, &sb)) in ia.iter().zip(&ib).enumerate() {
            let (pa, pb, pc) = (sa * m * k, sb * k * n, batch * m * n);
            for i in 0..m {
                for p in 0..k {
                    let x = av[pa + i * k + p];
                    for j in 0..n {
                        data[pc + i * n + j] += x * bv[pb + p * n + j];
                    }
                }
            }
        }
        Ok(self.record(shape, a.dtype(), data, vec![a.clone(), b.clone()], move |g| {
            // dA = G Bᵀ and dB = Aᵀ G per batch entry, accumulated over broadcast batches.
            let (mut ga, mut gb) = (vec![0.0; av.len()], vec![0.0; bv.len()]);
            for (batch, (&sa, &sb)) in ia.iter().zip(&ib).enumerate() {
                let (pa, pb, pc) = (sa * m * k, sb * k * n, batch * m * n);
                for i in 0..m {
                    for p in 0..k {
                        let mut acc = 0.0;
                        for j in 0..n {
                            let gij = g[pc + i * n + j];
                            acc += gij * bv[pb + p * n + j];
                            gb[pb + p * n + j] += av[pa + i * k + p] * gij;
                        }
                        ga[pa + i * k + p] += acc;
                    }
                }
            }
            vec![Some(ga), Some(gb)]
        }))
    }
}
