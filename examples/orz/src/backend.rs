//! `--backend candle|tch|reference` and `--device cpu|cuda:N`: which [`Backend`] a command runs
//! on, chosen at run time; the command itself is written once, generic over the backend
//! ([`BackendJob`]).

use std::rc::Rc;

use anyhow::{Result, bail};
use orz_backends::{BackendVisitor, Opened};
use orz_core::backend::{Backend, DType};
use orz_core::collective::{Collective, LaunchEnv};

#[cfg(feature = "c10d")]
use orz_backends::orz_tch;
pub use orz_backends::{BackendKind, DeviceSpec};

/// `--backend`'s parser: the registry's names as clap's possible values (each with its entry's
/// description), parsed into a [`BackendKind`].
pub fn backend_parser() -> impl clap::builder::TypedValueParser<Value = BackendKind> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let names = BackendKind::ALL.iter().map(|k| PossibleValue::new(k.name()).help(k.entry().about));
    PossibleValuesParser::new(names).try_map(|s| s.parse::<BackendKind>())
}

/// Parses `f32`, `bf16` or `f16` (the compute dtype of the models).
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        _ => bail!("unknown dtype `{s}`: expected f32, bf16 or f16"),
    }
}

/// Work written once for any backend; [`run_on`] picks the backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs the job on `backend`; `name` says which backend and device, for logs.
    fn run<B: Backend + 'static>(self, backend: Rc<B>, name: &str) -> Result<Self::Output>;
    /// Runs the job as one rank of a data-parallel job over `collective` (launched by torchrun,
    /// Slurm or `orz launch`). Default: refused, for the commands that run in one process.
    fn run_distributed<B: Backend + 'static>(
        self,
        _backend: Rc<B>,
        _name: &str,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<Self::Output>
    where
        Self: Sized,
    {
        bail!(
            "this command runs in one process, but the launcher started {} ranks (RANK/WORLD_SIZE or \
             SLURM_PROCID/SLURM_NTASKS are set); only `orz train` runs data-parallel",
            collective.world_size()
        )
    }
}

/// Runs `job` on the chosen backend and device; an error names a backend that was not compiled
/// in or a device it cannot use, before any work starts. When a launcher started several ranks
/// ([`crate::distributed::launch_env`]), the job joins their process group and runs as one
/// rank: on `--backend tch --device cpu` built with `--features c10d` (Gloo), or `--device
/// cuda` built with `--features nccl` (NCCL; each rank takes the GPU `cuda:LOCAL_RANK`), or on
/// `--backend candle --device cuda` built with `--features candle-nccl` (NCCL through cudarc,
/// `cuda:LOCAL_RANK` too); anything else is an error naming what is missing.
pub fn run_on<J: BackendJob>(kind: BackendKind, device: DeviceSpec, job: J) -> Result<J::Output> {
    if let Some(env) = crate::distributed::launch_env()?.filter(|e| e.world_size > 1) {
        let name = Opened { kind, device }.to_string();
        return match (kind, device) {
            (BackendKind::Tch, DeviceSpec::Cpu) => tch_distributed(&env, job, &name),
            (BackendKind::Tch, DeviceSpec::Cuda(_)) => tch_distributed_cuda(&env, job, &name),
            (BackendKind::Candle, DeviceSpec::Cuda(_)) => candle_distributed_cuda(&env, job, &name),
            (BackendKind::Candle, DeviceSpec::Cpu) => bail!(
                "rank {} of {}: candle has no CPU collectives; use --backend tch over Gloo (built with \
                 --features c10d), or --device cuda with a build of --features candle-nccl",
                env.rank,
                env.world_size
            ),
            _ => bail!(
                "data-parallel training (rank {} of {}) runs on --backend tch (libtorch's c10d); {kind:?} has no \
                 collectives in this build",
                env.rank,
                env.world_size
            ),
        };
    }
    orz_backends::with_backend(kind, device, Run(job))?
}

/// A [`BackendJob`] as the registry's visitor: runs the job on the backend it opens, named
/// `candle/cpu`, `tch/cuda:1`, ...
struct Run<J>(J);

impl<J: BackendJob> BackendVisitor for Run<J> {
    type Output = Result<J::Output>;

    fn visit<B: Backend + 'static>(self, backend: B, opened: Opened) -> Result<J::Output> {
        self.0.run(Rc::new(backend), &opened.to_string())
    }
}

#[cfg(feature = "c10d")]
fn tch_distributed<J: BackendJob>(env: &LaunchEnv, job: J, name: &str) -> Result<J::Output> {
    let group = crate::distributed::join_tch(env)?;
    let name = format!("{name}, rank {} of {} (gloo)", env.rank, env.world_size);
    job.run_distributed(Rc::new(orz_tch::Tch::cpu()), &name, Rc::new(group))
}

