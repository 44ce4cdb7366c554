//! ORZ training of a model from a Hugging Face directory, in library calls: load the policy, a
//! critic with a fresh value head and the tokenizer from `MODEL_DIR` (config.json, safetensors,
//! tokenizer.json), run PPO iterations on the problems of `DATA` (any format `orz` reads) with
//! ORZ's math reward, and save a checkpoint that resumes exactly ([`train`] is the dozen lines).
//!
//! `cargo run --release -p train-from-hf -- MODEL_DIR DATA OUT_DIR`; `cargo test -p
//! train-from-hf` runs it in CI on a small random model it writes first.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result};
use orz::data::Problem;
use orz::tokenizer::Tokenizer;
use orz_core::backend::DType;
use orz_core::recipe::RecipeConfig;
use orz_core::reward::orz_math::orz_math;
use orz_core::rng::Rng;
use orz_core::train::{IterationReport, Trainer};
use orz_hf::trainer_checkpoint::{self, RunState};

/// One PPO iteration per `recipe.rollout_batch_size` problems on the model of `model_dir`,
/// then a trainer checkpoint in `out`.
pub fn train(
    model_dir: &Path,
    problems: &[Problem],
    recipe: &RecipeConfig,
    out: &Path,
) -> Result<Vec<IterationReport>> {
    let b = Rc::new(orz_candle::Candle::cpu());
    let tokenizer = Tokenizer::from_file(model_dir.join("tokenizer.json"))?;
    let policy = orz_hf::load_policy(&b, model_dir, DType::F32)?;
    let critic = orz_hf::load_critic(&b, model_dir, DType::F32, &mut Rng::seed_from_u64(1))?;
    let config = recipe.train_config(policy.model().config().eos_token_ids.clone())?;
    let mut trainer = Trainer::new(config, policy, Some(critic), Rng::seed_from_u64(0))?;
    let mut reports = Vec::new();
    for batch in problems.chunks(recipe.rollout_batch_size) {
        let prompts = batch.iter().map(|p| p.to_prompt(recipe, &tokenizer)).collect::<Result<Vec<_>>>()?;
        reports.push(trainer.iteration(&prompts, &orz_math(), &tokenizer)?);
    }
    trainer_checkpoint::save(out, &trainer, Some(&tokenizer.to_json()?), &RunState::default())?;
    Ok(reports)
}

/// The recipe of the example: the tiny preset's (a short prompt, completions of up to 48
/// tokens), small enough for a CPU. A real run takes an ORZ preset, e.g.
/// `Preset::Orz0p5b.config()`, and ORZ's data.
pub fn recipe() -> RecipeConfig {
    let mut recipe = orz_core::recipe::Preset::Tiny.config();
    (recipe.rollout_batch_size, recipe.train.n_samples_per_prompt) = (2, 4);
    recipe
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, data, out] = args.as_slice() else {
        anyhow::bail!("usage: train-from-hf MODEL_DIR DATA OUT_DIR");
    };
    let problems = orz::data::load_any(Path::new(data))?;
    let reports = train(Path::new(model), &problems, &recipe(), Path::new(out))
        .with_context(|| format!("training {model} on {data}"))?;
    for r in &reports {
        println!("iteration {}: mean reward {:.3}", r.iteration, r.rollout.mean_reward);
    }
    println!("checkpoint: {out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn trains_a_small_hugging_face_model_and_checkpoints_it() {
        let root = std::env::temp_dir().join(format!("orz-train-from-hf-{}", std::process::id()));
        let (model, out) = (root.join("model"), root.join("checkpoint"));
        orz::testing::write_small_model(&model, 5).unwrap();
        let problem = |q: &str, a: &str| Problem { question: q.into(), answer: a.into() };
        let problems = [problem("1+1", "2"), problem("2+3", "5"), problem("4+4", "8"), problem("3+3", "6")];
        let reports = train(&model, &problems, &recipe(), &out).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!((reports[1].iteration, reports[1].rollout.generated), (1, 8));
        let loaded = trainer_checkpoint::load(Rc::new(orz_candle::Candle::cpu()), &out, DType::F32).unwrap();
        assert_eq!(loaded.trainer.iterations(), 2);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
