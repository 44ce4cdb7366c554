//! One function per `orz` subcommand: check the inputs ([`prepare`]), then run the work on
//! the chosen backend.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result, anyhow};
use orz_core::backend::Backend;
use orz_core::recipe::Preset;

use crate::backend::{BackendJob, run_on};
use crate::cli::Common;
use crate::memory_plan::{MemoryPlan, device_memory, qwen25_shape};
use crate::run::models::load_policy;
use crate::run::train::{METRICS_FILE, PLOT_FILE, TrainJob};
use crate::run::{Prepared, prepare};
use crate::settings::Settings;

/// `orz train` (and `orz` without a command).
pub fn train(common: &Common) -> Result<()> {
    if common.dry_run && common.model.is_none() && common.resume.is_none() && common.preset != Preset::Tiny {
        return plan_without_model(common);
    }
    let prepared = prepare(common, true)?;
    if common.dry_run {
        return dry_run(common, &prepared);
    }
    let summary = run_on(common.backend, common.device, TrainJob { prepared })?;
    let (first, last) = (summary.metrics.first(), summary.metrics.last());
    if let (Some(f), Some(l)) = (first, last) {
        println!(
            "trained {} iterations: mean reward {:.3} -> {:.3}, response length {:.1} -> {:.1}",
            summary.metrics.len(),
            f.mean_reward,
            l.mean_reward,
            f.response_length_mean,
            l.response_length_mean
        );
    }
    if let Some(eval) = &summary.final_eval {
        for (name, acc) in eval {
            println!("eval {name}: accuracy {acc:.3} after training");
        }
    }
    if let Some(c) = &summary.last_checkpoint {
        println!("checkpoint: {}", c.display());
    }
    println!("metrics: {}\nplot: {}", common.out.join(METRICS_FILE).display(), summary.plot.display());
    Ok(())
}

/// `--dry-run`: the full config, the inputs found and the memory plan; no training.
fn dry_run(common: &Common, p: &Prepared) -> Result<()> {
    println!("# orz {} dry run: every input checked, nothing trained\n", p.preset);
    println!("{}", p.settings.to_toml()?);
    let m = &p.model_config;
    println!(
        "model: {} (hidden {}, {} layers, {} heads / {} kv heads, vocab {}, tied embeddings: {})",
        p.model_dir.display(),
        m.hidden_size,
        m.num_hidden_layers,
        m.num_attention_heads,
        m.num_key_value_heads,
        m.vocab_size,
        m.tie_word_embeddings
    );
    println!("tokenizer: {} tokens, EOS ids {:?}", p.tokenizer.vocab_size(), m.eos_token_ids);
    println!("training problems: {}", p.train_data.len());
    for (name, set) in &p.eval_sets {
        println!("eval set {name}: {} problems", set.len());
    }
    let (bytes, source) = device_memory(common.device.cuda_ordinal());
    let plan = MemoryPlan::new(m, &p.settings.train, p.dtype, common.backend.plan(), bytes, &source);
    println!("\n{plan}");
    let gpus = p.settings.recipe.orz_gpus;
    if gpus > 0 {
        println!("ORZ trained this preset on {gpus} GPUs (80 GB each).");
    }
    Ok(())
}

/// `--dry-run` without `--model` for a real preset: the config and the memory plan of the
/// published Qwen2.5 shape, and the data files checked if given.
fn plan_without_model(common: &Common) -> Result<()> {
    let preset = common.preset;
    let shape = qwen25_shape(preset).ok_or_else(|| anyhow!("preset {preset} has no published base model"))?;
    crate::run::check_writable(&common.out)?;
    let settings = Settings::resolve(preset, &crate::run::overrides(common)?, shape.eos_token_ids.clone())?;
    println!(
        "# orz {preset} dry run without --model: the plan uses {}'s published shape\n",
        settings.recipe.base_model
    );
    println!("{}", settings.to_toml()?);
    for path in common.data.iter().chain(&common.eval) {
        println!("{}: {} problems", path.display(), crate::data::load_any(path)?.len());
    }
    let (bytes, source) = device_memory(common.device.cuda_ordinal());
    let dtype = crate::backend::parse_dtype(&common.dtype)?;
    println!("{}", MemoryPlan::new(&shape, &settings.train, dtype, common.backend.plan(), bytes, &source));
    println!(
        "ORZ trained this preset on {} GPUs (80 GB each). Pass --model DIR to check the checkpoint and tokenizer.",
        settings.recipe.orz_gpus
    );
    Ok(())
}

/// `orz eval`: accuracy per eval file, averaged over `samples` per question.
pub fn eval(common: &Common, samples: usize) -> Result<()> {
    let p = prepare(common, false)?;
    if p.eval_sets.is_empty() {
        return Err(anyhow!(
            "orz eval needs --eval FILE... (ORZ eval format, e.g. data/orz/eval/math500.json)"
        ));
    }
    if common.dry_run {
        return dry_run(common, &p);
    }
    let report = run_on(common.backend, common.device, EvalJob { p, samples })?;
    println!("{report}");
    Ok(())
}

struct EvalJob {
    p: Prepared,
    samples: usize,
}

impl BackendJob for EvalJob {
    type Output = crate::eval::EvalReport;

