//! # orz-core
//!
//! The dependency-light, `no_std` core of orz-rs: Open-Reasoner-Zero (ORZ) in Rust. It holds
//! the PPO/GAE math, the reward algebra, the answer checker and the recipe presets, written
//! once and shared by every backend. What trains on tensors is generic over [`backend::Backend`];
//! host-side math is generic over [`num_traits::Float`]. Where a computation exists in both forms
//! (the losses, gradient clipping), the host version is an oracle with hand-written gradients
//! that the conformance suite compares backends against, and it sits in the same module as the
//! tensor version it checks.
//!
//! Features: `std` (default) or `libm` supply floating-point functions (one of them is
//! required); `serde` derives (de)serialization for configs.
//!
//! ## Numeric conventions
//!
//! Every convention below is named in code (a type, a constant or a function: the code that
//! trains, and its host oracle where there is one) and follows the ORZ code (Open-Reasoner-Zero,
//! commit 3fdd9a0: `orz/ppo/`, `playground/orz_*_ppo.py`). Where the paper and the code
//! disagree, the code wins. Where other RL libraries differ, it says so.
//!
//! | convention | orz-rs (ORZ) | where peers differ |
//! |---|---|---|
//! | GAE terminal value | `V` after a sample's last response token is 0, also for truncated (`length`) completions; nothing crosses a sample boundary in a pack ([`ppo::gae::GaeEstimator`], the trainer's default [`ppo::estimator::AdvantageEstimator`]) | some libraries bootstrap truncated episodes from the next value |
//! | GAE with γ = λ = 1 | `A_t = score − V_t`, `return_t = score` | — |
//! | advantage whitening | over all response tokens of the iteration: mean, **biased** variance (÷ n), `(A − mean) / sqrt(max(var, 1e-8))`; returns are not whitened ([`ppo::whitening::WhiteningConvention::OrzBiased`]) | TRL/veRL `masked_whiten` use the Bessel-corrected variance (÷ (n − 1)) and `rsqrt(var + 1e-8)` |
//! | advantage dtype | f32 (ORZ casts to bf16: a deliberate deviation) | — |
//! | policy loss | `−min(r·A, clamp(r, 1−ε, 1+ε)·A)`, `r = exp(logp − logp_old)`, ε = 0.2; no dual clip, no log-ratio clamp, no KL, no entropy (options: KL in the reward or as a loss, [`train::reference`]; entropy bonus, [`ppo::entropy`]); the token count where the clip binds (`clamp(r)·A < r·A`) is reported (trains: [`ppo::policy_loss::policy_loss`]; oracle: [`ppo::policy_loss::policy_loss_token`]; [`ppo::policy_loss::clip_binds`]) | OpenRLHF/veRL offer a dual clip |
//! | value loss | `0.5 · max((V_clip − R)², (V − R)²)`, `V_clip = V_old + clamp(V − V_old, −c, c)`, c = 0.2 (trains: [`ppo::value_loss::value_loss`]; oracle: [`ppo::value_loss::value_loss_token`]) | some use the unclipped MSE |
//! | masking | masked positions never contribute to a sum, a mean, a variance or a gradient, and a NaN there never leaks | — |
//! | loss aggregation | ORZ: mean over the response tokens of each pack, averaged over the packs of one optimizer step ([`ppo::aggregation::Aggregation::OrzPackMean`]); options: global token mean, sequence-mean-token-mean | OpenRLHF: per-micro-batch mean; DAPO/veRL: token mean |
//! | GRPO (option) | per prompt group `score − mean`, ÷ the group's std when it is > 0 ([`ppo::grpo::GrpoEstimator`]) | ORZ's own GRPO flag divides by 1 (a bug in its code) |
//! | Dr. GRPO (option) | `score − mean` per prompt group, no std division (`train.estimator = "DrGrpo"`, [`ppo::grpo::GrpoEstimator`]); with [`ppo::aggregation::Aggregation::SeqMeanTokenSumNorm`] (token sums ÷ a constant, no length normalisation) | veRL `seq-mean-token-sum-norm` |
//! | RLOO (option) | `s_i − mean_{j≠i} s_j` per prompt group, 0 for a group of one, spread over the tokens, then the trainer's whitening ([`ppo::rloo`]) | TRL `RLOOTrainer`, OpenRLHF `rloo` |
//! | REINFORCE++ (option) | per-token discounted return `γ^{T−1−t} · score`, then the trainer's whitening ([`ppo::reinforce`]); with `kl_coef > 0` the KL-shaped reward's discounted return, as OpenRLHF's `reinforce` | — |
//! | KL in the reward (option) | `−kl_coef · kl_t` on every response token, the score (clamped to `reward_clip_range`) on the last: ORZ's/OpenRLHF's `compute_reward`; added to each estimator's advantages by linearity (GAE: discount γλ, also to the returns; REINFORCE++: γ; group estimators: 1, OpenRLHF's cumulative returns) ([`ppo::kl_reward`]) | veRL `apply_kl_penalty` likewise per token |
//! | KL as a loss (option) | `+ kl_loss_coef · kl(logp, logp_ref)_t` per token with the current log-prob, aggregated with the policy loss's token weights ([`train::reference`]) | veRL `use_kl_loss` (its `agg_loss`), GRPO's β term |
//! | entropy bonus (option) | `− entropy_coef · H_t`, `H` the full-vocabulary entropy of the current policy per response token, from each head chunk's logits, aggregated as the policy loss ([`ppo::entropy`]) | veRL `entropy_coeff`, OpenRLHF `--entropy_loss_coef` |
//! | dynamic sampling (option) | drop prompt groups with one score for all samples, generate more groups until the batch is full, at most `dynamic_sampling_max_rounds` rounds; at the cap train on what was kept ([`train::dynamic_sampling`]) | DAPO raises an error at the cap |
//! | learning rate | linear warmup from 0 over 50 steps (multiplier k/50 at step k, counting from 0), then constant ([`schedule`]) | PyTorch/HF warmup usually starts at step 1 |
//! | gradient clipping | global L2 norm over all parameters, scale by `max_norm / (norm + 1e-6)` when `norm > max_norm` (PyTorch `clip_grad_norm_`), the norm in f32; a non-finite norm skips the step (trains: [`optimizer::clip::clip_grad_norm`]; oracle: [`optimizer::clip::clip_grad_norm_host`]; one factor: [`optimizer::clip::clip_factor`]) | tch's `backward_step_clip` clamps values; candle has none |
//! | optimizer | AdamW as PyTorch's `torch.optim.AdamW`: betas (0.9, 0.95), eps 1e-8 added to the bias-corrected `sqrt(v)`, weight decay 0; f32 moments, f32 master weights for bf16/f16 parameters; a non-finite loss or gradient norm skips the step without advancing the schedule (trains: [`optimizer::adamw::adamw_update`], driven by [`optimizer::Optimizer`]) | PyTorch's `AdamW` keeps the moments in the parameter's dtype; the skip is DeepSpeed's for an overflowing step |
//! | data-parallel step | W ranks: gradients summed in f32 by a reduce-scatter of flat per-layer units padded to a multiple of W, the clip's sum of squares all-reduced (per-unit f32 sums added in f64), AdamW on each rank's slice; each step's packs split `j mod W` with the whole step's token weights, so the aggregation is the single-process one ([`shard`], [`train::data_parallel`]) | DeepSpeed ZeRO / FSDP full-shard (veRL reduces in f32 as well) |
//! | rollout/train mismatch | the engine records each sampled token's log-prob under the sampling temperature's softmax (before top-k/top-p); per iteration the max and mean `|logp_sample − logp_old|` over response tokens and the k3 KL estimate ([`train::mismatch`]); exactly 0 on the reference | veRL/OpenRLHF log a rollout-vs-train log-prob gap between vLLM and the trainer |
//! | one iteration | prompts cut to their first `prompt_max_len` tokens (HF `truncation_side = "right"`); samples shuffled with the fixed seed 42 each iteration, packed greedily ([`model::packing::greedy_packs`]); each pack is one micro-batch; critic steps of `max(1, N / 12)` packs, leftovers unused; one policy step over all packs ([`train`]) | — |
//! | memory-lean backward | one pack's loss is the sum of its chunks' losses; each stage's parameter gradients are summed in f32; activation checkpointing recomputes a layer from its saved input with the forward's own kernels ([`model::backprop`]); on from 1024-token packs ([`model::MemoryOptions::for_pack_len`]) | DeepSpeed and FSDP also checkpoint per decoder layer; veRL offers a fused head + log-prob kernel that avoids the full logits |
//! | reward | 1.0 iff the completion stopped (`stop`, not `length`) and its answer is equivalent to the reference, else 0.0; placed on the last response token ([`reward`]) | no format reward, no length penalty in ORZ |
//!
//! ## Options and what other systems call them
//!
//! Every option is a field of [`train::TrainConfig`] (`--set train.FIELD=...` in the `orz`
//! program, `[train]` in a TOML file). The names elsewhere are those of ORZ's PPO config,
//! OpenRLHF's `train_ppo_ray` flags, veRL's trainer config and TRL's `GRPOConfig`/`PPOConfig`
//! as of their 2025 releases (check your version: such names move); "—" where the system has
//! no such knob or uses a fixed rule.
//!
//! | orz-rs (`train.…`) | ORZ | OpenRLHF | veRL | TRL |
//! |---|---|---|---|---|
//! | `estimator` (`Gae`, `Grpo`, `DrGrpo`, `Rloo`, `ReinforcePlusPlus`) | GAE; `use_grpo` | `--advantage_estimator` (`gae`, `group_norm`, `dr_grpo`, `rloo`, `reinforce`) | `algorithm.adv_estimator` (`gae`, `grpo`, `rloo`, `reinforce_plus_plus`; Dr. GRPO: `grpo` with `norm_adv_by_std_in_grpo=False`) | `GRPOConfig` (`scale_rewards`; `loss_type="dr_grpo"`), `RLOOTrainer` |
//! | `gamma`, `lambda` | `gamma`, `lambd` | `--gamma`, `--lambd` | `algorithm.gamma`, `algorithm.lam` | `PPOConfig.gamma`, `lam` |
//! | `eps_clip` | `eps_clip` | `--eps_clip` | `actor_rollout_ref.actor.clip_ratio` | `epsilon` (GRPO), `cliprange` (PPO) |
//! | `eps_clip_high` (DAPO's clip-higher) | — | `--eps_clip_low_high` (its second value) | `actor_rollout_ref.actor.clip_ratio_high` | `epsilon_high` |
//! | `dual_clip` | — | `--dual_clip` | `actor_rollout_ref.actor.clip_ratio_c` | — |
//! | `log_ratio_clamp` | — | — | fixed: ±20 | — |
//! | `value_clip` | `value_clip` | `--value_clip` | `critic.cliprange_value` | `cliprange_value` |
//! | `advantage_normalize` | `advantage_normalize` | — | — | `PPOConfig.whiten_rewards` (rewards, not advantages) |
//! | `aggregation` | fixed: pack mean | fixed: micro-batch mean | `actor.loss_agg_mode` | `loss_type` |
//! | `n_samples_per_prompt` | `n_samples_per_prompt` | `--n_samples_per_prompt` | `actor_rollout_ref.rollout.n` | `num_generations` |
//! | `sampling` (temperature, top-p, top-k) | `temperature`, `top_p`, `top_k` | `--temperature`, `--top_p` | `actor_rollout_ref.rollout.temperature`, `top_p`, `top_k` | `temperature`, `top_p`, `top_k` |
//! | `prompt_max_len`, `stop.max_new_tokens` | `prompt_max_len`, `generate_max_len` | `--prompt_max_len`, `--generate_max_len` | `data.max_prompt_length`, `data.max_response_length` | `max_prompt_length`, `max_completion_length` |
//! | `packing_max_len` | `packing_max_len` | `--packing_samples` | `actor.ppo_max_token_len_per_gpu` (with `use_dynamic_bsz`) | `padding_free` |
//! | `policy_optimizer`/`critic_optimizer` schedule (peak, warmup) | `actor_learning_rate`, `critic_learning_rate`, `num_warmup_steps` | `--actor_learning_rate`, `--critic_learning_rate`, `--lr_warmup_ratio` | `actor.optim.lr`, `critic.optim.lr`, `optim.lr_warmup_steps` | `learning_rate`, `warmup_steps` |
//! | `*_optimizer.max_grad_norm` | `max_norm` | `--max_norm` | `actor.grad_clip` | `max_grad_norm` |
//! | `*_optimizer.adamw` | `adam_betas`, `l2` | `--adam_betas`, `--l2` | `optim.betas`, `optim.weight_decay` | `adam_beta1`, `adam_beta2`, `adam_epsilon`, `weight_decay` |
//! | `critic_update_steps`, `policy_update_steps` | `critic_update_steps`, `policy_update_steps` | `--max_epochs` with the batch sizes | `ppo_epochs`, `ppo_mini_batch_size` | `num_iterations`, `gradient_accumulation_steps` |
//! | `memory.activation_checkpointing` | `gradient_checkpointing` | `--gradient_checkpointing` | `actor_rollout_ref.model.enable_gradient_checkpointing` | `gradient_checkpointing` |
//! | `overlong_filter` (DAPO) | — | not checked | not checked | `mask_truncated_completions` |
//! | `overlong_soft_cache` (DAPO's `L_cache`) | — | not checked | `reward_model.overlong_buffer.len` (DAPO recipe) | — |
//! | `measure_mismatch` | — | — | — | — |
//! | `kl_coef` (KL in the reward, [`ppo::kl_reward`]) | `init_kl_coef` (0 in ORZ's scripts) | `--init_kl_coef` | `algorithm.kl_ctrl.kl_coef` with `algorithm.use_kl_in_reward` | `PPOConfig.kl_coef` |
//! | `kl_estimator` (`k1`, `k2`, `k3`; reward) | fixed: k1 | `--kl_estimator` | `algorithm.kl_penalty` (`kl`, `mse`, `low_var_kl`) | `PPOConfig.kl_estimator` (`k1`, `k3`) |
//! | `reward_clip_range` | `reward_clip_range` | `compute_reward`'s `reward_clip_range` argument | — | — |
//! | `use_kl_loss`, `kl_loss_coef` (KL as a loss) | — | `--use_kl_loss`, `--init_kl_coef` | `actor_rollout_ref.actor.use_kl_loss`, `kl_loss_coef` | `GRPOConfig.beta` |
//! | `kl_loss_estimator` (`k1`, `k2`, `k3`; loss) | — | `--kl_estimator` | `actor_rollout_ref.actor.kl_loss_type` | fixed: k3 |
//! | `entropy_coef` ([`ppo::entropy`]) | — (fixed 0) | `--entropy_loss_coef` | `actor_rollout_ref.actor.entropy_coeff` | — |
//! | `dynamic_sampling`, `dynamic_sampling_max_rounds` (DAPO, [`train::dynamic_sampling`]) | — | `--dynamic_filtering` (with a reward range) | `algorithm.filter_groups.enable`, `max_num_gen_batches` (DAPO recipe) | — |
//!
//! Logged (metrics.jsonl, [`train::IterationReport`]): `kl`, the mean per-token KL of the sampling
//! policy to the frozen reference (OpenRLHF's and ORZ's `kl`); `kl_loss` (veRL's
//! `actor/kl_loss`); `ppo_kl`, the mean `logp_old − logp` of the policy steps, the KL of the
//! updated policy from the sampling one (veRL's `actor/ppo_kl`), not the KL to the reference
//! ([`train::reference`]); `entropy` under the bonus; dynamic sampling's rounds and dropped groups.
//!
//! ## Modules
//!
//! - [`backend`]: the `Backend` trait (tensor primitives and autodiff) with its provided
//!   composites (softmax, RMSNorm, rotary embedding, attention; the PPO losses, AdamW and
//!   clipping, whose default bodies live in [`ppo`] and [`optimizer`]).
//! - [`ppo`]: the advantage-estimator extension point ([`ppo::estimator`]) with GAE and GRPO,
//!   whitening, aggregation; the policy and value losses (the tensor version
//!   that trains and the host oracle with its gradients, side by side).
//! - [`schedule`]: learning-rate schedules.
//! - [`optimizer`]: the training optimizer (AdamW with a schedule, gradient accumulation,
//!   clipping, f32 master weights, a NaN/Inf guard that skips a step) with its AdamW kernel
//!   ([`optimizer::adamw`]) and gradient clipping ([`optimizer::clip`]).
//! - [`reward`]: the reward abstraction, combinators, ORZ math, Countdown and format rewards.
//! - [`checker`]: answer extraction and equivalence (ORZ's string normalization, then a bounded
//!   LaTeX parser and evaluator).
//! - [`model`]: the Qwen2 model (configuration, Hugging Face parameter names, policy, critic),
//!   and its memory-lean backward ([`model::backprop`]: activation checkpointing, chunked heads).
//! - [`generation`]: the generation engine (sampling, stop handling, batched KV-cache decoding).
//! - [`collective`]: the collective operations data-parallel ranks exchange data with
//!   ([`collective::Collective`], [`collective::Single`] for one process) and the launcher's
//!   variables ([`collective::LaunchEnv`]).
//! - [`shard`]: the optimizer state sharded over the ranks ([`shard::ShardedOptimizer`]).
//! - [`rng`]: the seeded random generator every draw comes from.
//! - [`recipe`]: the ORZ recipe presets.
//! - [`train`]: the ORZ trainer, generic over the backend: one iteration as four typed phases
//!   (rollout, experience, advantages, update), each a public method, with its report and its
//!   configuration ([`train::TrainConfig`], the iteration's knobs, held once by each recipe).
//! - [`rational`]: exact rationals with checked arithmetic.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(not(any(feature = "std", feature = "libm")))]
compile_error!(
    "orz-core needs floating-point functions (exp, ln, sqrt): enable the `std` feature (the default) \
     or, on targets without std, build with `--no-default-features --features libm`"
);

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod backend;
pub mod checker;
pub mod collective;
pub mod error;
pub mod generation;
pub mod model;
pub mod optimizer;
pub mod ppo;
pub mod rational;
pub mod recipe;
pub mod reward;
pub mod rng;
pub mod schedule;
pub mod shard;
pub mod train;

pub use error::{Error, Result};
