//! GRPO group advantages (an option: no critic).
//!
//! Per prompt group: `score − mean(group)`, divided by the group's standard deviation when
//! that is positive (left undivided otherwise); each sample's advantage is then spread over its
//! response tokens ([`spread_to_tokens`]) and the same token-level whitening as PPO applies
//! ([`crate::ppo::whitening`]).
//!
//! ORZ's own GRPO flag divides by 1 because of a bug in its code (ORZ_RECIPE.md, "GRPO
//! option"), so it only centres the scores; [`GroupStd::OrzDividesByOne`] reproduces that. The
//! recipe's GRPO option uses [`GroupStd::Unbiased`], what torch's `.std()` computes in ORZ's
//! code (Bessel, ÷ (n − 1)). TRL and veRL add a small epsilon to the std (`std + 1e-4`,
//! `std + 1e-6`) instead of testing for a positive std.

use alloc::vec::Vec;
use num_traits::Float;

use crate::error::{Error, Result, check_len};
use crate::ppo::estimator::{AdvantageEstimator, Estimate, EstimatorInput};
use crate::ppo::layout::{sample_ranges, score_groups};
use crate::ppo::sum::{compensated_sum, count};

/// Which standard deviation divides a group's centred scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum GroupStd {
    /// Sample std, `sqrt(Σ(s − mean)² / (n − 1))`: torch `.std()` as ORZ's code calls it, and
    /// TRL's and veRL's GRPO. A group of one sample has no sample std and is not divided.
    Unbiased,
    /// Population std, `sqrt(Σ(s − mean)² / n)` (numpy's default `np.std`).
    Population,
    /// Divide by 1, as ORZ's GRPO flag effectively does (a bug in its code): `score − mean`.
    OrzDividesByOne,
}

/// Group-relative advantages of per-sample `scores`, cut into consecutive prompt groups of
/// `group_sizes` samples.
///
/// Errors: empty input, group sizes that are 0 or do not sum to the number of scores, a
/// non-finite score.
pub fn grpo_advantages<F: Float>(scores: &[F], group_sizes: &[usize], std: GroupStd) -> Result<Vec<F>> {
    const OP: &str = "grpo_advantages";
    let groups = score_groups(OP, scores, group_sizes)?;
    let mut out = Vec::with_capacity(scores.len());
    for range in groups {
        let group = &scores[range];
        let n = group.len();
        let mean = compensated_sum(group.iter().copied()) / count(n);
        let sq = compensated_sum(group.iter().map(|&s| (s - mean) * (s - mean)));
        let sd = match std {
            GroupStd::Unbiased if n >= 2 => (sq / count(n - 1)).sqrt(),
            GroupStd::Population => (sq / count(n)).sqrt(),
            GroupStd::Unbiased | GroupStd::OrzDividesByOne => F::zero(),
        };
        let divisor = if sd > F::zero() { sd } else { F::one() };
        out.extend(group.iter().map(|&s| (s - mean) / divisor));
    }
    Ok(out)
}

/// Repeats each sample's value over its tokens: the token-level layout of per-sample advantages.
pub fn spread_to_tokens<F: Float>(per_sample: &[F], sample_lengths: &[usize]) -> Result<Vec<F>> {
    check_len(
        "spread_to_tokens",
        ("per_sample", per_sample.len()),
        ("sample_lengths", sample_lengths.len()),
    )?;
    let total = sample_lengths.iter().try_fold(0usize, |acc, &l| acc.checked_add(l));
    let total =
        total.ok_or_else(|| Error::invalid("spread_to_tokens", "the sum of sample_lengths overflows"))?;
    sample_ranges("spread_to_tokens", sample_lengths, ("tokens", total))?;
    Ok(per_sample.iter().zip(sample_lengths).flat_map(|(&v, &len)| core::iter::repeat_n(v, len)).collect())
}

/// GRPO as an [`AdvantageEstimator`] (no critic): [`grpo_advantages`] over the prompt groups
/// ([`EstimatorInput::prompt_groups`]), spread over each sample's response tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpoEstimator {
    /// The standard deviation that divides a group's centred scores.
    pub std: GroupStd,
}

impl AdvantageEstimator for GrpoEstimator {
    fn name(&self) -> &str {
        "grpo"
    }

    fn uses_critic(&self) -> bool {
        false
    }

    fn estimate(&self, input: &EstimatorInput<'_>) -> Result<Estimate> {
        input.group_estimate(|scores, groups| grpo_advantages(scores, groups, self.std))
    }

    /// 1: OpenRLHF's cumulative returns of the KL-shaped reward ([`crate::ppo::kl_reward`]).
    fn token_reward_discount(&self) -> Option<f64> {
        Some(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_group_advantages() {
        // Group [1, 0, 0, 1]: mean 0.5, Σ(s − mean)² = 1; sample std sqrt(1/3), population 0.5.
        // Group [1, 1]: std 0 → not divided → [0, 0].
        let s = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let u = grpo_advantages(&s, &[4, 2], GroupStd::Unbiased).unwrap();
        let k = 0.5 * 3f64.sqrt();
        let expected = [k, -k, -k, k, 0.0, 0.0];
        assert!(u.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12), "{u:?}");
        let p = grpo_advantages(&s, &[4, 2], GroupStd::Population).unwrap();
        assert_eq!(p, [1.0, -1.0, -1.0, 1.0, 0.0, 0.0]);
        let o = grpo_advantages(&s, &[4, 2], GroupStd::OrzDividesByOne).unwrap();
        assert_eq!(o, [0.5, -0.5, -0.5, 0.5, 0.0, 0.0]);
        assert_eq!(grpo_advantages(&[0.7], &[1], GroupStd::Unbiased).unwrap(), [0.0]);
    }

    #[test]
    fn spreads_and_rejects_bad_inputs() {
        assert_eq!(spread_to_tokens(&[1.0, -1.0], &[2, 1]).unwrap(), [1.0, 1.0, -1.0]);
        assert!(spread_to_tokens(&[1.0], &[2, 1]).is_err());
        assert!(grpo_advantages(&[1.0, 0.0], &[3], GroupStd::Unbiased).is_err());
        assert!(grpo_advantages(&[1.0, f64::NAN], &[2], GroupStd::Unbiased).is_err());
        assert!(grpo_advantages::<f64>(&[], &[], GroupStd::Unbiased).is_err());
    }

    #[test]
    fn the_estimator_groups_by_prompt_and_spreads() {
        let input = EstimatorInput {
            scores: &[1.0, 0.0, 1.0],
            prompts: &[0, 0, 3],
            response_lengths: &[1, 2, 1],
            values: None,
        };
        let e = GrpoEstimator { std: GroupStd::Population }.estimate(&input).unwrap();
        assert_eq!(e.advantages, [1.0, -1.0, -1.0, 0.0]);
        assert_eq!(e.returns, None);
        let unordered = EstimatorInput { prompts: &[1, 0, 3], ..input };
        assert!(GrpoEstimator { std: GroupStd::Unbiased }.estimate(&unordered).is_err());
    }
}
