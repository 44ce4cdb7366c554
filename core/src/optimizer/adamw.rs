//! AdamW, PyTorch's `torch.optim.AdamW` (`amsgrad = false`, `maximize = false`) with f32 moments:
//! the per-parameter kernel ([`adamw_update`], the default of [`Backend::adamw_update`], which a
//! backend may fuse) and the per-parameter bookkeeping that drives it ([`AdamW`]: moments and
//! step counts). The training [`Optimizer`](crate::optimizer::Optimizer) drives [`AdamW`].

use alloc::format;
use alloc::vec::Vec;

use num_traits::Float;

use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::{Error, Result};

/// AdamW hyper-parameters other than the learning rate (which a schedule supplies per step).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdamWConfig {
    /// Decay of the first moment (ORZ: 0.9).
    pub beta1: f64,
    /// Decay of the second moment (ORZ: 0.95).
    pub beta2: f64,
    /// Added to the bias-corrected root second moment (ORZ: 1e-8).
    pub eps: f64,
    /// Decoupled weight decay (ORZ: 0).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// The ORZ recipe: betas (0.9, 0.95), eps 1e-8, weight decay 0.
    fn default() -> Self {
        AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// Everything one [`Backend::adamw_update`] needs besides the tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub lr: f64,
    /// The hyper-parameters.
    pub config: AdamWConfig,
    /// This parameter's step count including this step (1 on its first update).
    pub step: u64,
}

/// Default of [`Backend::adamw_update`], all in f32 under no-grad, with `t = hp.step`:
///
/// ```text
/// p ← p · (1 − lr · weight_decay)
/// m ← β1 m + (1 − β1) g
/// v ← β2 v + (1 − β2) g²
/// p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
/// ```
pub fn adamw_update<B: Backend + ?Sized>(
    b: &B,
    param: &B::Tensor,
    grad: &B::Tensor,
    m: &B::Tensor,
    v: &B::Tensor,
    hp: &AdamWStep,
) -> Result<(B::Tensor, B::Tensor)> {
    let AdamWStep { lr, config: AdamWConfig { beta1, beta2, eps, weight_decay }, step } = *hp;
    no_grad(b, || {
        let p = b.cast(&b.detach(param)?, DType::F32)?;
        let g = b.cast(&b.detach(grad)?, DType::F32)?;
        let m = b.add(&b.affine(m, beta1, 0.0)?, &b.affine(&g, 1.0 - beta1, 0.0)?)?;
        let v = b.add(&b.affine(v, beta2, 0.0)?, &b.affine(&b.mul(&g, &g)?, 1.0 - beta2, 0.0)?)?;
        let t = i32::try_from(step).unwrap_or(i32::MAX);
        let (bc1, bc2) = (1.0 - Float::powi(beta1, t), 1.0 - Float::powi(beta2, t));
        let denom = b.affine(&b.sqrt(&v)?, 1.0 / Float::sqrt(bc2), eps)?;
        let update = b.affine(&b.div(&m, &denom)?, lr / bc1, 0.0)?;
        let p = b.sub(&b.affine(&p, 1.0 - lr * weight_decay, 0.0)?, &update)?;
        b.assign_param(param, &p)?;
        Ok((m, v))
    })
}

/// Per-parameter AdamW state: f32 moments and the step count.
#[derive(Debug, Clone)]
pub struct AdamWState<T> {
    /// First moment (f32, the parameter's shape).
    pub m: T,
    /// Second moment (f32, the parameter's shape).
    pub v: T,
    /// Updates applied so far.
    pub step: u64,
}

/// AdamW over a fixed list of parameters, holding f32 moments per parameter (PyTorch semantics:
/// a parameter whose gradient is `None` is skipped and its step count does not advance).
///
/// For bf16 compute with f32 master weights, keep the parameters themselves in f32 and cast them
/// for the forward pass: the update then happens in f32.
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    /// The hyper-parameters.
    pub config: AdamWConfig,
    state: Vec<Option<AdamWState<B::Tensor>>>,
}

impl<B: Backend> AdamW<B> {
    /// An optimizer with no state yet.
    pub fn new(config: AdamWConfig) -> Self {
        AdamW { config, state: Vec::new() }
    }

    /// The state of parameter `i` (in the order passed to [`AdamW::step`]), once it was updated.
    pub fn state(&self, i: usize) -> Option<&AdamWState<B::Tensor>> {
        self.state.get(i).and_then(Option::as_ref)
    }

    /// Replaces the state of parameter `i` (restoring a checkpoint); `None` forgets it.
    pub fn set_state(&mut self, i: usize, state: Option<AdamWState<B::Tensor>>) {
        if self.state.len() <= i {
            self.state.resize_with(i + 1, || None);
        }
        self.state[i] = state;
    }

    /// Updates every parameter that has a gradient, in place, with learning rate `lr`. The
    /// parameter list must be the same (same order) on every call. Shapes are checked for all
    /// parameters before any is updated.
    pub fn step(&mut self, b: &B, params: &[B::Tensor], grads: &[Option<B::Tensor>], lr: f64) -> Result<()> {
        crate::error::check_len("adamw_step", ("params", params.len()), ("grads", grads.len()))?;
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            if let Some(g) = g {
                let (ps, gs) = (b.shape(p), b.shape(g));
                if ps != gs {
                    return Err(Error::shape(
                        "adamw_step",
                        format!("parameter {i} has shape {ps:?} but its gradient has shape {gs:?}"),
                    ));
                }
            }
        }
        self.state.resize_with(params.len(), || None);
        for ((p, g), slot) in params.iter().zip(grads).zip(&mut self.state) {
            let Some(g) = g else { continue };
            // The moments move into the update (which may reuse their storage): no handle to the
            // old ones stays here.
            let (m, v, step) = match slot.take() {
                Some(s) => (s.m, s.v, s.step),
                None => {
                    let shape = b.shape(p);
                    (b.zeros(&shape, DType::F32)?, b.zeros(&shape, DType::F32)?, 0)
                }
            };
            let hp = AdamWStep { lr, config: self.config, step: step + 1 };
            let (m, v) = b.adamw_update(p, g, m, v, &hp)?;
            *slot = Some(AdamWState { m, v, step: step + 1 });
        }
        Ok(())
    }
}
