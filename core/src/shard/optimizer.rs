//! [`ShardedOptimizer`]: the training optimizer of [`crate::optimizer`] with its state sharded
//! over the ranks of a [`Collective`] (ZeRO / FSDP full-shard optimizer state): each rank owns
//! one slice of every unit's f32 master weights, AdamW moments and f32 gradient sum.
//!
//! One step, per unit (see [`UnitLayout`] for the flat layout):
//!
//! ```text
//! accumulate:  shard += reduce_scatter(flatten(grads, f32), Sum)     per micro-batch
//! step:        norm² = all_reduce(Σ_units Σ shard², Sum)             global-norm clip
//!              shard *= clip_factor(norm, max_norm)                 (when it is < 1)
//!              AdamW(master shard, shard, moments shard)             on this rank's slice
//!              params = unflatten(all_gather(cast(master shard, dtype)))
//! ```
//!
//! The guard, schedule and step counting are [`Optimizer`](crate::optimizer::Optimizer)'s: a
//! non-finite loss on any rank or a non-finite global norm skips the step on every rank.
//!
//! Differences from the single-process optimizer, each deliberate:
//! - the gradient norm sums per-unit f32 sums of squares of the shards in f64 (one all-reduce),
//!   where `Backend::clip_grad_norm` sums per-tensor ones: the norms agree to f32 rounding;
//! - a parameter that no micro-batch reaches gets a zero gradient (its moments decay), as in
//!   DeepSpeed's ZeRO, where the single-process optimizer skips it.
//!
//! Every rank keeps the full compute-dtype weights between steps (the forward pass reads the
//! model's own parameters); only the optimizer state and the gradient sums are sharded.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use super::layout::UnitLayout;
use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::collective::{Collective, ReduceOp};
use crate::optimizer::adamw::{AdamW, AdamWState};
use crate::optimizer::clip::clip_factor;
use crate::optimizer::{MomentsState, OptimizerConfig, OptimizerState, ParamState, StepReport};
use crate::{Error, Result};

/// One unit's whole optimizer state on the host ([`ShardedOptimizer::gather_unit`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitState {
    /// The f32 master weights, the unit's parameters flattened in order.
    pub master: Vec<f32>,
    /// The first moments, same layout.
    pub m: Vec<f32>,
    /// The second moments, same layout.
    pub v: Vec<f32>,
    /// AdamW updates the unit received (0 before the first).
    pub step: u64,
}

/// One unit: its parameters' indices and their flat layout.
#[derive(Debug, Clone)]
struct Unit {
    params: Range<usize>,
    layout: UnitLayout,
}

/// AdamW with a schedule, gradient accumulation, clipping and a NaN/Inf guard, its f32 state
/// sharded over the ranks (see the [module docs](self)).
pub struct ShardedOptimizer<B: Backend> {
    config: OptimizerConfig,
    collective: Rc<dyn Collective<B>>,
    params: Vec<B::Tensor>,
    units: Vec<Unit>,
    masters: Vec<B::Tensor>,
    adamw: AdamW<B>,
    accum: Vec<Option<B::Tensor>>,
    micro_batches: usize,
    bad_loss: Option<String>,
    losses_observed: usize,
    step: u64,
}

