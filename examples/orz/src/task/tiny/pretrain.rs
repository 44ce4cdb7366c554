//! Pretraining of the tiny base model: supervised next-token training on a mixture of answer
//! forms.
//!
//! Each example is the rendered prompt of a training problem followed by a
//! [`demonstration`] in a form drawn from [`Mix::BASE`] and the end-of-text token; the loss is
//! the mean negative log-likelihood of the response tokens only (the prompt is context), through
//! [`Policy::selective_log_probs`] and AdamW ([`Optimizer`]). Most demonstrations are short
//! guesses (no steps, right 1 time in 5); a quarter are worked answers whose steps slip often; a
//! few are checked answers that redo every step after `wait,` and so correct their slips. The base
//! model therefore knows all three forms and mostly writes the short one, so its ORZ reward starts
//! low. Reinforcement learning then selects among forms the base model already has: it can raise
//! the reward only by writing the longer ones more often (and sharpening their steps); it does not
//! teach arithmetic or reflection from nothing.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result, anyhow};
use orz_core::backend::{AdamWConfig, Backend, DType};
use orz_core::model::{Head, PackedBatch, Policy};
use orz_core::optimizer::{Optimizer, OptimizerConfig};
use orz_core::recipe::RecipeConfig;
use orz_core::rng::Rng;
use orz_core::schedule::LrSchedule;

use super::problems::{Mix, demonstration, problems, terms_of};
use crate::tokenizer::Tokenizer;

/// The settings of one pretraining run.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Demonstrations per step (fresh ones every step).
    pub batch_size: usize,
    /// Peak learning rate (linear warmup, then a cosine to a tenth of it).
    pub lr: f64,
    /// Warmup steps.
    pub warmup_steps: usize,
    /// The answer forms of the demonstrations and their mistakes.
    pub mix: Mix,
    /// Seed of the problems and of the demonstrations' mistakes.
    pub seed: u64,
    /// Print the loss every this many steps (0: never).
    pub log_every: usize,
}

impl PretrainConfig {
    /// The settings that produced the committed base model (with `seed` 0).
    pub fn base(seed: u64) -> PretrainConfig {
        PretrainConfig {
            steps: 1500,
            batch_size: 32,
            lr: 3e-3,
            warmup_steps: 50,
            mix: Mix::BASE,
            seed,
            log_every: 100,
        }
    }
}

/// The token ids of `prompt + response + EOS` and the prompt's length.
fn example(tokenizer: &Tokenizer, prompt: &str, response: &str, eos: u32) -> Result<(Vec<u32>, usize)> {
    let mut ids = tokenizer.encode(prompt)?;
    let prompt_len = ids.len();
    ids.extend(tokenizer.encode(response)?);
    ids.push(eos);
    Ok((ids, prompt_len))
}

