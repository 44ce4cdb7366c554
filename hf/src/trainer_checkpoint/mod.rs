//! Checkpoints of a [`Trainer`] and their exact resume: [`save`] a trainer (both models,
//! both optimizers, the seed generator, the iteration counter, the caller's [`RunState`]) and
//! [`load`] it back onto any backend. The `orz` program checkpoints with it; a program that
//! embeds orz-core can call it the same way.
//!
//! It lives in orz-hf because a checkpoint is Hugging Face model directories (the policy and the
//! critic, loadable by transformers) plus the optimizers' safetensors: the same files and the
//! same errors as the rest of this crate.
//!
//! ```no_run
//! use std::rc::Rc;
//!
//! use orz_core::backend::{Backend, DType};
//! use orz_core::train::Trainer;
//! use orz_hf::trainer_checkpoint::{self, RunState};
//!
//! fn save_and_reload<B: Backend>(b: Rc<B>, trainer: &Trainer<B>) -> orz_hf::Result<Trainer<B>> {
//!     let dir = std::path::Path::new("runs/mine/checkpoint-000010");
//!     let tokenizer = std::fs::read_to_string("base-model/tokenizer.json").ok();
//!     trainer_checkpoint::save(dir, trainer, tokenizer.as_deref(), &RunState::default())?;
//!     let loaded = trainer_checkpoint::load(b, dir, DType::F32)?;
//!     assert_eq!(loaded.trainer.iterations(), trainer.iterations());
//!     Ok(loaded.trainer)
//! }
//! ```
//!
//! # Layout
//!
//! ```text
//! <dir>/
//!   policy/         config.json, model.safetensors (Hugging Face Qwen2ForCausalLM), tokenizer.json
//!   critic/         config.json, model.safetensors (the backbone + `value_head.weight`), tokenizer.json
//!   trainer_state/  trainer_state.json, policy_optimizer.safetensors, critic_optimizer.safetensors
//! ```
//!
//! Weights are saved in the models' own dtype (so a bf16 policy loads in transformers as it
//! trains); the optimizers' f32 masters and AdamW moments, named after the parameters
//! (`master.<param>`, `exp_avg.<param>`, `exp_avg_sq.<param>`), go to `trainer_state/`, with
//! `trainer_state.json` ([`FORMAT_VERSION`], the iteration counter, the seed generator, the
//! optimizers' step counters, the [`TrainConfig`](orz_core::train::TrainConfig) and the caller's
//! [`RunState`]). GRPO runs have no critic: no `critic/` and no critic optimizer.
//!
//! [`save`] writes into a temporary sibling directory `.<name>.tmp-<pid>` and renames it into
//! place only when complete: a reader sees the previous checkpoint or the new one, and a crash
//! mid-save leaves the previous checkpoint intact (the next save removes the leftover). A crash
//! between moving the previous checkpoint aside (`.<name>.old-<pid>`) and renaming the new one
//! leaves no `<name>`; [`load`]'s error then names the previous checkpoint's path.
//!
//! [`load`] rebuilds the trainer exactly: loaded in the dtype it was saved in, the next
//! iterations are bit-identical to those of the uninterrupted run. Loaded in another dtype, the
//! f32 masters (or f32 weights) carry over: an F32 load takes the masters as weights, a bf16
//! load of an F32 checkpoint takes the F32 weights as masters.

mod atomic;
mod optim;
mod sharded_load;
mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, Head, ParamSpec, Policy, Qwen2, parameter_specs};
use orz_core::optimizer::OptimizerState;
use orz_core::rng::Rng;
use orz_core::train::{Trainer, TrainerState};

pub use optim::{EXP_AVG, EXP_AVG_SQ, MASTER};
pub use sharded_load::load_distributed;
pub use state::{FORMAT_VERSION, RunState, check_config, config_differences};

use crate::{Error, Result};
use state::{OptimizerRecord, TrainerStateFile};

