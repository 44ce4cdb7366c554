//! Generalized advantage estimation (GAE) per sample over packed layouts.
//!
//! ORZ convention (Open-Reasoner-Zero `orz/ppo`, GAE with γ = λ = 1 in every preset): iterate
//! each sample from its last response token backwards with
//! `delta_t = r_t + γ·V_{t+1} − V_t`, `A_t = delta_t + γλ·A_{t+1}`, `return_t = A_t + V_t`,
//! where `V` and `A` after a sample's last token are 0 ([`TerminalValue::Zero`]), also for
//! truncated (`length`) completions. Nothing crosses a sample boundary inside a pack.
//! With γ = λ = 1 this gives `A_t = score − V_t` and `return_t = score`.

use alloc::vec;
use alloc::vec::Vec;
use num_traits::Float;

use crate::error::{Result, check_len};
use crate::ppo::estimator::{AdvantageEstimator, Estimate, EstimatorInput};
use crate::ppo::layout::{check_finite_valid, check_mask, check_param, is_valid, sample_ranges};
use crate::reward::placement::place_on_last_tokens;

/// ORZ's discount γ (every ORZ preset): 1.
pub const ORZ_GAMMA: f64 = 1.0;
/// ORZ's GAE λ (every ORZ preset): 1.
pub const ORZ_LAMBDA: f64 = 1.0;

/// The value assumed after a sample's last token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalValue {
    /// `V = 0` after the last token, for finished and truncated samples alike (ORZ, OpenRLHF,
    /// TRL, veRL). Libraries that bootstrap truncated episodes from a next value differ; orz-rs
    /// offers only this convention.
    Zero,
}

/// Advantages and returns, one per token of the input layout (0 at masked positions).
#[derive(Debug, Clone, PartialEq)]
pub struct Gae<F> {
    /// `A_t` per token.
    pub advantages: Vec<F>,
    /// `return_t = A_t + V_t` per token (the critic's regression target).
    pub returns: Vec<F>,
}

/// GAE over a packed layout: `rewards` and `values` hold one entry per response token, all
/// samples back to back, cut by `sample_lengths`.
///
/// Errors: empty or mismatched inputs, a zero sample length, γ or λ outside `[0, 1]`, a
/// non-finite reward or value.
pub fn gae<F: Float>(
    rewards: &[F],
    values: &[F],
    sample_lengths: &[usize],
    gamma: F,
    lambda: F,
) -> Result<Gae<F>> {
    gae_impl(rewards, values, None, sample_lengths, gamma, lambda)
}

/// GAE over a packed layout with a validity mask: masked tokens are skipped as if absent (the
/// recursion runs from one valid token to the next valid token of the same sample, as veRL's
/// `compute_gae_advantage_return` carries the next value and the running advantage across
/// masked positions), and get advantage and return 0. A NaN at a masked position never leaks.
pub fn gae_masked<F: Float>(
    rewards: &[F],
    values: &[F],
    mask: &[bool],
    sample_lengths: &[usize],
    gamma: F,
    lambda: F,
) -> Result<Gae<F>> {
    gae_impl(rewards, values, Some(mask), sample_lengths, gamma, lambda)
}

fn gae_impl<F: Float>(
    rewards: &[F],
    values: &[F],
    mask: Option<&[bool]>,
    sample_lengths: &[usize],
    gamma: F,
    lambda: F,
) -> Result<Gae<F>> {
    const OP: &str = "gae";
    let n = rewards.len();
    check_len(OP, ("rewards", n), ("values", values.len()))?;
    check_mask(OP, mask, ("rewards", n))?;
    let ranges = sample_ranges(OP, sample_lengths, ("rewards", n))?;
    check_param(OP, "gamma", gamma, 0.0, 1.0)?;
    check_param(OP, "lambda", lambda, 0.0, 1.0)?;
    check_finite_valid(OP, "rewards", rewards, mask)?;
    check_finite_valid(OP, "values", values, mask)?;

    let mut advantages = vec![F::zero(); n];
    let mut returns = vec![F::zero(); n];
    let decay = gamma * lambda;
    for range in ranges {
        // TerminalValue::Zero: nothing is bootstrapped past the sample's last token.
        let mut next_value = F::zero();
        let mut next_advantage = F::zero();
        for t in range.rev() {
            if !is_valid(mask, t) {
                continue;
            }
            let delta = rewards[t] + gamma * next_value - values[t];
            next_advantage = delta + decay * next_advantage;
            next_value = values[t];
            advantages[t] = next_advantage;
            returns[t] = next_advantage + values[t];
        }
    }
    Ok(Gae { advantages, returns })
}

/// GAE as an [`AdvantageEstimator`] (ORZ's, with a critic): each sample's score placed on its
/// last response token ([`place_on_last_tokens`], recipe step 5), then [`gae`] per sample with
/// the critic's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaeEstimator {
    /// Discount γ (ORZ: [`ORZ_GAMMA`]).
    pub gamma: f64,
    /// λ (ORZ: [`ORZ_LAMBDA`]).
    pub lambda: f64,
}

