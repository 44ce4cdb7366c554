//! Resuming a [`Trainer`] from a checkpoint: [`Trainer::restore`] rebuilds one from its models,
//! its optimizers' saved states, its generator and its iteration counter.
//!
//! What an exact resume needs (see [`Trainer`]'s randomness contract): the weights, both
//! optimizers' [`OptimizerState`]s (moments, per-parameter step counts, f32 masters, step
//! counters), the seed generator and the index of the next iteration. Iteration `k` then draws
//! exactly what it would have drawn in an uninterrupted run.

use alloc::format;

use super::config::TrainConfig;
use super::trainer::Trainer;
use crate::backend::Backend;
use crate::model::{Critic, Policy};
use crate::optimizer::OptimizerState;
use crate::rng::Rng;
use crate::{Error, Result};

/// The saved state of a [`Trainer`] beyond its models' weights, as host data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerState {
    /// The policy optimizer's state.
    pub policy_optimizer: OptimizerState,
    /// The critic optimizer's state (`None` under GRPO).
    pub critic_optimizer: Option<OptimizerState>,
    /// The seed generator every iteration forks from.
    pub rng: Rng,
    /// The index of the next iteration.
    pub iteration: u64,
}

impl<B: Backend> Trainer<B> {
    /// The optimizers' states, the generator and the iteration counter, as host data (with the
    /// models' weights, everything [`Trainer::restore`] needs).
    pub fn state(&self) -> Result<TrainerState> {
        let b = self.policy().model().backend();
        let critic_optimizer = match (self.critic(), self.critic_optimizer()) {
            (Some(c), Some(opt)) => Some(opt.state(c.model().backend())?),
            _ => None,
        };
        Ok(TrainerState {
            policy_optimizer: self.policy_optimizer().state(b)?,
            critic_optimizer,
            rng: self.rng().clone(),
            iteration: self.iterations(),
        })
    }

    /// A trainer resuming from `state`: as [`Trainer::new`] over the restored models (but
    /// without a reference model: under a KL option, hand the run's initial policy to
    /// [`Trainer::with_reference`], never a copy of the restored one), then each
    /// optimizer's [`crate::optimizer::Optimizer::load_state`] (which also assigns mastered
    /// parameters their masters cast down) and the iteration counter. Errors: those of
    /// [`Trainer::new`], a critic state given without a critic or missing for one, and any shape
    /// or master mismatch between a model and its saved state (naming the parameter).
    pub fn restore(
        config: TrainConfig,
        policy: Policy<B>,
        critic: Option<Critic<B>>,
        state: &TrainerState,
    ) -> Result<Self> {
        const OP: &str = "trainer restore";
        match (critic.is_some(), state.critic_optimizer.is_some()) {
            (true, false) => {
                return Err(Error::invalid(OP, "a critic was given but no critic optimizer state"));
            }
            (false, true) => {
                return Err(Error::invalid(OP, "a critic optimizer state was given but no critic"));
            }
            _ => {}
        }
        let estimator = config.estimator.build(config.gamma, config.lambda);
        let mut trainer = Trainer::without_reference(config, policy, critic, state.rng.clone(), estimator)?;
        let b = trainer.policy().model().backend_rc();
        trainer
            .policy_optimizer_mut()
            .load_state(&b, &state.policy_optimizer)
            .map_err(|e| Error::invalid(OP, format!("the policy optimizer state: {e}")))?;
        if let Some(critic_state) = &state.critic_optimizer {
            let cb = trainer.critic().map(|c| c.model().backend_rc());
            if let (Some(cb), Some(opt)) = (cb, trainer.critic_optimizer_mut()) {
                opt.load_state(&cb, critic_state)
                    .map_err(|e| Error::invalid(OP, format!("the critic optimizer state: {e}")))?;
            }
        }
        trainer.set_iterations(state.iteration);
        Ok(trainer)
    }
}
