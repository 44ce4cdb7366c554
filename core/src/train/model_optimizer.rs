//! [`ModelOptimizer`]: the optimizer of one model in a [`super::Trainer`], local (one process,
//! [`Optimizer`]) or sharded over the ranks of a data-parallel job ([`ShardedOptimizer`]).

use alloc::vec::Vec;

use crate::Result;
use crate::backend::{Backend, DType};
use crate::model::{Qwen2, ResidentUnits, UnitStore};
use crate::optimizer::{Optimizer, OptimizerState, StepReport};
use crate::shard::{Gathered, ShardedOptimizer};

/// A model's optimizer: the single-process one, or its state sharded over the ranks.
#[derive(Debug)]
pub enum ModelOptimizer<B: Backend> {
    /// One process holds the whole state.
    Local(Optimizer<B>),
    /// Each rank holds a slice of every unit's state (world size above 1).
    Sharded(ShardedOptimizer<B>),
}

impl<B: Backend> ModelOptimizer<B> {
    /// The local optimizer, when the state is not sharded.
    pub fn local(&self) -> Option<&Optimizer<B>> {
        match self {
            ModelOptimizer::Local(o) => Some(o),
            ModelOptimizer::Sharded(_) => None,
        }
    }

    /// The sharded optimizer, when the state is sharded.
    pub fn sharded(&self) -> Option<&ShardedOptimizer<B>> {
        match self {
            ModelOptimizer::Local(_) => None,
            ModelOptimizer::Sharded(o) => Some(o),
        }
    }

    /// The shapes of the model's parameters, in the optimizer's order.
    pub fn param_shapes(&self, b: &B) -> Vec<Vec<usize>> {
        match self {
            ModelOptimizer::Local(o) => o.params().iter().map(|p| b.shape(p)).collect(),
            ModelOptimizer::Sharded(o) => o.param_shapes(),
        }
    }

    /// The compute dtype of parameter `i` (every parameter of a sharded model has one dtype).
    pub fn param_dtype(&self, b: &B, i: usize) -> Option<DType> {
        match self {
            ModelOptimizer::Local(o) => o.params().get(i).map(|p| b.dtype(p)),
            ModelOptimizer::Sharded(o) => Some(o.param_dtype(b)),
        }
    }

    /// Whether the model's weights live sliced over the ranks (ZeRO-3): the model is then a
    /// skeleton, run through [`ModelOptimizer::micro_batch`] and [`ModelOptimizer::gathered`].
    pub fn weights_sharded(&self) -> bool {
        self.sharded().is_some_and(ShardedOptimizer::weights_sharded)
    }

    /// One training micro-batch of `model` through `backprop`, its gradients accumulated and
    /// its loss observed: over the model's own parameters ([`ResidentUnits`]) for a local
    /// optimizer, through [`ShardedOptimizer::micro_batch`] for a sharded one. Returns the loss.
    pub fn micro_batch(
        &mut self,
        b: &B,
        model: &Qwen2<B>,
        backprop: impl FnOnce(&mut dyn UnitStore<B>) -> Result<f64>,
    ) -> Result<f64> {
        match self {
            ModelOptimizer::Local(o) => {
                let mut units = ResidentUnits::of(model)?;
                let loss = backprop(&mut units)?;
                o.observe_loss(loss);
                o.accumulate_grads(b, &units.into_grads())?;
                Ok(loss)
            }
            ModelOptimizer::Sharded(o) => o.micro_batch(b, backprop),
        }
    }

    /// `model` with its weights: itself when resident, else gathered from the ranks' slices
    /// (every rank must call it then).
    pub fn gathered<'m>(&self, b: &B, model: &'m Qwen2<B>) -> Result<Gathered<'m, Qwen2<B>>> {
        match self {
            ModelOptimizer::Sharded(o) if !model.is_resident() => {
                Ok(Gathered::Gathered(o.gather_model(b, model)?))
            }
            _ => Ok(Gathered::Resident(model)),
        }
    }

    /// Records a micro-batch's loss (a non-finite one skips the next step).
    pub fn observe_loss(&mut self, loss: f64) {
        match self {
            ModelOptimizer::Local(o) => o.observe_loss(loss),
            ModelOptimizer::Sharded(o) => o.observe_loss(loss),
        }
    }

    /// Adds one micro-batch's gradients (one per parameter, `None`: not reached).
    pub fn accumulate_grads(&mut self, b: &B, grads: &[Option<B::Tensor>]) -> Result<()> {
        match self {
            ModelOptimizer::Local(o) => o.accumulate_grads(b, grads),
            ModelOptimizer::Sharded(o) => o.accumulate_grads(b, grads),
        }
    }

    /// One optimizer step over the accumulated gradients.
    pub fn step(&mut self, b: &B) -> Result<StepReport> {
        match self {
            ModelOptimizer::Local(o) => o.step(b),
            ModelOptimizer::Sharded(o) => o.step(b),
        }
    }

    /// Optimizer steps applied so far.
    pub fn steps(&self) -> u64 {
        match self {
            ModelOptimizer::Local(o) => o.steps(),
            ModelOptimizer::Sharded(o) => o.steps(),
        }
    }

    /// The state as host data: the whole state, or this rank's slices.
    pub fn state(&self, b: &B) -> Result<OptimizerState> {
        match self {
            ModelOptimizer::Local(o) => o.state(b),
            ModelOptimizer::Sharded(o) => o.state(b),
        }
    }

    /// Restores a state saved by [`ModelOptimizer::state`] of the same kind and layout.
    pub fn load_state(&mut self, b: &B, state: &OptimizerState) -> Result<()> {
        match self {
            ModelOptimizer::Local(o) => o.load_state(b, state),
            ModelOptimizer::Sharded(o) => o.load_state(b, state),
        }
    }
}
