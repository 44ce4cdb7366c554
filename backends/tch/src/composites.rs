//! Native overrides of provided composites: libtorch's softmax family, the token log-prob on
//! `log_softmax` + `gather` (gather minus logsumexp without a gradient), AdamW on libtorch's fused
//! kernel and clipping on `_foreach_norm` (attention is in `attention.rs`). Each keeps the
//! trait's semantics (and gradient), which the conformance suite checks against the default body
//! on this backend.

use orz_core::Result;
use orz_core::optimizer::adamw::{AdamWConfig, AdamWStep};
use orz_core::optimizer::clip::clip_factor;
use tch::{Kind, Tensor};

use crate::convert::shape_of;
use crate::fused::{AdamWArgs, foreach_norm, fused_adamw};
use crate::{Tch, TchTensor, i64_of, scalar, tch_err};

impl Tch {
    /// `log_softmax` on libtorch's kernel.
    pub(crate) fn native_log_softmax(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        self.run("log_softmax", || x.t.f_log_softmax(i64_of(dim), None::<Kind>))
    }

    /// `softmax` on libtorch's kernel.
    pub(crate) fn native_softmax(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        self.run("softmax", || x.t.f_softmax(i64_of(dim), None::<Kind>))
    }

    /// `logsumexp` on libtorch's kernel.
    pub(crate) fn native_logsumexp(&self, x: &TchTensor, dim: usize, keepdim: bool) -> Result<TchTensor> {
        self.run("logsumexp", || x.t.f_logsumexp([i64_of(dim)].as_slice(), keepdim))
    }

    /// Token log-probs. Without a gradient to record, `gather(logits, target) -
    /// logsumexp(logits)`: no log-softmax (`[.., vocab]`) is kept. With one, PyTorch's
    /// `log_softmax(logits).gather(target)`: its backward (`log_softmax_backward`, one fused
    /// kernel) allocates fewer `[.., vocab]` buffers than logsumexp's (`exp(x - lse)` and the
    /// product), and each keeps one `[.., vocab]` tensor for the backward (the log-softmax, or
    /// the logits logsumexp reads). The gradient is the same: `onehot - softmax`.
    pub(crate) fn native_selective_log_prob(
        &self,
        logits: &TchTensor,
        targets: &TchTensor,
    ) -> Result<TchTensor> {
        const OP: &str = "selective_log_prob";
        let ls = shape_of(&logits.t);
        let last = ls.len() - 1;
        let d = i64_of(last);
        let context = || format!("dimension {last} of shape {ls:?}");
        self.indexed(OP, &targets.t, ls[last], context, || {
            let index = targets.t.f_unsqueeze(d)?;
            if logits.t.requires_grad() {
                return logits.t.f_log_softmax(d, None::<Kind>)?.f_gather(d, &index, false)?.f_squeeze_dim(d);
            }
            let picked = logits.t.f_gather(d, &index, false)?.f_squeeze_dim(d)?;
            picked.f_sub(&logits.t.f_logsumexp([d].as_slice(), false)?)
        })
    }

    /// AdamW (the formula of [`orz_core::optimizer::adamw::adamw_update`]) in f32 under no-grad,
    /// on libtorch's fused kernel (`_fused_adamw_`, PyTorch's `AdamW(fused=True)`: one pass that
    /// updates the parameter and both moments in place; [`crate::fused`]). The moments are
    /// consumed (see [`Backend::adamw_update`](orz_core::backend::Backend::adamw_update)) and
    /// returned updated; a parameter of another dtype, or not contiguous, is updated through an
    /// f32 copy, then copied back; the gradient is cast to f32 where it is not.
    pub(crate) fn native_adamw(
        &self,
        param: &TchTensor,
        grad: &TchTensor,
        m: TchTensor,
        v: TchTensor,
        hp: &AdamWStep,
    ) -> Result<(TchTensor, TchTensor)> {
        const OP: &str = "adamw_update";
        let AdamWStep { lr, config: AdamWConfig { beta1, beta2, eps, weight_decay }, step } = *hp;
        let args = AdamWArgs { lr, beta1, beta2, weight_decay, eps, step };
        let _guard = tch::no_grad_guard();
        let f32_contiguous = |t: Tensor| -> std::result::Result<Tensor, tch::TchError> {
            if t.f_kind()? == Kind::Float && t.is_contiguous() {
                Ok(t)
            } else {
                t.f_to_kind(Kind::Float)?.f_contiguous()
            }
        };
        let update = || {
            // The kernel writes into the moments' storage, which their shallow clones share.
            let (m, v) = (f32_contiguous(m.t.shallow_clone())?, f32_contiguous(v.t.shallow_clone())?);
            let g = f32_contiguous(grad.t.f_detach()?)?;
            let in_place = param.t.f_kind()? == Kind::Float && param.t.is_contiguous();
            let p = if in_place { param.t.shallow_clone() } else { f32_contiguous(param.t.f_detach()?)? };
            fused_adamw(&p, &g, &m, &v, args)?;
            if !in_place {
                param.t.shallow_clone().f_copy_(&p)?;
            }
            Ok::<_, tch::TchError>((TchTensor::new(m), TchTensor::new(v)))
        };
        update().map_err(|e| tch_err(OP, e))
    }

    /// Global L2 clipping (the semantics of [`orz_core::optimizer::clip::clip_grad_norm`]) as
    /// PyTorch's `clip_grad_norm_` computes it: every gradient's norm in f32 with one
    /// `_foreach_norm` ([`crate::fused`]; no cast copies, one multi-tensor kernel on CUDA), one
    /// host transfer of the norms, the total `√Σ nᵢ²` in f64, and the gradients themselves (not
    /// copies) when the factor is 1.
    pub(crate) fn native_clip_grad_norm(
        &self,
        grads: &[TchTensor],
        max_norm: f64,
    ) -> Result<(Vec<TchTensor>, f64)> {
        const OP: &str = "clip_grad_norm";
        if grads.is_empty() {
            return Ok((Vec::new(), 0.0));
        }
        let _guard = tch::no_grad_guard();
        // Every gradient's norm in f32 in one call, one host transfer, their squares summed in f64.
        let tensors: Vec<&Tensor> = grads.iter().map(|g| &*g.t).collect();
        let norms = foreach_norm(&tensors).map_err(|e| tch_err(OP, e))?;
        let norm = self
            .download::<f32>(OP, &norms)?
            .iter()
            .map(|&n| f64::from(n) * f64::from(n))
            .sum::<f64>()
            .sqrt();
        if !norm.is_finite() {
            return Ok((grads.to_vec(), norm));
        }
        let factor = clip_factor(norm, max_norm)?;
        if factor == 1.0 {
            return Ok((grads.to_vec(), norm));
        }
        let scaled = grads
            .iter()
            .map(|g| scalar::mul(&g.t, factor).map(TchTensor::new))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| tch_err(OP, e))?;
        Ok((scaled, norm))
    }
}
