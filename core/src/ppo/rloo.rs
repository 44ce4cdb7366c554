//! RLOO, REINFORCE with a leave-one-out baseline (an option: no critic).
//!
//! Per prompt group of `n` kept samples, sample `i`'s advantage is its score minus the mean score
//! of the *other* samples of its prompt, `s_i − (Σ_j s_j − s_i) / (n − 1)`, which equals
//! `n / (n − 1) · (s_i − mean)`; a group of one sample has no baseline and gets 0. The advantage
//! is spread over the sample's response tokens; the trainer's whitening (ORZ's biased
//! convention, when `advantage_normalize`) applies afterwards. Sources: Ahmadian et al. 2024,
//! "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback";
//! TRL's `RLOOTrainer` (which also has no std division), OpenRLHF's `rloo` estimator.

use alloc::vec::Vec;
use num_traits::Float;

use crate::error::Result;
use crate::ppo::estimator::{AdvantageEstimator, Estimate, EstimatorInput};
use crate::ppo::layout::score_groups;
use crate::ppo::sum::{compensated_sum, count};

/// Leave-one-out advantages of per-sample `scores`, cut into consecutive prompt groups of
/// `group_sizes` samples.
///
/// Errors: empty input, group sizes that are 0 or do not sum to the number of scores, a
/// non-finite score.
pub fn rloo_advantages<F: Float>(scores: &[F], group_sizes: &[usize]) -> Result<Vec<F>> {
    const OP: &str = "rloo_advantages";
    let groups = score_groups(OP, scores, group_sizes)?;
    let mut out = Vec::with_capacity(scores.len());
    for range in groups {
        let group = &scores[range];
        let n = group.len();
        if n < 2 {
            out.push(F::zero());
            continue;
        }
        let total = compensated_sum(group.iter().copied());
        out.extend(group.iter().map(|&s| s - (total - s) / count::<F>(n - 1)));
    }
    Ok(out)
}

/// RLOO as an [`AdvantageEstimator`] (no critic): [`rloo_advantages`] over the prompt groups,
/// spread over each sample's response tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RlooEstimator;

impl AdvantageEstimator for RlooEstimator {
    fn name(&self) -> &str {
        "rloo"
    }

    fn uses_critic(&self) -> bool {
        false
    }

    fn estimate(&self, input: &EstimatorInput<'_>) -> Result<Estimate> {
        input.group_estimate(rloo_advantages)
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
    fn hand_computed_leave_one_out() {
        // Group [1, 0, 0]: 1 − 0, 0 − 1/2, 0 − 1/2. Group [0.5]: alone, 0. Group [1, 1]: 0, 0.
        let a = rloo_advantages(&[1.0, 0.0, 0.0, 0.5, 1.0, 1.0], &[3, 1, 2]).unwrap();
        assert_eq!(a, [1.0, -0.5, -0.5, 0.0, 0.0, 0.0]);
        assert!(rloo_advantages::<f64>(&[], &[]).is_err());
        assert!(rloo_advantages(&[1.0, f64::NAN], &[2]).is_err());
        assert!(rloo_advantages(&[1.0, 0.0], &[3]).is_err());
    }

    #[test]
    fn the_estimator_spreads_over_tokens() {
        let input =
            EstimatorInput { scores: &[1.0, 0.0], prompts: &[4, 4], response_lengths: &[2, 1], values: None };
        let e = RlooEstimator.estimate(&input).unwrap();
        assert_eq!((e.advantages, e.returns), (alloc::vec![1.0, 1.0, -1.0], None));
    }
}
