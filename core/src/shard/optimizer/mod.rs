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
//!              params = unflatten(all_gather(cast(master shard, dtype)))  (replicated weights)
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
//! What each rank keeps of the weights between uses ([`ShardedOptimizer::new`] or
//! [`ShardedOptimizer::new_weight_sharded`]):
//! - **replicated** (ZeRO-2, FSDP `SHARD_GRAD_OP`): every rank holds the whole model in the
//!   compute dtype, re-gathered into its parameters after each step;
//! - **sharded** (ZeRO-3, FSDP `FULL_SHARD`): a rank holds only its f32 master slices; a training
//!   step gathers one unit's compute-dtype weights at a time ([`ShardedOptimizer::micro_batch`],
//!   the unit order of [`UnitStore`]) and frees them after use, and generation and scoring
//!   gather the whole model once ([`ShardedOptimizer::gather_model`]).
//!
//! In both, a training micro-batch hands each unit's gradients over as soon as they are final
//! and they are reduce-scattered at once (no rank holds the whole model's gradients). The
//! gathered weights are `cast(master)` in both, so the two compute the same numbers.

mod state;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use super::layout::UnitLayout;
use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::collective::{Collective, ReduceOp};
use crate::model::{Qwen2, UnitStore};
use crate::optimizer::adamw::{AdamW, AdamWState};
use crate::optimizer::clip::clip_factor;
use crate::optimizer::{OptimizerConfig, StepReport};
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

