//! [`TrainConfig`]: every knob of one ORZ iteration, ORZ's values ([`TrainConfig::orz`]) and the
//! tiny demo's ([`TrainConfig::tiny`]); the presets of [`crate::recipe`] hold one each.

use crate::ppo::policy_loss::PolicyClip;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::generation::{EngineConfig, SamplingParams, StopCriteria};
use crate::model::MemoryOptions;
use crate::optimizer::OptimizerConfig;
use crate::ppo::aggregation::Aggregation;
use crate::ppo::estimator::AdvantageEstimator;
use crate::ppo::gae::{GaeEstimator, ORZ_GAMMA, ORZ_LAMBDA};
use crate::ppo::grpo::{GroupStd, GrpoEstimator};
use crate::ppo::kl::KlEstimator;
use crate::ppo::reinforce::ReinforcePlusPlusEstimator;
use crate::ppo::rloo::RlooEstimator;
use crate::schedule::LrSchedule;
use crate::{Error, Result};

/// Which of core's advantage estimators a config names (recipe step 8). A custom
/// [`AdvantageEstimator`] is handed to [`Trainer::with_estimator`](super::Trainer::with_estimator)
/// instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum EstimatorChoice {
    /// ORZ: GAE per sample with the critic's values (recipe "Math": GAE), the default
    /// ([`GaeEstimator`] with the config's `gamma` and `lambda`).
    Gae,
    /// Option: GRPO group advantages without a critic ([`GrpoEstimator`]): per prompt group
    /// `score − mean`, divided by the group's std ([`GroupStd`]; the recipe's option uses
    /// [`GroupStd::Unbiased`], ORZ's own flag effectively [`GroupStd::OrzDividesByOne`]).
    Grpo(GroupStd),
    /// Option: Dr. GRPO's advantages (Liu et al. 2025, "Understanding R1-Zero-Like Training"):
    /// `score − mean` per prompt group, no std division ([`GrpoEstimator`] with
    /// [`GroupStd::OrzDividesByOne`], the same centring). Its other half, no length
    /// normalisation, is the aggregation [`Aggregation::SeqMeanTokenSumNorm`].
    DrGrpo,
    /// Option: RLOO, a leave-one-out baseline per prompt group, no critic
    /// ([`crate::ppo::rloo`]).
    Rloo,
    /// Option: REINFORCE++, per-token discounted returns of the score with `gamma`, whitened
    /// over the iteration, no critic ([`crate::ppo::reinforce`]).
    ReinforcePlusPlus,
}

impl EstimatorChoice {
    /// Whether this estimator needs a critic.
    pub fn uses_critic(self) -> bool {
        self == EstimatorChoice::Gae
    }

    /// The estimator, with GAE's `gamma` and `lambda` (REINFORCE++ uses `gamma`).
    pub fn build(self, gamma: f64, lambda: f64) -> Box<dyn AdvantageEstimator> {
        match self {
            EstimatorChoice::Gae => Box::new(GaeEstimator { gamma, lambda }),
            EstimatorChoice::Grpo(std) => Box::new(GrpoEstimator { std }),
            EstimatorChoice::DrGrpo => Box::new(GrpoEstimator { std: GroupStd::OrzDividesByOne }),
            EstimatorChoice::Rloo => Box::new(RlooEstimator),
            EstimatorChoice::ReinforcePlusPlus => Box::new(ReinforcePlusPlusEstimator { gamma }),
        }
    }
}

/// What happens to a prompt longer than `prompt_max_len` tokens (recipe step 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PromptOverflow {
    /// ORZ: keep the first `prompt_max_len` tokens. ORZ tokenizes with Hugging Face
    /// `truncation=True, max_length=prompt_max_len` and Qwen2's default `truncation_side =
    /// "right"` (`orz/ppo/trainer.py`, `_tokenize`), so the template's end (`Assistant:
    /// <think>`) is what gets cut; with ORZ's 2048-token limit no training prompt reaches it.
    KeepFirst,
    /// Refuse the iteration with an error naming the prompt (for data that must never be cut).
    Reject,
}

