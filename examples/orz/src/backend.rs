//! `--backend candle|tch|reference` and `--device cpu|cuda:N`: which [`Backend`] a command runs
//! on, chosen at run time; the command itself is written once, generic over the backend
//! ([`BackendJob`]).

use std::fmt;
use std::rc::Rc;
use std::str::FromStr;

use anyhow::{Result, anyhow, bail};
use orz_core::backend::{Backend, DType};
use orz_core::collective::{Collective, LaunchEnv};

/// A backend the program can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// candle (the default; CPU, or CUDA when built with `--features cuda`).
    Candle,
    /// libtorch through tch (built with `--features tch`).
    Tch,
    /// The f64 reference backend (slow; for checking).
    Reference,
}

impl BackendKind {
    /// What the memory plan needs to know about this backend: tch and candle fuse packed
    /// attention (memory linear in the pack), the reference keeps the dense composition in f64.
    pub fn plan(self) -> crate::memory_plan::PlanBackend {
        match self {
            BackendKind::Candle => crate::memory_plan::PlanBackend::CANDLE,
            BackendKind::Tch => crate::memory_plan::PlanBackend::TCH,
            BackendKind::Reference => crate::memory_plan::PlanBackend::REFERENCE,
        }
    }
}

/// Where the tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The host CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<DeviceSpec> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| anyhow!("unknown device `{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl DeviceSpec {
    /// The CUDA ordinal, `None` on the CPU.
    pub fn cuda_ordinal(self) -> Option<usize> {
        match self {
            DeviceSpec::Cpu => None,
            DeviceSpec::Cuda(n) => Some(n),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
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
/// cuda` built with `--features nccl` (NCCL; each rank takes the GPU `cuda:LOCAL_RANK`); anything
/// else is an error naming what is missing.
pub fn run_on<J: BackendJob>(kind: BackendKind, device: DeviceSpec, job: J) -> Result<J::Output> {
    let name = format!("{kind:?}/{device}").to_lowercase();
    if let Some(env) = crate::distributed::launch_env()?.filter(|e| e.world_size > 1) {
        return match (kind, device) {
            (BackendKind::Tch, DeviceSpec::Cpu) => tch_distributed(&env, job, &name),
            (BackendKind::Tch, DeviceSpec::Cuda(_)) => tch_distributed_cuda(&env, job, &name),
            _ => bail!(
                "data-parallel training (rank {} of {}) runs on --backend tch (libtorch's c10d); {kind:?} has no \
                 collectives in this build",
                env.rank,
                env.world_size
            ),
        };
    }
    match (kind, device) {
        (BackendKind::Reference, DeviceSpec::Cpu) => job.run(Rc::new(orz_reference::Reference::new()), &name),
        (BackendKind::Reference, DeviceSpec::Cuda(_)) => bail!("the reference backend runs on the CPU only"),
        (BackendKind::Candle, DeviceSpec::Cpu) => job.run(Rc::new(orz_candle::Candle::cpu()), &name),
        (BackendKind::Candle, DeviceSpec::Cuda(n)) => candle_cuda(n, job, &name),
        (BackendKind::Tch, device) => tch(device, job, &name),
    }
}

#[cfg(feature = "cuda")]
fn candle_cuda<J: BackendJob>(n: usize, job: J, name: &str) -> Result<J::Output> {
    let b = orz_candle::Candle::cuda(n).map_err(|e| anyhow!("--backend candle --device cuda:{n}: {e}"))?;
    job.run(Rc::new(b), name)
}

#[cfg(not(feature = "cuda"))]
fn candle_cuda<J: BackendJob>(n: usize, _job: J, _name: &str) -> Result<J::Output> {
    bail!(
        "--device cuda:{n} with candle needs a build with CUDA: `cargo build --release -p orz --features cuda` \
         (see scripts/build-candle-cuda.sh)"
    )
}

#[cfg(feature = "tch")]
fn tch<J: BackendJob>(device: DeviceSpec, job: J, name: &str) -> Result<J::Output> {
    let b = match device {
        DeviceSpec::Cpu => orz_tch::Tch::cpu(),
        DeviceSpec::Cuda(n) => {
            orz_tch::Tch::cuda(n).map_err(|e| anyhow!("--backend tch --device cuda:{n}: {e}"))?
        }
    };
    job.run(Rc::new(b), name)
}

#[cfg(feature = "c10d")]
fn tch_distributed<J: BackendJob>(env: &LaunchEnv, job: J, name: &str) -> Result<J::Output> {
    let group = crate::distributed::join_tch(env)?;
    let name = format!("{name}, rank {} of {} (gloo)", env.rank, env.world_size);
    job.run_distributed(Rc::new(orz_tch::Tch::cpu()), &name, Rc::new(group))
}

#[cfg(feature = "nccl")]
fn tch_distributed_cuda<J: BackendJob>(env: &LaunchEnv, job: J, name: &str) -> Result<J::Output> {
    let gpu = env.local_rank;
    let b = orz_tch::Tch::cuda(gpu)
        .map_err(|e| anyhow!("rank {} of {}: cuda:{gpu} (its LOCAL_RANK): {e}", env.rank, env.world_size))?;
    let group = crate::distributed::join_tch_nccl(env)?;
    let name = format!("{name}, rank {} of {} on cuda:{gpu} (nccl)", env.rank, env.world_size);
    job.run_distributed(Rc::new(b), &name, Rc::new(group))
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

#[cfg(not(feature = "c10d"))]
fn tch_distributed<J: BackendJob>(env: &LaunchEnv, _job: J, _name: &str) -> Result<J::Output> {
    bail!(
        "rank {} of {}: data-parallel training needs a build with libtorch's c10d: `eval \"$(./scripts/setup-libtorch.sh)\"` \
         then `cargo build --release -p orz --features c10d`",
        env.rank,
        env.world_size
    )
}

#[cfg(not(feature = "tch"))]
fn tch<J: BackendJob>(_device: DeviceSpec, _job: J, _name: &str) -> Result<J::Output> {
    bail!(
        "--backend tch needs a build with libtorch: `eval \"$(./scripts/setup-libtorch.sh)\"` then \
         `cargo run --release -p orz --features tch -- ...`"
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
    fn devices_parse_and_print() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
        assert!("gpu".parse::<DeviceSpec>().unwrap_err().to_string().contains("cpu, cuda or cuda:N"));
        assert!(parse_dtype("f64").is_err());
    }

    #[test]
    fn jobs_run_on_cpu_backends_and_missing_ones_say_how_to_build() {
        assert_eq!(
            run_on(BackendKind::Reference, DeviceSpec::Cpu, Name).unwrap(),
            "reference/cpu [1.0, 2.0]"
        );
        assert_eq!(run_on(BackendKind::Candle, DeviceSpec::Cpu, Name).unwrap(), "candle/cpu [1.0, 2.0]");
        assert!(run_on(BackendKind::Reference, DeviceSpec::Cuda(0), Name).is_err());
        if !cfg!(feature = "cuda") {
            let e = run_on(BackendKind::Candle, DeviceSpec::Cuda(0), Name).unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
        if !cfg!(feature = "tch") {
            let e = run_on(BackendKind::Tch, DeviceSpec::Cpu, Name).unwrap_err().to_string();
            assert!(e.contains("--features tch"), "{e}");
        }
    }
}
