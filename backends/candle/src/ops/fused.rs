//! The composites [`Candle`] overrides with faster candle paths. Each keeps the default's
//! gradient: fused kernels without a backward (candle-nn's `softmax_last_dim`, `rms_norm`) run
//! only when nothing is recorded (recording off, or no input that
//! requires a gradient); otherwise a differentiable composition of candle ops runs, which
//! skips the per-primitive validation and bookkeeping of the default bodies.
//!
//! | override | faster because |
//! |---|---|
//! | `log_softmax`, `logsumexp` | one shift by the detached max, then candle's exp / sum / log |
//! | `softmax` | fused `softmax_last_dim` when not recording |
//! | `selective_log_prob` | on the CPU in f32, one custom op with its own backward ([`super::log_prob`]); elsewhere the chosen logits minus the log-normalizer: no full log-softmax |
//! | `silu` | candle's native `silu` (with its backward) |
//! | `linear` | one 2-D gemm against the transposed weight view (no broadcast batch copies) |
//! | `rms_norm` | fused kernel when not recording; f32 composition otherwise |
//! | `attention` | GQA by reshaping the query heads onto their kv head (no `repeat_kv` copies); fused softmax when not recording |
//! | `adamw_update` | three in-place f32 passes on the CPU ([`super::adamw`]) |

use candle_core::{DType as CDType, Tensor};
use orz_core::Result;
use orz_core::backend::Backend;

use super::elementwise::expand;
use crate::{Candle, OrBackend, orz_dtype};

/// `a @ b`, retrying on contiguous copies when gemm cannot read a layout directly.
fn mm(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    a.matmul(b).or_else(|_| a.contiguous()?.matmul(&b.contiguous()?))
}

/// `(x - m, m)` with `m` the detached maximum along `dim` (kept), replaced by 0 where it is not
/// finite, as the defaults shift (see `orz_core::backend::ops`).
fn shift(x: &Tensor, dim: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let m = x.max_keepdim(dim)?.detach();
    let finite = m.abs()?.lt(f64::INFINITY)?;
    let m = finite.where_cond(&m, &m.zeros_like()?)?;
    Ok((x.broadcast_sub(&m)?, m))
}

/// Override of [`Backend::log_softmax`]: `(x - m) - log(sum(exp(x - m)))`.
pub fn log_softmax(b: &Candle, x: &Tensor, dim: usize) -> Result<Tensor> {
    let run = || -> candle_core::Result<Tensor> {
        let (z, _) = shift(x, dim)?;
        z.broadcast_sub(&z.exp()?.sum_keepdim(dim)?.log()?)
    };
    Ok(b.out(run().or_backend("log_softmax")?))
}

/// Override of [`Backend::logsumexp`]: `log(sum(exp(x - m))) + m`.
pub fn logsumexp(b: &Candle, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
    let run = || -> candle_core::Result<Tensor> {
        let (z, m) = shift(x, dim)?;
        let lse = z.exp()?.sum_keepdim(dim)?.log()?.add(&m)?;
        if keepdim { Ok(lse) } else { lse.squeeze(dim) }
    };
    Ok(b.out(run().or_backend("logsumexp")?))
}

/// The softmax along `dim` without validation: fused over the last dimension when nothing is
/// recorded, `e / sum(e)` with `e = exp(x - m)` otherwise.
fn softmax_raw(b: &Candle, x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    if dim + 1 == x.rank() && !b.records(&[x]) {
        return candle_nn::ops::softmax_last_dim(&x.contiguous()?);
    }
    let (z, _) = shift(x, dim)?;
    let e = z.exp()?;
    e.broadcast_div(&e.sum_keepdim(dim)?)
}

/// Override of [`Backend::softmax`].
pub fn softmax(b: &Candle, x: &Tensor, dim: usize) -> Result<Tensor> {
    Ok(b.out(softmax_raw(b, x, dim).or_backend("softmax")?))
}

/// Override of [`Backend::selective_log_prob`]: `(x[t] - m) - log(sum(exp(x - m)))`, gathering
/// only the chosen logits.
pub fn selective_log_prob(b: &Candle, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    const OP: &str = "selective_log_prob";
    if super::log_prob::applies(logits) {
        return super::log_prob::selective_log_prob(b, logits, targets);
    }
    let last = logits.rank() - 1;
    let idx = targets.unsqueeze(last).or_backend(OP)?;
    let picked = b.gather(logits, last, &idx)?;
    let run = || -> candle_core::Result<Tensor> {
        let (z, m) = shift(logits, last)?;
        let log_norm = z.exp()?.sum_keepdim(last)?.log()?;
        picked.sub(&m)?.sub(&log_norm)?.squeeze(last)
    };
    Ok(b.out(run().or_backend(OP)?))
}