/// Everything one ORZ iteration is configured with (see the [module docs](super)).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TrainConfig {
    /// Completions sampled per prompt (ORZ `n_samples_per_prompt`: 64).
    pub n_samples_per_prompt: usize,
    /// Prompts are cut to this many tokens (ORZ `prompt_max_len`: 2048).
    pub prompt_max_len: usize,
    /// How a longer prompt is cut (ORZ: [`PromptOverflow::KeepFirst`]).
    pub prompt_overflow: PromptOverflow,
    /// Temperature, top-k, top-p (ORZ: 1.0, none, 1.0).
    pub sampling: SamplingParams,
    /// EOS ids, stop strings, `generate_max_len` and `max_len` (ORZ: 8000 and 8192).
    pub stop: StopCriteria,
    /// Batch slots and KV-cache budget of the generation engine (hardware, not recipe).
    pub engine: EngineConfig,
    /// Most tokens in one pack (ORZ `packing_max_len`: 16384 for 7B, else 10048); at least
    /// `stop.max_total_len`, so every sample fits a pack (ORZ silently drops a longer one).
    pub packing_max_len: usize,
    /// Seed of the shuffle before packing, reset every iteration (ORZ: `random.Random(42)` in
    /// `make_experience`).
    pub pack_shuffle_seed: u64,
    /// GAE discount γ (ORZ: 1).
    pub gamma: f64,
    /// GAE λ (ORZ: 1).
    pub lambda: f64,
    /// Whiten advantages over all response tokens of the iteration (ORZ: true).
    pub advantage_normalize: bool,
    /// PPO ratio clip ε (ORZ `eps_clip`: 0.2); the lower bound `1 − ε` when `eps_clip_high`
    /// is set.
    pub eps_clip: f64,
    /// DAPO's clip-higher: the ratio's upper bound is `1 + eps_clip_high` (`None`: `eps_clip`;
    /// DAPO: 0.28). See [`crate::ppo::policy_loss::PolicyClip`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub eps_clip_high: Option<f64>,
    /// Dual clip `c > 1`: for a negative advantage the policy loss is at most `c·|A|`
    /// (OpenRLHF `--dual_clip`, veRL `clip_ratio_c`; `None`: off).
    #[cfg_attr(feature = "serde", serde(default))]
    pub dual_clip: Option<f64>,
    /// Clamp of `logp − logp_old` to `[−c, c]` before `exp` (veRL: 20; `None`: off).
    #[cfg_attr(feature = "serde", serde(default))]
    pub log_ratio_clamp: Option<f64>,
    /// Value clip c (ORZ `value_clip`: 0.2).
    pub value_clip: f64,
    /// Critic optimizer steps per iteration (ORZ: 12).
    pub critic_update_steps: usize,
    /// Policy optimizer steps per iteration (ORZ: 1).
    pub policy_update_steps: usize,
    /// How per-token losses become a step's loss (ORZ: [`Aggregation::OrzPackMean`]).
    pub aggregation: Aggregation,
    /// GAE with a critic (ORZ), or one of the critic-free options (GRPO, Dr. GRPO, RLOO,
    /// REINFORCE++).
    pub estimator: EstimatorChoice,
    /// The policy's optimizer (ORZ: AdamW (0.9, 0.95), lr 1e-6 after 50 warmup steps, clip 1).
    pub policy_optimizer: OptimizerConfig,
    /// The critic's optimizer (ORZ: as the policy's with lr 5e-6).
    pub critic_optimizer: OptimizerConfig,
    /// Activation checkpointing and the head's chunk length in the update steps (hardware, not
    /// recipe: the values change memory and time, not the result beyond rounding).
    #[cfg_attr(feature = "serde", serde(default))]
    pub memory: MemoryOptions,
    /// Above one rank, keep only each rank's slice of the weights between uses (ZeRO-3, FSDP
    /// `FULL_SHARD`; a training step gathers one unit at a time, generation the whole model
    /// once) rather than the whole model on every rank (ZeRO-2, `SHARD_GRAD_OP`). Optimizer
    /// state and gradients are sharded either way; the numbers are the same
    /// ([`crate::shard::ShardedOptimizer`]). Hardware, not recipe.
    #[cfg_attr(feature = "serde", serde(default = "measure_by_default"))]
    pub shard_weights: bool,
    /// Record every sampled token's log-prob at generation and log how far the training
    /// forward pass's old log-probs are from it (the rollout/train mismatch,
    /// [`super::mismatch`]); costs one log-softmax over the vocabulary per decode step.
    #[cfg_attr(feature = "serde", serde(default = "measure_by_default"))]
    pub measure_mismatch: bool,
    /// DAPO's overlong filtering: samples cut at the length limit are left out of the loss
    /// ([`super::overlong`]; off in ORZ).
    #[cfg_attr(feature = "serde", serde(default))]
    pub overlong_filter: bool,
    /// DAPO's soft overlong punishment over the last `L_cache` tokens before
    /// `stop.max_new_tokens` ([`super::overlong::soft_overlong_penalty`]; `None`: off).
    #[cfg_attr(feature = "serde", serde(default))]
    pub overlong_soft_cache: Option<usize>,
    /// KL in the reward: `−kl_coef · kl_t` on every response token, the score on the last
    /// ([`crate::ppo::kl_reward`], ORZ's and OpenRLHF's `compute_reward`; ORZ: 0, off). Above 0
    /// the trainer keeps a frozen reference model ([`super::reference`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub kl_coef: f64,
    /// The per-token KL estimator of the reward's KL (OpenRLHF `--kl_estimator`, default `k1`).
    #[cfg_attr(feature = "serde", serde(default = "k1"))]
    pub kl_estimator: KlEstimator,
    /// KL as a loss term (GRPO, veRL `use_kl_loss`): the policy loss gains `kl_loss_coef ·
    /// kl_t` per token, aggregated as the policy loss; needs the reference model. On with a
    /// coefficient of 0, it only logs the KL to the reference.
    #[cfg_attr(feature = "serde", serde(default))]
    pub use_kl_loss: bool,
    /// The KL loss's coefficient (veRL `kl_loss_coef`, default 0.001; GRPO's β).
    #[cfg_attr(feature = "serde", serde(default))]
    pub kl_loss_coef: f64,
    /// The KL loss's per-token estimator (veRL `kl_loss_type`, default `low_var_kl` = `k3`).
    #[cfg_attr(feature = "serde", serde(default = "k3"))]
    pub kl_loss_estimator: KlEstimator,
    /// ORZ's clamp of the outcome score to `[low, high]` before it is placed on the last token
    /// (ORZ/OpenRLHF `reward_clip_range`; `None`: no clamp, ORZ's 0/1 scores never need one).
    #[cfg_attr(feature = "serde", serde(default))]
    pub reward_clip_range: Option<[f64; 2]>,
    /// Entropy bonus: the policy loss minus `entropy_coef ×` the current policy's full-vocabulary
    /// entropy per response token, aggregated as the policy loss ([`crate::ppo::entropy`];
    /// ORZ: 0, off).
    #[cfg_attr(feature = "serde", serde(default))]
    pub entropy_coef: f64,
    /// DAPO's dynamic sampling: prompt groups whose samples all got the same reward are dropped
    /// and new prompt groups generated until the batch holds as many groups as prompts were
    /// given, for at most `dynamic_sampling_max_rounds` rounds ([`super::dynamic_sampling`];
    /// off in ORZ).
    #[cfg_attr(feature = "serde", serde(default))]
    pub dynamic_sampling: bool,
    /// The most generation rounds of one iteration under dynamic sampling, the first included
    /// (DAPO `max_num_gen_batches`; default 10).
    #[cfg_attr(feature = "serde", serde(default = "default_max_rounds"))]
    pub dynamic_sampling_max_rounds: usize,
}