impl AdvantageEstimator for GaeEstimator {
    fn name(&self) -> &str {
        "gae"
    }

    fn uses_critic(&self) -> bool {
        true
    }

    fn estimate(&self, input: &EstimatorInput<'_>) -> Result<Estimate> {
        input.validate()?;
        let values = input.require_values(self.name())?;
        let rewards = place_on_last_tokens(input.scores, input.response_lengths)?;
        let g = gae(&rewards, values, input.response_lengths, self.gamma, self.lambda)?;
        Ok(Estimate { advantages: g.advantages, returns: Some(g.returns) })
    }

    /// γλ: GAE is linear in the rewards ([`crate::ppo::kl_reward`]).
    fn token_reward_discount(&self) -> Option<f64> {
        Some(self.gamma * self.lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn gamma_lambda_one_gives_score_minus_value() {
        // Hand-computed (ORZ_RECIPE.md "Math": A_t = score − V_t, return_t = score).
        let g = gae(&[0.0, 0.0, 0.0, 1.0], &[0.2, 0.5, 0.4, 0.9], &[4], 1.0, 1.0).unwrap();
        assert!(close(&g.advantages, &[0.8, 0.5, 0.6, 0.1], 1e-12));
        assert!(close(&g.returns, &[1.0; 4], 1e-12));
    }

    #[test]
    fn gamma_099_lambda_095_golden() {
        // Hand-computed backwards with γλ = 0.9405: δ = [0.295, -0.104, 0.491, 0.1];
        // A3 = 0.1, A2 = 0.491 + 0.9405·0.1 = 0.58505, A1 = -0.104 + 0.9405·A2 = 0.446239...,
        // A0 = 0.295 + 0.9405·A1 = 0.714688... (the brief's golden values, rounded to 6 digits).
        let g = gae(&[0.0, 0.0, 0.0, 1.0], &[0.2, 0.5, 0.4, 0.9], &[4], 0.99, 0.95).unwrap();
        assert!(close(&g.advantages, &[0.714688, 0.44624, 0.58505, 0.1], 1e-5), "{:?}", g.advantages);
        let values = [0.2, 0.5, 0.4, 0.9];
        let expected_returns: Vec<f64> = g.advantages.iter().zip(values).map(|(a, v)| a + v).collect();
        assert!(close(&g.returns, &expected_returns, 1e-12));
    }

    #[test]
    fn nothing_crosses_a_sample_boundary() {
        let g = gae(&[0.0, 1.0, 0.0, 0.0], &[0.5, 0.5, 0.3, 0.7], &[2, 2], 1.0, 1.0).unwrap();
        assert!(close(&g.advantages, &[0.5, 0.5, -0.3, -0.7], 1e-12));
    }

    #[test]
    fn masked_positions_are_skipped_and_nan_does_not_leak() {
        let r = [0.0, f64::NAN, 0.0, 1.0];
        let v = [0.2, f64::NAN, 0.4, 0.9];
        let g = gae_masked(&r, &v, &[true, false, true, true], &[4], 0.99, 0.95).unwrap();
        let dense = gae(&[0.0, 0.0, 1.0], &[0.2, 0.4, 0.9], &[3], 0.99, 0.95).unwrap();
        let a = &dense.advantages;
        assert!(close(&g.advantages, &[a[0], 0.0, a[1], a[2]], 1e-12));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let e = gae(&[0.0; 3], &[0.0; 2], &[3], 1.0, 1.0).unwrap_err();
        assert!(matches!(e, Error::LengthMismatch { op: "gae", .. }));
        assert!(matches!(gae::<f64>(&[], &[], &[], 1.0, 1.0), Err(Error::Empty { .. })));
        assert!(gae(&[0.0; 3], &[0.0; 3], &[2], 1.0, 1.0).is_err());
        assert!(gae(&[0.0; 3], &[0.0; 3], &[3, 0], 1.0, 1.0).is_err());
        assert!(gae(&[0.0; 3], &[0.0; 3], &[3], 1.5, 1.0).is_err());
        let e = gae(&[0.0, f64::INFINITY], &[0.0; 2], &[2], 1.0, 1.0).unwrap_err();
        assert_eq!(e, Error::NonFinite { op: "gae", what: "rewards", index: 1 });
    }

    #[test]
    fn the_estimator_places_scores_on_last_tokens_and_needs_values() {
        let values = [0.25, 0.5, 0.75];
        let input = EstimatorInput {
            scores: &[1.0, 0.0],
            prompts: &[0, 0],
            response_lengths: &[2, 1],
            values: Some(&values),
        };
        let e = GaeEstimator { gamma: ORZ_GAMMA, lambda: ORZ_LAMBDA }.estimate(&input).unwrap();
        // γ = λ = 1: A_t = score − V_t, return_t = score.
        assert!(close(&e.advantages, &[0.75, 0.5, -0.75], 1e-12), "{:?}", e.advantages);
        assert_eq!(e.returns, Some(vec![1.0, 1.0, 0.0]));
        let without = EstimatorInput { values: None, ..input };
        assert!(GaeEstimator { gamma: 1.0, lambda: 1.0 }.estimate(&without).is_err());
    }
}
