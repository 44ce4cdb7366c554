//! Native overrides of provided composites: libtorch's softmax family,
//! `scaled_dot_product_attention`, a gather-minus-logsumexp token log-prob, and AdamW on a few
//! f32 kernels. Each keeps the trait's semantics (and gradient), which the conformance suite
//! checks against the default body on this backend.

use orz_core::backend::DType;
use orz_core::backend::optim::{AdamWConfig, AdamWStep};
use orz_core::backend::shape::{broadcast_shapes, check_dim, check_float};
use orz_core::{Error, Result};
use tch::{Kind, Tensor};

use crate::convert::{dtype_of, kind, shape_of};
use crate::{Tch, TchTensor, i64_of, tch_err};

/// A float `x` and a valid `dim` of it.
fn float_dim(op: &'static str, x: &TchTensor, dim: usize) -> Result<()> {
    check_float(op, "x", dtype_of(&x.t))?;
    check_dim(op, &shape_of(&x.t), dim)
}

/// The shape checks of [`orz_core::backend::nn::attention`], with its messages.
fn check_attention(q: &[usize], k: &[usize], v: &[usize]) -> Result<()> {
    let fits = q.len() == 4
        && k.len() == 4
        && v.len() == 4
        && q[0] == k[0]
        && k[..3] == v[..3]
        && q[3] == k[3]
        && k[1] > 0
        && q[1].is_multiple_of(k[1]);
    if fits {
        Ok(())
    } else {
        Err(Error::shape(
            "attention",
            format!(
                "q {q:?}, k {k:?}, v {v:?} are incompatible (need [b, hq, sq, d], [b, hkv, skv, d], [b, hkv, skv, dv] with hkv dividing hq)"
            ),
        ))
    }
}

impl Tch {
    /// `log_softmax` on libtorch's kernel.
    pub(crate) fn native_log_softmax(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        float_dim("log_softmax", x, dim)?;
        self.run("log_softmax", || x.t.f_log_softmax(i64_of(dim), None::<Kind>))
    }

    /// `softmax` on libtorch's kernel.
    pub(crate) fn native_softmax(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        float_dim("softmax", x, dim)?;
        self.run("softmax", || x.t.f_softmax(i64_of(dim), None::<Kind>))
    }

    /// `logsumexp` on libtorch's kernel.
    pub(crate) fn native_logsumexp(&self, x: &TchTensor, dim: usize, keepdim: bool) -> Result<TchTensor> {
        float_dim("logsumexp", x, dim)?;
        self.run("logsumexp", || x.t.f_logsumexp([i64_of(dim)].as_slice(), keepdim))
    }

    /// Token log-probs as `gather(logits, target) - logsumexp(logits)`: the full log-softmax
    /// (`[.., vocab]`) is never materialized, and the gradient is the same
    /// (`onehot - softmax`).
    pub(crate) fn native_selective_log_prob(
        &self,
        logits: &TchTensor,
        targets: &TchTensor,
    ) -> Result<TchTensor> {
        const OP: &str = "selective_log_prob";
        let ls = shape_of(&logits.t);
        let last = ls
            .len()
            .checked_sub(1)
            .ok_or_else(|| Error::shape(OP, "a scalar (shape []) has no last dimension"))?;
        check_float(OP, "logits", dtype_of(&logits.t))?;
        let ts = shape_of(&targets.t);
        if ts[..] != ls[..last] {
            return Err(Error::shape(
                OP,
                format!("logits of shape {ls:?} need targets of shape {:?}, got {ts:?}", &ls[..last]),
            ));
        }
        let d = i64_of(last);
        let context = || format!("dimension {last} of shape {ls:?}");
        self.indexed(OP, &targets.t, ls[last], context, || {
            let picked = logits.t.f_gather(d, &targets.t.f_unsqueeze(d)?, false)?.f_squeeze_dim(d)?;
            picked.f_sub(&logits.t.f_logsumexp([d].as_slice(), false)?)
        })
    }

