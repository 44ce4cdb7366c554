//! A compact ORZ training run on the embedded tiny model with the candle CPU backend: the
//! recipe unchanged (PPO, GAE λ = γ = 1, `orz_math`, no KL), prompts from [`problems`]. The
//! program's full loop (eval, checkpoints, metrics, plots) lives elsewhere; this is what the
//! test that the tiny preset learns runs, and what chose the preset's values.

use std::rc::Rc;
use std::time::Instant;

use anyhow::{Context, Result};
use orz_candle::Candle;
use orz_core::backend::DType;
use orz_core::model::{Critic, Head, Policy};
use orz_core::recipe::RecipeConfig;
use orz_core::reward::orz_math::orz_math;
use orz_core::rng::Rng;
use orz_core::train::{IterationReport, PromptItem, TrainConfig, Trainer};

use super::task::problems;
use crate::tokenizer::Tokenizer;

/// The prompts of `problems`, rendered with `recipe`'s template.
pub fn prompt_items(
    tokenizer: &Tokenizer,
    recipe: &RecipeConfig,
    problems: &[crate::data::Problem],
) -> Result<Vec<PromptItem>> {
    problems
        .iter()
        .map(|p| {
            let text = recipe.render_prompt(&p.question);
            Ok(PromptItem { tokens: tokenizer.encode(&text)?, text, reference: p.answer.clone() })
        })
        .collect()
}

/// A trainer on the embedded base model (policy and critic both from it, the critic's value
/// head drawn from `seed`), candle CPU, F32.
pub fn trainer(recipe: &RecipeConfig, seed: u64) -> Result<Trainer<Candle>> {
    let dir = std::env::temp_dir().join(format!("orz-tiny-base-{}-{seed}", std::process::id()));
    super::write_base_model(&dir)?;
    let backend = Rc::new(Candle::cpu());
    let b = backend.as_ref();
    let load = || orz_hf::load_model(b, &dir, Head::Lm, DType::F32).context("loading the tiny base model");
    let (config, policy_tensors) = load()?;
    let (_, critic_tensors) = load()?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    let policy = Policy::from_tensors(Rc::clone(&backend), &config, policy_tensors)?;
    let mut rng = Rng::seed_from_u64(seed).fork(7);
    let critic = Critic::from_pretrained(Rc::clone(&backend), &config, critic_tensors, &mut rng)?;
    let train_config = TrainConfig::from_recipe(recipe, config.eos_token_ids.clone())?;
    Ok(Trainer::new(train_config, policy, Some(critic), Rng::seed_from_u64(seed))?)
}

/// Runs `iterations` ORZ iterations of `recipe` from the embedded base model, prompts from
/// [`problems`]`(seed, ..)`; calls `on_iteration` with each report and its seconds.
pub fn train(
    recipe: &RecipeConfig,
    seed: u64,
    iterations: usize,
    mut on_iteration: impl FnMut(&IterationReport, f64),
) -> Result<Vec<IterationReport>> {
    let tokenizer = super::tokenizer()?;
    let mut trainer = trainer(recipe, seed)?;
    let data = problems(seed, iterations * recipe.rollout_batch_size);
    let reward = orz_math();
    let mut reports = Vec::with_capacity(iterations);
    for chunk in data.chunks(recipe.rollout_batch_size.max(1)) {
        let prompts = prompt_items(&tokenizer, recipe, chunk)?;
        let start = Instant::now();
        let clock = || start.elapsed().as_secs_f64();
        let report = trainer.iteration_timed(&prompts, &reward, &tokenizer, Some(&clock))?;
        on_iteration(&report, start.elapsed().as_secs_f64());
        reports.push(report);
    }
    Ok(reports)
}