/// The default of [`TrainConfig::kl_estimator`]: OpenRLHF's `k1`.
#[cfg(feature = "serde")]
fn k1() -> KlEstimator {
    KlEstimator::K1
}

/// The default of [`TrainConfig::kl_loss_estimator`]: veRL's `low_var_kl` (`k3`).
#[cfg(feature = "serde")]
fn k3() -> KlEstimator {
    KlEstimator::K3
}

/// The default of [`TrainConfig::dynamic_sampling_max_rounds`].
#[cfg(feature = "serde")]
fn default_max_rounds() -> usize {
    DEFAULT_DYNAMIC_SAMPLING_MAX_ROUNDS
}

/// The default cap on generation rounds under dynamic sampling (DAPO's recipe:
/// `max_num_gen_batches = 10`).
pub const DEFAULT_DYNAMIC_SAMPLING_MAX_ROUNDS: usize = 10;

/// The default of [`TrainConfig::measure_mismatch`] and [`TrainConfig::shard_weights`] (on) for
/// configs that do not name them.
#[cfg(feature = "serde")]
fn measure_by_default() -> bool {
    true
}

/// ORZ's stop strings (each kept in the completion text).
pub const ORZ_STOP_STRINGS: [&str; 4] = ["User:", "Human:", "Assistant:", "</answer>"];

