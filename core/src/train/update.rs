//! Recipe steps 9 and 10: the critic's and the policy's optimizer steps over the packs.
//!
//! Each step accumulates a group of packs ([`step_groups`] over the packs in a shuffled order).
//! A pack is one micro-batch: its loss is `Σ w_t · loss_t` over its response tokens, with the
//! token weights `w_t` of the configured [`Aggregation`] for the step's packs
//! ([`Aggregation::token_weights`]); gradients of the packs are summed by the optimizer, so the
//! step minimizes exactly the aggregated loss however its packs are grouped. Under ORZ's
//! [`Aggregation::OrzPackMean`], `w_t = 1 / (packs_in_step · response_tokens_in_pack)`: each
//! pack's loss is the mean over its response tokens, scaled by `1 / packs_in_step` before
//! backward, so the step averages its packs' losses (ORZ: `masked_mean` per packed row,
//! gradient accumulation over the rows).

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use num_traits::Float;

use super::advantages::Advantages;
use super::config::TrainConfig;
use super::data_parallel::owned;
use super::experience::{Experience, Pack};
use super::grouping::step_groups;
use super::model_optimizer::ModelOptimizer;
use crate::backend::{Backend, DType};
use crate::collective::{Collective, ReduceOp};
use crate::model::{Critic, Policy, Qwen2, UnitStore};
use crate::optimizer::StepReport;
use crate::ppo::aggregation::{Aggregation, PackLayout, StepTotals};
use crate::ppo::entropy::entropy_from_logits;
use crate::ppo::policy_loss::{PolicyClip, clipped_policy_loss};
use crate::rng::Rng;
use crate::{Error, Result};

/// The update phase's output: what the critic's steps (none without a critic) and the
/// policy's steps did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Updates {
    /// The critic's steps (`None` without a critic).
    pub critic: Option<UpdateOutcome>,
    /// The policy's steps.
    pub policy: UpdateOutcome,
}

/// What the steps of one model did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateOutcome {
    /// One report per optimizer step, in order.
    pub steps: Vec<StepReport>,
    /// Each step's aggregated loss (the sum of its packs' weighted losses).
    pub losses: Vec<f64>,
    /// Response tokens whose clipped surrogate was strictly the smaller one (policy only;
    /// OpenRLHF's and TRL's clip fraction, [`crate::ppo::policy_loss::PolicyClip::binds`]).
    pub clipped_tokens: usize,
    /// Response tokens whose ratio lay outside `[1 − ε, 1 + ε]` (policy only; ORZ's
    /// `clip_ratio`, [`crate::ppo::policy_loss::PolicyClip::outside`]).
    pub ratio_outside_tokens: usize,
    /// Response tokens seen over all steps.
    pub tokens: usize,
    /// Sum over those tokens of `logp_old − logp` (policy only; ÷ `tokens` is `ppo_kl`,
    /// [`super::reference`]).
    pub old_kl_sum: f64,
    /// Sum over those tokens of the KL-loss estimate to the reference (policy, `use_kl_loss`).
    pub kl_loss_sum: Option<f64>,
    /// Sum over those tokens of the current policy's entropy (policy, `entropy_coef > 0`).
    pub entropy_sum: Option<f64>,
}

impl UpdateOutcome {
    /// The mean of the steps' losses (NaN without steps).
    pub fn mean_loss(&self) -> f64 {
        if self.losses.is_empty() {
            f64::NAN
        } else {
            self.losses.iter().sum::<f64>() / self.losses.len() as f64
        }
    }

    /// The mean over the counted tokens of a per-token sum (NaN without tokens).
    pub fn per_token(&self, sum: f64) -> f64 {
        sum / self.tokens as f64
    }
}

/// Runs `f` with graph recording on (restoring the previous state afterwards).
fn with_grad<B: Backend, R>(b: &B, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let previous = b.set_grad_enabled(true);
    let out = f();
    b.set_grad_enabled(previous);
    out
}

/// `Σ w · loss` over the pack's response positions `range` (a chunk of the pack), a scalar;
/// `loss` is `[1, range.len()]`, `weights` and the response mask cover the whole pack.
fn weighted_sum<B: Backend>(
    b: &B,
    loss: &B::Tensor,
    weights: &[f64],
    pack: &Pack,
    range: Range<usize>,
) -> Result<B::Tensor> {
    let shape = [1, range.len()];
    let w = b.tensor_f64(&weights[range.clone()], &shape, DType::F32)?;
    let mask = b.tensor_bool(&pack.response_mask[range], &shape)?;
    b.masked_sum(&b.mul(loss, &w)?, &mask, None)
}

