//! What the `orz` commands run: [`prepare`] checks every input (model directory, tokenizer,
//! data, eval files, output directory, config) before any long work and gathers them in a
//! [`Prepared`]; [`train`] is the training loop (the eval and sampling commands are in
//! [`crate::commands`] and [`crate::eval`]).

pub mod data_order;
pub mod models;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use orz_core::backend::DType;
use orz_core::model::Qwen2Config;
use orz_core::recipe::Preset;

use crate::backend::parse_dtype;
use crate::cli::Common;
use crate::data::{self, Problem};
use crate::settings::{Overrides, Settings};
use crate::task::Task;
use crate::tiny;
use crate::tokenizer::Tokenizer;

pub use data_order::{DataCursor, DataOrder};

/// Every checked input of a command.
#[derive(Debug)]
pub struct Prepared {
    /// The preset.
    pub preset: Preset,
    /// Recipe and iteration config after overrides.
    pub settings: Settings,
    /// Compute dtype of the models.
    pub dtype: DType,
    /// The Hugging Face model directory (for the tiny preset without `--model`: the embedded
    /// base model, written under the output directory).
    pub model_dir: PathBuf,
    /// Its config.
    pub model_config: Qwen2Config,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Training problems (empty when the command does not train).
    pub train_data: Vec<Problem>,
    /// Eval sets: (name, problems).
    pub eval_sets: Vec<(String, Vec<Problem>)>,
    /// The output directory (created, known writable).
    pub out: PathBuf,
    /// The seed.
    pub seed: u64,
    /// Iterations the run ends at.
    pub iterations: usize,
    /// A checkpoint to resume from.
    pub resume: Option<PathBuf>,
    /// The task (reward and default data).
    pub task: Task,
    /// Whether progress bars are off.
    pub quiet: bool,
}

/// Problems a generated task (tiny, Countdown) makes for training when no `--data` is given.
pub const TINY_TRAIN_PROBLEMS: usize = 20_000;
/// Held-out generated problems for eval when no `--eval` is given.
pub const TINY_EVAL_PROBLEMS: usize = 128;

/// Checks and loads every input of a command: `needs_train_data` for `train`. Errors say what
/// and where: a missing or malformed model directory, tokenizer, data or config file, an
/// unknown config field, an output directory that is not writable.
pub fn prepare(common: &Common, needs_train_data: bool) -> Result<Prepared> {
    let preset = common.preset;
    let dtype = parse_dtype(&common.dtype)?;
    let out = common.out.clone();
    check_writable(&out)?;
    let model_dir = match (&common.model, &common.resume) {
        (Some(dir), _) => dir.clone(),
        (None, Some(ckpt)) => ckpt.join(crate::checkpoint::POLICY_DIR),
        (None, None) if preset == Preset::Tiny => {
            let dir = out.join("base-model");
            tiny::write_base_model(&dir)
                .with_context(|| format!("writing the tiny base model to {}", dir.display()))?;
            dir
        }
        (None, None) => bail!(
            "--model is required for preset {preset}: a Hugging Face directory of {} (config.json, *.safetensors, \
             tokenizer.json)",
            preset.config().base_model
        ),
    };
    let (model_config, tokenizer) = models::check_model_dir(&model_dir)?;
    let settings = Settings::resolve(preset, &overrides(common)?, model_config.eos_token_ids.clone())?;
    let generated = common.task.generated(common.seed, TINY_TRAIN_PROBLEMS, TINY_EVAL_PROBLEMS)?;
    let train_data = if !needs_train_data {
        Vec::new()
    } else if !common.data.is_empty() {
        let mut all = Vec::new();
        for path in &common.data {
            all.extend(data::load_any(path)?);
        }
        all
    } else if let Some((train, _)) = &generated {
        train.clone()
    } else if preset == Preset::Tiny {
        tiny::problems(common.seed, TINY_TRAIN_PROBLEMS)
    } else {
        bail!("--data is required for preset {preset} (e.g. data/orz/orz_math_57k_subset.json)");
    };
    if needs_train_data && train_data.is_empty() {
        bail!("the training data is empty ({:?})", common.data);
    }
    let mut eval_sets = data::load_named(&common.eval)?;
    if let (true, true, Some((_, eval))) = (common.eval.is_empty(), common.data.is_empty(), &generated) {
        eval_sets.push((format!("{:?}-heldout", common.task).to_lowercase(), eval.clone()));
    } else if common.eval.is_empty() && preset == Preset::Tiny && common.data.is_empty() {
        eval_sets.push(("tiny-heldout".to_string(), tiny::eval_problems(TINY_EVAL_PROBLEMS)));
    }
    let iterations = common.iterations.unwrap_or(settings.recipe.iterations);
    if let Some(r) = common.resume.as_ref().filter(|r| !r.is_dir()) {
        bail!("--resume {}: no such checkpoint directory", r.display());
    }
    Ok(Prepared {
        preset,
        settings,
        dtype,
        model_dir,
        model_config,
        tokenizer,
        train_data,
        eval_sets,
        out,
        seed: common.seed,
        iterations,
        resume: common.resume.clone(),
        task: common.task,
        quiet: common.quiet,
    })
}

/// The overrides of a command line, in the order they apply: the task's (`--task`), the
/// `--config` file, then `--set`.
pub fn overrides(common: &Common) -> Result<Vec<Overrides>> {
    let mut out: Vec<Overrides> = common.task.overrides().into_iter().collect();
    if let Some(path) = &common.config {
        out.push(Overrides::from_file(path)?);
    }
    if !common.set.is_empty() {
        out.push(Overrides::from_assignments(&common.set)?);
    }
    Ok(out)
}

/// Creates `dir` and proves it writable by writing and removing a file in it.
pub fn check_writable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("output directory {} cannot be created", dir.display()))?;
    let probe = dir.join(".orz-write-check");
    std::fs::write(&probe, b"ok")
        .map_err(|e| anyhow!("output directory {} is not writable: {e}", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))
}
