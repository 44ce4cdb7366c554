//! [`ModelOptimizer`]: the optimizer of one model in a [`super::Trainer`], local (one process,
//! [`Optimizer`]) or sharded over the ranks of a data-parallel job ([`ShardedOptimizer`]).

use crate::Result;
use crate::backend::Backend;
use crate::optimizer::{Optimizer, OptimizerState, StepReport};
use crate::shard::ShardedOptimizer;

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

    /// The model's parameters, in the optimizer's order.
    pub fn params(&self) -> &[B::Tensor] {
        match self {
            ModelOptimizer::Local(o) => o.params(),
            ModelOptimizer::Sharded(o) => o.params(),
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