/// The engine limits of the presets: 256 slots and 8 GiB of KV cache (hardware, not recipe).
pub const DEFAULT_ENGINE: EngineConfig = EngineConfig { max_batch_slots: 256, kv_budget_bytes: 8 << 30 };

impl TrainConfig {
    /// ORZ's iteration (ORZ_RECIPE.md; `playground/orz_*_ppo.py`): 64 samples per prompt,
    /// prompts of at most 2048 tokens, 8000 new and 8192 total, ORZ's sampling and stop strings,
    /// packs of 10048 tokens shuffled with seed 42, GAE(1, 1), whitening, clips 0.2, 12 critic
    /// steps and 1 policy step, pack-mean aggregation, ORZ's optimizers, [`DEFAULT_ENGINE`],
    /// checkpointed backward. No EOS ids: they are the model's
    /// ([`crate::recipe::RecipeConfig::train_config`]).
    pub fn orz() -> TrainConfig {
        TrainConfig {
            n_samples_per_prompt: 64,
            prompt_max_len: 2048,
            prompt_overflow: PromptOverflow::KeepFirst,
            sampling: SamplingParams::default(),
            stop: StopCriteria {
                eos_token_ids: Vec::new(),
                stop_strings: ORZ_STOP_STRINGS.iter().map(|s| String::from(*s)).collect(),
                max_new_tokens: 8000,
                max_total_len: 8192,
            },
            engine: DEFAULT_ENGINE,
            packing_max_len: 10048,
            pack_shuffle_seed: 42,
            gamma: ORZ_GAMMA,
            lambda: ORZ_LAMBDA,
            advantage_normalize: true,
            eps_clip: 0.2,
            eps_clip_high: None,
            dual_clip: None,
            log_ratio_clamp: None,
            value_clip: 0.2,
            critic_update_steps: 12,
            policy_update_steps: 1,
            aggregation: Aggregation::OrzPackMean,
            estimator: EstimatorChoice::Gae,
            policy_optimizer: OptimizerConfig::ORZ_POLICY,
            critic_optimizer: OptimizerConfig::ORZ_CRITIC,
            memory: MemoryOptions::for_pack_len(10048),
            shard_weights: true,
            measure_mismatch: true,
            overlong_filter: false,
            overlong_soft_cache: None,
            kl_coef: 0.0,
            kl_estimator: KlEstimator::K1,
            use_kl_loss: false,
            kl_loss_coef: 0.0,
            kl_loss_estimator: KlEstimator::K3,
            reward_clip_range: None,
            entropy_coef: 0.0,
            dynamic_sampling: false,
            dynamic_sampling_max_rounds: DEFAULT_DYNAMIC_SAMPLING_MAX_ROUNDS,
        }
    }

