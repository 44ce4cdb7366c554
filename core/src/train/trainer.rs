//! [`Trainer`]: the policy, the critic, their optimizers and the seeded generator, and one ORZ
//! iteration over them ([`Trainer::iteration`]).

use alloc::format;
use alloc::vec::Vec;

use super::config::TrainConfig;
use super::experience::{build_packs, compute_advantages, old_log_probs_and_values};
use super::report::{IterationReport, ModelKind, PhaseTimes, RolloutMetrics, SkippedStep};
use super::rollout::{PromptItem, rollout};
use super::update::{UpdateOutcome, critic_update, policy_update};
use crate::backend::Backend;
use crate::backend::ops::no_grad;
use crate::generation::Detokenize;
use crate::model::{Critic, Policy};
use crate::optimizer::Optimizer;
use crate::reward::Reward;
use crate::rng::Rng;
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
}

/// Everything an ORZ run updates: the policy, the critic (none under GRPO), their optimizers,
/// the seeded generator and the iteration counter.
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
    policy_opt: Optimizer<B>,
    critic_opt: Option<Optimizer<B>>,
    rng: Rng,
    iteration: u64,
}

impl<B: Backend> Trainer<B> {
    /// A trainer starting at iteration 0. Errors: an invalid config; a critic missing under GAE
    /// or given under GRPO; models on different backends cannot be detected and are the
    /// caller's responsibility.
    pub fn new(config: TrainConfig, policy: Policy<B>, critic: Option<Critic<B>>, rng: Rng) -> Result<Self> {
        const OP: &str = "trainer";
        config.validate()?;
        match (config.estimator.uses_critic(), critic.is_some()) {
            (true, false) => {
                return Err(Error::invalid(OP, "the GAE estimator needs a critic, none was given"));
            }
            (false, true) => return Err(Error::invalid(OP, "GRPO uses no critic, but one was given")),
            _ => {}
        }
        let b = policy.model().backend();
        let policy_opt = Optimizer::new(b, policy.model().parameters(), config.policy_optimizer)?;
        let critic_opt = critic
            .as_ref()
            .map(|c| Optimizer::new(c.model().backend(), c.model().parameters(), config.critic_optimizer))
            .transpose()?;
        Ok(Trainer { config, policy, critic, policy_opt, critic_opt, rng, iteration: 0 })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The policy.
    pub fn policy(&self) -> &Policy<B> {
        &self.policy
    }

    /// The critic (`None` under GRPO).
    pub fn critic(&self) -> Option<&Critic<B>> {
        self.critic.as_ref()
    }

    /// The policy's optimizer (its state, for a checkpoint).
    pub fn policy_optimizer(&self) -> &Optimizer<B> {
        &self.policy_opt
    }

    /// The policy's optimizer, mutably (to restore its state).
    pub fn policy_optimizer_mut(&mut self) -> &mut Optimizer<B> {
        &mut self.policy_opt
    }

    /// The critic's optimizer.
    pub fn critic_optimizer(&self) -> Option<&Optimizer<B>> {
        self.critic_opt.as_ref()
    }

    /// The critic's optimizer, mutably.
    pub fn critic_optimizer_mut(&mut self) -> Option<&mut Optimizer<B>> {
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

    /// The policy and the critic, giving the trainer up.
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
        let now = || clock.map_or(0.0, |c| c());
        let (start, mut mark) = (now(), now());
        let mut lap = || {
            let t = now();
            let d = t - mark;
            mark = t;
            d
        };
        let mut times = PhaseTimes::default();
        let iter_rng = self.rng.fork(self.iteration);
        let b = self.policy.model().backend();

        // Steps 2-4: truncate, sample n per prompt (fresh fork per iteration), score, drop empty.
        let gen_rng = iter_rng.fork(stream::GENERATION);
        let out = no_grad(b, || rollout(b, &self.policy, &self.config, prompts, reward, detok, &gen_rng))
            .map_err(|e| e.in_phase("generation", self.config.stop.max_total_len, KNOB_GENERATION))?;
        let mut samples = out.samples;
        times.rollout = lap();

        // Steps 5-7: pack the shuffled samples; old log-probs and values per response token.
        let packs = build_packs(&samples, self.config.packing_max_len, self.config.pack_shuffle_seed)?;
        let pack_len = self.config.packing_max_len;
        old_log_probs_and_values(&self.policy, self.critic.as_ref(), &packs, &mut samples)
            .map_err(|e| e.in_phase("experience pass (old log-probs and values)", pack_len, KNOB_PACK))?;
        times.experience = lap();

        // Step 8: GAE (or GRPO) on the host in f64, whitening over the iteration.
        compute_advantages(&mut samples, &self.config)?;
        times.advantages = lap();

        // Step 9: the critic's steps.
        let critic_out = match (&self.critic, &mut self.critic_opt) {
            (Some(critic), Some(opt)) => {
                let mut order = iter_rng.fork(stream::CRITIC_ORDER);
                let out = critic_update(critic, opt, &packs, &samples, &self.config, &mut order);
                Some(out.map_err(|e| e.in_phase("critic step", pack_len, KNOB_TRAIN))?)
            }
            _ => None,
        };
        times.critic_update = lap();

        // Step 10: the policy's step(s).
        let mut order = iter_rng.fork(stream::POLICY_ORDER);
        let policy_out =
            policy_update(&self.policy, &mut self.policy_opt, &packs, &samples, &self.config, &mut order)
                .map_err(|e| e.in_phase("policy step", pack_len, KNOB_TRAIN))?;
        times.policy_update = lap();
        times.total = now() - start;

        let mut skipped_steps = skipped(ModelKind::Policy, &policy_out);
        if let Some(c) = &critic_out {
            skipped_steps.extend(skipped(ModelKind::Critic, c));
        }
        let report = IterationReport {
            iteration: self.iteration,
            rollout: RolloutMetrics::of(prompts.len(), out.generated, &samples),
            packs: packs.len(),
            tokens_generated: out.stats.tokens_generated,
            training_tokens: samples.iter().map(|s| s.len()).sum(),
            generation: out.stats,
            clip_fraction: policy_out.clipped_tokens as f64 / policy_out.tokens.max(1) as f64,
            policy_loss: policy_out.mean_loss(),
            value_loss: critic_out.as_ref().map(UpdateOutcome::mean_loss),
            skipped_steps,
            policy_steps: policy_out.steps,
            critic_steps: critic_out.map(|c| c.steps).unwrap_or_default(),
            phase_seconds: clock.map(|_| times),
        };
        self.iteration += 1;
        Ok(report)
    }
}

/// What to lower when generation runs out of memory.
const KNOB_GENERATION: &str = "lower train.engine.max_batch_slots or train.engine.kv_budget_bytes";
/// What to lower when the experience pass runs out of memory.
const KNOB_PACK: &str = "lower packing_max_len";
/// What to turn when a training step runs out of memory.
const KNOB_TRAIN: &str = "turn on train.memory.activation_checkpointing, lower train.memory.head_chunk_tokens, \
                          or lower packing_max_len";

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
