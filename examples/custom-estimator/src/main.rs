//! A custom advantage estimator plugged into ORZ training: a median baseline, which core does
//! not ship. Each sample's advantage is its score minus the median score of its prompt's samples
//! (robust to one outlier score in a group, unlike GRPO's mean), spread over its response tokens;
//! no critic. The trainer then whitens the advantages as for GAE (`advantage_normalize`) and runs
//! ORZ's policy step, unchanged. (Core's own estimators, GAE, GRPO, Dr. GRPO, RLOO and
//! REINFORCE++, are chosen by name with `train.estimator`.)
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

/// Median baseline: `A_i = s_i − median_j s_j` over the samples of sample `i`'s prompt (the
/// mean of the two middle scores for an even group), the same for every response token.
#[derive(Debug, Clone, Copy)]
pub struct MedianBaseline;

impl AdvantageEstimator for MedianBaseline {
    fn name(&self) -> &str {
        "median_baseline"
    }

    fn uses_critic(&self) -> bool {
        false
    }

    fn estimate(&self, input: &EstimatorInput<'_>) -> orz_core::Result<Estimate> {
        input.group_estimate(|scores, groups| {
            let mut per_sample = Vec::with_capacity(scores.len());
            let mut start = 0;
            for &size in groups {
                let group = &scores[start..start + size];
                let mut sorted = group.to_vec();
                sorted.sort_by(f64::total_cmp);
                let median = (sorted[(size - 1) / 2] + sorted[size / 2]) / 2.0;
                per_sample.extend(group.iter().map(|&s| s - median));
                start += size;
            }
            Ok(per_sample)
        })
    }
}

/// Trains the tiny model (written to `dir`) for `iterations` iterations of 4 prompts x 4 samples
/// with [`MedianBaseline`] and ORZ's math reward, no critic.
pub fn train(dir: &Path, iterations: usize) -> Result<Vec<IterationReport>> {
    let b = Rc::new(orz_candle::Candle::cpu());
    tiny::write_base_model(dir)?;
    let policy = orz_hf::load_policy(&b, dir, DType::F32)?;
    let tokenizer = tiny::tokenizer()?;
    let mut recipe = Preset::Tiny.config();
    (recipe.rollout_batch_size, recipe.train.n_samples_per_prompt) = (4, 4);
    let config = recipe.train_config(policy.model().config().eos_token_ids.clone())?;
    let mut trainer =
        Trainer::with_estimator(config, policy, None, Rng::seed_from_u64(0), Box::new(MedianBaseline))?;
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
    fn median_baseline_by_hand() {
        // Prompt 0: scores 1, 0, 0 (median 0) -> 1, 0, 0. Prompt 2: 1, 0 (median 0.5) -> ±0.5.
        let input = EstimatorInput {
            scores: &[1.0, 0.0, 0.0, 1.0, 0.0],
            prompts: &[0, 0, 0, 2, 2],
            response_lengths: &[2, 1, 1, 3, 1],
            values: None,
        };
        let e = MedianBaseline.estimate(&input).unwrap();
        assert_eq!(e.advantages, [1.0, 1.0, 0.0, 0.0, 0.5, 0.5, 0.5, -0.5]);
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