    /// The tiny CPU demo's iteration: ORZ's algorithm on a small budget. 8 samples per prompt,
    /// prompts of at most 40 tokens, 48 new and 88 total, packs of 256 tokens (the packed
    /// attention stays cheap on a CPU), learning rates 1e-3 after 5 warmup steps for both models
    /// (a model this small moves little at ORZ's 1e-6; the pretraining peak was 3e-3), the plain
    /// backward.
    pub fn tiny() -> TrainConfig {
        let orz = TrainConfig::orz();
        let mut tiny = TrainConfig {
            n_samples_per_prompt: 8,
            prompt_max_len: 40,
            stop: StopCriteria { max_new_tokens: 48, max_total_len: 88, ..orz.stop.clone() },
            packing_max_len: 256,
            memory: MemoryOptions::for_pack_len(256),
            measure_mismatch: true,
            overlong_filter: false,
            overlong_soft_cache: None,
            ..orz
        };
        tiny.set_learning_rates(1e-3, 1e-3, 5);
        tiny
    }

    /// Sets both optimizers to ORZ's warmup-then-constant schedule with these peaks and warmup
    /// (ORZ's recipe keys `policy_lr`, `critic_lr`, `warmup_steps`).
    pub fn set_learning_rates(&mut self, policy_lr: f64, critic_lr: f64, warmup_steps: usize) {
        self.policy_optimizer.schedule = LrSchedule::WarmupConstant { peak: policy_lr, warmup_steps };
        self.critic_optimizer.schedule = LrSchedule::WarmupConstant { peak: critic_lr, warmup_steps };
    }