impl<B: Backend> core::fmt::Debug for ShardedOptimizer<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ShardedOptimizer")
            .field("config", &self.config)
            .field("rank", &self.collective.rank())
            .field("world", &self.collective.world_size())
            .field("units", &self.units.len())
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> ShardedOptimizer<B> {
    /// An optimizer over `params` (float [`Backend::param`] leaves, one dtype) grouped into
    /// `units` (consecutive ranges covering every parameter once, e.g.
    /// [`crate::model::Qwen2::parameter_units`]). Rank 0's parameters are broadcast first, so
    /// every rank starts from the same weights; each rank then keeps the f32 masters of its
    /// slice of every unit. Every rank must call it.
    pub fn new(
        b: &B,
        params: Vec<B::Tensor>,
        units: &[Range<usize>],
        config: OptimizerConfig,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<Self> {
        const OP: &str = "sharded optimizer";
        config.validate()?;
        let mut next = 0;
        for (u, r) in units.iter().enumerate() {
            if r.start != next || r.is_empty() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "unit {u} covers parameters {r:?}; units must be non-empty and consecutive from {next}"
                    ),
                ));
            }
            next = r.end;
        }
        if next != params.len() {
            return Err(Error::invalid(OP, format!("the units cover {next} of {} parameters", params.len())));
        }
        if let Some((i, d)) = params.iter().map(|p| b.dtype(p)).enumerate().find(|(_, d)| !d.is_float()) {
            return Err(Error::dtype(OP, format!("parameter {i} has dtype {d}, not a float dtype")));
        }
        let (world, rank) = (collective.world_size(), collective.rank());
        let units = units
            .iter()
            .map(|r| {
                let shapes = params[r.clone()].iter().map(|p| b.shape(p)).collect();
                Ok(Unit { params: r.clone(), layout: UnitLayout::new(shapes, world)? })
            })
            .collect::<Result<Vec<_>>>()?;
        let masters = no_grad(b, || {
            units
                .iter()
                .map(|u| {
                    let own: Vec<Option<B::Tensor>> =
                        params[u.params.clone()].iter().cloned().map(Some).collect();
                    let flat = collective.broadcast(b, &u.layout.flatten(b, &own)?, 0)?;
                    let r = u.layout.shard_range(rank);
                    b.param(&b.narrow(&flat, 0, r.start, r.len())?)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let accum = units.iter().map(|_| None).collect();
        let opt = ShardedOptimizer {
            config,
            collective,
            params,
            units,
            masters,
            adamw: AdamW::new(config.adamw),
            accum,
            micro_batches: 0,
            bad_loss: None,
            losses_observed: 0,
            step: 0,
        };
        opt.sync_params_from_masters(b)?;
        Ok(opt)
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The model's parameters, in the optimizer's order.
    pub fn params(&self) -> &[B::Tensor] {
        &self.params
    }

    /// Optimizer steps applied so far: the schedule index of the next step.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The learning rate the next step will use.
    pub fn next_lr(&self) -> f64 {
        self.config.schedule.lr(usize::try_from(self.step).unwrap_or(usize::MAX))
    }

    /// This rank's f32 master slice of unit `u` (`shard_len` elements).
    pub fn master_shard(&self, u: usize) -> Option<&B::Tensor> {
        self.masters.get(u)
    }

    /// This rank's AdamW state of unit `u`, once it was updated.
    pub fn moments_shard(&self, u: usize) -> Option<&AdamWState<B::Tensor>> {
        self.adamw.state(u)
    }

    /// The units: each one's range of parameters, in order.
    pub fn units(&self) -> Vec<Range<usize>> {
        self.units.iter().map(|u| u.params.clone()).collect()
    }

    /// The flat layout of unit `u`.
    pub fn unit_layout(&self, u: usize) -> Option<&UnitLayout> {
        self.units.get(u).map(|u| &u.layout)
    }

    /// Reduce-scatters the gradients of one micro-batch (one per parameter in the optimizer's
    /// order, `None`: not reached) and adds this rank's slices to the f32 sums. Every rank must
    /// call it the same number of times per step (a rank without data passes `None`s).
    pub fn accumulate_grads(&mut self, b: &B, grads: &[Option<B::Tensor>]) -> Result<()> {
        crate::error::check_len(
            "sharded optimizer accumulate",
            ("params", self.params.len()),
            ("grads", grads.len()),
        )?;
        let sums = no_grad(b, || {
            self.units
                .iter()
                .zip(&self.accum)
                .map(|(u, acc)| {
                    let flat = u.layout.flatten(b, &grads[u.params.clone()])?;
                    let shard = self.collective.reduce_scatter(b, &flat, ReduceOp::Sum)?;
                    acc.as_ref().map_or(Ok(shard.clone()), |a| b.add(a, &shard)).map(Some)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        self.accum = sums;
        self.micro_batches += 1;
        Ok(())
    }

    /// Records the loss of a micro-batch on this rank: a NaN or infinite loss on any rank makes
    /// the next step skip on every rank.
    pub fn observe_loss(&mut self, loss: f64) {
        self.losses_observed += 1;
        if !loss.is_finite() && self.bad_loss.is_none() {
            self.bad_loss = Some(format!(
                "the loss of micro-batch {} on rank {} is {loss}",
                self.losses_observed,
                self.collective.rank()
            ));
        }
    }

    /// Drops the accumulated gradients and observed losses without stepping.
    pub fn zero_grad(&mut self) {
        self.accum.iter_mut().for_each(|a| *a = None);
        self.micro_batches = 0;
        self.bad_loss = None;
        self.losses_observed = 0;
    }

    /// One optimizer step over the accumulated gradient slices (every rank calls it): the guard,
    /// the global-norm clip, AdamW on this rank's slices, then every unit's weights gathered
    /// back into the model's parameters.
    pub fn step(&mut self, b: &B) -> Result<StepReport> {
        if self.micro_batches == 0 {
            return Err(Error::invalid(
                "sharded optimizer step",
                "no micro-batch gradients were accumulated",
            ));
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
        let accum = core::mem::replace(&mut self.accum, self.units.iter().map(|_| None).collect());
        let bad_loss = self.bad_loss.take();
        self.micro_batches = 0;
        self.losses_observed = 0;
        let grads: Vec<B::Tensor> = accum.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
            Error::invalid("sharded optimizer step", "a unit has no accumulated gradient slice")
        })?;
        // One all-reduce carries both the loss guard and the sum of squares.
        let local = [f64::from(u8::from(bad_loss.is_some())), self.sum_of_squares(b, &grads)?];
        let global = self.collective.all_reduce_host(&local, ReduceOp::Sum)?;
        if global[0] > 0.0 {
            report.skipped_reason = Some(
                bad_loss.unwrap_or_else(|| String::from("a micro-batch loss on another rank is not finite")),
            );
            return Ok(report);
        }
        let norm = num_traits::Float::sqrt(global[1]);
        report.grad_norm = norm;
        if !norm.is_finite() {
            report.skipped_reason = Some(format!("the gradient norm is {norm}"));
            return Ok(report);
        }
        if let Some(max) = self.config.max_grad_norm {
            report.clip_factor = clip_factor(norm, max)?;
        }
        let grads: Vec<Option<B::Tensor>> = no_grad(b, || {
            grads
                .iter()
                .map(|g| {
                    if report.clip_factor < 1.0 {
                        b.affine(g, report.clip_factor, 0.0)
                    } else {
                        Ok(g.clone())
                    }
                })
                .map(|g| g.map(Some))
                .collect::<Result<Vec<_>>>()
        })?;
        self.adamw.step(b, &self.masters, &grads, report.lr)?;
        self.sync_params_from_masters(b)?;
        self.step += 1;
        report.applied = true;
        Ok(report)
    }

    /// This rank's `Σ g²` over every slice, each slice's sum taken in f32 on the device and the
    /// slices summed in f64 on the host (one transfer).
    fn sum_of_squares(&self, b: &B, grads: &[B::Tensor]) -> Result<f64> {
        let sums = no_grad(b, || {
            let per_unit = grads
                .iter()
                .map(|g| b.reshape(&b.sum_all(&b.mul(g, g)?)?, &[1]))
                .collect::<Result<Vec<_>>>()?;
            b.cat(&per_unit, 0)
        })?;
        Ok(b.to_host_f64(&sums)?.iter().sum())
    }

    /// Gathers every unit's masters, cast to the parameters' dtype, into the parameters.
    fn sync_params_from_masters(&self, b: &B) -> Result<()> {
        no_grad(b, || {
            for (u, master) in self.units.iter().zip(&self.masters) {
                let params = &self.params[u.params.clone()];
                let dtype = b.dtype(&params[0]);
                let full = self.collective.all_gather(b, &b.cast(master, dtype)?)?;
                for (p, value) in params.iter().zip(u.layout.unflatten(b, &full)?) {
                    let value = if b.dtype(p) == dtype { value } else { b.cast(&value, b.dtype(p))? };
                    b.assign_param(p, &value)?;
                }
            }
            Ok(())
        })
    }

    /// Unit `u`'s whole state on every rank (every rank must call it, in the same unit order):
    /// its f32 masters, first and second moments as flat host vectors of the unit's `numel`
    /// elements (padding dropped; zeros before the first update), and its AdamW step count.
    /// A checkpoint streams the model one unit at a time through it.
    pub fn gather_unit(&self, b: &B, u: usize) -> Result<UnitState> {
        let unit = self.units.get(u).ok_or_else(|| {
            Error::invalid("sharded optimizer gather", format!("unit {u} of {}", self.units.len()))
        })?;
        let numel = unit.layout.numel();
        let gather = |t: &B::Tensor| -> Result<Vec<f32>> {
            let mut v = b.to_host_f32(&self.collective.all_gather(b, t)?)?;
            v.truncate(numel);
            Ok(v)
        };
        let master = gather(&self.masters[u])?;
        let (m, v, step) = match self.adamw.state(u) {
            Some(s) => (gather(&s.m)?, gather(&s.v)?, s.step),
            None => (alloc::vec![0.0; numel], alloc::vec![0.0; numel], 0),
        };
        Ok(UnitState { master, m, v, step })
    }

    /// Loads a whole (single-process layout) optimizer state, one entry per parameter, as
    /// [`crate::optimizer::Optimizer::state`] gives it or a checkpoint holds it: each rank takes
    /// its slice of every unit (so a run saved at any world size resumes at any other). A
    /// parameter without a saved master takes its current weights as the master; a unit whose
    /// parameters have no moments starts without any. Every rank must call it.
    pub fn load_full_state(&mut self, b: &B, state: &OptimizerState) -> Result<()> {
        const OP: &str = "sharded optimizer load_full_state";
        crate::error::check_len(OP, ("params", self.params.len()), ("state.params", state.params.len()))?;
        let rank = self.collective.rank();
        for (i, (p, s)) in self.params.iter().zip(&state.params).enumerate() {
            let n: usize = b.shape(p).iter().product();
            let lens =
                s.moments.iter().flat_map(|m| [m.m.len(), m.v.len()]).chain(s.master.iter().map(Vec::len));
            if s.shape != b.shape(p) || lens.into_iter().any(|l| l != n) {
                return Err(Error::shape(
                    OP,
                    format!(
                        "parameter {i} has shape {:?} but its saved state has shape {:?}",
                        b.shape(p),
                        s.shape
                    ),
                ));
            }
        }
        for (u, unit) in self.units.iter().enumerate() {
            let saved = &state.params[unit.params.clone()];
            let step = saved.iter().filter_map(|s| s.moments.as_ref().map(|m| m.step)).max();
            let flat = |pick: &dyn Fn(usize, &ParamState) -> Result<Vec<f32>>| -> Result<Vec<f32>> {
                let mut out = Vec::with_capacity(unit.layout.padded());
                for (k, s) in saved.iter().enumerate() {
                    out.extend(pick(unit.params.start + k, s)?);
                }
                out.resize(unit.layout.padded(), 0.0);
                Ok(out[unit.layout.shard_range(rank)].to_vec())
            };
            let master = flat(&|i, s| match &s.master {
                Some(m) => Ok(m.clone()),
                None => no_grad(b, || b.to_host_f32(&b.cast(&self.params[i], DType::F32)?)),
            })?;
            let shape = [unit.layout.shard_len()];
            b.assign_param(&self.masters[u], &b.tensor_f32(&master, &shape, DType::F32)?)?;
            let moments = match step {
                Some(step) => {
                    let zeros = |s: &ParamState| alloc::vec![0.0; s.shape.iter().product::<usize>()];
                    let m = flat(&|_, s| Ok(s.moments.as_ref().map_or_else(|| zeros(s), |m| m.m.clone())))?;
                    let v = flat(&|_, s| Ok(s.moments.as_ref().map_or_else(|| zeros(s), |m| m.v.clone())))?;
                    Some(AdamWState {
                        m: b.tensor_f32(&m, &shape, DType::F32)?,
                        v: b.tensor_f32(&v, &shape, DType::F32)?,
                        step,
                    })
                }
                None => None,
            };
            self.adamw.set_state(u, moments);
        }
        self.sync_params_from_masters(b)?;
        self.step = state.step;
        self.zero_grad();
        Ok(())
    }

    /// This rank's state as host data (one entry per unit: its master and moment slices), for a
    /// per-rank checkpoint; resuming needs the same world size and units.
    pub fn state(&self, b: &B) -> Result<OptimizerState> {
        let params = self
            .masters
            .iter()
            .enumerate()
            .map(|(u, master)| {
                let moments = self
                    .adamw
                    .state(u)
                    .map(|s| -> Result<_> {
                        Ok(MomentsState { m: b.to_host_f32(&s.m)?, v: b.to_host_f32(&s.v)?, step: s.step })
                    })
                    .transpose()?;
                Ok(ParamState { shape: b.shape(master), moments, master: Some(b.to_host_f32(master)?) })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OptimizerState { step: self.step, params })
    }

    /// Restores a state saved by [`ShardedOptimizer::state`] on this rank (same world size,
    /// same units): every length is checked before anything changes; the parameters are then
    /// gathered from the restored masters (every rank must call it).
    pub fn load_state(&mut self, b: &B, state: &OptimizerState) -> Result<()> {
        const OP: &str = "sharded optimizer load_state";
        crate::error::check_len(OP, ("units", self.units.len()), ("state.params", state.params.len()))?;
        for (u, (unit, s)) in self.units.iter().zip(&state.params).enumerate() {
            let n = unit.layout.shard_len();
            let lens =
                s.moments.iter().flat_map(|m| [m.m.len(), m.v.len()]).chain(s.master.iter().map(Vec::len));
            if s.shape != [n] || s.master.is_none() || lens.into_iter().any(|l| l != n) {
                return Err(Error::shape(
                    OP,
                    format!(
                        "unit {u}'s slice on rank {} has {n} elements but the saved state has shape {:?} \
                         (a different world size?)",
                        self.collective.rank(),
                        s.shape
                    ),
                ));
            }
        }
        for (u, s) in state.params.iter().enumerate() {
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
            self.adamw.set_state(u, moments);
            if let Some(values) = &s.master {
                b.assign_param(&self.masters[u], &b.tensor_f32(values, &s.shape, DType::F32)?)?;
            }
        }
        self.sync_params_from_masters(b)?;
        self.step = state.step;
        self.zero_grad();
        Ok(())
    }
}
