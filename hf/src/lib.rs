//! # orz-hf
//!
//! Hugging Face model I/O for orz-rs: a Qwen2 / Qwen2.5 model directory (`config.json` plus
//! `model.safetensors`, or shards `model-0000i-of-0000n.safetensors` with
//! `model.safetensors.index.json`) loaded into any [`Backend`], and saved back in the same
//! format, in BF16, F16 or F32. Tensor names are Hugging Face's
//! ([`orz_core::model::parameter_specs`]), so checkpoints move both ways.
//!
//! - [`read_config`] / [`write_config`]: `config.json` ⇄ [`Qwen2Config`].
//! - [`load_tensors`] / [`save_tensors`]: named tensors ⇄ safetensors files (reading seeks to
//!   each tensor instead of loading whole files; writing is atomic per file).
//! - [`load_model`] / [`save_model`]: both, for the parameters of a policy or a critic.
//! - [`load_policy`] / [`load_critic`]: a model directory as a ready [`Policy`] or [`Critic`]
//!   (a critic from a base checkpoint gets ORZ's fresh value head).
//! - [`trainer_checkpoint`]: a whole [`Trainer`](orz_core::train::Trainer) (both models, both
//!   optimizers, the seed generator, the iteration counter) saved and loaded with exact resume.
//!
//! Every error names the file and the field or tensor at fault ([`Error`]): a missing tensor, a
//! tensor of the wrong shape (expected and actual), a truncated file, malformed JSON.
//!
//! ```
//! use orz_core::backend::DType;
//! use orz_core::model::{Head, Qwen2Config, parameter_specs};
//! use orz_reference::Reference;
//!
//! let b = Reference::new();
//! let config = Qwen2Config::tiny_test();
//! let named: Vec<(String, _)> = parameter_specs(&config, Head::Lm)
//!     .into_iter()
//!     .map(|s| {
//!         let n: usize = s.shape.iter().product();
//!         (s.name, b.tensor_f32(&vec![0.5; n], &s.shape, DType::F32).unwrap())
//!     })
//!     .collect();
//! let dir = std::env::temp_dir().join(format!("orz-hf-doc-{}", std::process::id()));
//! orz_hf::save_model(&b, &dir, &config, Head::Lm, &named, DType::BF16, None).unwrap();
//! let (loaded_config, params) = orz_hf::load_model(&b, &dir, Head::Lm, DType::F32).unwrap();
//! assert_eq!(loaded_config, config);
//! assert_eq!(params.len(), named.len());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # use orz_core::backend::Backend;
//! ```

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
mod fs;
pub mod tensors;
pub mod trainer_checkpoint;

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, Head, Policy, Qwen2Config, VALUE_HEAD, parameter_specs};
use orz_core::rng::Rng;

pub use config::{CONFIG_FILE, parse_config, read_config, write_config};
pub use error::{Error, Result};
pub use tensors::{
    Checkpoint, INDEX_FILE, Loaded, SINGLE_FILE, SafetensorsFile, load_tensors, load_tensors_report,
    save_tensors,
};

/// Loads a model directory: its config and every parameter of [`parameter_specs`]`(config,
/// head)` (for [`Head::Lm`] with tied embeddings there is no `lm_head.weight`; one present in
/// the file is ignored), as plain tensors of `dtype`.
///
/// A critic starting from a base checkpoint has no value head in it: [`load_critic`] loads the
/// backbone ([`load_tensors`] with the specs of [`Head::Value`] without [`VALUE_HEAD`]) and
/// initializes the head.
pub fn load_model<B: Backend>(
    b: &B,
    dir: impl AsRef<Path>,
    head: Head,
    dtype: DType,
) -> Result<(Qwen2Config, BTreeMap<String, B::Tensor>)> {
    let config = read_config(&dir)?;
    let tensors = load_tensors(b, &dir, &parameter_specs(&config, head), dtype)?;
    Ok((config, tensors))
}

/// Saves a model directory: `config.json` (with `torch_dtype` = `dtype`) and exactly the
/// parameters of [`parameter_specs`]`(config, head)`, in that order, taken from `named` (each
/// must be present with its spec's shape; other entries are an error so nothing is silently
/// dropped). See [`save_tensors`] for the files and `max_shard_bytes`.
pub fn save_model<B: Backend>(
    b: &B,
    dir: impl AsRef<Path>,
    config: &Qwen2Config,
    head: Head,
    named: &[(String, B::Tensor)],
    dtype: DType,
    max_shard_bytes: Option<u64>,
) -> Result<()> {
    let dir = dir.as_ref();
    let specs = parameter_specs(config, head);
    let by_name: BTreeMap<&str, &B::Tensor> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut ordered = Vec::with_capacity(specs.len());
    for spec in &specs {
        let t = by_name
            .get(spec.name.as_str())
            .ok_or_else(|| Error::MissingTensor { name: spec.name.clone(), path: dir.to_path_buf() })?;
        let actual = b.shape(t);
        if actual != spec.shape {
            return Err(Error::ShapeMismatch {
                name: spec.name.clone(),
                path: dir.to_path_buf(),
                expected: spec.shape.clone(),
                actual,
            });
        }
        ordered.push((spec.name.clone(), (*t).clone()));
    }
    if let Some((name, _)) = named.iter().find(|(n, _)| !specs.iter().any(|s| &s.name == n)) {
        return Err(Error::invalid(
            dir,
            format!("tensor `{name}` is not a parameter of this model ({head:?} head), refusing to drop it"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating the directory", e))?;
    save_tensors(b, dir, &ordered, dtype, max_shard_bytes)?;
    write_config(dir, config, dtype)
}

/// The policy of model directory `dir`, with parameters of `dtype`.
pub fn load_policy<B: Backend>(b: &Rc<B>, dir: impl AsRef<Path>, dtype: DType) -> Result<Policy<B>> {
    let dir = dir.as_ref();
    let (config, tensors) = load_model(&**b, dir, Head::Lm, dtype)?;
    Policy::from_tensors(Rc::clone(b), &config, tensors)
        .map_err(|e| Error::invalid(dir, format!("building the policy: {e}")))
}

/// A critic starting from model directory `dir`: from a base checkpoint (ORZ: the policy's
/// weights without the LM head, and a fresh value head Normal(0, 1/(hidden+1)) drawn from
/// `rng`), or from a critic checkpoint that has its [`VALUE_HEAD`].
pub fn load_critic<B: Backend>(
    b: &Rc<B>,
    dir: impl AsRef<Path>,
    dtype: DType,
    rng: &mut Rng,
) -> Result<Critic<B>> {
    let dir = dir.as_ref();
    let config = read_config(dir)?;
    let has_head = Checkpoint::open(dir)?.names()?.iter().any(|n| n == VALUE_HEAD);
    let specs: Vec<_> = parameter_specs(&config, Head::Value)
        .into_iter()
        .filter(|s| has_head || s.name != VALUE_HEAD)
        .collect();
    let tensors = load_tensors(&**b, dir, &specs, dtype)?;
    Critic::from_pretrained(Rc::clone(b), &config, tensors, rng)
        .map_err(|e| Error::invalid(dir, format!("building the critic: {e}")))
}