/// `steps` optimizer steps of `model` over `packs` visited in an order shuffled by `rng`: each
/// step's packs get their token weights, and `micro_step(units, pack, weights, counted)` runs
/// each pack's backprop through the optimizer's [`UnitStore`] ([`ModelOptimizer::micro_batch`],
/// which accumulates the gradients) and returns its loss; a non-finite loss makes the optimizer
/// skip the step. Over several ranks, each step's packs are split across them (`group[j]` on
/// rank `j mod W`, [`super::data_parallel`]), a rank with fewer packs runs the step's shortest
/// pack with zero token weights and `counted` false (so that every rank runs the same
/// collectives, which the sharded weights need), and the step losses and token counts are
/// summed over the ranks.
#[allow(clippy::too_many_arguments, reason = "the steps' inputs and the collective")]
fn run_steps<B: Backend>(
    b: &B,
    model: &Qwen2<B>,
    opt: &mut ModelOptimizer<B>,
    collective: &dyn Collective<B>,
    packs: &[Pack],
    steps: usize,
    aggregation: Aggregation,
    rng: &mut Rng,
    mut micro_step: impl FnMut(&mut dyn UnitStore<B>, &Pack, &[f64], bool) -> Result<f64>,
) -> Result<UpdateOutcome> {
    let mut order: Vec<usize> = (0..packs.len()).collect();
    rng.shuffle(&mut order);
    let (rank, world) = (collective.rank(), collective.world_size());
    let mut out = UpdateOutcome::default();
    with_grad(b, || {
        for range in step_groups(packs.len(), steps) {
            let group: Vec<&Pack> = order[range].iter().map(|&i| &packs[i]).collect();
            let layouts: Vec<PackLayout<'_>> = group.iter().map(|p| p.layout()).collect();
            let weights = aggregation.token_weights::<f64>(&StepTotals::of(&layouts)?, &layouts)?;
            let mut step_loss = 0.0;
            let mine = owned(group.len(), rank, world);
            for &j in &mine {
                let (pack, w) = (group[j], &weights[j]);
                step_loss += opt.micro_batch(b, model, |units| micro_step(units, pack, w, true))?;
                out.tokens += pack.response_tokens();
            }
            if let Some(shortest) = group.iter().min_by_key(|p| p.batch.seq_len()) {
                let zeros = vec![0.0; shortest.response_mask.len()];
                for _ in mine.len()..group.len().div_ceil(world) {
                    opt.micro_batch(b, model, |units| micro_step(units, shortest, &zeros, false))?;
                }
            }
            out.steps.push(opt.step(b)?);
            out.losses.push(step_loss);
        }
        Ok(out)
    })
    .and_then(|mut out| {
        if world > 1 {
            out.losses = collective.all_reduce_host(&out.losses, ReduceOp::Sum)?;
        }
        Ok(out)
    })
}

/// The token counts and per-token sums of `out` summed over the ranks (identity for one rank).
fn sum_counts<B: Backend>(collective: &dyn Collective<B>, out: &mut UpdateOutcome) -> Result<()> {
    if collective.world_size() > 1 {
        let c = [
            out.tokens as f64,
            out.clipped_tokens as f64,
            out.ratio_outside_tokens as f64,
            out.old_kl_sum,
            out.kl_loss_sum.unwrap_or(0.0),
            out.entropy_sum.unwrap_or(0.0),
        ];
        let s = collective.all_reduce_host(&c, ReduceOp::Sum)?;
        (out.tokens, out.clipped_tokens, out.ratio_outside_tokens) =
            (s[0] as usize, s[1] as usize, s[2] as usize);
        out.old_kl_sum = s[3];
        out.kl_loss_sum = out.kl_loss_sum.map(|_| s[4]);
        out.entropy_sum = out.entropy_sum.map(|_| s[5]);
    }
    Ok(())
}

