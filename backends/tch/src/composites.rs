//! Native overrides of provided composites: libtorch's softmax family, a gather-minus-logsumexp
//! token log-prob, AdamW on PyTorch's single-tensor kernels, and clipping with per-tensor norms
//! (attention is in `attention.rs`). Each keeps the trait's semantics (and gradient), which the conformance suite
//! checks against the default body on this backend.

use std::rc::Rc;

use orz_core::Result;
use orz_core::optimizer::adamw::{AdamWConfig, AdamWStep};
use orz_core::optimizer::clip::clip_factor;
use tch::{Kind, Tensor};

use crate::convert::shape_of;
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
    /// on PyTorch's single-tensor kernel sequence and, like it, with the moments updated in place
    /// (they are consumed, see [`Backend::adamw_update`](orz_core::backend::Backend::adamw_update)):
    /// `lerp_` towards `g` for the first moment, `lerp_` towards `g * g` for the second (one
    /// temporary), `sqrt` (a second temporary) and two in-place scalar kernels for the
    /// denominator, and an in-place `mul_` (weight decay) and `addcdiv_` on an f32 parameter (on
    /// an f32 copy, then copied back, for another dtype). The step size `-lr / (1 - β1^t)` is
    /// folded into the denominator, as tch's `addcdiv_` has no `value` argument. libtorch's
    /// `_fused_adamw_` (one kernel) is not exposed by tch 0.24.
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
        let t = i32::try_from(step).unwrap_or(i32::MAX);
        let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        let _guard = tch::no_grad_guard();
        // The moments' own tensors (shallow views of their storage when another handle exists).
        let owned = |t: TchTensor| Rc::try_unwrap(t.t).unwrap_or_else(|shared| shared.shallow_clone());
        let (mut m, mut v) = (owned(m), owned(v));
        let mut update = || {
            let g = grad.t.f_detach()?.f_to_kind(Kind::Float)?;
            // m ← m + (1 - β1)(g - m) and v ← v + (1 - β2)(g² - v), in place.
            let _ = m.f_lerp_tensor_(&g, &scalar::scalar_for(&g, 1.0 - beta1)?)?;
            let _ = v.f_lerp_tensor_(&g.f_mul(&g)?, &scalar::scalar_for(&g, 1.0 - beta2)?)?;
            let f32_param = param.t.f_kind()? == Kind::Float;
            let mut p = if f32_param { param.t.shallow_clone() } else { param.t.f_to_kind(Kind::Float)? };
            if weight_decay != 0.0 {
                scalar::mul_(&mut p, 1.0 - lr * weight_decay)?;
            }
            if lr != 0.0 {
                let mut denom = v.f_sqrt()?;
                let fold = -bc1 / lr;
                if fold.abs() / bc2.sqrt() < 1e30 {
                    // p += m / denom' with denom' = (sqrt(v) / sqrt(bc2) + eps) * -(bc1 / lr),
                    // that is p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
                    scalar::mul_(&mut denom, fold / bc2.sqrt())?;
                    scalar::add_(&mut denom, eps * fold)?;
                    let _ = p.f_addcdiv_(&m, &denom)?;
                } else {
                    // A learning rate so small that the folded factor could overflow f32.
                    scalar::mul_(&mut denom, 1.0 / bc2.sqrt())?;
                    scalar::add_(&mut denom, eps)?;
                    let mut update = m.f_div(&denom)?;
                    scalar::mul_(&mut update, -lr / bc1)?;
                    let _ = p.f_add_(&update)?;
                }
            }
            if !f32_param {
                param.t.shallow_clone().f_copy_(&p)?;
            }
            Ok::<_, tch::TchError>(())
        };
        update().map_err(|e| tch_err(OP, e))?;
        Ok((TchTensor::new(m), TchTensor::new(v)))
    }

    /// Global L2 clipping (the semantics of [`orz_core::optimizer::clip::clip_grad_norm`]): one
    /// f32 `dot(g, g)` per gradient (one pass over an f32 gradient, where the default casts,
    /// squares and sums), one host transfer for the total, and the gradients themselves (not
    /// copies) when the factor is 1. (tch 0.24 exposes no `_foreach_norm`.)
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
        // Per-gradient sums of squares as `dot(g, g)` in f32: one pass, no squared copy.
        let squares = grads
            .iter()
            .map(|g| {
                let flat = g.t.f_to_kind(Kind::Float)?.f_reshape([-1])?;
                flat.f_dot(&flat)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .and_then(|n| Tensor::f_stack(&n, 0)?.f_sum(Kind::Float))
            .map_err(|e| tch_err(OP, e))?;
        let total = self.download::<f64>(OP, &squares)?.first().copied().unwrap_or(0.0);
        let norm = total.sqrt();
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