    fn run<B: Backend + 'static>(self, b: Rc<B>, _name: &str) -> Result<Self::Output> {
        let p = &self.p;
        let policy = load_policy(&b, &p.model_dir, p.dtype)?;
        let jsonl = p.out.join("eval-generations.jsonl");
        let total = p.eval_sets.iter().map(|(_, s)| s.len()).sum::<usize>() * self.samples;
        let bar = crate::progress::Progress::counter("eval", total, p.quiet);
        let mut options = crate::eval::EvalOptions::new(self.samples, p.seed);
        options.engine = p.settings.train.engine;
        options.out_jsonl = Some(&jsonl);
        let reward = p.task.reward();
        options.reward = Some(reward.as_ref());
        let report =
            crate::eval::evaluate(&policy, &p.tokenizer, &p.settings.recipe, &p.eval_sets, &options, &bar)?;
        eprintln!("generations: {}", jsonl.display());
        Ok(report)
    }
}

/// `orz generate`: completions for `--prompt` questions or the first `count` data questions.
pub fn generate(common: &Common, prompts: &[String], count: usize, samples: usize) -> Result<()> {
    let p = prepare(common, prompts.is_empty() && common.eval.is_empty())?;
    let questions: Vec<String> = if !prompts.is_empty() {
        prompts.to_vec()
    } else {
        let source = if p.train_data.is_empty() {
            p.eval_sets.iter().flat_map(|(_, s)| s).collect::<Vec<_>>()
        } else {
            p.train_data.iter().collect()
        };
        source.into_iter().take(count).map(|q| q.question.clone()).collect()
    };
    run_on(common.backend, common.device, GenerateJob { p, questions, samples })
}

struct GenerateJob {
    p: Prepared,
    questions: Vec<String>,
    samples: usize,
}

impl BackendJob for GenerateJob {
    type Output = ();

    fn run<B: Backend + 'static>(self, b: Rc<B>, _name: &str) -> Result<()> {
        let p = &self.p;
        let policy = load_policy(&b, &p.model_dir, p.dtype)?;
        let mut options = crate::eval::EvalOptions::new(self.samples, p.seed);
        options.engine = p.settings.train.engine;
        let outs =
            crate::eval::generate(&policy, &p.tokenizer, &p.settings.recipe, &self.questions, &options)?;
        for o in outs {
            let question = self.questions.get(o.prompt).map_or("", String::as_str);
            println!(
                "--- question {} sample {} ({:?}, {} tokens)\n{question}\n>>> {}",
                o.prompt, o.sample, o.finish_reason, o.tokens, o.text
            );
        }
        Ok(())
    }
}

/// `orz pretrain`: builds the tiny preset's base model into `--out` (the embedded one was made
/// this way with `--seed 0`).
pub fn pretrain(common: &Common) -> Result<()> {
    if common.preset != Preset::Tiny {
        return Err(anyhow!(
            "orz pretrain builds the tiny preset's base model only (got --preset {})",
            common.preset
        ));
    }
    crate::run::check_writable(&common.out)?;
    crate::tiny::build_base_model(&common.out, common.seed)
        .with_context(|| format!("pretraining the tiny base model into {}", common.out.display()))?;
    println!("tiny base model written to {}", common.out.display());
    Ok(())
}

/// `orz presets [NAME]`.
pub fn presets(name: Option<&str>) -> Result<()> {
    match name {
        None => {
            print!("{}", presets_table());
            println!("\n`orz presets NAME` prints every field of a preset as TOML (the format of --config).");
        }
        Some(name) => {
            let preset: Preset = name.parse().map_err(|e| anyhow!("{e}"))?;
            // EOS ids come from the model's config.json at run time; shown here with Qwen2.5's.
            let settings = Settings::resolve(preset, &[], vec![151_643])?;
            println!("# preset {preset}; train.stop.eos_token_ids come from the model's config.json\n");
            print!("{}", settings.to_toml()?);
        }
    }
    Ok(())
}

/// One row per preset with the values that distinguish them.
pub fn presets_table() -> String {
    let mut out = format!(
        "{:<9} {:<30} {:>8} {:>8} {:>9} {:>8} {:>10} {:>6} {:>5}\n",
        "preset", "base model", "prompts", "samples", "pack len", "gen len", "lr pol/cr", "iters", "GPUs"
    );
    for p in Preset::ALL {
        let c = p.config();
        out += &format!(
            "{:<9} {:<30} {:>8} {:>8} {:>9} {:>8} {:>10} {:>6} {:>5}\n",
            p.name(),
            c.base_model,
            c.rollout_batch_size,
            c.n_samples_per_prompt,
            c.packing_max_len,
            c.generate_max_len,
            format!("{:.0e}/{:.0e}", c.policy_lr, c.critic_lr),
            c.iterations,
            c.orz_gpus
        );
    }
    out
}

/// `orz plot [METRICS] [--png FILE]`.
pub fn plot(common: &Common, metrics: Option<&Path>, png: Option<&Path>) -> Result<()> {
    let metrics = metrics.map_or_else(|| common.out.join(METRICS_FILE), Path::to_path_buf);
    let png = png.map_or_else(
        || metrics.parent().unwrap_or_else(|| Path::new(".")).join(PLOT_FILE),
        Path::to_path_buf,
    );
    let history = crate::metrics::read_metrics(&metrics)?;
    crate::plot::plot_training(&history, &png, &format!("orz ({})", metrics.display()))?;
    println!("{}", png.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_preset() {
        let t = presets_table();
        for p in Preset::ALL {
            assert!(t.contains(p.name()), "{t}");
        }
        assert!(t.contains("16384"));
    }
}