/// Trains `policy` in place on [`PretrainConfig`]'s demonstrations, prompts rendered with
/// `recipe`'s template; returns the loss (mean response-token NLL) of every step. Deterministic
/// given the config and the initial weights.
pub fn pretrain<B: Backend>(
    policy: &Policy<B>,
    tokenizer: &Tokenizer,
    recipe: &RecipeConfig,
    config: &PretrainConfig,
) -> Result<Vec<f64>> {
    let b = policy.model().backend();
    let eos =
        *policy.model().config().eos_token_ids.first().ok_or_else(|| anyhow!("the model has no EOS id"))?;
    let opt_config = OptimizerConfig {
        adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 },
        schedule: LrSchedule::WarmupCosine {
            peak: config.lr,
            floor: config.lr / 10.0,
            warmup_steps: config.warmup_steps,
            total_steps: config.steps,
        },
        max_grad_norm: Some(1.0),
    };
    let mut opt = Optimizer::new(b, policy.model().parameters(), opt_config)?;
    let data = problems(config.seed, config.steps * config.batch_size);
    let mut rng = Rng::seed_from_u64(config.seed).fork(1);
    let mut losses = Vec::with_capacity(config.steps);
    let previous = b.set_grad_enabled(true);
    let result = (|| -> Result<()> {
        for (step, chunk) in data.chunks(config.batch_size).enumerate() {
            let mut samples = Vec::with_capacity(chunk.len());
            for p in chunk {
                let terms = terms_of(&p.question).with_context(|| format!("question `{}`", p.question))?;
                let form = config.mix.draw_form(&mut rng);
                let response = demonstration(&terms, form, &config.mix, &mut rng);
                samples.push(example(tokenizer, &recipe.render_prompt(&p.question), &response, eos)?);
            }
            let batch = PackedBatch::padded(&samples.iter().map(|(ids, _)| ids).collect::<Vec<_>>())?;
            let seq = batch.seq_len();
            let mut mask = vec![false; batch.rows() * seq];
            for (row, (ids, prompt_len)) in samples.iter().enumerate() {
                // Position t predicts token t + 1: the response tokens prompt_len..len.
                mask[row * seq + prompt_len - 1..row * seq + ids.len() - 1].fill(true);
            }
            let count = mask.iter().filter(|&&m| m).count();
            let logp = policy.next_token_log_probs(&batch)?;
            let mask = b.tensor_bool(&mask, &batch.shape())?;
            let loss = b.affine(&b.masked_sum(&logp, &mask, None)?, -1.0 / count as f64, 0.0)?;
            let value = b.to_host_f64(&loss)?.first().copied().unwrap_or(f64::NAN);
            opt.observe_loss(value);
            opt.accumulate(b, &b.backward(&loss)?)?;
            let report = opt.step(b)?;
            if let Some(reason) = report.skipped_reason {
                eprintln!("pretrain step {step}: skipped ({reason})");
            }
            losses.push(value);
            if config.log_every > 0 && (step % config.log_every == 0 || step + 1 == config.steps) {
                println!("pretrain step {step:>5}/{}: loss {value:.4}, lr {:.2e}", config.steps, report.lr);
            }
        }
        Ok(())
    })();
    b.set_grad_enabled(previous);
    result?;
    Ok(losses)
}

/// Pretrains a fresh tiny model ([`super::model_config`], initialized with `seed`) with
/// [`PretrainConfig::base`]`(seed)` on the candle CPU backend and writes it to `out` in Hugging
/// Face format (`config.json`, `model.safetensors`, F32) with the tiny `tokenizer.json`. The
/// committed base model is `build_base_model(examples/orz/assets/tiny, 0)`.
pub fn build_base_model(out: &Path, seed: u64) -> Result<()> {
    let backend = Rc::new(orz_candle::Candle::cpu());
    let config = super::model_config();
    let json = serde_json::to_string_pretty(&super::vocab::tokenizer_json())? + "\n";
    let tokenizer = Tokenizer::from_bytes(json.as_bytes(), "generated tiny tokenizer")?;
    let mut rng = Rng::seed_from_u64(seed);
    let policy = Policy::random(Rc::clone(&backend), &config, DType::F32, &mut rng)?;
    let recipe = orz_core::recipe::Preset::Tiny.config();
    let start = std::time::Instant::now();
    let losses = pretrain(&policy, &tokenizer, &recipe, &PretrainConfig::base(seed))?;
    println!(
        "pretrained in {:.1} s, final loss {:.4}",
        start.elapsed().as_secs_f64(),
        losses.last().copied().unwrap_or(f64::NAN)
    );
    let named = policy.model().named_tensors();
    orz_hf::save_model(backend.as_ref(), out, &config, Head::Lm, &named, DType::F32, None)
        .with_context(|| format!("saving the tiny base model to {}", out.display()))?;
    let path = out.join("tokenizer.json");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use orz_reference::Reference;

    #[test]
    fn a_few_steps_lower_the_loss_deterministically() {
        let backend = Rc::new(Reference::new());
        let mut model = super::super::model_config();
        (model.hidden_size, model.intermediate_size, model.num_hidden_layers) = (16, 32, 1);
        let tokenizer = super::super::tokenizer().unwrap();
        let recipe = orz_core::recipe::Preset::Tiny.config();
        let config = PretrainConfig {
            steps: 8,
            batch_size: 4,
            lr: 1e-2,
            warmup_steps: 0,
            mix: Mix::CORRECT,
            seed: 3,
            log_every: 0,
        };
        let run = || {
            let policy =
                Policy::random(Rc::clone(&backend), &model, DType::F32, &mut Rng::seed_from_u64(1)).unwrap();
            pretrain(&policy, &tokenizer, &recipe, &config).unwrap()
        };
        let losses = run();
        assert_eq!(losses, run(), "same seed, same losses");
        assert!(losses[7] < losses[0] - 0.3, "{losses:?}");
    }
}