    /// Checks every field, naming the bad one: counts of at least 1, `prompt_max_len <
    /// max_total_len <= packing_max_len`, γ and λ in `[0, 1]`, finite non-negative clips and
    /// coefficients (KL, KL loss, entropy), an ordered `reward_clip_range`, and the sampling,
    /// stop, engine and optimizer settings.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "train config";
        let positive = [
            ("n_samples_per_prompt", self.n_samples_per_prompt),
            ("prompt_max_len", self.prompt_max_len),
            ("policy_update_steps", self.policy_update_steps),
            ("critic_update_steps", self.critic_update_steps),
            ("engine.max_batch_slots", self.engine.max_batch_slots),
            ("dynamic_sampling_max_rounds", self.dynamic_sampling_max_rounds),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::invalid(OP, format!("`{name}` must be >= 1, got 0")));
        }
        self.sampling.validate()?;
        self.stop.validate()?;
        let max_len = self.stop.max_total_len;
        if self.prompt_max_len >= max_len {
            return Err(Error::invalid(
                OP,
                format!(
                    "`prompt_max_len` = {} leaves no room for a new token in `max_len` = {max_len}",
                    self.prompt_max_len
                ),
            ));
        }
        if self.packing_max_len < max_len {
            return Err(Error::invalid(
                OP,
                format!(
                    "`packing_max_len` = {} is below `max_len` = {max_len}: a full-length sample \
                     would fit no pack",
                    self.packing_max_len
                ),
            ));
        }
        for (name, v) in [("gamma", self.gamma), ("lambda", self.lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(OP, format!("`{name}` = {v} is not in [0, 1]")));
            }
        }
        let nonnegative = [
            ("eps_clip", self.eps_clip),
            ("value_clip", self.value_clip),
            ("kl_coef", self.kl_coef),
            ("kl_loss_coef", self.kl_loss_coef),
            ("entropy_coef", self.entropy_coef),
        ];
        for (name, v) in nonnegative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(OP, format!("`{name}` = {v} is not a finite number >= 0")));
            }
        }
        if let Some(range) = self.reward_clip_range {
            crate::ppo::kl_reward::validate_clip_range(range)?;
        }
        self.policy_clip().validate()?;
        self.policy_optimizer.validate()?;
        self.critic_optimizer.validate()?;
        self.memory.validate()
    }

    /// Whether a KL option needs the frozen reference model (`kl_coef > 0` or `use_kl_loss`).
    pub fn uses_reference(&self) -> bool {
        self.kl_coef > 0.0 || self.use_kl_loss
    }

    /// The policy loss's clip rules: `eps_clip` (and `eps_clip_high`, `dual_clip`,
    /// `log_ratio_clamp` when set).
    pub fn policy_clip(&self) -> PolicyClip {
        PolicyClip {
            eps_low: self.eps_clip,
            eps_high: self.eps_clip_high.unwrap_or(self.eps_clip),
            dual_clip: self.dual_clip,
            log_ratio_clamp: self.log_ratio_clamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Preset;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn orz_iterations_use_orz_conventions() {
        for p in [Preset::Orz0p5b, Preset::Orz1p5b, Preset::Orz7b, Preset::Orz32b] {
            let c = p.config().train_config(vec![151643]).unwrap();
            assert_eq!(c.pack_shuffle_seed, 42, "{p}");
            assert_eq!((c.aggregation, c.estimator), (Aggregation::OrzPackMean, EstimatorChoice::Gae));
            assert_eq!(c.prompt_overflow, PromptOverflow::KeepFirst);
            assert_eq!(c.policy_optimizer, OptimizerConfig::ORZ_POLICY);
            assert_eq!(c.critic_optimizer, OptimizerConfig::ORZ_CRITIC);
            assert!(c.advantage_normalize && c.sampling == SamplingParams::default());
            assert!(c.memory.activation_checkpointing, "{p}: real packs are checkpointed");
            assert_eq!(c.stop.eos_token_ids, [151643]);
            assert!(!c.uses_reference() && c.entropy_coef == 0.0 && !c.dynamic_sampling, "{p}: no KL");
            assert_eq!(c.reward_clip_range, None);
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let base = Preset::Tiny.config().train_config(vec![0]).unwrap();
        let check = |f: &dyn Fn(&mut TrainConfig), what: &str| {
            let mut c = base.clone();
            f(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(what), "{what}: {err}");
        };
        check(&|c| c.n_samples_per_prompt = 0, "n_samples_per_prompt");
        check(&|c| c.prompt_max_len = c.stop.max_total_len, "prompt_max_len");
        check(&|c| c.packing_max_len = c.stop.max_total_len - 1, "packing_max_len");
        check(&|c| c.gamma = 1.5, "gamma");
        check(&|c| c.eps_clip = f64::NAN, "eps_clip");
        check(&|c| c.dual_clip = Some(1.0), "dual_clip");
        check(&|c| c.eps_clip_high = Some(-0.1), "eps_high");
        check(&|c| c.log_ratio_clamp = Some(0.0), "log_ratio_clamp");
        check(&|c| c.policy_update_steps = 0, "policy_update_steps");
        check(&|c| c.policy_optimizer.max_grad_norm = Some(0.0), "max_grad_norm");
        check(&|c| c.memory.head_chunk_tokens = 0, "head_chunk_tokens");
        check(&|c| c.kl_coef = -0.1, "kl_coef");
        check(&|c| c.kl_loss_coef = f64::INFINITY, "kl_loss_coef");
        check(&|c| c.entropy_coef = -1e-3, "entropy_coef");
        check(&|c| c.reward_clip_range = Some([1.0, -1.0]), "reward_clip_range");
        check(&|c| c.dynamic_sampling_max_rounds = 0, "dynamic_sampling_max_rounds");
        assert!(!base.memory.activation_checkpointing, "tiny packs train without checkpointing");
    }
}
