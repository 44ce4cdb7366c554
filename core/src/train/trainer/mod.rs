//! [`Trainer`]: the policy, the critic, their optimizers and the seeded generator, and one ORZ
//! iteration over them ([`Trainer::iteration`]).

mod distributed;

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;

use super::advantages::{Advantages, RewardShaping, compute_shaped_advantages};
use super::config::TrainConfig;
use super::data_parallel::{gather_rollout, owned};
use super::experience::{Experience, ExperienceModels, make_experience_staged};
use super::model_optimizer::ModelOptimizer;
use super::reference::{check_reference, experience_kl, frozen_copy, missing_reference, token_mean};
use super::report::{IterationReport, ModelKind, PhaseTimes, RolloutMetrics, SkippedStep};
use super::rollout::{PromptItem, Rollout, Sample, require_samples, rollout_of};
use super::update::{UpdateOutcome, Updates, critic_update, policy_update};
use crate::backend::Backend;
use crate::backend::ops::no_grad;
use crate::collective::{Collective, Single};
use crate::generation::Detokenize;
use crate::model::{Critic, Policy, Qwen2};
use crate::optimizer::{Optimizer, OptimizerConfig};
use crate::ppo::estimator::AdvantageEstimator;
use crate::reward::Reward;
use crate::rng::Rng;
use crate::shard::{FrozenShards, ShardedOptimizer};
use crate::{Error, Result};

/// The sub-streams of iteration `k`'s generator, `rng.fork(k).fork(stream)`: part of the
/// reproducibility contract (a caller can replay a phase with the same draws).
pub mod stream {
    /// Sampling (the engine forks per prompt and sample from it).
    pub const GENERATION: u64 = 0;
    /// The order the critic visits the packs in.
    pub const CRITIC_ORDER: u64 = 1;
    /// The order the policy visits the packs in.
    pub const POLICY_ORDER: u64 = 2;
    /// Dynamic sampling's extra generation rounds: round `r >= 1` samples from
    /// `fork(DYNAMIC_ROUNDS).fork(r)` (round 0 from [`GENERATION`]).
    pub const DYNAMIC_ROUNDS: u64 = 3;
}

/// Everything an ORZ run updates: the policy, the critic (none under GRPO), their optimizers,
/// the seeded generator and the iteration counter; and the advantage estimator.
///
/// An iteration is four phases, each a public method whose output is the next one's input:
/// [`Trainer::rollout`] -> [`Trainer::experience`] -> [`Trainer::advantages`] ->
/// [`Trainer::update`]; [`Trainer::iteration`] is their composition (and
/// [`Trainer::iteration_from_rollout`] the last three, for completions sampled elsewhere).
///
/// Randomness: iteration `k` draws only from `rng.fork(k)` (sampling, and the order the packs
/// are visited in), and the pre-packing shuffle uses the fixed `pack_shuffle_seed`; so a run is
/// a pure function of the seed, and a resumed run needs only the seed, `k` and the weights and
/// optimizer states.
#[derive(Debug)]
pub struct Trainer<B: Backend> {
    config: TrainConfig,
    policy: Policy<B>,
    critic: Option<Critic<B>>,
    policy_opt: ModelOptimizer<B>,
    critic_opt: Option<ModelOptimizer<B>>,
    collective: Rc<dyn Collective<B>>,
    estimator: Box<dyn AdvantageEstimator>,
    /// The frozen initial policy of the KL options ([`super::reference`]); a skeleton when its
    /// weights are sharded ([`Trainer::gathered_reference`]).
    reference: Option<Policy<B>>,
    /// This rank's slices of the reference model when the weights are sharded (ZeRO-3).
    reference_shards: Option<FrozenShards<B>>,
    rng: Rng,
    iteration: u64,
}

impl<B: Backend> Trainer<B> {
    /// A trainer starting at iteration 0, with the config's estimator
    /// ([`TrainConfig::estimator`]). Errors: an invalid config; a critic missing under GAE or
    /// given under GRPO; models on different backends cannot be detected and are the caller's
    /// responsibility.
    pub fn new(config: TrainConfig, policy: Policy<B>, critic: Option<Critic<B>>, rng: Rng) -> Result<Self> {
        let estimator = config.estimator.build(config.gamma, config.lambda);
        Self::with_estimator(config, policy, critic, rng, estimator)
    }

