//! [`load_distributed`]: a checkpoint loaded as one rank of a data-parallel job, each rank
//! reading only its slices of the optimizer states, one sharding unit at a time.
//!
//! [`load`](super::load) builds the whole trainer (both optimizers' f32 masters and moments,
//! 12 bytes per parameter: 176 GB for ORZ-7B's two models) on every rank before
//! [`Trainer::distributed`] slices it. This loader never does: the weights are read whole (in
//! the compute dtype, and released at once when they are sharded), the sharded optimizers are
//! built straight from them ([`Trainer::new_distributed`]), and each unit's saved state is read
//! from the optimizer file, sliced ([`ShardedOptimizer::load_unit`]) and dropped before the
//! next unit's. The masters are reconciled with the dtype as [`load`](super::load) does.

use std::path::Path;
use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::collective::Collective;
use orz_core::model::{Critic, Head, Policy, parameter_specs};
use orz_core::rng::Rng;
use orz_core::shard::ShardedOptimizer;
use orz_core::train::{ModelOptimizer, Trainer};

use super::state::{OptimizerRecord, TrainerStateFile};
use super::{CRITIC_DIR, Loaded, POLICY_DIR, STATE_DIR, STATE_FILE, optim};
use crate::{Error, Result};

/// Loads checkpoint `dir` (any world size wrote it) as this rank of a data-parallel job over
/// `collective`, with parameters of `dtype`: the trainer [`load`](super::load) followed by
/// [`Trainer::distributed`] would give, without any rank holding a whole optimizer state (each
/// reads its slices one sharding unit at a time). Every rank must call it. Errors as
/// [`load`](super::load)'s. As after `load`, a KL run's trainer has no reference model until
/// [`Trainer::with_reference`] gives it the run's initial policy.
pub fn load_distributed<B: Backend>(
    backend: Rc<B>,
    dir: &Path,
    dtype: DType,
    collective: Rc<dyn Collective<B>>,
) -> Result<Loaded<B>> {
    if collective.world_size() == 1 {
        let loaded = super::load(backend, dir, dtype)?;
        let trainer =
            loaded.trainer.distributed(collective).map_err(|e| Error::invalid(dir, e.to_string()))?;
        return Ok(Loaded { trainer, run: loaded.run });
    }
    let state = super::read_state(dir)?;
    let b = &*backend;
    let (config, tensors) = crate::load_model(b, dir.join(POLICY_DIR), Head::Lm, dtype)?;
    let policy = Policy::from_tensors(Rc::clone(&backend), &config, tensors)
        .map_err(|e| Error::invalid(dir.join(POLICY_DIR), format!("building the policy: {e}")))?;
    let critic = match &state.critic_optimizer {
        Some(_) => {
            let (config, tensors) = crate::load_model(b, dir.join(CRITIC_DIR), Head::Value, dtype)?;
            Some(
                Critic::from_tensors(Rc::clone(&backend), &config, tensors)
                    .map_err(|e| Error::invalid(dir.join(CRITIC_DIR), format!("building the critic: {e}")))?,
            )
        }
        None => None,
    };
    let state_path = dir.join(STATE_DIR).join(STATE_FILE);
    let rng =
        Rng::from_state(state.rng).map_err(|e| Error::invalid(&state_path, format!("field `rng`: {e}")))?;
    let TrainerStateFile { config: train, policy_optimizer, critic_optimizer, iteration, run, .. } = state;
    // The checkpoint's policy is not the run's reference model: none is built here (a KL run
    // hands the initial policy to `Trainer::with_reference`, as after `load`).
    let mut trainer = Trainer::new_distributed_restored(train, policy, critic, rng, collective)
        .map_err(|e| Error::invalid(dir, format!("building the trainer: {e}")))?;
    load_slices(b, dir, Head::Lm, &policy_optimizer, dtype, trainer.policy_optimizer_mut())?;
    if let (Some(record), Some(opt)) = (&critic_optimizer, trainer.critic_optimizer_mut()) {
        load_slices(b, dir, Head::Value, record, dtype, opt)?;
    }
    trainer.set_iterations(iteration);
    Ok(Loaded { trainer, run })
}

/// Reads the saved optimizer state of the model with `head` one unit at a time into this
/// rank's slices of `opt`.
fn load_slices<B: Backend>(
    b: &B,
    dir: &Path,
    head: Head,
    record: &OptimizerRecord,
    dtype: DType,
    opt: &mut ModelOptimizer<B>,
) -> Result<()> {
    let model_dir = dir.join(if head == Head::Lm { POLICY_DIR } else { CRITIC_DIR });
    let opt: &mut ShardedOptimizer<B> = match opt {
        ModelOptimizer::Sharded(o) => o,
        ModelOptimizer::Local(_) => {
            return Err(Error::invalid(dir, "the trainer's optimizer is not sharded"));
        }
    };
    let config = crate::read_config(&model_dir)?;
    let specs = parameter_specs(&config, head);
    let state_dir = dir.join(STATE_DIR);
    let mut file = optim::open_optimizer(&state_dir, record, &specs)?;
    let path = state_dir.join(&record.file);
    // A bf16 load of an F32 checkpoint (no saved masters) takes the F32 weights as masters.
    let mut weights: Option<crate::Checkpoint> = None;
    for (u, range) in opt.units().into_iter().enumerate() {
        let mut saved = Vec::with_capacity(range.len());
        for spec in &specs[range] {
            let mut param = optim::read_param_state(&mut file, record, spec)?;
            if param.master.is_none() && dtype != DType::F32 {
                let ck = match &mut weights {
                    Some(ck) => ck,
                    None => weights.insert(crate::Checkpoint::open(&model_dir)?),
                };
                param.master = Some(ck.read_f32(&spec.name)?.1);
            }
            saved.push(param);
        }
        opt.load_unit(b, u, &saved).map_err(|e| Error::invalid(&path, format!("loading unit {u}: {e}")))?;
    }
    optim::check_no_extra(&file, record, &specs)?;
    opt.finish_loading(b, record.steps).map_err(|e| Error::invalid(&path, e.to_string()))
}