/// Recipe step 9: `critic_update_steps` critic steps; per token the clipped value loss
/// (`0.5 · max((V_clip − R)², (V − R)²)`, ORZ `ValueLoss`) against the values `V_old` and the
/// returns `R` of recipe steps 7 and 8, aggregated as configured.
pub fn critic_update<B: Backend>(
    critic: &Critic<B>,
    opt: &mut ModelOptimizer<B>,
    collective: &dyn Collective<B>,
    experience: &Experience,
    advantages: &Advantages,
    config: &TrainConfig,
    rng: &mut Rng,
) -> Result<UpdateOutcome> {
    const OP: &str = "critic update";
    let b = critic.model().backend();
    let values =
        experience.values.as_ref().ok_or_else(|| Error::invalid(OP, "the experience has no values"))?;
    let targets =
        advantages.returns.as_ref().ok_or_else(|| Error::invalid(OP, "the estimator gave no returns"))?;
    let packs = &experience.packs;
    let steps = config.critic_update_steps;
    let model = critic.model();
    let mut out =
        run_steps(b, model, opt, collective, packs, steps, config.aggregation, rng, |units, pack, w, _| {
            let v_old = pack.scatter(values)?;
            let returns = pack.scatter(targets)?;
            critic.backprop_values_with(units, &pack.batch, config.memory, &mut |v, range| {
                let shape = [1, range.len()];
                let v = b.cast(v, DType::F32)?;
                let v_old = b.tensor_f64(&v_old[range.clone()], &shape, DType::F32)?;
                let returns = b.tensor_f64(&returns[range.clone()], &shape, DType::F32)?;
                weighted_sum(b, &b.value_loss(&v, &v_old, &returns, config.value_clip)?, w, pack, range)
            })
        })?;
    sum_counts(collective, &mut out)?;
    Ok(out)
}

/// Recipe step 10: `policy_update_steps` policy steps; per token the clipped PPO loss
/// (`−min(r·A, clamp(r, 1 − ε, 1 + ε)·A)`, `r = exp(logp − logp_old)`, ORZ `PolicyLoss`)
/// against the old log-probs of recipe step 7, plus the options' terms, all aggregated as
/// configured with the same token weights (veRL's `agg_loss` of each term): `+ kl_loss_coef ·
/// kl_t` under `use_kl_loss` ([`super::reference`]) and `− entropy_coef · H_t` under
/// `entropy_coef > 0` ([`crate::ppo::entropy`], from each head chunk's logits). Also counts the
/// response tokens where the clipped surrogate is strictly the smaller (their gradient is 0)
/// and sums the per-token statistics of [`UpdateOutcome`].
pub fn policy_update<B: Backend>(
    policy: &Policy<B>,
    opt: &mut ModelOptimizer<B>,
    collective: &dyn Collective<B>,
    experience: &Experience,
    advantages: &Advantages,
    config: &TrainConfig,
    rng: &mut Rng,
) -> Result<UpdateOutcome> {
    let b = policy.model().backend();
    if config.use_kl_loss && experience.logp_ref.is_none() {
        return Err(super::reference::missing_reference());
    }
    let mut terms = PolicyTerms::new(config);
    let mut out = run_steps(
        b,
        policy.model(),
        opt,
        collective,
        &experience.packs,
        config.policy_update_steps,
        config.aggregation,
        rng,
        |units, pack, w, counted| {
            let old = pack.scatter(&experience.logp_old)?;
            let adv = pack.scatter(&advantages.advantages)?;
            let logp_ref = match (&experience.logp_ref, config.use_kl_loss) {
                (Some(r), true) => Some(pack.scatter(r)?),
                _ => None,
            };
            let (old, adv, logp_ref) = (&old, &adv, logp_ref.as_deref());
            let inputs = PackInputs { pack, weights: w, old, adv, logp_ref, counted };
            let targets = pack.batch.next_token_tensor(b)?;
            if config.entropy_coef > 0.0 {
                // The LM head by hand, so that each chunk's logits also give its entropy.
                policy.model().backprop_with(units, &pack.batch, config.memory, &mut |hidden, lm, range| {
                    let logits = b.linear(hidden, lm, None)?;
                    let t = b.narrow(&targets, 1, range.start, range.len())?;
                    let logp = b.selective_log_prob(&logits, &t)?;
                    let entropy = entropy_from_logits(b, &b.cast(&logits, DType::F32)?)?;
                    terms.chunk_loss(b, &inputs, &logp, Some(&entropy), range)
                })
            } else {
                policy.backprop_log_probs_with(
                    units,
                    &pack.batch,
                    &targets,
                    config.memory,
                    &mut |logp, range| terms.chunk_loss(b, &inputs, logp, None, range),
                )
            }
        },
    )?;
    (out.clipped_tokens, out.ratio_outside_tokens) = (terms.clipped, terms.outside);
    out.old_kl_sum = terms.old_kl_sum;
    out.kl_loss_sum = config.use_kl_loss.then_some(terms.kl_loss_sum);
    out.entropy_sum = (config.entropy_coef > 0.0).then_some(terms.entropy_sum);
    sum_counts(collective, &mut out)?;
    Ok(out)
}