/// Runs `job` as one rank on its GPU `cuda:LOCAL_RANK`: the backend from `open`, the rank's NCCL
/// group from `join`.
#[cfg(any(feature = "nccl", feature = "candle-nccl"))]
fn gpu_rank<J: BackendJob, B: Backend + 'static, C: Collective<B> + 'static>(
    env: &LaunchEnv,
    job: J,
    name: &str,
    open: impl FnOnce(usize) -> orz_core::Result<B>,
    join: impl FnOnce(&B) -> Result<C>,
) -> Result<J::Output> {
    let gpu = env.local_rank;
    let b = open(gpu).map_err(|e| {
        anyhow::anyhow!("rank {} of {}: cuda:{gpu} (its LOCAL_RANK): {e}", env.rank, env.world_size)
    })?;
    let group = join(&b)?;
    let name = format!("{name}, rank {} of {} on cuda:{gpu} (nccl)", env.rank, env.world_size);
    job.run_distributed(Rc::new(b), &name, Rc::new(group))
}

#[cfg(feature = "nccl")]
fn tch_distributed_cuda<J: BackendJob>(env: &LaunchEnv, job: J, name: &str) -> Result<J::Output> {
    gpu_rank(env, job, name, orz_tch::Tch::cuda, |_| crate::distributed::join_tch_nccl(env))
}

#[cfg(not(feature = "nccl"))]
fn tch_distributed_cuda<J: BackendJob>(env: &LaunchEnv, _job: J, _name: &str) -> Result<J::Output> {
    bail!(
        "rank {} of {}: data-parallel training on CUDA needs NCCL: `eval \"$(./scripts/setup-libtorch.sh)\"`, \
         `eval \"$(./scripts/setup-nccl.sh)\"`, then `cargo build --release -p orz --features nccl` \
         (or run the ranks with --device cpu over Gloo)",
        env.rank,
        env.world_size
    )
}

#[cfg(feature = "candle-nccl")]
fn candle_distributed_cuda<J: BackendJob>(env: &LaunchEnv, job: J, name: &str) -> Result<J::Output> {
    gpu_rank(env, job, name, orz_candle::Candle::cuda, |b| crate::distributed::join_candle_nccl(env, b))
}

#[cfg(not(feature = "candle-nccl"))]
fn candle_distributed_cuda<J: BackendJob>(env: &LaunchEnv, _job: J, _name: &str) -> Result<J::Output> {
    bail!(
        "rank {} of {}: data-parallel candle on CUDA needs a build with NCCL: `./scripts/build-candle-cuda.sh --nccl` \
         (CUDA compiler and NCCL from PyPI) builds `orz --features candle-nccl` (or run --backend tch)",
        env.rank,
        env.world_size
    )
}

#[cfg(not(feature = "c10d"))]
fn tch_distributed<J: BackendJob>(env: &LaunchEnv, _job: J, _name: &str) -> Result<J::Output> {
    bail!(
        "rank {} of {}: data-parallel training needs a build with libtorch's c10d: `eval \"$(./scripts/setup-libtorch.sh)\"` \
         then `cargo build --release -p orz --features c10d`",
        env.rank,
        env.world_size
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Name;
    impl BackendJob for Name {
        type Output = String;
        fn run<B: Backend + 'static>(self, b: Rc<B>, name: &str) -> Result<String> {
            let t = b.tensor_f64(&[1.0, 2.0], &[2], DType::F32)?;
            Ok(format!("{name} {:?}", b.to_host_f64(&t)?))
        }
    }

    #[test]
    fn dtypes_parse() {
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert!(parse_dtype("f64").unwrap_err().to_string().contains("f32, bf16 or f16"));
    }

    #[test]
    fn jobs_run_on_cpu_backends_and_missing_ones_say_how_to_build() {
        assert_eq!(
            run_on(BackendKind::Reference, DeviceSpec::Cpu, Name).unwrap(),
            "reference/cpu [1.0, 2.0]"
        );
        assert_eq!(run_on(BackendKind::Candle, DeviceSpec::Cpu, Name).unwrap(), "candle/cpu [1.0, 2.0]");
        assert!(run_on(BackendKind::Reference, DeviceSpec::Cuda(0), Name).is_err());
        if !cfg!(feature = "candle-cuda") {
            let e = run_on(BackendKind::Candle, DeviceSpec::Cuda(0), Name).unwrap_err().to_string();
            assert!(e.contains("--features candle-cuda"), "{e}");
        }
        if !cfg!(feature = "tch") {
            let e = run_on(BackendKind::Tch, DeviceSpec::Cpu, Name).unwrap_err().to_string();
            assert!(e.contains("--features tch"), "{e}");
        }
    }
}
