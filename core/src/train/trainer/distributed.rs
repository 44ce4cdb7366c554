//! A [`Trainer`] as one rank of a data-parallel job: built sharded from the start
//! ([`Trainer::new_distributed`]) or sliced from a whole trainer ([`Trainer::distributed`]),
//! and its models gathered from the ranks' slices when their weights are sharded
//! ([`Trainer::gathered_policy`]).

use alloc::rc::Rc;

use super::{ModelOptimizer, Trainer, reference_for};
use crate::backend::Backend;
use crate::collective::Collective;
use crate::model::{Critic, Policy, Qwen2};
use crate::optimizer::OptimizerConfig;
use crate::rng::Rng;
use crate::shard::{FrozenShards, Gathered, ShardedOptimizer};
use crate::train::config::TrainConfig;
use crate::{Error, Result};

impl<B: Backend> Trainer<B> {
    /// A fresh trainer as one rank of a data-parallel job over `collective` (every rank calls it
    /// with the same config and seed; rank 0's weights are broadcast): [`Trainer::new`] then
    /// [`Trainer::distributed`], except that no rank ever holds a whole optimizer state (the
    /// sharded optimizers are built straight from the weights, and with
    /// [`TrainConfig::shard_weights`] the weights are released at once). The way to start a
    /// large model on devices that hold only its slices. Under a KL option every rank keeps a
    /// whole frozen copy of `policy` as the reference model ([`crate::train::reference`]).
    pub fn new_distributed(
        config: TrainConfig,
        policy: Policy<B>,
        critic: Option<Critic<B>>,
        rng: Rng,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<Self> {
        let reference = reference_for(&config, &policy)?;
        let mut trainer = Self::new_distributed_restored(config, policy, critic, rng, collective)?;
        trainer.reference = reference;
        trainer.shard_reference()?;
        Ok(trainer)
    }

    /// [`Trainer::new_distributed`] without the reference model: for a trainer restored from a
    /// checkpoint's weights, which must get the run's initial policy with
    /// [`Trainer::with_reference`], never a copy of the checkpoint's policy.
    pub fn new_distributed_restored(
        config: TrainConfig,
        policy: Policy<B>,
        critic: Option<Critic<B>>,
        rng: Rng,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<Self> {
        let estimator = config.estimator.build(config.gamma, config.lambda);
        Self::build(config, policy, critic, rng, estimator, collective)
    }

    /// This trainer as one rank of a data-parallel job over `collective` (every rank calls it
    /// with the same config, seed and weights; rank 0's weights are broadcast): each iteration
    /// is split across the ranks as [`crate::train::data_parallel`] describes, and above one rank both
    /// optimizers shard their state ([`ShardedOptimizer`]), each rank taking its slice of the
    /// optimizers' current state (a trainer restored from a checkpoint of any world size resumes
    /// exactly; the whole state is on every rank while it is sliced). With
    /// [`TrainConfig::shard_weights`] the weights are sharded too: the trainer then keeps
    /// skeletons of its models ([`Qwen2::skeleton`]) and gathers them for each use
    /// ([`Trainer::gathered_policy`]).
    pub fn distributed(mut self, collective: Rc<dyn Collective<B>>) -> Result<Self> {
        if collective.world_size() > 1 {
            let weights = self.config.shard_weights;
            let config = self.config.policy_optimizer;
            self.policy_opt = shard(self.policy.model(), &self.policy_opt, config, &collective, weights)?;
            if weights {
                self.policy = Policy::new(self.policy.model().skeleton())?;
            }
            if let (Some(critic), Some(opt)) = (&mut self.critic, &mut self.critic_opt) {
                *opt = shard(critic.model(), opt, self.config.critic_optimizer, &collective, weights)?;
                if weights {
                    *critic = Critic::new(critic.model().skeleton())?;
                }
            }
        }
        self.collective = collective;
        self.shard_reference()?;
        Ok(self)
    }

    /// Under sharded weights over several ranks, keeps only this rank's slices of the reference
    /// model (and its skeleton), as for the trained models; a no-op otherwise or when already
    /// sharded.
    pub(super) fn shard_reference(&mut self) -> Result<()> {
        let sharded = self.config.shard_weights && self.collective.world_size() > 1;
        if let (true, None, Some(reference)) = (sharded, &self.reference_shards, &self.reference) {
            let shards = FrozenShards::new(reference.model(), Rc::clone(&self.collective))?;
            self.reference = Some(Policy::new(shards.skeleton().skeleton())?);
            self.reference_shards = Some(shards);
        }
        Ok(())
    }

    /// The reference model with its weights (see [`Trainer::gathered_policy`]): itself, or
    /// gathered from the ranks' slices under sharded weights (every rank must call it); `None`
    /// without one.
    pub fn gathered_reference(&self) -> Result<Option<Gathered<'_, Policy<B>>>> {
        Ok(match (&self.reference_shards, &self.reference) {
            (Some(shards), _) => Some(Gathered::Gathered(Policy::new(shards.gather()?)?)),
            (None, Some(reference)) => Some(Gathered::Resident(reference)),
            (None, None) => None,
        })
    }

    /// The collective the iterations are split over ([`crate::collective::Single`] unless [`Trainer::distributed`]).
    pub fn collective(&self) -> &dyn Collective<B> {
        self.collective.as_ref()
    }

    /// The policy with its weights: itself, or gathered from the ranks' slices when they are
    /// sharded (then every rank must call it; the copy is freed when dropped).
    pub fn gathered_policy(&self) -> Result<Gathered<'_, Policy<B>>> {
        Ok(match self.policy_opt.gathered(self.policy.model().backend(), self.policy.model())? {
            Gathered::Resident(_) => Gathered::Resident(&self.policy),
            Gathered::Gathered(model) => Gathered::Gathered(Policy::new(model)?),
        })
    }

    /// The critic with its weights (see [`Trainer::gathered_policy`]); `None` under GRPO.
    pub fn gathered_critic(&self) -> Result<Option<Gathered<'_, Critic<B>>>> {
        let (Some(critic), Some(opt)) = (&self.critic, &self.critic_opt) else { return Ok(None) };
        Ok(Some(match opt.gathered(critic.model().backend(), critic.model())? {
            Gathered::Resident(_) => Gathered::Resident(critic),
            Gathered::Gathered(model) => Gathered::Gathered(Critic::new(model)?),
        }))
    }
}

/// A sharded optimizer over `model` holding `opt`'s current state, its weights sharded too
/// when `shard_weights` (see [`Trainer::distributed`]).
fn shard<B: Backend>(
    model: &Qwen2<B>,
    opt: &ModelOptimizer<B>,
    config: OptimizerConfig,
    collective: &Rc<dyn Collective<B>>,
    shard_weights: bool,
) -> Result<ModelOptimizer<B>> {
    let b = model.backend();
    if opt.local().is_none() {
        return Err(Error::invalid("trainer", "the trainer is already distributed"));
    }
    let state = opt.state(b)?;
    let build = if shard_weights { ShardedOptimizer::new_weight_sharded } else { ShardedOptimizer::new };
    let mut sharded = build(b, model.parameters(), &model.parameter_units(), config, Rc::clone(collective))?;
    sharded.load_full_state(b, &state)?;
    Ok(ModelOptimizer::Sharded(sharded))
}