/// The policy's subdirectory (a Hugging Face model directory).
pub const POLICY_DIR: &str = "policy";
/// The critic's subdirectory (Hugging Face layout, plus the value head).
pub const CRITIC_DIR: &str = "critic";
/// The subdirectory of the optimizers' tensors and `trainer_state.json`.
pub const STATE_DIR: &str = "trainer_state";
/// The trainer state's JSON file, in [`STATE_DIR`].
pub const STATE_FILE: &str = "trainer_state.json";
/// The tokenizer's file name, in [`POLICY_DIR`] and [`CRITIC_DIR`] (when one was saved).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The policy optimizer's tensors, in [`STATE_DIR`].
pub const POLICY_OPTIMIZER_FILE: &str = "policy_optimizer.safetensors";
/// The critic optimizer's tensors, in [`STATE_DIR`].
pub const CRITIC_OPTIMIZER_FILE: &str = "critic_optimizer.safetensors";
/// Model files are split into shards above this size (Hugging Face's default, 5 GB).
pub const MAX_SHARD_BYTES: u64 = 5_000_000_000;

/// A checkpoint loaded by [`load`].
#[derive(Debug)]
pub struct Loaded<B: Backend> {
    /// The trainer, at the saved iteration with the saved optimizer states and generator.
    pub trainer: Trainer<B>,
    /// The caller's state saved with it.
    pub run: RunState,
}

/// Saves `trainer` (models, optimizers, generator, iteration counter) and `run` to checkpoint
/// directory `dir` (see the [module docs](self) for the layout), atomically: an existing `dir` is
/// replaced only once the new checkpoint is complete. `tokenizer_json`, the text of a
/// `tokenizer.json`, is written next to each model so that they load like any Hugging Face
/// model directory. A data-parallel trainer ([`Trainer::distributed`]) is saved by every rank
/// calling this: its sharded optimizer states are gathered one unit at a time and rank 0
/// writes the same layout as one process would (so the checkpoint resumes at any world size);
/// the call returns on every rank once the checkpoint is complete.
pub fn save<B: Backend>(
    dir: &Path,
    trainer: &Trainer<B>,
    tokenizer_json: Option<&str>,
    run: &RunState,
) -> Result<()> {
    let c = trainer.collective();
    if c.rank() != 0 {
        // Every rank takes part in gathering the sharded weights and optimizer states, in the
        // order rank 0 writes them (`write_checkpoint`); rank 0 alone writes.
        let gathered = trainer
            .gathered_policy()
            .and_then(|policy| {
                drop(policy);
                optim::gather_sharded(trainer.policy().model().backend(), trainer.policy_optimizer())
            })
            .and_then(|()| match (trainer.gathered_critic()?, trainer.critic_optimizer()) {
                (Some(critic), Some(opt)) => {
                    let b = critic.model().backend_rc();
                    drop(critic);
                    optim::gather_sharded(&*b, opt)
                }
                _ => Ok(()),
            });
        gathered.and_then(|()| c.barrier()).map_err(|e| Error::invalid(dir, format!("saving: {e}")))?;
        return Ok(());
    }
    atomic::write_dir_atomic(dir, |tmp| write_checkpoint(tmp, trainer, tokenizer_json, run))?;
    if c.world_size() > 1 {
        c.barrier().map_err(|e| Error::invalid(dir, format!("saving: {e}")))?;
    }
    Ok(())
}

