//! Loading and checking Hugging Face model directories: the policy and the critic of a run.

use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result, anyhow, bail};
use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, Head, Policy, Qwen2Config, VALUE_HEAD, parameter_specs};
use orz_core::rng::Rng;

use crate::tokenizer::Tokenizer;

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

/// The policy of `dir` in `dtype`.
pub fn load_policy<B: Backend>(b: &Rc<B>, dir: &Path, dtype: DType) -> Result<Policy<B>> {
    let (config, tensors) =
        orz_hf::load_model(&**b, dir, Head::Lm, dtype).map_err(|e| anyhow!("loading the policy: {e}"))?;
    Policy::from_tensors(Rc::clone(b), &config, tensors)
        .with_context(|| format!("building the policy of {}", dir.display()))
}

/// A critic starting from the base checkpoint `dir` (ORZ: the same weights as the policy, no LM
/// head, a fresh value head Normal(0, 1/(hidden+1)) drawn from `rng`), or from a critic
/// checkpoint that has its value head.
pub fn load_critic<B: Backend>(b: &Rc<B>, dir: &Path, dtype: DType, rng: &mut Rng) -> Result<Critic<B>> {
    let config = orz_hf::read_config(dir).map_err(|e| anyhow!("{e}"))?;
    let mut ckpt = orz_hf::Checkpoint::open(dir).map_err(|e| anyhow!("{e}"))?;
    let has_head = ckpt.names().map_err(|e| anyhow!("{e}"))?.iter().any(|n| n == VALUE_HEAD);
    let specs: Vec<_> = parameter_specs(&config, Head::Value)
        .into_iter()
        .filter(|s| has_head || s.name != VALUE_HEAD)
        .collect();
    let tensors =
        orz_hf::load_tensors(&**b, dir, &specs, dtype).map_err(|e| anyhow!("loading the critic: {e}"))?;
    Critic::from_pretrained(Rc::clone(b), &config, tensors, rng)
        .with_context(|| format!("building the critic of {}", dir.display()))
}