    /// `attention` on `scaled_dot_product_attention` with an additive mask: 0 where allowed, the
    /// dtype's most negative finite value elsewhere, so a fully masked row averages the values
    /// uniformly (as the trait and Hugging Face's eager path do) instead of giving NaN. GQA uses
    /// `enable_gqa` (kv head `h / (hq / hkv)`, as `repeat_kv`).
    pub(crate) fn sdpa(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        mask: &TchTensor,
    ) -> Result<TchTensor> {
        let (qs, ks, vs, ms) = (shape_of(&q.t), shape_of(&k.t), shape_of(&v.t), shape_of(&mask.t));
        check_attention(&qs, &ks, &vs)?;
        let dtype = dtype_of(&q.t);
        check_float("attention", "q", dtype)?;
        for (what, t) in [("k", k), ("v", v)] {
            let d = dtype_of(&t.t);
            if d != dtype {
                return Err(Error::dtype(
                    "attention",
                    format!("q has dtype {dtype} but {what} has dtype {d}"),
                ));
            }
        }
        let dm = dtype_of(&mask.t);
        if dm != DType::Bool {
            return Err(Error::dtype("attention", format!("mask has dtype {dm}, bool is required")));
        }
        let scores = [qs[0], qs[1], qs[2], ks[2]];
        if broadcast_shapes("attention", &ms, &scores).ok().as_deref() != Some(&scores[..]) {
            return Err(Error::shape(
                "attention",
                format!("mask of shape {ms:?} does not broadcast to {scores:?}"),
            ));
        }
        self.sdpa_masked(q, k, v, &mask.t, true)
    }

    /// SDPA with the additive mask of `mask`. With `empty_rows`, rows where `mask` allows no key
    /// are made exactly uniform: libtorch's kernels save `logsumexp = max + log(sum)` for the
    /// backward pass, and with every score at the dtype's minimum the `log(sum)` is lost to
    /// rounding (the value gradient of such a row came out `n` times too large). So those rows get
    /// a zero bias and a zero query (scores all 0: the uniform average, and, as with a constant
    /// fill, no gradient to `q` or `k`).
    fn sdpa_masked(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        mask: &Tensor,
        empty_rows: bool,
    ) -> Result<TchTensor> {
        let dtype = dtype_of(&q.t);
        let fill = dtype.min_finite().unwrap_or(f64::MIN);
        let options = (kind(dtype), self.device);
        let head_dim = q.t.size().last().copied().unwrap_or(1).max(1);
        let scale = 1.0 / (head_dim as f64).sqrt();
        let gqa = q.t.size()[1] != k.t.size()[1];
        let zero = Tensor::f_zeros([], options).map_err(|e| tch_err("attention", e))?;
        let (bias, any) = {
            let _guard = tch::no_grad_guard();
            let build = || {
                let bias = zero.f_where_self(mask, &Tensor::f_full([], fill, options)?)?;
                if !empty_rows {
                    return Ok((bias, None));
                }
                let any = mask.f_any_dim(-1, true)?;
                Ok((bias.f_where_self(&any, &zero)?, Some(any)))
            };
            build().map_err(|e| tch_err("attention", e))?
        };
        self.run("attention", || {
            let q = match &any {
                Some(any) => q.t.f_where_self(any, &zero)?,
                None => q.t.shallow_clone(),
            };
            Tensor::f_scaled_dot_product_attention(&q, &k.t, &v.t, Some(&bias), 0.0, false, scale, gqa)
        })
    }

