//! The override of [`Backend::causal_attention`]: the blockwise kernel of [`super::flash`] as a
//! candle custom op with a backward, so neither the forward nor the gradient ever holds a
//! `T × T` buffer (the default builds the mask and the dense probabilities, which its backward
//! keeps).
//!
//! - **Dtypes**: `q`, `k`, `v` are cast to f32 (differentiably) and the f32 output is cast back
//!   to `q`'s dtype, so bf16 / f16 compute in f32 throughout. Unlike the default (HF eager), the
//!   scores and probabilities are not rounded to the input dtype before the `P V` product, which
//!   is closer to the exact result; the conformance suite holds both to the same tolerance.
//! - **Recording**: with a gradient to record the op keeps the per-row logsumexp (f32,
//!   `[b, hq, s]`) for its backward; without, it records nothing (generation prefill).
//! - **CUDA**: the inputs are copied to the host, the op runs on the CPU, and the output is
//!   copied back (`to_device` is differentiable, so the gradients return to the device as
//!   well). Correct with memory linear in the pack length, but host speed.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp3, DType as CDType, Device, Layout, Shape, Tensor};
use orz_core::Result;
#[cfg(doc)]
use orz_core::backend::Backend;

use super::flash::{self, Dims, Problem};
use crate::{Candle, OrBackend};

const OP: &str = "causal_attention";

/// The candle op: blockwise causal attention over packed rows on f32 inputs, with its backward.
struct FlashCausal {
    /// The shapes.
    dims: Dims,
    /// The segment ids `[b, s]`, on the host.
    seg: Arc<Vec<i64>>,
    /// The tile size.
    block: usize,
    /// Whether the forward keeps the logsumexp for the backward.
    keep_lse: bool,
    /// The logsumexp the forward saved (`[b, hq, s]`).
    lse: Mutex<Option<Vec<f32>>>,
}

impl FlashCausal {
    /// The problem over host buffers.
    fn problem<'a>(&'a self, q: &'a [f32], k: &'a [f32], v: &'a [f32]) -> Problem<'a> {
        Problem { dims: self.dims, q, k, v, seg: &self.seg, block: self.block }
    }
}

/// The f32 elements of a contiguous CPU storage.
fn host<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{OP}: the fused op needs contiguous f32 inputs"),
    }
}

/// The elements of any tensor as f32 on the host.
fn to_host(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(CDType::F32)?.flatten_all()?.to_vec1()
}

impl CustomOp3 for FlashCausal {
    fn name(&self) -> &'static str {
        "orz-flash-causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = self.problem(host(s1, l1)?, host(s2, l2)?, host(s3, l3)?);
        let (out, lse) = flash::forward(&p).map_err(candle_core::Error::msg)?;
        if self.keep_lse {
            *self.lse.lock().unwrap_or_else(PoisonError::into_inner) = Some(lse);
        }
        let Dims { batch, hq, s, dv, .. } = self.dims;
        Ok((CpuStorage::F32(out), Shape::from((batch, hq, s, dv))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (qh, kh, vh) = (to_host(q)?, to_host(k)?, to_host(v)?);
        let p = self.problem(&qh, &kh, &vh);
        let saved = self.lse.lock().unwrap_or_else(PoisonError::into_inner).take();
        let lse = match saved {
            Some(lse) => lse,
            None => flash::forward(&p).map_err(candle_core::Error::msg)?.1,
        };
        let grads = flash::backward(&p, &to_host(res)?, &to_host(grad_res)?, &lse)
            .map_err(candle_core::Error::msg)?;
        let back = |g: Vec<f32>, like: &Tensor| {
            Tensor::from_vec(g, like.shape(), like.device())?.to_dtype(like.dtype())
        };
        Ok((Some(back(grads.dq, q)?), Some(back(grads.dk, k)?), Some(back(grads.dv, v)?)))
    }
}

/// Override of [`Backend::causal_attention`] (see the module docs): the blockwise op on
/// arguments [`Backend`] has checked.
pub fn causal_attention(
    b: &Candle,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    segment_ids: &Tensor,
) -> Result<Tensor> {
    let (qs, ks, vs) = (q.dims(), k.dims(), v.dims());
    let dims = Dims { batch: qs[0], hq: qs[1], hkv: ks[1], s: qs[2], d: qs[3], dv: vs[3] };
    if [dims.batch, dims.hq, dims.s, dims.d, dims.dv].contains(&0) {
        return orz_core::backend::nn::causal_attention(b, q, k, v, segment_ids);
    }
    let seg: Vec<i64> = segment_ids.flatten_all().and_then(|t| t.to_vec1()).or_backend(OP)?;
    let records = b.records(&[q, k, v]);
    let op = FlashCausal {
        dims,
        seg: Arc::new(seg),
        block: b.attention_block(),
        keep_lse: records,
        lse: Mutex::new(None),
    };
    let run = || -> candle_core::Result<Tensor> {
        let on_host = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(CDType::F32)?.contiguous();
        let (q32, k32, v32) = (on_host(q)?, on_host(k)?, on_host(v)?);
        let out =
            if records { q32.apply_op3(&k32, &v32, op)? } else { q32.apply_op3_no_bwd(&k32, &v32, &op)? };
        out.to_dtype(q.dtype())?.to_device(q.device())
    };
    Ok(b.out(run().or_backend(OP)?))
}