    /// A trainer with a custom advantage estimator (the config's `estimator` is then unused).
    /// Under a KL option it keeps a frozen copy of `policy` as the reference model
    /// ([`super::reference`]). Errors: as [`Trainer::new`], the critic judged by
    /// `estimator.uses_critic()`; KL in the reward with an estimator that takes no per-token
    /// rewards.
    pub fn with_estimator(
        config: TrainConfig,
        policy: Policy<B>,
        critic: Option<Critic<B>>,
        rng: Rng,
        estimator: Box<dyn AdvantageEstimator>,
    ) -> Result<Self> {
        let reference = reference_for(&config, &policy)?;
        let mut trainer = Self::build(config, policy, critic, rng, estimator, Rc::new(Single))?;
        trainer.reference = reference;
        Ok(trainer)
    }

    /// [`Trainer::with_estimator`] without the reference model (a restored trainer, which gets
    /// the initial policy with [`Trainer::with_reference`]).
    pub(super) fn without_reference(
        config: TrainConfig,
        policy: Policy<B>,
        critic: Option<Critic<B>>,
        rng: Rng,
        estimator: Box<dyn AdvantageEstimator>,
    ) -> Result<Self> {
        Self::build(config, policy, critic, rng, estimator, Rc::new(Single))
    }

    fn build(
        config: TrainConfig,
        policy: Policy<B>,
        critic: Option<Critic<B>>,
        rng: Rng,
        estimator: Box<dyn AdvantageEstimator>,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<Self> {
        const OP: &str = "trainer";
        config.validate()?;
        if config.kl_coef > 0.0 && estimator.token_reward_discount().is_none() {
            return Err(Error::invalid(
                OP,
                format!(
                    "`kl_coef` > 0 puts the KL in the reward, and the `{}` estimator takes no per-token rewards",
                    estimator.name()
                ),
            ));
        }
        let name = estimator.name();
        match (estimator.uses_critic(), critic.is_some()) {
            (true, false) => {
                return Err(Error::invalid(
                    OP,
                    format!("the `{name}` estimator needs a critic, none was given"),
                ));
            }
            (false, true) => {
                return Err(Error::invalid(
                    OP,
                    format!("the `{name}` estimator uses no critic, but one was given"),
                ));
            }
            _ => {}
        }
        let (world, shard_weights) = (collective.world_size(), config.shard_weights);
        let optimizer = |model: &Qwen2<B>, opt: OptimizerConfig| -> Result<ModelOptimizer<B>> {
            let (b, params) = (model.backend(), model.parameters());
            Ok(match (world, shard_weights) {
                (1, _) => ModelOptimizer::Local(Optimizer::new(b, params, opt)?),
                (_, false) => {
                    let c = Rc::clone(&collective);
                    ModelOptimizer::Sharded(ShardedOptimizer::new(
                        b,
                        params,
                        &model.parameter_units(),
                        opt,
                        c,
                    )?)
                }
                (_, true) => {
                    let (units, c) = (model.parameter_units(), Rc::clone(&collective));
                    ModelOptimizer::Sharded(ShardedOptimizer::new_weight_sharded(b, params, &units, opt, c)?)
                }
            })
        };
        let policy_opt = optimizer(policy.model(), config.policy_optimizer)?;
        let critic_opt =
            critic.as_ref().map(|c| optimizer(c.model(), config.critic_optimizer)).transpose()?;
        let (policy, critic) = if world > 1 && shard_weights {
            // The sharded optimizers hold the slices: keep skeletons, let the weights go.
            let critic = critic.map(|c| Critic::new(c.model().skeleton())).transpose()?;
            (Policy::new(policy.model().skeleton())?, critic)
        } else {
            (policy, critic)
        };
        Ok(Trainer {
            config,
            policy,
            critic,
            policy_opt,
            critic_opt,
            collective,
            estimator,
            reference: None,
            reference_shards: None,
            rng,
            iteration: 0,
        })
    }

    /// This trainer with `reference` as the frozen reference model of the KL options (a
    /// restored run's initial policy, [`super::reference`]). Errors: a vocabulary that differs
    /// from the policy's.
    pub fn with_reference(mut self, reference: Policy<B>) -> Result<Self> {
        check_reference(&self.policy, &reference)?;
        self.reference = Some(reference);
        self.reference_shards = None;
        self.shard_reference()?;
        Ok(self)
    }

    /// The frozen reference model (`None` without a KL option, or a restored trainer before
    /// [`Trainer::with_reference`]).
    pub fn reference(&self) -> Option<&Policy<B>> {
        self.reference.as_ref()
    }

    /// The advantage estimator.
    pub fn estimator(&self) -> &dyn AdvantageEstimator {
        self.estimator.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The policy (a skeleton when its weights are sharded: [`Trainer::gathered_policy`]).
    pub fn policy(&self) -> &Policy<B> {
        &self.policy
    }

    /// The critic (`None` under GRPO; a skeleton when its weights are sharded).
    pub fn critic(&self) -> Option<&Critic<B>> {
        self.critic.as_ref()
    }

    /// The policy's optimizer (its state, for a checkpoint).
    pub fn policy_optimizer(&self) -> &ModelOptimizer<B> {
        &self.policy_opt
    }

    /// The policy's optimizer, mutably (to restore its state).
    pub fn policy_optimizer_mut(&mut self) -> &mut ModelOptimizer<B> {
        &mut self.policy_opt
    }

    /// The critic's optimizer.
    pub fn critic_optimizer(&self) -> Option<&ModelOptimizer<B>> {
        self.critic_opt.as_ref()
    }

    /// The critic's optimizer, mutably.
    pub fn critic_optimizer_mut(&mut self) -> Option<&mut ModelOptimizer<B>> {
        self.critic_opt.as_mut()
    }

    /// The seed generator every iteration forks from.
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// Iterations completed: the index of the next one.
    pub fn iterations(&self) -> u64 {
        self.iteration
    }

    /// Sets the index of the next iteration (resuming from a checkpoint).
    pub fn set_iterations(&mut self, iteration: u64) {
        self.iteration = iteration;
    }

    /// The policy and the critic, giving the trainer up (skeletons when their weights are
    /// sharded: gather them first).
    pub fn into_models(self) -> (Policy<B>, Option<Critic<B>>) {
        (self.policy, self.critic)
    }

    /// One ORZ iteration (ORZ_RECIPE.md steps 2 to 10; see the [module docs](super)) over
    /// `prompts`, without timing. Errors name what is wrong (no prompt, a prompt too long under
    /// [`super::PromptOverflow::Reject`], every completion empty, backend failures); an error
    /// leaves the iteration counter unchanged, but model updates already applied stay.
    pub fn iteration(
        &mut self,
        prompts: &[PromptItem],
        reward: &dyn Reward,
        detok: &dyn Detokenize,
    ) -> Result<IterationReport> {
        self.iteration_timed(prompts, reward, detok, None)
    }

    /// [`Trainer::iteration`] with a clock (seconds, monotonic) to time each phase
    /// ([`IterationReport::phase_seconds`]); core has no clock of its own.
    pub fn iteration_timed(
        &mut self,
        prompts: &[PromptItem],
        reward: &dyn Reward,
        detok: &dyn Detokenize,
        clock: Option<&dyn Fn() -> f64>,
    ) -> Result<IterationReport> {
        self.iteration_dynamic(prompts, &mut || Ok(Vec::new()), reward, detok, clock)
    }

    /// [`Trainer::iteration_timed`] with a source of more prompts for DAPO's dynamic sampling
    /// ([`super::dynamic_sampling`]): under `dynamic_sampling`, prompt groups whose samples all
    /// got the same score are dropped and `more()` is asked for the next prompts (the caller's
    /// next batch, in its seeded order) until `prompts.len()` groups are kept, at most
    /// `dynamic_sampling_max_rounds` rounds, or `more()` gives none. Without the option, the
    /// same as [`Trainer::iteration_timed`] (`more` is never called). Errors also: no group kept.
    pub fn iteration_dynamic(
        &mut self,
        prompts: &[PromptItem],
        more: &mut dyn FnMut() -> Result<Vec<PromptItem>>,
        reward: &dyn Reward,
        detok: &dyn Detokenize,
        clock: Option<&dyn Fn() -> f64>,
    ) -> Result<IterationReport> {
        let mut laps = Laps::new(clock);
        if !self.config.dynamic_sampling {
            let rollout = self.rollout(prompts, reward, detok)?;
            let rollout_seconds = laps.lap();
            return self.train_on(prompts.len(), rollout, laps, rollout_seconds, None);
        }
        let wanted = prompts.len();
        let mut rounds = super::dynamic_sampling::Rounds::default();
        let mut batch = prompts.to_vec();
        for round in 0..self.config.dynamic_sampling_max_rounds {
            if round > 0 {
                batch = more()?;
                if batch.is_empty() {
                    break;
                }
            }
            let rng = match round {
                0 => self.iteration_rng().fork(stream::GENERATION),
                r => self.iteration_rng().fork(stream::DYNAMIC_ROUNDS).fork(r as u64),
            };
            rounds.add(self.rollout_with(&batch, reward, detok, &rng)?, batch.len(), wanted);
            if rounds.kept_groups() >= wanted {
                break;
            }
        }
        let (rollout, stats) = rounds.finish();
        if rollout.samples.is_empty() {
            return Err(Error::invalid(
                "dynamic sampling",
                format!(
                    "kept no prompt group in {} round(s) of {} groups: every group's samples got the same score",
                    stats.rounds, stats.generated_groups
                ),
            ));
        }
        let rollout_seconds = laps.lap();
        self.train_on(stats.kept_groups, rollout, laps, rollout_seconds, Some(stats))
    }

    /// The last three phases of an iteration (experience, advantages, update) on completions
    /// sampled elsewhere (`rollout`, over `prompts` prompts), then the report; as
    /// [`Trainer::iteration`] otherwise.
    pub fn iteration_from_rollout(&mut self, prompts: usize, rollout: Rollout) -> Result<IterationReport> {
        self.train_on(prompts, rollout, Laps::new(None), 0.0, None)
    }

    /// Phase 1 (recipe steps 2 to 4) of the current iteration: truncate `prompts`, sample
    /// `n_samples_per_prompt` of each with the policy (a fresh fork of the seed per iteration,
    /// [`stream::GENERATION`]), score them with `reward` and drop the empty ones.
    pub fn rollout(
        &self,
        prompts: &[PromptItem],
        reward: &dyn Reward,
        detok: &dyn Detokenize,
    ) -> Result<Rollout> {
        self.rollout_with(prompts, reward, detok, &self.iteration_rng().fork(stream::GENERATION))
    }

    /// [`Trainer::rollout`] sampling from `gen_rng`.
    fn rollout_with(
        &self,
        prompts: &[PromptItem],
        reward: &dyn Reward,
        detok: &dyn Detokenize,
        gen_rng: &Rng,
    ) -> Result<Rollout> {
        let b = self.policy.model().backend();
        let c = self.collective.as_ref();
        let mine = owned(prompts.len(), c.rank(), c.world_size());
        let local = no_grad(b, || {
            // With sharded weights this gather is the iteration's weight sync.
            let policy = self.gathered_policy()?;
            rollout_of(b, &*policy, &self.config, prompts, &mine, reward, detok, gen_rng)
        })
        .map_err(|e| e.in_phase("generation", self.config.stop.max_total_len, KNOB_GENERATION))?;
        let all =
            if c.world_size() > 1 { gather_rollout(c, prompts, &self.config, reward, local)? } else { local };
        require_samples(all)
    }

    /// Phase 2 (recipe steps 6 and 7): pack the shuffled samples (without those cut at the
    /// length limit under DAPO's overlong filtering, [`super::overlong`]), read the old log-probs
    /// and the values of every response token.
    pub fn experience(&self, samples: Vec<Sample>) -> Result<Experience> {
        let c = &self.config;
        if c.uses_reference() && self.reference.is_none() {
            return Err(missing_reference());
        }
        let samples = super::overlong::trained_samples(c, samples)?;
        let (len, seed) = (c.packing_max_len, c.pack_shuffle_seed);
        let b = self.policy.model().backend();
        // One model whole at a time: the policy's pass, the reference's, then the critic's (under
        // ZeRO-3 each is gathered for its pass and freed after it).
        let models = ExperienceModels {
            policy: || self.gathered_policy(),
            reference: c
                .uses_reference()
                .then_some(|| self.gathered_reference()?.ok_or_else(missing_reference)),
            critic: self.critic.as_ref().map(|_| {
                || {
                    self.gathered_critic()?
                        .ok_or_else(|| Error::invalid("experience", "the critic is missing"))
                }
            }),
        };
        no_grad(b, || make_experience_staged(models, samples, len, seed, self.collective.as_ref())).map_err(
            |e| e.in_phase("experience pass (old log-probs and values)", c.packing_max_len, KNOB_PACK),
        )
    }

    /// Phase 3 (recipe steps 5 and 8): the estimator on the host in f64 over the scores
    /// (clamped to `reward_clip_range` when set), the KL part of the reward under `kl_coef > 0`
    /// ([`crate::ppo::kl_reward`]), whitening over the iteration when configured.
    pub fn advantages(&self, experience: &Experience) -> Result<Advantages> {
        let c = &self.config;
        let kl = if c.kl_coef > 0.0 { experience_kl(experience, c)? } else { None };
        if c.kl_coef > 0.0 && kl.is_none() {
            return Err(missing_reference());
        }
        let shaping =
            RewardShaping { clip_range: c.reward_clip_range, kl: kl.as_deref().map(|k| (k, c.kl_coef)) };
        compute_shaped_advantages(experience, self.estimator.as_ref(), c.advantage_normalize, shaping)
    }

    /// Phase 4 (recipe steps 9 and 10): the critic's steps, then the policy's, visiting the
    /// packs in the current iteration's orders ([`stream::CRITIC_ORDER`],
    /// [`stream::POLICY_ORDER`]). Does not advance the iteration counter.
    pub fn update(&mut self, experience: &Experience, advantages: &Advantages) -> Result<Updates> {
        let mut laps = Laps::new(None);
        self.update_timed(experience, advantages, &mut laps, &mut PhaseTimes::default())
    }

    fn update_timed(
        &mut self,
        experience: &Experience,
        advantages: &Advantages,
        laps: &mut Laps<'_>,
        times: &mut PhaseTimes,
    ) -> Result<Updates> {
        let iter_rng = self.iteration_rng();
        let pack_len = self.config.packing_max_len;
        let critic = match (&self.critic, &mut self.critic_opt) {
            (Some(critic), Some(opt)) => {
                let mut order = iter_rng.fork(stream::CRITIC_ORDER);
                let c = self.collective.as_ref();
                let out = critic_update(critic, opt, c, experience, advantages, &self.config, &mut order);
                Some(out.map_err(|e| e.in_phase("critic step", pack_len, KNOB_TRAIN))?)
            }
            _ => None,
        };
        times.critic_update = laps.lap();
        let mut order = iter_rng.fork(stream::POLICY_ORDER);
        let policy = policy_update(
            &self.policy,
            &mut self.policy_opt,
            self.collective.as_ref(),
            experience,
            advantages,
            &self.config,
            &mut order,
        )
        .map_err(|e| e.in_phase("policy step", pack_len, KNOB_TRAIN))?;
        times.policy_update = laps.lap();
        Ok(Updates { critic, policy })
    }

    /// The generator of the current iteration (`rng.fork(iteration)`).
    fn iteration_rng(&self) -> Rng {
        self.rng.fork(self.iteration)
    }

    /// Phases 2 to 4 on `rollout`, the report, and the counter advanced.
    fn train_on(
        &mut self,
        prompts: usize,
        rollout: Rollout,
        mut laps: Laps<'_>,
        rollout_seconds: f64,
        dynamic_sampling: Option<super::dynamic_sampling::DynamicSamplingStats>,
    ) -> Result<IterationReport> {
        let mut times = PhaseTimes { rollout: rollout_seconds, ..PhaseTimes::default() };
        let Rollout { samples, generated, stats, .. } = rollout;
        let metrics = RolloutMetrics::of(prompts, generated, &samples);
        let experience = self.experience(samples)?;
        times.experience = laps.lap();
        let advantages = self.advantages(&experience)?;
        times.advantages = laps.lap();
        let Updates { critic, policy } =
            self.update_timed(&experience, &advantages, &mut laps, &mut times)?;
        times.total = laps.total();

        let mut skipped_steps = skipped(ModelKind::Policy, &policy);
        if let Some(c) = &critic {
            skipped_steps.extend(skipped(ModelKind::Critic, c));
        }
        let report = IterationReport {
            iteration: self.iteration,
            rollout: metrics,
            packs: experience.packs.len(),
            tokens_generated: stats.tokens_generated,
            training_tokens: experience.training_tokens(),
            generation: stats,
            clip_fraction: policy.clipped_tokens as f64 / policy.tokens.max(1) as f64,
            clip_ratio: policy.ratio_outside_tokens as f64 / policy.tokens.max(1) as f64,
            mismatch: super::mismatch::measure(&experience.samples, &experience.logp_old),
            kl: experience_kl(&experience, &self.config)?.map(|k| token_mean(&k)),
            kl_loss: policy.kl_loss_sum.map(|s| policy.per_token(s)),
            ppo_kl: policy.per_token(policy.old_kl_sum),
            entropy: policy.entropy_sum.map(|s| policy.per_token(s)),
            dynamic_sampling,
            policy_loss: policy.mean_loss(),
            value_loss: critic.as_ref().map(UpdateOutcome::mean_loss),
            skipped_steps,
            policy_steps: policy.steps,
            critic_steps: critic.map(|c| c.steps).unwrap_or_default(),
            phase_seconds: laps.clock.map(|_| times),
        };
        self.iteration += 1;
        Ok(report)
    }
}

/// The frozen copy of `policy` the config's KL options need ([`super::reference`]), if any.
fn reference_for<B: Backend>(config: &TrainConfig, policy: &Policy<B>) -> Result<Option<Policy<B>>> {
    config.uses_reference().then(|| frozen_copy(policy)).transpose()
}

/// Lap times of an iteration's phases from an optional clock (0 without one).
struct Laps<'a> {
    clock: Option<&'a dyn Fn() -> f64>,
    start: f64,
    mark: f64,
}

impl<'a> Laps<'a> {
    fn new(clock: Option<&'a dyn Fn() -> f64>) -> Self {
        let now = clock.map_or(0.0, |c| c());
        Laps { clock, start: now, mark: now }
    }

    fn now(&self) -> f64 {
        self.clock.map_or(0.0, |c| c())
    }

    /// Seconds since the previous lap.
    fn lap(&mut self) -> f64 {
        let t = self.now();
        let d = t - self.mark;
        self.mark = t;
        d
    }

    /// Seconds since the start.
    fn total(&self) -> f64 {
        self.now() - self.start
    }
}

/// What to lower when generation runs out of memory.
const KNOB_GENERATION: &str = "lower train.engine.max_batch_slots or train.engine.kv_budget_bytes";
/// What to lower when the experience pass runs out of memory.
const KNOB_PACK: &str = "lower train.packing_max_len";
/// What to turn when a training step runs out of memory.
const KNOB_TRAIN: &str = "turn on train.memory.activation_checkpointing, lower train.memory.head_chunk_tokens, \
                          or lower train.packing_max_len";

fn skipped(model: ModelKind, out: &UpdateOutcome) -> Vec<SkippedStep> {
    out.steps
        .iter()
        .enumerate()
        .filter_map(|(index, s)| {
            let reason = s
                .skipped_reason
                .clone()
                .or_else(|| (!s.applied).then(|| format!("step {index} not applied")));
            reason.map(|reason| SkippedStep { model, index, reason })
        })
        .collect()
}