/// One pack's host inputs to the policy loss, per position of the pack.
struct PackInputs<'a> {
    pack: &'a Pack,
    weights: &'a [f64],
    old: &'a [f64],
    adv: &'a [f64],
    /// The reference's log-probs, under `use_kl_loss`.
    logp_ref: Option<&'a [f64]>,
    /// Whether the pack's tokens count in the statistics (false for a rank's filler
    /// micro-batch, [`run_steps`]).
    counted: bool,
}

/// The policy loss's terms and its per-token statistics, summed over the chunks it sees.
struct PolicyTerms<'c> {
    config: &'c TrainConfig,
    clip: PolicyClip,
    clipped: usize,
    outside: usize,
    old_kl_sum: f64,
    kl_loss_sum: f64,
    entropy_sum: f64,
}

impl<'c> PolicyTerms<'c> {
    fn new(config: &'c TrainConfig) -> Self {
        let clip = config.policy_clip();
        PolicyTerms {
            config,
            clip,
            clipped: 0,
            outside: 0,
            old_kl_sum: 0.0,
            kl_loss_sum: 0.0,
            entropy_sum: 0.0,
        }
    }

    /// The weighted loss of the positions `range` of a pack from their current log-probs
    /// (`[1, len]`) and, under the entropy bonus, their entropies.
    fn chunk_loss<B: Backend>(
        &mut self,
        b: &B,
        x: &PackInputs<'_>,
        logp: &B::Tensor,
        entropy: Option<&B::Tensor>,
        range: Range<usize>,
    ) -> Result<B::Tensor> {
        let c = self.config;
        // A filler micro-batch (zero weights) adds to no statistic.
        let counts = |t: usize| x.counted && x.pack.response_mask[t];
        let mask = &x.pack.response_mask;
        let shape = [1, range.len()];
        let logp = b.cast(logp, DType::F32)?;
        let now = b.to_host_f64(&logp)?;
        for (t, &lp) in range.clone().zip(&now).filter(|&(t, _)| counts(t)) {
            let ratio = Float::exp(lp - x.old[t]);
            self.clipped += usize::from(self.clip.binds(ratio, x.adv[t]));
            self.outside += usize::from(self.clip.outside(ratio));
            self.old_kl_sum += x.old[t] - lp;
        }
        let old = b.tensor_f64(&x.old[range.clone()], &shape, DType::F32)?;
        let adv = b.tensor_f64(&x.adv[range.clone()], &shape, DType::F32)?;
        // PPO's plain clip through the backend (which may fuse it), the options through the one
        // composite that defines them.
        let mut loss = if self.clip.is_symmetric() {
            b.policy_loss(&logp, &old, &adv, self.clip.eps_low)?
        } else {
            clipped_policy_loss(b, &logp, &old, &adv, &self.clip)?
        };
        if let Some(logp_ref) = x.logp_ref {
            // Off the response positions the reference's entry is the current log-prob (KL 0), so
            // that no large value sits behind the mask.
            let r: Vec<f64> =
                range.clone().zip(&now).map(|(t, &lp)| if mask[t] { logp_ref[t] } else { lp }).collect();
            let k = c.kl_loss_estimator;
            self.kl_loss_sum += range
                .clone()
                .zip(&now)
                .zip(&r)
                .filter(|((t, _), _)| counts(*t))
                .map(|((_, &lp), &lr)| k.per_token(lp, lr))
                .sum::<f64>();
            let kl = k.tensor(b, &logp, &b.tensor_f64(&r, &shape, DType::F32)?)?;
            loss = b.add(&loss, &b.affine(&kl, c.kl_loss_coef, 0.0)?)?;
        }
        if let Some(h) = entropy {
            let h = b.reshape(&b.cast(h, DType::F32)?, &shape)?;
            let host = b.to_host_f64(&h)?;
            self.entropy_sum +=
                range.clone().zip(&host).filter(|&(t, _)| counts(t)).map(|(_, &e)| e).sum::<f64>();
            loss = b.sub(&loss, &b.affine(&h, c.entropy_coef, 0.0)?)?;
        }
        weighted_sum(b, &loss, x.weights, x.pack, range)
    }
}
