//! A custom advantage estimator plugged into ORZ training: RLOO, REINFORCE with a leave-one-out
//! baseline (Ahmadian et al. 2024, "Back to Basics"; TRL's `RLOOTrainer`), which core does not
//! ship. Each sample's advantage is its score minus the mean score of the *other* samples of its
//! prompt, spread over its response tokens; no critic. The trainer then whitens the advantages as
//! for GAE (`advantage_normalize`) and runs ORZ's policy step, unchanged.
//!
//! Nothing in the trainer changes: the estimator is a type implementing
//! [`AdvantageEstimator`], handed to [`Trainer::with_estimator`].
//!
//! `cargo run --release -p custom-estimator -- 3` trains three iterations; `cargo test -p
//! custom-estimator` runs two of them in CI.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use orz::task::tiny;
use orz_core::backend::DType;
use orz_core::ppo::estimator::{AdvantageEstimator, Estimate, EstimatorInput};
use orz_core::recipe::Preset;
use orz_core::reward::orz_math::orz_math;
use orz_core::rng::Rng;
use orz_core::train::{IterationReport, Trainer};

/// REINFORCE leave-one-out: `A_i = s_i − mean_{j ≠ i} s_j` over the samples of one prompt (0 for
/// a prompt with a single kept sample), the same for every response token of sample `i`.
#[derive(Debug, Clone, Copy)]
pub struct Rloo;

impl AdvantageEstimator for Rloo {
    fn name(&self) -> &str {
        "rloo"
    }

    fn uses_critic(&self) -> bool {
        false
    }

    fn estimate(&self, input: &EstimatorInput<'_>) -> orz_core::Result<Estimate> {
        input.validate()?;
        let mut per_sample = Vec::with_capacity(input.scores.len());
        let mut start = 0;
        for size in input.prompt_groups()? {
            let group = &input.scores[start..start + size];
            let total: f64 = group.iter().sum();
            per_sample.extend(
                group.iter().map(|&s| if size < 2 { 0.0 } else { s - (total - s) / (size - 1) as f64 }),
            );
            start += size;
        }
        Estimate::spread(&per_sample, input.response_lengths)
    }
}

/// Trains the tiny model (written to `dir`) for `iterations` iterations of 4 prompts x 4 samples
/// with [`Rloo`] and ORZ's math reward, no critic.
pub fn train(dir: &Path, iterations: usize) -> Result<Vec<IterationReport>> {
    let b = Rc::new(orz_candle::Candle::cpu());
    tiny::write_base_model(dir)?;
    let policy = orz_hf::load_policy(&b, dir, DType::F32)?;
    let tokenizer = tiny::tokenizer()?;
    let mut recipe = Preset::Tiny.config();
    (recipe.rollout_batch_size, recipe.train.n_samples_per_prompt) = (4, 4);
    let config = recipe.train_config(policy.model().config().eos_token_ids.clone())?;
    let mut trainer = Trainer::with_estimator(config, policy, None, Rng::seed_from_u64(0), Box::new(Rloo))?;
    let problems = tiny::problems(0, iterations * recipe.rollout_batch_size);
    let mut reports = Vec::new();
    for batch in problems.chunks(recipe.rollout_batch_size) {
        let prompts = batch.iter().map(|p| p.to_prompt(&recipe, &tokenizer)).collect::<Result<Vec<_>>>()?;
        reports.push(trainer.iteration(&prompts, &orz_math(), &tokenizer)?);
    }
    Ok(reports)
}

fn main() -> Result<()> {
    let iterations = std::env::args().nth(1).map(|a| a.parse()).transpose().context("ITERATIONS")?;
    let dir = std::env::temp_dir().join(format!("orz-custom-estimator-{}", std::process::id()));
    for r in train(&dir, iterations.unwrap_or(2))? {
        println!(
            "iteration {}: reward {:.3}, policy loss {:.4}, clip fraction {:.3}",
            r.iteration, r.rollout.mean_reward, r.policy_loss, r.clip_fraction
        );
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn leave_one_out_by_hand() {
        // Prompt 0: scores 1, 0, 0 -> 1 − 0, 0 − 0.5, 0 − 0.5. Prompt 2: a single sample -> 0.
        let input = EstimatorInput {
            scores: &[1.0, 0.0, 0.0, 1.0],
            prompts: &[0, 0, 0, 2],
            response_lengths: &[2, 1, 1, 3],
            values: None,
        };
        let e = Rloo.estimate(&input).unwrap();
        assert_eq!(e.advantages, [1.0, 1.0, -0.5, -0.5, 0.0, 0.0, 0.0]);
        assert!(e.returns.is_none());
    }

    #[test]
    fn two_iterations_train_with_the_custom_estimator() {
        let dir = std::env::temp_dir().join(format!("orz-custom-estimator-test-{}", std::process::id()));
        let reports = train(&dir, 2).unwrap();
        assert_eq!(reports.len(), 2);
        for r in &reports {
            assert_eq!(r.rollout.prompts, 4);
            assert!(r.value_loss.is_none() && r.critic_steps.is_empty(), "no critic: {r:?}");
            assert_eq!(r.policy_steps.len(), 1);
            assert!(r.policy_loss.is_finite(), "{r:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
