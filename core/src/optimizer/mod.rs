//! The training optimizer, all in one place: the driver [`Optimizer`] (AdamW driven by a
//! learning-rate [`LrSchedule`], with gradient accumulation over micro-batches, global-norm
//! clipping, f32 master weights for bf16/f16 parameters, and a NaN/Inf guard), the AdamW kernel
//! and its per-parameter state ([`adamw`], PyTorch semantics, f32 moments), and gradient-norm
//! clipping with its one clip factor ([`clip`], PyTorch `clip_grad_norm_`). The kernels are the
//! defaults of [`Backend::adamw_update`] and [`Backend::clip_grad_norm`], which a backend may
//! override with a fused path.
//!
//! One optimizer step of ORZ (per model; the policy and the critic each own an [`Optimizer`]
//! and count their own steps):
//!
//! ```text
//! for each micro-batch:  grads = backend.backward(loss_i)   (loss_i already scaled, e.g. ÷ packs)
//!                        opt.observe_loss(loss_i); opt.accumulate(backend, &grads)
//! report = opt.step(backend)   // clip, AdamW at lr = schedule(k), k = opt.steps()
//! ```
//!
//! - **Accumulation** sums the micro-batch gradients in f32 (`accumulate`), so `n` micro-batches
//!   equal one backward over the summed loss; scale each loss for a mean.
//! - **Clipping**: `norm = sqrt(Σ g²)` over every accumulated gradient, each scaled by
//!   `min(1, max_norm / (norm + 1e-6))` ([`clip::clip_factor`]).
//! - **Master weights**: a parameter whose dtype is not F32 gets an f32 master copy (a
//!   parameter of its own); AdamW updates the master and the model's parameter is assigned the
//!   master cast down to its dtype. An update below the parameter's resolution thus accumulates in
//!   the master until it shows. Moments are f32 always.
//! - **NaN/Inf guard**: a non-finite loss passed to [`Optimizer::observe_loss`] or a non-finite
//!   gradient norm skips the step: no parameter, master or moment changes, the accumulation is
//!   cleared, the step does not count (the schedule does not advance, as DeepSpeed does for an
//!   overflowing step), and [`StepReport::skipped_reason`] says why.
//! - **Warmup from 0**: ORZ's schedule gives lr 0 at step 0. AdamW with lr 0 leaves parameters
//!   unchanged but, as PyTorch's `AdamW.step()` does, still updates the moments and the
//!   per-parameter step count used for bias correction.

pub mod adamw;
pub mod clip;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub use adamw::{AdamW, AdamWConfig, AdamWState, AdamWStep};

use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::schedule::LrSchedule;
use crate::{Error, Result};
use clip::{ORZ_MAX_GRAD_NORM, clip_factor};

/// Everything an [`Optimizer`] is configured with.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OptimizerConfig {
    /// AdamW hyper-parameters (ORZ: betas (0.9, 0.95), eps 1e-8, weight decay 0).
    pub adamw: AdamWConfig,
    /// Learning rate per optimizer step (counting from 0).
    pub schedule: LrSchedule,
    /// Global L2 gradient-norm clip (ORZ: 1.0); `None` measures the norm without clipping.
    pub max_grad_norm: Option<f64>,
}

impl OptimizerConfig {
    /// ORZ's policy optimizer: AdamW defaults, warmup over 50 steps to 1e-6, clip 1.0.
    pub const ORZ_POLICY: OptimizerConfig = OptimizerConfig {
        adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 },
        schedule: LrSchedule::ORZ_POLICY,
        max_grad_norm: Some(ORZ_MAX_GRAD_NORM),
    };
    /// ORZ's critic optimizer: as the policy's with peak lr 5e-6.
    pub const ORZ_CRITIC: OptimizerConfig =
        OptimizerConfig { schedule: LrSchedule::ORZ_CRITIC, ..OptimizerConfig::ORZ_POLICY };

    /// Checks the hyper-parameters, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "optimizer config";
        let AdamWConfig { beta1, beta2, eps, weight_decay } = self.adamw;
        for (name, v) in [("beta1", beta1), ("beta2", beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::invalid(OP, format!("`{name}` = {v} is not in [0, 1)")));
            }
        }
        for (name, v) in [("eps", eps), ("weight_decay", weight_decay)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(OP, format!("`{name}` = {v} is not a finite number >= 0")));
            }
        }
        match self.max_grad_norm {
            Some(m) if !(m.is_finite() && m > 0.0) => {
                Err(Error::invalid(OP, format!("`max_grad_norm` = {m} is not a finite positive number")))
            }
            _ => Ok(()),
        }
    }
}

