//! The advantage-estimator extension point (recipe step 8): an [`AdvantageEstimator`] turns one
//! iteration's scores (and, with a critic, its values) into per-token advantages and returns.
//!
//! The trainer calls [`AdvantageEstimator::estimate`] on the kept samples of an iteration and
//! then, when configured, whitens the advantages over every response token of the iteration
//! ([`crate::ppo::whitening`]); the estimator does not whiten. Two members ship with core:
//! [`GaeEstimator`](crate::ppo::gae::GaeEstimator) (ORZ: GAE with γ = λ = 1, with a critic) and
//! [`GrpoEstimator`](crate::ppo::grpo::GrpoEstimator) (group-relative advantages, no critic).
//! A new estimator is a type implementing the trait, handed to
//! [`Trainer::with_estimator`](crate::train::Trainer::with_estimator); no trainer code changes.
//!
//! ```
//! use orz_core::ppo::estimator::{AdvantageEstimator, Estimate, EstimatorInput};
//!
//! /// REINFORCE with the batch-mean score as baseline: every token of a sample gets
//! /// `score − mean(scores)` (no critic).
//! #[derive(Debug)]
//! struct MeanBaseline;
//!
//! impl AdvantageEstimator for MeanBaseline {
//!     fn name(&self) -> &str { "mean_baseline" }
//!     fn uses_critic(&self) -> bool { false }
//!     fn estimate(&self, input: &EstimatorInput<'_>) -> orz_core::Result<Estimate> {
//!         let mean = input.scores.iter().sum::<f64>() / input.scores.len() as f64;
//!         let per_sample: Vec<f64> = input.scores.iter().map(|s| s - mean).collect();
//!         Estimate::spread(&per_sample, input.response_lengths)
//!     }
//! }
//!
//! # fn main() -> orz_core::Result<()> {
//! let input = EstimatorInput {
//!     scores: &[1.0, 0.0],
//!     prompts: &[0, 0],
//!     response_lengths: &[2, 1],
//!     values: None,
//! };
//! let estimate = MeanBaseline.estimate(&input)?;
//! assert_eq!(estimate.advantages, vec![0.5, 0.5, -0.5]);
//! assert!(estimate.returns.is_none());
//! # Ok(())
//! # }
//! ```

use alloc::format;
use alloc::vec::Vec;
use core::fmt::Debug;

use crate::ppo::grpo::spread_to_tokens;
use crate::{Error, Result};

/// What an estimator sees of one iteration's kept samples, in (prompt, sample) order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimatorInput<'a> {
    /// Each sample's score (the reward).
    pub scores: &'a [f64],
    /// Each sample's prompt index in the iteration (non-decreasing: a prompt's samples are
    /// consecutive).
    pub prompts: &'a [usize],
    /// Each sample's response length in tokens.
    pub response_lengths: &'a [usize],
    /// The critic's value of every response token, all samples back to back (`None` without a
    /// critic).
    pub values: Option<&'a [f64]>,
}

impl EstimatorInput<'_> {
    /// Response tokens over all samples.
    pub fn tokens(&self) -> usize {
        self.response_lengths.iter().sum()
    }

    /// The sizes of the prompt groups: runs of consecutive samples of one prompt (a prompt whose
    /// samples were all dropped has no group). Errors when the samples are not in prompt order.
    pub fn prompt_groups(&self) -> Result<Vec<usize>> {
        if let Some(k) = self.prompts.windows(2).position(|w| w[0] > w[1]) {
            return Err(Error::invalid(
                "advantage estimator",
                format!(
                    "samples are not in prompt order: sample {} (prompt {}) follows prompt {}",
                    k + 1,
                    self.prompts[k + 1],
                    self.prompts[k]
                ),
            ));
        }
        let mut groups: Vec<usize> = Vec::new();
        for (k, p) in self.prompts.iter().enumerate() {
            match groups.last_mut() {
                Some(n) if k > 0 && self.prompts[k - 1] == *p => *n += 1,
                _ => groups.push(1),
            }
        }
        Ok(groups)
    }

    /// The estimate of a group-relative, critic-free estimator: `per_group(scores, group_sizes)`
    /// gives one advantage per sample ([`EstimatorInput::prompt_groups`]), spread over its
    /// response tokens ([`Estimate::spread`]). Validates the input first.
    pub fn group_estimate(
        &self,
        per_group: impl FnOnce(&[f64], &[usize]) -> Result<Vec<f64>>,
    ) -> Result<Estimate> {
        self.validate()?;
        let groups = self.prompt_groups()?;
        Estimate::spread(&per_group(self.scores, &groups)?, self.response_lengths)
    }

    /// The critic's values, or an error naming `estimator` when there is no critic.
    pub fn require_values(&self, estimator: &str) -> Result<&[f64]> {
        self.values.ok_or_else(|| {
            Error::invalid(
                "advantage estimator",
                format!("`{estimator}` needs the critic's values, none were given"),
            )
        })
    }

    /// Checks that the per-sample fields agree in length (the trainer's inputs always do).
    pub fn validate(&self) -> Result<()> {
        let n = self.scores.len();
        if self.prompts.len() != n || self.response_lengths.len() != n {
            return Err(Error::invalid(
                "advantage estimator",
                format!(
                    "{n} scores, {} prompt indices and {} response lengths: one each per sample",
                    self.prompts.len(),
                    self.response_lengths.len()
                ),
            ));
        }
        if let Some(v) = self.values
            && v.len() != self.tokens()
        {
            return Err(Error::invalid(
                "advantage estimator",
                format!("{} values for {} response tokens", v.len(), self.tokens()),
            ));
        }
        Ok(())
    }
}