    /// `causal_attention` on `scaled_dot_product_attention` with the explicit block-diagonal
    /// causal mask `(j <= i) && seg[i] == seg[j]`, built on the device: packed rows with several
    /// samples are exact.
    pub(crate) fn sdpa_causal(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        segment_ids: &TchTensor,
    ) -> Result<TchTensor> {
        const OP: &str = "causal_attention";
        let (qs, ks, ss) = (shape_of(&q.t), shape_of(&k.t), shape_of(&segment_ids.t));
        if qs.len() != 4 || ks.len() != 4 || ss.len() != 2 || ss[..] != [qs[0], qs[2]] || ks[2] != qs[2] {
            return Err(Error::shape(
                OP,
                format!(
                    "segment_ids of shape {ss:?} do not fit q {qs:?} and k {ks:?} (need [b, s] with sq = skv = s)"
                ),
            ));
        }
        let ds = dtype_of(&segment_ids.t);
        if ds != DType::I64 {
            return Err(Error::dtype(OP, format!("segment_ids have dtype {ds}, i64 is required")));
        }
        let (batch, s) = (i64_of(ss[0]), i64_of(ss[1]));
        let mask = {
            let _guard = tch::no_grad_guard();
            let build = || {
                let pos = Tensor::f_arange(s, (Kind::Int64, self.device))?;
                let causal = pos.f_reshape([s, 1])?.f_ge_tensor(&pos.f_reshape([1, s])?)?;
                let seg = &segment_ids.t;
                let same = seg.f_reshape([batch, 1, s, 1])?.f_eq_tensor(&seg.f_reshape([batch, 1, 1, s])?)?;
                same.f_logical_and(&causal)
            };
            build().map_err(|e| tch_err(OP, e))?
        };
        check_attention(&qs, &ks, &shape_of(&v.t))?;
        check_float("attention", "q", dtype_of(&q.t))?;
        // Every row attends at least to itself: no empty rows.
        self.sdpa_masked(q, k, v, &mask, false)
    }

    /// AdamW (the formula of [`orz_core::backend::optim::adamw_update`]) in f32 under no-grad,
    /// with `lerp` for the first moment and in-place kernels on fresh buffers (the moments passed
    /// in are not modified).
    pub(crate) fn native_adamw(
        &self,
        param: &TchTensor,
        grad: &TchTensor,
        m: &TchTensor,
        v: &TchTensor,
        hp: &AdamWStep,
    ) -> Result<(TchTensor, TchTensor)> {
        const OP: &str = "adamw_update";
        let AdamWStep { lr, config: AdamWConfig { beta1, beta2, eps, weight_decay }, step } = *hp;
        if step == 0 {
            return Err(Error::invalid(OP, "step counts from 1"));
        }
        let ps = shape_of(&param.t);
        for (what, t) in [("grad", grad), ("m", m), ("v", v)] {
            let s = shape_of(&t.t);
            if s != ps {
                return Err(Error::shape(
                    OP,
                    format!("parameter has shape {ps:?} but {what} has shape {s:?}"),
                ));
            }
        }
        check_float(OP, "grad", dtype_of(&grad.t))?;
        for (what, t) in [("m", m), ("v", v)] {
            let d = dtype_of(&t.t);
            if d != DType::F32 {
                return Err(Error::dtype(OP, format!("{what} has dtype {d}, f32 is required")));
            }
        }
        if !param.param {
            return Err(Error::invalid(OP, "the target is not a parameter (see Backend::param)"));
        }
        let t = i32::try_from(step).unwrap_or(i32::MAX);
        let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        let _guard = tch::no_grad_guard();
        let update = || {
            let g = grad.t.f_detach()?.f_to_kind(Kind::Float)?;
            let m_new = m.t.f_lerp(&g, 1.0 - beta1)?;
            let mut v_new = g.f_mul(&g)?;
            let _ = v_new.f_mul_scalar_(1.0 - beta2)?;
            let _ = v_new.f_add_(&v.t.f_mul_scalar(beta2)?)?;
            let mut denom = v_new.f_sqrt()?;
            let _ = denom.f_mul_scalar_(1.0 / bc2.sqrt())?;
            let _ = denom.f_add_scalar_(eps)?;
            let mut step = m_new.f_div(&denom)?;
            let _ = step.f_mul_scalar_(lr / bc1)?;
            let mut p = param.t.f_detach()?.f_to_kind(Kind::Float)?.f_mul_scalar(1.0 - lr * weight_decay)?;
            let _ = p.f_sub_(&step)?;
            param.t.shallow_clone().f_copy_(&p)?;
            Ok((m_new, v_new))
        };
        let (m_new, v_new) = update().map_err(|e| tch_err(OP, e))?;
        Ok((TchTensor::new(m_new), TchTensor::new(v_new)))
    }
}