/// What one [`Optimizer::step`] did.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StepReport {
    /// Whether the parameters were updated.
    pub applied: bool,
    /// Why the step was skipped (a non-finite loss or gradient norm), when it was.
    pub skipped_reason: Option<String>,
    /// Global L2 norm of the accumulated gradients before clipping (NaN when not measured).
    pub grad_norm: f64,
    /// The factor the gradients were scaled by: `min(1, max_norm / (grad_norm + 1e-6))`, 1
    /// without clipping.
    pub clip_factor: f64,
    /// The learning rate of this step.
    pub lr: f64,
    /// This step's index in the schedule (0 for the first applied step).
    pub step: u64,
    /// Micro-batches accumulated into this step.
    pub micro_batches: usize,
}

/// The AdamW moments of one parameter, as host data.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MomentsState {
    /// First moment, row-major.
    pub m: Vec<f32>,
    /// Second moment, row-major.
    pub v: Vec<f32>,
    /// AdamW updates this parameter received (for bias correction).
    pub step: u64,
}

/// The optimizer state of one parameter, as host data.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ParamState {
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// Its moments, once it was updated.
    pub moments: Option<MomentsState>,
    /// Its f32 master weights, when the parameter is not F32.
    pub master: Option<Vec<f32>>,
}

/// An optimizer's whole state, as host data, for a checkpoint.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OptimizerState {
    /// Optimizer steps applied so far (the schedule index of the next step).
    pub step: u64,
    /// Per parameter, in the optimizer's order.
    pub params: Vec<ParamState>,
}

/// AdamW with a schedule, gradient accumulation, clipping, f32 masters and a NaN/Inf guard over
/// a fixed list of parameters (see the [module docs](self)).
#[derive(Debug)]
pub struct Optimizer<B: Backend> {
    config: OptimizerConfig,
    params: Vec<B::Tensor>,
    masters: Vec<Option<B::Tensor>>,
    adamw: AdamW<B>,
    accum: Vec<Option<B::Tensor>>,
    micro_batches: usize,
    bad_loss: Option<String>,
    losses_observed: usize,
    step: u64,
}

