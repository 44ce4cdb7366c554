//! Recipe steps 5 and 8, the advantage phase: the configured [`AdvantageEstimator`] over the
//! experience, then ORZ's whitening over every response token of the iteration, as
//! [`Advantages`].

use alloc::format;
use alloc::vec::Vec;

use super::experience::Experience;
use crate::ppo::estimator::{AdvantageEstimator, EstimatorInput};
use crate::ppo::kl_reward::{clamp_scores, kl_advantage_terms};
use crate::ppo::whitening::{WhiteningConvention, whiten};
use crate::{Error, Result};

/// The advantage phase's output: per sample, the advantage of each response token (whitened
/// when configured) and, for estimators with a critic, the return (never whitened).
#[derive(Debug, Clone, PartialEq)]
pub struct Advantages {
    /// Per sample, the advantage of each response token.
    pub advantages: Vec<Vec<f64>>,
    /// Per sample, the critic's target of each response token (`None` without a critic).
    pub returns: Option<Vec<Vec<f64>>>,
}

/// How the reward is shaped before the estimator's advantages are whitened: ORZ's clamp of the
/// score and the KL part of the reward ([`crate::ppo::kl_reward`]). The default shapes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RewardShaping<'a> {
    /// Clamp each score to `[low, high]` before the estimator sees it (ORZ `reward_clip_range`).
    pub clip_range: Option<[f64; 2]>,
    /// Per sample, the per-token KL to the reference, with its coefficient `kl_coef`: the
    /// reward gains `−kl_coef · kl_t` on every token.
    pub kl: Option<(&'a [Vec<f64>], f64)>,
}

/// Recipe steps 5 and 8: `estimator` over the experience's scores (and values), then, when
/// `normalize`, whitening over every response token of the iteration with ORZ's biased
/// convention ([`WhiteningConvention::OrzBiased`]). Errors: the estimator's, and an estimator
/// with a critic that gives no returns (or one without that gives some).
pub fn compute_advantages(
    experience: &Experience,
    estimator: &dyn AdvantageEstimator,
    normalize: bool,
) -> Result<Advantages> {
    compute_shaped_advantages(experience, estimator, normalize, RewardShaping::default())
}

/// [`compute_advantages`] with the scores clamped and the KL part of the reward added before
/// whitening (to the advantages and, with a critic, to the returns: [`crate::ppo::kl_reward`]).
/// Errors also: KL in the reward with an estimator that takes no per-token rewards
/// ([`AdvantageEstimator::token_reward_discount`]), KL entries that do not match the responses.
pub fn compute_shaped_advantages(
    experience: &Experience,
    estimator: &dyn AdvantageEstimator,
    normalize: bool,
    shaping: RewardShaping<'_>,
) -> Result<Advantages> {
    let lengths = experience.response_lengths();
    let scores = clamp_scores(&experience.scores(), shaping.clip_range)?;
    let prompts = experience.prompts();
    let values: Option<Vec<f64>> = experience.values.as_ref().map(|v| v.concat());
    let input = EstimatorInput {
        scores: &scores,
        prompts: &prompts,
        response_lengths: &lengths,
        values: values.as_deref(),
    };
    input.validate()?;
    let mut estimate = estimator.estimate(&input)?;
    let name = estimator.name();
    if estimate.advantages.len() != input.tokens() {
        return Err(Error::invalid(
            "advantages",
            format!(
                "`{name}` gave {} advantages for {} response tokens",
                estimate.advantages.len(),
                input.tokens()
            ),
        ));
    }
    match (estimator.uses_critic(), estimate.returns.is_some()) {
        (true, false) => {
            return Err(Error::invalid("advantages", format!("`{name}` uses a critic but gave no returns")));
        }
        (false, true) => {
            return Err(Error::invalid("advantages", format!("`{name}` uses no critic but gave returns")));
        }
        _ => {}
    }
    if let Some((kl, kl_coef)) = shaping.kl.filter(|&(_, c)| c > 0.0) {
        let discount = estimator.token_reward_discount().ok_or_else(|| {
            Error::invalid(
                "advantages",
                format!("`{name}` takes no per-token rewards: `kl_coef` > 0 (KL in the reward) needs one that does"),
            )
        })?;
        let extra = kl_advantage_terms(&kl.concat(), &lengths, kl_coef, discount)?;
        if extra.len() != estimate.advantages.len() {
            return Err(Error::invalid(
                "advantages",
                format!("{} KL entries for {} response tokens", extra.len(), estimate.advantages.len()),
            ));
        }
        for (a, e) in estimate.advantages.iter_mut().zip(&extra) {
            *a += e;
        }
        if let Some(returns) = estimate.returns.as_mut() {
            for (r, e) in returns.iter_mut().zip(&extra) {
                *r += e;
            }
        }
    }
    let advantages = if normalize {
        whiten(&estimate.advantages, WhiteningConvention::OrzBiased, true)?
    } else {
        estimate.advantages
    };
    let returns = estimate.returns.map(|r| split(&r, &lengths, name)).transpose()?;
    Ok(Advantages { advantages: split(&advantages, &lengths, name)?, returns })
}

/// Cuts a flat per-token list into one list per sample.
fn split(flat: &[f64], lengths: &[usize], estimator: &str) -> Result<Vec<Vec<f64>>> {
    if flat.len() != lengths.iter().sum::<usize>() {
        return Err(Error::invalid(
            "advantages",
            format!(
                "`{estimator}` gave {} entries for {} response tokens",
                flat.len(),
                lengths.iter().sum::<usize>()
            ),
        ));
    }
    let mut start = 0;
    Ok(lengths
        .iter()
        .map(|&len| {
            let part = flat[start..start + len].to_vec();
            start += len;
            part
        })
        .collect())
}
