//! A [`ShardedOptimizer`]'s state in and out: a unit gathered whole for a checkpoint, a whole
//! (single-process layout) state or one unit of it sliced into this rank's share, and this
//! rank's own slices saved and restored.

use alloc::format;
use alloc::vec::Vec;

use super::{Residency, ShardedOptimizer, UnitState};
use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::optimizer::adamw::AdamWState;
use crate::optimizer::{MomentsState, OptimizerState, ParamState};
use crate::{Error, Result};

impl<B: Backend> ShardedOptimizer<B> {
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
    /// parameters have no moments starts without any. Every rank must call it. (A checkpoint can
    /// instead be streamed one unit at a time: [`ShardedOptimizer::load_unit`].)
    pub fn load_full_state(&mut self, b: &B, state: &OptimizerState) -> Result<()> {
        const OP: &str = "sharded optimizer load_full_state";
        crate::error::check_len(OP, ("params", self.param_count()), ("state.params", state.params.len()))?;
        for u in 0..self.units.len() {
            let range = self.units[u].params.clone();
            self.load_unit(b, u, &state.params[range])?;
        }
        self.finish_loading(b, state.step)
    }

    /// Loads unit `u`'s whole saved state (one entry per parameter of the unit, single-process
    /// layout): this rank keeps its slice of the masters and moments. A parameter without a
    /// saved master keeps its current weights (the model's, or the unit gathered from the
    /// current slices when the weights are sharded); a unit without moments starts without
    /// any. Every rank must call it for every unit in order, then
    /// [`ShardedOptimizer::finish_loading`].
    pub fn load_unit(&mut self, b: &B, u: usize, saved: &[ParamState]) -> Result<()> {
        const OP: &str = "sharded optimizer load_unit";
        let unit = self
            .units
            .get(u)
            .ok_or_else(|| Error::invalid(OP, format!("unit {u} of {}", self.units.len())))?;
        crate::error::check_len(OP, ("unit parameters", unit.params.len()), ("saved", saved.len()))?;
        for (k, (shape, s)) in unit.layout.shapes().iter().zip(saved).enumerate() {
            let n: usize = shape.iter().product();
            let lens =
                s.moments.iter().flat_map(|m| [m.m.len(), m.v.len()]).chain(s.master.iter().map(Vec::len));
            if &s.shape != shape || lens.into_iter().any(|l| l != n) {
                return Err(Error::shape(
                    OP,
                    format!(
                        "parameter {} has shape {shape:?} but its saved state has shape {:?}",
                        unit.params.start + k,
                        s.shape
                    ),
                ));
            }
        }
        let rank = self.collective.rank();
        // A parameter without a saved master keeps its current weights: the model's own
        // (replicated) or the unit gathered from the current slices (sharded).
        let current = match (&self.weights, saved.iter().any(|s| s.master.is_none())) {
            (Residency::Sharded { .. }, true) => {
                let all = no_grad(b, || self.collective.all_gather(b, &self.masters[u]))?;
                Some(b.to_host_f32(&all)?)
            }
            _ => None,
        };
        let flat = |pick: &dyn Fn(usize, &ParamState) -> Result<Vec<f32>>| -> Result<Vec<f32>> {
            let mut out = Vec::with_capacity(unit.layout.padded());
            for (k, s) in saved.iter().enumerate() {
                out.extend(pick(k, s)?);
            }
            out.resize(unit.layout.padded(), 0.0);
            Ok(out[unit.layout.shard_range(rank)].to_vec())
        };
        let step = saved.iter().filter_map(|s| s.moments.as_ref().map(|m| m.step)).max();
        let master = flat(&|k, s| match (&s.master, &self.weights, &current) {
            (Some(m), _, _) => Ok(m.clone()),
            (None, Residency::Replicated(params), _) => {
                no_grad(b, || b.to_host_f32(&b.cast(&params[unit.params.start + k], DType::F32)?))
            }
            (None, Residency::Sharded { .. }, Some(all)) => Ok(all[unit.layout.param_range(k)].to_vec()),
            (None, Residency::Sharded { .. }, None) => {
                Err(Error::invalid(OP, format!("unit {u}: its current weights were not gathered")))
            }
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
        Ok(())
    }

    /// Ends a load by units: `step` optimizer steps taken, the replicated weights gathered from
    /// the loaded masters, the accumulated gradients dropped. Every rank must call it.
    pub fn finish_loading(&mut self, b: &B, step: u64) -> Result<()> {
        self.sync_params_from_masters(b)?;
        self.step = step;
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