impl<B: Backend> Optimizer<B> {
    /// An optimizer over `params` (handles from [`Backend::param`], float dtypes). Parameters
    /// that are not F32 get f32 master copies.
    pub fn new(b: &B, params: Vec<B::Tensor>, config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        let masters = params
            .iter()
            .enumerate()
            .map(|(i, p)| match b.dtype(p) {
                DType::F32 => Ok(None),
                d if d.is_float() => no_grad(b, || b.param(&b.cast(&b.detach(p)?, DType::F32)?)).map(Some),
                d => {
                    Err(Error::dtype("optimizer", format!("parameter {i} has dtype {d}, not a float dtype")))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let accum = params.iter().map(|_| None).collect();
        Ok(Optimizer {
            config,
            params,
            masters,
            adamw: AdamW::new(config.adamw),
            accum,
            micro_batches: 0,
            bad_loss: None,
            losses_observed: 0,
            step: 0,
        })
    }

    /// Re-reads every f32 master from its parameter (after the trainer replaced the weights, e.g.
    /// loaded a bf16 checkpoint without optimizer state: the masters then start at the bf16
    /// values). Moments and step counts are kept.
    pub fn refresh_masters(&mut self, b: &B) -> Result<()> {
        no_grad(b, || {
            for (p, m) in self.params.iter().zip(&self.masters) {
                if let Some(m) = m {
                    b.assign_param(m, &b.cast(&b.detach(p)?, DType::F32)?)?;
                }
            }
            Ok(())
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The model's parameters, in the optimizer's order.
    pub fn params(&self) -> &[B::Tensor] {
        &self.params
    }

    /// The f32 master of parameter `i`, when the parameter is not F32.
    pub fn master(&self, i: usize) -> Option<&B::Tensor> {
        self.masters.get(i).and_then(Option::as_ref)
    }

    /// The AdamW state (f32 moments, step count) of parameter `i`, once it was updated.
    pub fn moments(&self, i: usize) -> Option<&AdamWState<B::Tensor>> {
        self.adamw.state(i)
    }

    /// Optimizer steps applied so far: the schedule index of the next step.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The learning rate the next step will use.
    pub fn next_lr(&self) -> f64 {
        self.config.schedule.lr(usize::try_from(self.step).unwrap_or(usize::MAX))
    }

    /// Micro-batches accumulated since the last step.
    pub fn pending_micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// Adds the gradients of one micro-batch (one [`Backend::backward`]) to the accumulation, in
    /// f32. A parameter the loss does not reach contributes nothing.
    pub fn accumulate(&mut self, b: &B, grads: &B::Grads) -> Result<()> {
        let grads = self.params.iter().map(|p| b.grad(grads, p)).collect::<Result<Vec<_>>>()?;
        self.accumulate_grads(b, &grads)
    }

    /// As [`Optimizer::accumulate`] from gradients already read out, one per parameter in the
    /// optimizer's order (`None`: not reached), e.g. a [`crate::model::Backprop`]'s.
    pub fn accumulate_grads(&mut self, b: &B, grads: &[Option<B::Tensor>]) -> Result<()> {
        crate::error::check_len(
            "optimizer accumulate",
            ("params", self.params.len()),
            ("grads", grads.len()),
        )?;
        let sums = no_grad(b, || {
            grads
                .iter()
                .zip(&self.accum)
                .map(|(g, acc)| {
                    let Some(g) = g else { return Ok(acc.clone()) };
                    let g = b.cast(g, DType::F32)?;
                    acc.as_ref().map_or(Ok(g.clone()), |a| b.add(a, &g)).map(Some)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        self.accum = sums;
        self.micro_batches += 1;
        Ok(())
    }

    /// Records the loss of a micro-batch: a NaN or infinite loss makes the next step skip (the
    /// reason names the micro-batch by the order of these calls since the last step, from 1).
    pub fn observe_loss(&mut self, loss: f64) {
        self.losses_observed += 1;
        if !loss.is_finite() && self.bad_loss.is_none() {
            self.bad_loss = Some(format!("the loss of micro-batch {} is {loss}", self.losses_observed));
        }
    }

    /// Drops the accumulated gradients and observed losses without stepping.
    pub fn zero_grad(&mut self) {
        self.accum.iter_mut().for_each(|a| *a = None);
        self.micro_batches = 0;
        self.bad_loss = None;
        self.losses_observed = 0;
    }

    /// One optimizer step over the accumulated gradients: the guard, clipping, AdamW at
    /// `lr = schedule(steps())`, master cast-down; then the accumulation is cleared. Errors when
    /// nothing was accumulated since the last step.
    pub fn step(&mut self, b: &B) -> Result<StepReport> {
        if self.micro_batches == 0 {
            return Err(Error::invalid("optimizer step", "no micro-batch gradients were accumulated"));
        }
        let mut report = StepReport {
            applied: false,
            skipped_reason: None,
            grad_norm: f64::NAN,
            clip_factor: 1.0,
            lr: self.next_lr(),
            step: self.step,
            micro_batches: self.micro_batches,
        };
        let accum = core::mem::replace(&mut self.accum, self.params.iter().map(|_| None).collect());
        self.micro_batches = 0;
        self.losses_observed = 0;
        if let Some(reason) = self.bad_loss.take() {
            report.skipped_reason = Some(reason);
            return Ok(report);
        }
        let present: Vec<B::Tensor> = accum.iter().flatten().cloned().collect();
        let (clipped, norm) = b.clip_grad_norm(&present, self.config.max_grad_norm.unwrap_or(f64::MAX))?;
        report.grad_norm = norm;
        if !norm.is_finite() {
            report.skipped_reason = Some(format!("the gradient norm is {norm}"));
            return Ok(report);
        }
        if let Some(max) = self.config.max_grad_norm {
            report.clip_factor = clip_factor(norm, max)?;
        }
        let mut clipped = clipped.into_iter();
        // `and_then`, not `and`: only a parameter with a gradient takes the next clipped one.
        let grads: Vec<Option<B::Tensor>> =
            accum.iter().map(|a| a.as_ref().and_then(|_| clipped.next())).collect();
        let targets: Vec<B::Tensor> =
            self.params.iter().zip(&self.masters).map(|(p, m)| m.as_ref().unwrap_or(p).clone()).collect();
        self.adamw.step(b, &targets, &grads, report.lr)?;
        self.sync_params_from_masters(b)?;
        self.step += 1;
        report.applied = true;
        Ok(report)
    }

    /// Assigns every mastered parameter its master cast down to the parameter's dtype.
    fn sync_params_from_masters(&self, b: &B) -> Result<()> {
        no_grad(b, || {
            for (p, m) in self.params.iter().zip(&self.masters) {
                if let Some(m) = m {
                    b.assign_param(p, &b.cast(m, b.dtype(p))?)?;
                }
            }
            Ok(())
        })
    }

    /// The whole state as host data (moments, step counts, masters), for a checkpoint.
    pub fn state(&self, b: &B) -> Result<OptimizerState> {
        let params = self
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let moments = self
                    .adamw
                    .state(i)
                    .map(|s| -> Result<_> {
                        Ok(MomentsState { m: b.to_host_f32(&s.m)?, v: b.to_host_f32(&s.v)?, step: s.step })
                    })
                    .transpose()?;
                let master = self.master(i).map(|m| b.to_host_f32(m)).transpose()?;
                Ok(ParamState { shape: b.shape(p), moments, master })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OptimizerState { step: self.step, params })
    }

    /// Restores a state saved by [`Optimizer::state`] (same parameters, same order): moments,
    /// step counts and masters; mastered parameters are assigned their masters cast down. Every
    /// shape and length is checked before anything changes. The accumulation is cleared.
    pub fn load_state(&mut self, b: &B, state: &OptimizerState) -> Result<()> {
        const OP: &str = "optimizer load_state";
        crate::error::check_len(OP, ("params", self.params.len()), ("state.params", state.params.len()))?;
        for (i, (p, s)) in self.params.iter().zip(&state.params).enumerate() {
            let shape = b.shape(p);
            let n: usize = shape.iter().product();
            let lens =
                s.moments.iter().flat_map(|m| [m.m.len(), m.v.len()]).chain(s.master.iter().map(Vec::len));
            if s.shape != shape || lens.into_iter().any(|l| l != n) {
                return Err(Error::shape(
                    OP,
                    format!("parameter {i} has shape {shape:?} but its saved state has shape {:?}", s.shape),
                ));
            }
            if s.master.is_some() != self.masters[i].is_some() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "parameter {i} (dtype {}) and its saved state disagree on an f32 master",
                        b.dtype(p)
                    ),
                ));
            }
        }
        for (i, s) in state.params.iter().enumerate() {
            let moments = s
                .moments
                .as_ref()
                .map(|m| -> Result<_> {
                    Ok(AdamWState {
                        m: b.tensor_f32(&m.m, &s.shape, DType::F32)?,
                        v: b.tensor_f32(&m.v, &s.shape, DType::F32)?,
                        step: m.step,
                    })
                })
                .transpose()?;
            self.adamw.set_state(i, moments);
            if let (Some(master), Some(values)) = (&self.masters[i], &s.master) {
                b.assign_param(master, &b.tensor_f32(values, &s.shape, DType::F32)?)?;
            }
        }
        self.sync_params_from_masters(b)?;
        self.step = state.step;
        self.zero_grad();
        Ok(())
    }
}
