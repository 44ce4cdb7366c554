//! The CPU override of [`Backend::selective_log_prob`]: one candle custom op with its own
//! backward, so neither pass builds the `[rows, vocab]` intermediates of the composition
//! (shifted logits, their exponentials, and each of their gradients, which candle's autograd
//! would zero-fill and add up one by one).
//!
//! - **Forward**, per row of logits `x` and target `t`: `m = max(x)` (0 when not finite, as the
//!   defaults shift), `lse = m + ln Σ exp(x − m)` with the sum accumulated in f64, output
//!   `x[t] − lse`. It keeps each row's `lse` (f32) for the backward when a gradient is recorded.
//! - **Backward**: `∂/∂x = g · (onehot(t) − exp(x − lse))`, written in one pass.
//! - **Where**: f32 logits on the CPU, contiguous. Other dtypes and devices keep the composition
//!   of [`super::fused::selective_log_prob`].
//! - Rows run in parallel on rayon's pool, as candle's own CPU kernels do.

use std::sync::{Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp2, DType as CDType, Device, Layout, Shape, Tensor};
#[cfg(doc)]
use orz_core::backend::Backend;
use orz_core::{Error, Result};
use rayon::prelude::*;

use crate::{Candle, OrBackend};

const OP: &str = "selective_log_prob";

/// Whether the fused op takes these logits: f32, contiguous, on the CPU, a non-empty vocabulary.
pub fn applies(logits: &Tensor) -> bool {
    matches!(logits.device(), Device::Cpu)
        && logits.dtype() == CDType::F32
        && logits.is_contiguous()
        && logits.dims().last().is_some_and(|&v| v > 0)
}

/// The forward op: logits `[rows, vocab]` (as a contiguous f32 buffer) and the targets (on the
/// host, checked in range) to `[rows]` log-probabilities.
struct FusedLogProb {
    /// One target per row.
    targets: Vec<usize>,
    /// The last dimension of the logits (at least 1).
    vocab: usize,
    /// The output's shape (the logits' without the last dimension).
    out_shape: Shape,
    /// Whether the forward keeps each row's log-normalizer for the backward.
    keep_lse: bool,
    /// The log-normalizers the forward kept.
    lse: Mutex<Option<Vec<f32>>>,
}

/// The f32 elements of a contiguous CPU storage.
fn host<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{OP}: the fused op needs contiguous f32 logits"),
    }
}

/// A row's log-normalizer `m + ln Σ exp(x − m)`, `m` the maximum (0 when not finite).
fn log_normalizer(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let m = if max.is_finite() { max } else { 0.0 };
    let sum: f64 = row.iter().map(|&x| f64::from((x - m).exp())).sum();
    m + (sum.ln() as f32)
}

impl CustomOp2 for FusedLogProb {
    fn name(&self) -> &'static str {
        "orz-selective-log-prob"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, vocab) = (host(s1, l1)?, self.vocab);
        let lse: Vec<f32> = x.par_chunks(vocab).map(log_normalizer).collect();
        let out = x.chunks(vocab).zip(&self.targets).zip(&lse).map(|((row, &t), &l)| row[t] - l).collect();
        if self.keep_lse {
            *self.lse.lock().unwrap_or_else(PoisonError::into_inner) = Some(lse);
        }
        Ok((CpuStorage::F32(out), self.out_shape.clone()))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let x = logits.flatten_all()?;
        let saved = self.lse.lock().unwrap_or_else(PoisonError::into_inner).take();
        let vocab = self.vocab;
        let lse = match saved {
            Some(lse) => lse,
            None => x.to_vec1::<f32>()?.chunks(vocab).map(log_normalizer).collect(),
        };
        let g: Vec<f32> = grad_res.to_dtype(CDType::F32)?.flatten_all()?.to_vec1()?;
        let grad = LogProbGrad { targets: &self.targets, lse, g, vocab };
        let dx = x.apply_op1_no_bwd(&grad)?.reshape(logits.shape())?;
        Ok((Some(dx), None))
    }
}

/// The backward's one pass: `dx = g · (onehot(t) − exp(x − lse))` per row.
struct LogProbGrad<'a> {
    targets: &'a [usize],
    lse: Vec<f32>,
    g: Vec<f32>,
    vocab: usize,
}

impl candle_core::CustomOp1 for LogProbGrad<'_> {
    fn name(&self) -> &'static str {
        "orz-selective-log-prob-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = host(s, l)?;
        let mut dx = vec![0f32; x.len()];
        let rows = dx.par_chunks_mut(self.vocab).zip(x.par_chunks(self.vocab));
        rows.enumerate().for_each(|(r, (out, row))| {
            let (g, lse, t) = (self.g[r], self.lse[r], self.targets[r]);
            for (o, &x) in out.iter_mut().zip(row) {
                *o = -g * (x - lse).exp();
            }
            out[t] += g;
        });
        Ok((CpuStorage::F32(dx), Shape::from(x.len())))
    }
}

/// Override of [`Backend::selective_log_prob`] for logits [`applies`] accepts: the fused op
/// (module docs), recorded when a gradient is.
pub fn selective_log_prob(b: &Candle, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let dims = logits.dims();
    let vocab = dims[dims.len() - 1];
    let raw: Vec<i64> = targets.flatten_all().and_then(|t| t.to_vec1()).or_backend(OP)?;
    let targets_host = raw
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            usize::try_from(t).ok().filter(|&t| t < vocab).ok_or_else(|| Error::IndexOutOfRange {
                op: OP,
                index: t,
                size: vocab,
                context: format!("target {i} of {} against the last dimension of logits {dims:?}", raw.len()),
            })
        })
        .collect::<Result<Vec<usize>>>()?;
    let records = b.records(&[logits]);
    let op = FusedLogProb {
        targets: targets_host,
        vocab,
        out_shape: Shape::from(&dims[..dims.len() - 1]),
        keep_lse: records,
        lse: Mutex::new(None),
    };
    let out = if records { logits.apply_op2(targets, op) } else { logits.apply_op2_no_bwd(targets, &op) };
    Ok(b.out(out.or_backend(OP)?))
}
