//! REINFORCE++: per-token discounted returns of the outcome score, no critic (an option).
//!
//! The score sits on the last response token (as for GAE, [`place_on_last_tokens`]); each
//! token's advantage is its discounted return `G_t = Σ_{k ≥ t} γ^{k − t} r_k = γ^{T − 1 − t} ·
//! score` within its sample; the trainer's whitening over every response token of the iteration
//! (ORZ's biased convention, when `advantage_normalize`) is the "batch normalisation" that
//! REINFORCE++ relies on in place of a critic. With γ = 1 every token of a sample gets its
//! score. Sources: Hu 2025, "REINFORCE++"; OpenRLHF's `reinforce` estimator
//! (`compute_reinforce_return`, then whitening). OpenRLHF also adds a per-token KL penalty to
//! the reward; orz-rs does under `kl_coef > 0` ([`crate::ppo::kl_reward`], discounted by γ).

use alloc::vec::Vec;

use crate::Result;
use crate::error::Error;
use crate::ppo::estimator::{AdvantageEstimator, Estimate, EstimatorInput};
use crate::reward::placement::place_on_last_tokens;

/// Discounted returns per token of per-token `rewards` cut into samples of `sample_lengths`
/// (`G_t = r_t + γ · G_{t + 1}`, 0 after a sample's last token). Errors: γ outside `[0, 1]`,
/// lengths that do not cover `rewards`.
pub fn discounted_returns(rewards: &[f64], sample_lengths: &[usize], gamma: f64) -> Result<Vec<f64>> {
    const OP: &str = "discounted_returns";
    if !(0.0..=1.0).contains(&gamma) {
        return Err(Error::invalid(OP, alloc::format!("gamma = {gamma} is not in [0, 1]")));
    }
    let ranges = crate::ppo::layout::sample_ranges(OP, sample_lengths, ("rewards", rewards.len()))?;
    let mut out = alloc::vec![0.0; rewards.len()];
    for range in ranges {
        let mut g = 0.0;
        for t in range.rev() {
            g = rewards[t] + gamma * g;
            out[t] = g;
        }
    }
    Ok(out)
}

/// REINFORCE++ as an [`AdvantageEstimator`]: [`discounted_returns`] of the score placed on the
/// last response token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReinforcePlusPlusEstimator {
    /// Discount γ (OpenRLHF's default: 1).
    pub gamma: f64,
}

impl AdvantageEstimator for ReinforcePlusPlusEstimator {
    fn name(&self) -> &str {
        "reinforce++"
    }

    fn uses_critic(&self) -> bool {
        false
    }

    fn estimate(&self, input: &EstimatorInput<'_>) -> Result<Estimate> {
        input.validate()?;
        let rewards = place_on_last_tokens(input.scores, input.response_lengths)?;
        Ok(Estimate {
            advantages: discounted_returns(&rewards, input.response_lengths, self.gamma)?,
            returns: None,
        })
    }

    /// γ: the discounted return of the KL-shaped reward, as OpenRLHF's `reinforce`.
    fn token_reward_discount(&self) -> Option<f64> {
        Some(self.gamma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_returns() {
        let r = discounted_returns(&[0.0, 0.0, 1.0, 0.0, 2.0], &[3, 2], 0.5).unwrap();
        assert_eq!(r, [0.25, 0.5, 1.0, 1.0, 2.0]);
        assert!(discounted_returns(&[1.0], &[1], 1.5).is_err());
        assert!(discounted_returns(&[1.0], &[2], 1.0).is_err());
    }

    #[test]
    fn gamma_one_gives_every_token_its_score() {
        let input =
            EstimatorInput { scores: &[1.0, 0.0], prompts: &[0, 1], response_lengths: &[3, 2], values: None };
        let e = ReinforcePlusPlusEstimator { gamma: 1.0 }.estimate(&input).unwrap();
        assert_eq!(e.advantages, [1.0, 1.0, 1.0, 0.0, 0.0]);
        assert!(e.returns.is_none());
    }
}
