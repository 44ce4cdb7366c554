//! A custom reward plugged into ORZ training: the tiny model (embedded in the `orz` program)
//! trained for a few iterations with [`NearMiss`], a reward that gives partial credit to
//! answers off by one or two, instead of ORZ's all-or-nothing `orz_math`.
//!
//! `cargo run --release -p custom-reward -- 3` trains three iterations; `cargo test -p
//! custom-reward` runs two of them in CI.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use orz::task::tiny;
use orz_core::backend::DType;
use orz_core::recipe::Preset;
use orz_core::reward::{Reward, RewardInput, RewardOutcome, label};
use orz_core::rng::Rng;
use orz_core::train::{IterationReport, Trainer};

/// 1 for the right sum, 0.5 when the last `\boxed{}` number is off by one or two, 0 otherwise.
#[derive(Debug, Clone, Copy)]
pub struct NearMiss;

impl Reward for NearMiss {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let boxed = input.completion.rsplit_once("\\boxed{").and_then(|(_, rest)| rest.split_once('}'));
        let got = boxed.and_then(|(number, _)| number.trim().parse::<i64>().ok());
        match (got, input.reference.trim().parse::<i64>().ok()) {
            (_, None) => RewardOutcome::new(0.0, label::BAD_REFERENCE),
            (None, _) => RewardOutcome::new(0.0, label::NO_ANSWER),
            (Some(got), Some(want)) if got == want => RewardOutcome::new(1.0, label::CORRECT),
            (Some(got), Some(want)) if (got - want).abs() <= 2 => RewardOutcome::new(0.5, label::WRONG),
            (Some(_), Some(_)) => RewardOutcome::new(0.0, label::WRONG),
        }
    }

    fn name(&self) -> &str {
        "near_miss"
    }
}

/// Trains the tiny model for `iterations` iterations of 4 prompts x 4 samples with [`NearMiss`]
/// (truncated completions get 0: core's `gate_on_stop`), the base model written to `dir`.
pub fn train(dir: &Path, iterations: usize) -> Result<Vec<IterationReport>> {
    let b = Rc::new(orz_candle::Candle::cpu());
    tiny::write_base_model(dir)?;
    let policy = orz_hf::load_policy(&b, dir, DType::F32)?;
    let critic = orz_hf::load_critic(&b, dir, DType::F32, &mut Rng::seed_from_u64(1))?;
    let tokenizer = tiny::tokenizer()?;
    let mut recipe = Preset::Tiny.config();
    (recipe.rollout_batch_size, recipe.train.n_samples_per_prompt) = (4, 4);
    let config = recipe.train_config(policy.model().config().eos_token_ids.clone())?;
    let mut trainer = Trainer::new(config, policy, Some(critic), Rng::seed_from_u64(0))?;
    let reward = NearMiss.gate_on_stop();
    let problems = tiny::problems(0, iterations * recipe.rollout_batch_size);
    let mut reports = Vec::new();
    for batch in problems.chunks(recipe.rollout_batch_size) {
        let prompts = batch.iter().map(|p| p.to_prompt(&recipe, &tokenizer)).collect::<Result<Vec<_>>>()?;
        reports.push(trainer.iteration(&prompts, &reward, &tokenizer)?);
    }
    Ok(reports)
}

fn main() -> Result<()> {
    let iterations = std::env::args().nth(1).map(|a| a.parse()).transpose().context("ITERATIONS")?;
    let dir = std::env::temp_dir().join(format!("orz-custom-reward-{}", std::process::id()));
    for r in train(&dir, iterations.unwrap_or(2))? {
        println!(
            "iteration {}: near-miss reward {:.3}, exactly right {:.3}",
            r.iteration, r.rollout.mean_reward, r.rollout.correct_fraction
        );
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use orz_core::reward::FinishReason;

    #[test]
    fn near_misses_get_half_credit() {
        let score = |completion: &str| {
            NearMiss.score(&RewardInput::new("", completion, FinishReason::Stop, "20")).score
        };
        assert_eq!(score(" 7+5=12, 12+8=20 </think> <answer>\\boxed{20}</answer>"), 1.0);
        assert_eq!(score("<answer>\\boxed{21}</answer>"), 0.5);
        assert_eq!(score("<answer>\\boxed{25}</answer>"), 0.0);
        assert_eq!(score("no box"), 0.0);
    }

    #[test]
    fn two_iterations_train_with_the_custom_reward() {
        let dir = std::env::temp_dir().join(format!("orz-custom-reward-test-{}", std::process::id()));
        let reports = train(&dir, 2).unwrap();
        assert_eq!(reports.len(), 2);
        for r in &reports {
            assert_eq!(r.rollout.prompts, 4);
            assert!((0.0..=1.0).contains(&r.rollout.mean_reward), "{r:?}");
            // Half credit shows up as a mean reward above the exactly-right fraction.
            assert!(r.rollout.mean_reward >= r.rollout.correct_fraction, "{r:?}");
        }
        assert_eq!(reports[1].iteration, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