/// An estimator's output: one advantage per response token (all samples back to back, before
/// whitening) and, for estimators with a critic, the critic's regression targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Advantage of every response token.
    pub advantages: Vec<f64>,
    /// Return (value target) of every response token; `None` for critic-free estimators.
    pub returns: Option<Vec<f64>>,
}

impl Estimate {
    /// A critic-free estimate that gives every token of sample `i` the advantage `per_sample[i]`.
    pub fn spread(per_sample: &[f64], response_lengths: &[usize]) -> Result<Estimate> {
        Ok(Estimate { advantages: spread_to_tokens(per_sample, response_lengths)?, returns: None })
    }
}

/// Turns an iteration's scores (and values) into per-token advantages (recipe step 8).
pub trait AdvantageEstimator: Debug {
    /// A short name for reports and errors (`gae`, `grpo`).
    fn name(&self) -> &str;

    /// Whether the estimator reads the critic's values (the trainer then needs a critic and
    /// trains it on [`Estimate::returns`]).
    fn uses_critic(&self) -> bool;

    /// The advantages (and returns) of `input`'s samples. Errors name what is wrong.
    fn estimate(&self, input: &EstimatorInput<'_>) -> Result<Estimate>;

    /// How a per-token reward `r_k` (besides the score on the last token) reaches the
    /// advantage of token `t <= k` of the same sample: `d^{k − t} · r_k` with `d` the returned
    /// discount (and the return, for an estimator with a critic, gains the same term). `None`
    /// (the default): the estimator takes no per-token rewards, and the trainer refuses KL in
    /// the reward with it ([`crate::ppo::kl_reward`]).
    fn token_reward_discount(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn input<'a>(prompts: &'a [usize], lens: &'a [usize]) -> EstimatorInput<'a> {
        EstimatorInput { scores: &[0.0; 4][..prompts.len()], prompts, response_lengths: lens, values: None }
    }

    #[test]
    fn prompt_groups_are_runs_of_one_prompt() {
        assert_eq!(input(&[0, 0, 2, 3], &[1; 4]).prompt_groups().unwrap(), vec![2, 1, 1]);
        assert_eq!(input(&[1, 1, 1], &[1; 3]).prompt_groups().unwrap(), vec![3]);
        let err = input(&[0, 2, 1], &[1; 3]).prompt_groups().unwrap_err().to_string();
        assert!(err.contains("sample 2 (prompt 1) follows prompt 2"), "{err}");
    }

    #[test]
    fn validation_names_the_mismatch() {
        assert!(input(&[0, 0], &[1, 2]).validate().is_ok());
        let err = input(&[0, 0], &[1]).validate().unwrap_err().to_string();
        assert!(err.contains("1 response lengths"), "{err}");
        let with_values = EstimatorInput { values: Some(&[0.0; 2]), ..input(&[0, 0], &[1, 2]) };
        assert!(with_values.validate().unwrap_err().to_string().contains("2 values for 3 response tokens"));
        assert!(input(&[0], &[1]).require_values("gae").unwrap_err().to_string().contains("`gae` needs"));
    }
}