/// What a rank keeps of the model's weights between uses (see the [module docs](self)).
enum Residency<B: Backend> {
    /// The whole model: its parameters, assigned after each step (ZeRO-2).
    Replicated(Vec<B::Tensor>),
    /// Only the master slices; units are gathered in `dtype` when used (ZeRO-3).
    Sharded {
        /// The compute dtype of the model's parameters.
        dtype: DType,
    },
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
    weights: Residency<B>,
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
            .field("weights_sharded", &self.weights_sharded())
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> ShardedOptimizer<B> {
    /// An optimizer over `params` (float [`Backend::param`] leaves, one dtype) grouped into
    /// `units` (consecutive ranges covering every parameter once, e.g.
    /// [`crate::model::Qwen2::parameter_units`]), every rank keeping the whole model (ZeRO-2).
    /// Rank 0's parameters are broadcast first, so every rank starts from the same weights; each
    /// rank then keeps the f32 masters of its slice of every unit. Every rank must call it.
    pub fn new(
        b: &B,
        params: Vec<B::Tensor>,
        units: &[Range<usize>],
        config: OptimizerConfig,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<Self> {
        Self::build(b, params, units, config, collective, false)
    }

    /// [`ShardedOptimizer::new`] keeping only the slices (ZeRO-3): the optimizer holds no
    /// handle on `params` afterwards, so once the caller drops the model's weights (keeping its
    /// [`crate::model::Qwen2::skeleton`]) each rank holds 1/W of them. Every rank must call it.
    pub fn new_weight_sharded(
        b: &B,
        params: Vec<B::Tensor>,
        units: &[Range<usize>],
        config: OptimizerConfig,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<Self> {
        Self::build(b, params, units, config, collective, true)
    }

    fn build(
        b: &B,
        params: Vec<B::Tensor>,
        units: &[Range<usize>],
        config: OptimizerConfig,
        collective: Rc<dyn Collective<B>>,
        shard_weights: bool,
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
        let dtype = b.dtype(&params[0]);
        if let Some(i) = params.iter().position(|p| b.dtype(p) != dtype) {
            return Err(Error::dtype(
                OP,
                format!(
                    "parameter {i} has dtype {}, parameter 0 {dtype}: one dtype is needed",
                    b.dtype(&params[i])
                ),
            ));
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
        let weights =
            if shard_weights { Residency::Sharded { dtype } } else { Residency::Replicated(params) };
        let opt = ShardedOptimizer {
            config,
            collective,
            weights,
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

    /// Whether the weights are sharded (ZeRO-3) rather than replicated on every rank.
    pub fn weights_sharded(&self) -> bool {
        matches!(self.weights, Residency::Sharded { .. })
    }

    /// The shapes of the model's parameters, in the optimizer's order.
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.units.iter().flat_map(|u| u.layout.shapes().iter().cloned()).collect()
    }

    /// The compute dtype of the model's parameters.
    pub fn param_dtype(&self, b: &B) -> DType {
        match &self.weights {
            Residency::Replicated(params) => b.dtype(&params[0]),
            Residency::Sharded { dtype } => *dtype,
        }
    }

    /// Parameters in all units.
    fn param_count(&self) -> usize {
        self.units.last().map_or(0, |u| u.params.end)
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
            ("params", self.param_count()),
            ("grads", grads.len()),
        )?;
        for u in 0..self.units.len() {
            self.accumulate_unit(b, u, &grads[self.units[u].params.clone()])?;
        }
        self.micro_batches += 1;
        Ok(())
    }

    /// Reduce-scatters unit `u`'s gradients (one per parameter of the unit) into its f32 sum.
    fn accumulate_unit(&mut self, b: &B, u: usize, grads: &[Option<B::Tensor>]) -> Result<()> {
        let unit = self.units.get(u).ok_or_else(|| {
            Error::invalid("sharded optimizer accumulate", format!("unit {u} of {}", self.units.len()))
        })?;
        crate::error::check_len(
            "sharded optimizer accumulate",
            ("unit parameters", unit.params.len()),
            ("grads", grads.len()),
        )?;
        let sum = no_grad(b, || {
            let flat = unit.layout.flatten(b, grads)?;
            let shard = self.collective.reduce_scatter(b, &flat, ReduceOp::Sum)?;
            self.accum[u].as_ref().map_or(Ok(shard.clone()), |a| b.add(a, &shard))
        })?;
        self.accum[u] = Some(sum);
        Ok(())
    }

    /// Unit `u`'s weights in the compute dtype, whole, on every rank (an all-gather of the
    /// master slices; replicated weights are read as they are).
    fn unit_weights(&self, b: &B, u: usize) -> Result<Vec<B::Tensor>> {
        let unit = self.units.get(u).ok_or_else(|| {
            Error::invalid("sharded optimizer gather", format!("unit {u} of {}", self.units.len()))
        })?;
        match &self.weights {
            Residency::Replicated(params) => Ok(params[unit.params.clone()].to_vec()),
            Residency::Sharded { dtype } => no_grad(b, || {
                let full = self.collective.all_gather(b, &b.cast(&self.masters[u], *dtype)?)?;
                unit.layout.unflatten(b, &full)
            }),
        }
    }

    /// One training micro-batch through `backprop` (e.g. a closure over
    /// [`crate::model::Policy::backprop_log_probs_with`]), which gets this optimizer as its
    /// [`UnitStore`]: each unit's weights are gathered when opened (sharded weights) and its
    /// gradients reduce-scattered into the sums when finished. The loss is observed as
    /// [`ShardedOptimizer::observe_loss`] does. Every rank must call it the same number of times
    /// per step (a rank without data runs a pack with zero loss weights).
    pub fn micro_batch(
        &mut self,
        b: &B,
        backprop: impl FnOnce(&mut dyn UnitStore<B>) -> Result<f64>,
    ) -> Result<f64> {
        let _ = b; // the store's methods take the backend
        let loss = backprop(&mut Units(self))?;
        self.observe_loss(loss);
        self.micro_batches += 1;
        Ok(loss)
    }

    /// The whole model gathered into a resident copy of `skeleton`'s architecture (compute
    /// dtype, no gradient leaves): what generation and scoring run on when the weights are
    /// sharded. Every rank must call it (one all-gather per unit).
    pub fn gather_model(&self, b: &B, skeleton: &Qwen2<B>) -> Result<Qwen2<B>> {
        let mut ordered = Vec::with_capacity(self.param_count());
        for u in 0..self.units.len() {
            ordered.extend(self.unit_weights(b, u)?);
        }
        skeleton.with_weights(ordered)
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

    /// Gathers every unit's masters, cast to the parameters' dtype, into the parameters (with
    /// replicated weights; sharded ones are gathered when used).
    fn sync_params_from_masters(&self, b: &B) -> Result<()> {
        let Residency::Replicated(all) = &self.weights else { return Ok(()) };
        no_grad(b, || {
            for (u, master) in self.units.iter().zip(&self.masters) {
                let params = &all[u.params.clone()];
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
}

/// A [`ShardedOptimizer`] as the [`UnitStore`] of one micro-batch.
struct Units<'a, B: Backend>(&'a mut ShardedOptimizer<B>);

impl<B: Backend> UnitStore<B> for Units<'_, B> {
    fn open(&mut self, b: &B, u: usize) -> Result<Vec<B::Tensor>> {
        let weights = self.0.unit_weights(b, u)?;
        match self.0.weights {
            // The model's own parameter leaves.
            Residency::Replicated(_) => Ok(weights),
            // Fresh leaves over the gathered values, freed when the backprop drops them.
            Residency::Sharded { .. } => weights.iter().map(|w| b.param(w)).collect(),
        }
    }

    fn finish(&mut self, b: &B, u: usize, grads: Vec<Option<B::Tensor>>) -> Result<()> {
        self.0.accumulate_unit(b, u, &grads)
    }
}
