//! The ORZ trainer: one iteration of ORZ_RECIPE.md ("One iteration", steps 2 to 10), generic over
//! [`Backend`](crate::backend::Backend).
//!
//! An iteration is four typed phases, each a [`Trainer`] method whose output is the next one's
//! input (nothing is filled in later):
//!
//! | phase | recipe steps | output | where |
//! |---|---|---|---|
//! | [`Trainer::rollout`] | 2. truncate prompts to `prompt_max_len` (ORZ keeps the first tokens); 3. `n` samples per prompt, the policy as [`SlotDecoder`](crate::generation::SlotDecoder), a fresh fork of the seed per iteration; 4. score (prompt text, completion text, finish reason, reference), drop empty texts | [`Rollout`] of [`Sample`]s | [`rollout`] ([`rollout::truncate_prompt`], [`PromptOverflow`]) |
//! | [`Trainer::experience`] | 6. shuffle with the fixed seed (ORZ: 42), pack greedily into rows of at most `packing_max_len`; 7. old log-probs and values per response token, no gradients, ORZ alignment | [`Experience`] ([`Pack`]s, old log-probs, values) | [`experience`], [`grouping`] |
//! | [`Trainer::advantages`] | 5. score on the last response token; 8. the [`AdvantageEstimator`] (GAE per sample on the host in f64, or GRPO), whitening over the iteration (biased); returns unwhitened | [`Advantages`] | [`advantages`], [`crate::ppo::estimator`] |
//! | [`Trainer::update`] | 9. `critic_update_steps` critic steps of `max(1, N / steps)` shuffled packs each; 10. `policy_update_steps` (1) policy step(s) over all packs | [`Updates`] | [`update`], [`grouping::step_groups`] |
//!
//! [`Trainer::iteration`] runs them in order ([`Trainer::iteration_from_rollout`] the last three,
//! on completions sampled elsewhere) and returns an [`IterationReport`] (rewards,
//! pass@n, lengths, stop ratio, clip fraction, losses, gradient norms, learning rates, skipped
//! steps with their reasons, reflection-word counts, generation counters, and per-phase seconds
//! when given a clock). Evaluation and checkpoints (recipe step 11) belong to the caller: core
//! is `no_std`, so saving and loading models goes through `orz-hf`, not through this module.
//!
//! **Aggregation.** Every pack is one micro-batch; an optimizer step accumulates its packs'
//! gradients, each pack's loss weighted by the configured [`Aggregation`]'s token weights
//! ([`crate::ppo::aggregation`]), so that the step's loss is exactly ORZ's pack mean (default),
//! the global token mean or the sequence-mean-token-mean, however the packs are grouped.
//!
//! **Options.** GRPO without a critic ([`EstimatorChoice::Grpo`]), any other
//! [`AdvantageEstimator`] ([`Trainer::with_estimator`]), other aggregations, more
//! than one policy step (the packs are split by the critic's rule, [`grouping::step_groups`]),
//! any [`LrSchedule`](crate::schedule::LrSchedule) (the 32B annealing one included) in the
//! optimizer configs; a frozen reference model with KL in the reward or as a loss
//! ([`mod@reference`]), an entropy bonus ([`crate::ppo::entropy`]), DAPO's overlong rules
//! ([`overlong`]) and dynamic sampling ([`dynamic_sampling`], [`Trainer::iteration_dynamic`]).
//!
//! ```
//! use std::rc::Rc;
//! use orz_core::backend::DType;
//! use orz_core::model::{Critic, Policy, Qwen2Config};
//! use orz_core::recipe::Preset;
//! use orz_core::reward::{Reward, RewardInput, RewardOutcome, label};
//! use orz_core::rng::Rng;
//! use orz_core::train::{PromptItem, TrainConfig, Trainer};
//! use orz_reference::Reference;
//!
//! /// 1.0 when the completion contains a `b`.
//! struct HasB;
//! impl Reward for HasB {
//!     fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
//!         if input.completion.contains('b') {
//!             RewardOutcome::new(1.0, label::CORRECT)
//!         } else {
//!             RewardOutcome::new(0.0, label::WRONG)
//!         }
//!     }
//!     fn name(&self) -> &str { "has_b" }
//! }
//!
//! # fn main() -> orz_core::Result<()> {
//! let model = Qwen2Config::tiny_test(); // vocab 64, EOS id 1
//! let (backend, mut rng) = (Rc::new(Reference::new()), Rng::seed_from_u64(0));
//! let policy = Policy::random(Rc::clone(&backend), &model, DType::F32, &mut rng)?;
//! let critic = Critic::random(Rc::clone(&backend), &model, DType::F32, &mut rng)?;
//! // The tiny preset, shrunk: 2 samples per prompt of at most 4 tokens, 2 critic steps.
//! let mut config = Preset::Tiny.config().train_config(model.eos_token_ids.clone())?;
//! (config.n_samples_per_prompt, config.stop.max_new_tokens, config.stop.max_total_len) = (2, 4, 16);
//! (config.prompt_max_len, config.packing_max_len, config.critic_update_steps) = (8, 16, 2);
//! let mut trainer = Trainer::new(config, policy, Some(critic), Rng::seed_from_u64(1))?;
//! // A toy tokenizer: token t is the letter 'a' + t % 26.
//! let detok = |ts: &[u32]| ts.iter().map(|&t| char::from(b'a' + (t % 26) as u8)).collect::<String>();
//! let prompts = vec![PromptItem { tokens: vec![5, 6, 7], text: "fgh".into(), reference: String::new() }];
//! let report = trainer.iteration(&prompts, &HasB, &detok)?;
//! assert_eq!(report.rollout.generated, 2);
//! assert_eq!(report.critic_steps.len(), report.packs.min(2));
//! assert_eq!(trainer.iterations(), 1);
//! # Ok(())
//! # }
//! ```

pub mod advantages;
pub mod config;
pub mod data_parallel;
pub mod dynamic_sampling;
pub mod experience;
pub mod grouping;
pub mod mismatch;
pub mod model_optimizer;
pub mod overlong;
pub mod reference;
pub mod report;
pub mod resume;
pub mod rollout;
pub mod trainer;
pub mod update;

pub use crate::ppo::aggregation::Aggregation;
pub use crate::ppo::estimator::AdvantageEstimator;
pub use advantages::Advantages;
pub use config::{DEFAULT_ENGINE, EstimatorChoice, PromptOverflow, TrainConfig};
pub use dynamic_sampling::DynamicSamplingStats;
pub use experience::{Experience, Pack};
pub use grouping::step_groups;
pub use mismatch::Mismatch;
pub use model_optimizer::ModelOptimizer;
pub use report::{IterationReport, ModelKind, PhaseTimes, ReflectionCounts, RolloutMetrics, SkippedStep};
pub use resume::TrainerState;
pub use rollout::{PromptItem, Rollout, Sample};
pub use trainer::Trainer;
pub use update::{UpdateOutcome, Updates};