/// Writes the checkpoint's files into the (temporary) directory `dir`.
fn write_checkpoint<B: Backend>(
    dir: &Path,
    trainer: &Trainer<B>,
    tokenizer_json: Option<&str>,
    run: &RunState,
) -> Result<()> {
    let state_dir = dir.join(STATE_DIR);
    std::fs::create_dir_all(&state_dir).map_err(|e| Error::io(&state_dir, "creating", e))?;

    // Sharded weights are gathered one model at a time (every rank takes part, see `save`).
    let gathered =
        trainer.gathered_policy().map_err(|e| Error::invalid(dir, format!("gathering the policy: {e}")))?;
    write_model(&dir.join(POLICY_DIR), gathered.model(), tokenizer_json)?;
    drop(gathered);
    let policy = trainer.policy().model();
    let policy_opt = trainer.policy_optimizer();
    let policy_optimizer = optim::write_optimizer(
        policy.backend(),
        &state_dir.join(POLICY_OPTIMIZER_FILE),
        policy_opt,
        &names(policy),
    )?;
    let critic_opt = trainer.critic_optimizer();
    let gathered =
        trainer.gathered_critic().map_err(|e| Error::invalid(dir, format!("gathering the critic: {e}")))?;
    let (critic_dtype, critic_optimizer) = match (gathered, critic_opt) {
        (Some(gathered), Some(opt)) => {
            write_model(&dir.join(CRITIC_DIR), gathered.model(), tokenizer_json)?;
            drop(gathered);
            let critic = trainer
                .critic()
                .map(Critic::model)
                .ok_or_else(|| Error::invalid(dir, "the critic vanished"))?;
            let path = state_dir.join(CRITIC_OPTIMIZER_FILE);
            (
                Some(critic.dtype()),
                Some(optim::write_optimizer(critic.backend(), &path, opt, &names(critic))?),
            )
        }
        _ => (None, None),
    };
    let state = TrainerStateFile {
        format_version: FORMAT_VERSION,
        iteration: trainer.iterations(),
        rng: trainer.rng().state(),
        policy_dtype: policy.dtype(),
        critic_dtype,
        policy_optimizer,
        critic_optimizer,
        config: trainer.config().clone(),
        run: run.clone(),
    };
    state.write(&state_dir.join(STATE_FILE))?;
    atomic::sync_dir(&state_dir);
    Ok(())
}

/// The Hugging Face names of a model's parameters, in the optimizer's order.
fn names<B: Backend>(model: &Qwen2<B>) -> Vec<String> {
    parameter_specs(model.config(), model.head()).into_iter().map(|s| s.name).collect()
}

/// Writes one model directory: config, weights in the model's dtype, tokenizer if given.
fn write_model<B: Backend>(dir: &Path, model: &Qwen2<B>, tokenizer_json: Option<&str>) -> Result<()> {
    let named = model.named_tensors();
    crate::save_model(
        model.backend(),
        dir,
        model.config(),
        model.head(),
        &named,
        model.dtype(),
        Some(MAX_SHARD_BYTES),
    )?;
    if let Some(json) = tokenizer_json {
        let path = dir.join(TOKENIZER_FILE);
        std::fs::write(&path, json).map_err(|e| Error::io(&path, "writing", e))?;
    }
    Ok(())
}

/// Loads checkpoint `dir` onto `backend` with parameters of `dtype`: the trainer exactly as
/// saved (weights, optimizer moments, masters and step counts, generator, iteration counter),
/// and the caller's [`RunState`] (the tokenizer, if one was saved, is
/// `policy_dir(dir)/`[`TOKENIZER_FILE`]). Errors name the file and the tensor or field at
/// fault: a missing directory or file, a missing or extra tensor, a shape mismatch, a
/// `trainer_state.json` of another format version.
pub fn load<B: Backend>(backend: Rc<B>, dir: &Path, dtype: DType) -> Result<Loaded<B>> {
    let state = read_state(dir)?;
    let state_dir = dir.join(STATE_DIR);
    let (policy_tensors, policy_optimizer) =
        load_model(&backend, dir, Head::Lm, &state.policy_optimizer, dtype)?;
    let config = crate::read_config(dir.join(POLICY_DIR))?;
    let policy = Policy::from_tensors(Rc::clone(&backend), &config, policy_tensors)
        .map_err(|e| Error::invalid(dir.join(POLICY_DIR), format!("building the policy: {e}")))?;
    let (critic, critic_optimizer) = match &state.critic_optimizer {
        Some(record) => {
            let (tensors, opt) = load_model(&backend, dir, Head::Value, record, dtype)?;
            let config = crate::read_config(dir.join(CRITIC_DIR))?;
            let critic = Critic::from_tensors(Rc::clone(&backend), &config, tensors)
                .map_err(|e| Error::invalid(dir.join(CRITIC_DIR), format!("building the critic: {e}")))?;
            (Some(critic), Some(opt))
        }
        None => (None, None),
    };
    let rng = Rng::from_state(state.rng)
        .map_err(|e| Error::invalid(state_dir.join(STATE_FILE), format!("field `rng`: {e}")))?;
    let trainer_state = TrainerState { policy_optimizer, critic_optimizer, rng, iteration: state.iteration };
    let trainer = Trainer::restore(state.config, policy, critic, &trainer_state)
        .map_err(|e| Error::invalid(dir, format!("restoring the trainer: {e}")))?;
    Ok(Loaded { trainer, run: state.run })
}

