//! What every `orz` command does first: [`prepare`] checks every input (model directory,
//! tokenizer, data, eval files, output directory, config) before any long work and gathers them
//! in a [`Prepared`]. The task ([`Task`]) supplies what the command line leaves out: the base
//! model (tiny), the training and held-out problems (tiny, Countdown), the reward.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use orz_core::backend::DType;
use orz_core::model::{Head, Qwen2Config, parameter_specs};
use orz_core::recipe::Preset;

use crate::backend::parse_dtype;
use crate::cli::Common;
use crate::data::{self, Problem};
use crate::settings::{Overrides, Settings};
use crate::task::Task;
use crate::tokenizer::Tokenizer;

/// Every checked input of a command.
#[derive(Debug)]
pub struct Prepared {
    /// The preset.
    pub preset: Preset,
    /// Recipe and iteration config after overrides.
    pub settings: Settings,
    /// Compute dtype of the models.
    pub dtype: DType,
    /// The Hugging Face model directory (without `--model`: the task's embedded base model,
    /// written under the output directory).
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
    /// The task (reward, default data and base model).
    pub task: Task,
    /// Whether progress bars are off.
    pub quiet: bool,
}

/// Problems a generated task (tiny, Countdown) makes for training when no `--data` is given.
pub const GENERATED_TRAIN_PROBLEMS: usize = 20_000;
/// Held-out generated problems for eval when no `--eval` is given.
pub const GENERATED_EVAL_PROBLEMS: usize = 128;

/// Checks and loads every input of a command: `needs_train_data` for `train`. Errors say what
/// and where: a missing or malformed model directory, tokenizer, data or config file, an
/// unknown config field, an output directory that is not writable.
pub fn prepare(common: &Common, needs_train_data: bool) -> Result<Prepared> {
    let (preset, task) = (common.preset, common.task());
    let dtype = parse_dtype(&common.dtype)?;
    let out = common.out.clone();
    check_writable(&out)?;
    let model_dir = match (&common.model, &common.resume, task.base_model()) {
        (Some(dir), _, _) => dir.clone(),
        (None, Some(ckpt), _) => orz_hf::trainer_checkpoint::policy_dir(ckpt),
        (None, None, Some(base)) => {
            let dir = out.join("base-model");
            base.write(&dir)
                .with_context(|| format!("writing the {task} base model to {}", dir.display()))?;
            dir
        }
        (None, None, None) => bail!(
            "--model is required for preset {preset}: a Hugging Face directory of {} (config.json, *.safetensors, \
             tokenizer.json)",
            preset.config().base_model
        ),
    };
    let (model_config, tokenizer) = check_model_dir(&model_dir)?;
    let settings = Settings::resolve(preset, &overrides(common)?, model_config.eos_token_ids.clone())?;
    let generated = task.generated(common.seed, GENERATED_TRAIN_PROBLEMS, GENERATED_EVAL_PROBLEMS)?;
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
    } else {
        bail!("--data is required for preset {preset} (e.g. data/orz/orz_math_57k_subset.json)");
    };
    if needs_train_data && train_data.is_empty() {
        bail!("the training data is empty ({:?})", common.data);
    }
    let mut eval_sets = data::load_named(&common.eval)?;
    if let (true, true, Some((_, eval))) = (common.eval.is_empty(), common.data.is_empty(), &generated) {
        eval_sets.push((format!("{task}-heldout"), eval.clone()));
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
        task,
        quiet: common.quiet,
    })
}

/// The overrides of a command line, in the order they apply: the task's (`--task`), the
/// `--config` file, then `--set`.
pub fn overrides(common: &Common) -> Result<Vec<Overrides>> {
    let mut out: Vec<Overrides> = common.task().overrides().into_iter().collect();
    if let Some(path) = &common.config {
        out.push(Overrides::from_file(path)?);
    }
    if !common.set.is_empty() {
        out.push(Overrides::from_assignments(&common.set)?);
    }
    Ok(out)
}

/// The tokenizer file a model directory must have.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Checks a model directory without loading weights: `config.json` parses, `tokenizer.json`
/// loads and fits the vocabulary, and every policy tensor is present with its shape.
pub fn check_model_dir(dir: &Path) -> Result<(Qwen2Config, Tokenizer)> {
    if !dir.is_dir() {
        bail!("model directory {} does not exist", dir.display());
    }
    let config = orz_hf::read_config(dir).map_err(|e| anyhow!("{e}"))?;
    let tok_path = dir.join(TOKENIZER_FILE);
    if !tok_path.is_file() {
        bail!("model directory {} has no {TOKENIZER_FILE}", dir.display());
    }
    let tokenizer = Tokenizer::from_file(&tok_path)?;
    if tokenizer.vocab_size() > config.vocab_size {
        bail!(
            "{}: the tokenizer has {} tokens but config.json's vocab_size is {}",
            tok_path.display(),
            tokenizer.vocab_size(),
            config.vocab_size
        );
    }
    let mut ckpt = orz_hf::Checkpoint::open(dir).map_err(|e| anyhow!("{e}"))?;
    for spec in parameter_specs(&config, Head::Lm) {
        ckpt.check_shape(&spec.name, &spec.shape).map_err(|e| anyhow!("{e}"))?;
    }
    Ok((config, tokenizer))
}

/// Creates `dir` and proves it writable by writing and removing a file in it.
pub fn check_writable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("output directory {} cannot be created", dir.display()))?;
    // One probe per process: the ranks of a data-parallel job check the same folder at once.
    let probe = dir.join(format!(".orz-write-check.{}", std::process::id()));
    std::fs::write(&probe, b"ok")
        .map_err(|e| anyhow!("output directory {} is not writable: {e}", dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))
}