/// Override of [`Backend::silu`]: candle's native `silu`.
pub fn silu(b: &Candle, x: &Tensor) -> Result<Tensor> {
    Ok(b.out(x.silu().or_backend("silu")?))
}

/// Override of [`Backend::linear`]: `x` flattened to 2-D times the transposed weight view.
pub fn linear(b: &Candle, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "linear";
    let (xs, ws) = (x.dims(), w.dims());
    let (n_in, n_out) = (ws[1], ws[0]);
    let rows: usize = xs[..xs.len() - 1].iter().product();
    let mut out_shape = xs.to_vec();
    *out_shape.last_mut().unwrap_or(&mut 0) = n_out;
    if rows == 0 || n_in == 0 {
        let zeros = Tensor::zeros(out_shape.as_slice(), x.dtype(), x.device()).or_backend(OP)?;
        return match bias {
            Some(bias) => b.add(&zeros, bias),
            None => Ok(zeros),
        };
    }
    let run = || -> candle_core::Result<Tensor> {
        let y = mm(&x.reshape((rows, n_in))?, &w.t()?)?;
        let y = match bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        y.reshape(out_shape.as_slice())
    };
    Ok(b.out(run().or_backend(OP)?))
}

/// Override of [`Backend::rms_norm`]: candle-nn's fused kernel on the f32 input when nothing is
/// recorded; otherwise `weight * cast(x32 / sqrt(mean(x32²) + eps))`.
pub fn rms_norm(b: &Candle, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    const OP: &str = "rms_norm";
    let last = x.rank() - 1;
    let xs = x.dims();
    let run = || -> candle_core::Result<Tensor> {
        let x32 = x.to_dtype(CDType::F32)?;
        if !b.records(&[x, weight]) && xs[last] > 0 {
            let w32 = weight.to_dtype(CDType::F32)?;
            return candle_nn::ops::rms_norm(&x32.contiguous()?, &w32, eps as f32)?.to_dtype(x.dtype());
        }
        let inv = x32.sqr()?.mean_keepdim(last)?.affine(1.0, eps)?.sqrt()?.recip()?;
        weight.broadcast_mul(&x32.broadcast_mul(&inv)?.to_dtype(x.dtype())?)
    };
    Ok(b.out(run().or_backend(OP)?))
}

/// Override of [`Backend::attention`]: the `hq / hkv` query heads of each kv head are stacked
/// along the query axis (`[b, hkv, rep * sq, d]`, a reshape), so `q kᵀ` and `p v` run against
/// the kv heads as they are; masked scores get the dtype's minimum; the softmax runs in f32.
pub fn attention(b: &Candle, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
    const OP: &str = "attention";
    let (qs, ks, vs) = (q.dims(), k.dims(), v.dims());
    let dtype = orz_dtype(q.dtype());
    let scores_shape = [qs[0], qs[1], qs[2], ks[2]];
    if scores_shape.contains(&0) || qs[3] == 0 || vs[3] == 0 {
        return b.call_default_attention(q, k, v, mask);
    }
    let (batch, hq, sq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (hkv, skv, dv) = (ks[1], ks[2], vs[3]);
    let rep = hq / hkv;
    let scale = 1.0 / (d as f64).sqrt();
    let fill = dtype.min_finite().unwrap_or(f64::MIN);
    let run = || -> candle_core::Result<Tensor> {
        let q2 = q.contiguous()?.reshape((batch, hkv, rep * sq, d))?;
        let scores = mm(&q2, &k.t()?)?.reshape(&scores_shape[..])?.affine(scale, 0.0)?;
        let fill = Tensor::full(fill as f32, (), q.device())?
            .to_dtype(q.dtype())?
            .broadcast_as(&scores_shape[..])?;
        let scores = expand(mask, &scores_shape)?.where_cond(&scores, &fill)?.to_dtype(CDType::F32)?;
        let probs = softmax_raw(b, &scores, 3)?.to_dtype(q.dtype())?;
        let out = mm(&probs.reshape((batch, hkv, rep * sq, skv))?, v)?;
        out.reshape((batch, hq, sq, dv))
    };
    Ok(b.out(run().or_backend(OP)?))
}

impl Candle {
    /// The default attention body (for the degenerate empty shapes the override leaves to it).
    fn call_default_attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        orz_core::backend::nn::attention(self, q, k, v, mask)
    }
}