/// The `trainer_state.json` of checkpoint `dir`; a missing directory is an error that names
/// the previous checkpoint when a save was interrupted while replacing it.
fn read_state(dir: &Path) -> Result<TrainerStateFile> {
    if !dir.is_dir() {
        let message = match atomic::interrupted_swap(dir) {
            Some(old) => format!(
                "no such checkpoint directory; a save was interrupted while replacing it, and the \
                 previous checkpoint is at {} (rename it back)",
                old.display()
            ),
            None => "no such checkpoint directory".to_string(),
        };
        return Err(Error::invalid(dir, message));
    }
    TrainerStateFile::read(&dir.join(STATE_DIR).join(STATE_FILE))
}

/// The named tensors (in `dtype`) and the optimizer state of the model with `head` in
/// checkpoint `dir`, the f32 masters reconciled with `dtype` (see the [module docs](self)).
fn load_model<B: Backend>(
    backend: &Rc<B>,
    dir: &Path,
    head: Head,
    record: &OptimizerRecord,
    dtype: DType,
) -> Result<(BTreeMap<String, B::Tensor>, OptimizerState)> {
    let model_dir = dir.join(if head == Head::Lm { POLICY_DIR } else { CRITIC_DIR });
    let (config, mut tensors) = crate::load_model(backend.as_ref(), &model_dir, head, dtype)?;
    let specs = parameter_specs(&config, head);
    let mut opt = optim::read_optimizer(&dir.join(STATE_DIR), record, &specs)?;
    reconcile_masters(backend.as_ref(), &model_dir, &specs, &mut tensors, &mut opt, dtype)?;
    Ok((tensors, opt))
}

/// Makes the masters of `opt` fit parameters of `dtype`: none for F32 (a saved master becomes
/// the weight), one for every parameter otherwise (a missing one is read from the saved F32
/// weights in `model_dir`).
fn reconcile_masters<B: Backend>(
    b: &B,
    model_dir: &Path,
    specs: &[ParamSpec],
    tensors: &mut BTreeMap<String, B::Tensor>,
    opt: &mut OptimizerState,
    dtype: DType,
) -> Result<()> {
    let mut checkpoint: Option<crate::Checkpoint> = None;
    for (spec, param) in specs.iter().zip(&mut opt.params) {
        match (dtype, param.master.take()) {
            (DType::F32, Some(master)) => {
                let t = b.tensor_f32(&master, &spec.shape, DType::F32)?;
                tensors.insert(spec.name.clone(), t);
            }
            (DType::F32, None) => {}
            (_, Some(master)) => param.master = Some(master),
            (_, None) => {
                let ck = match &mut checkpoint {
                    Some(ck) => ck,
                    None => checkpoint.insert(crate::Checkpoint::open(model_dir)?),
                };
                param.master = Some(ck.read_f32(&spec.name)?.1);
            }
        }
    }
    Ok(())
}

/// The policy directory of checkpoint `dir` (a Hugging Face model directory).
pub fn policy_dir(dir: &Path) -> PathBuf {
    dir.join(POLICY_DIR)
}

#[cfg(test)]
mod tests;
