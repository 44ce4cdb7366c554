//! Joining a data-parallel job: this process's place in it ([`launch_env`], read from the
//! launcher's environment: torchrun, Slurm or `orz launch`) and its process group
//! (`join_tch`, libtorch's c10d with Gloo, built with `--features c10d`).
//!
//! Environment knobs: `ORZ_COLLECTIVE_TIMEOUT` (seconds every collective waits at most before
//! failing with an error naming itself and the rank; default 1800, torch's default, long enough
//! for rank 0's evals and checkpoints), `ORZ_GLOO_HOST` (the address other ranks reach this one
//! at; default 127.0.0.1 when `MASTER_ADDR` is local, else this machine's hostname),
//! `ORZ_NCCL_PORT` (the port where rank 0 hands candle's ranks NCCL's unique id, built with
//! `--features candle-nccl`; default `MASTER_PORT`, or `MASTER_PORT + 1` when torchrun's agent
//! already serves its store on `MASTER_PORT`).

use std::time::Duration;

use anyhow::{Context, Result};
#[cfg(feature = "c10d")]
use orz_backends::orz_tch;
use orz_core::collective::LaunchEnv;

/// Seconds a collective waits by default (torch.distributed's default timeout).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 1800;

/// This process's place in a launched job, or `None` when no launcher set the variables.
pub fn launch_env() -> Result<Option<LaunchEnv>> {
    Ok(LaunchEnv::from_lookup(|k| std::env::var(k).ok())?)
}

/// The collectives' timeout (`ORZ_COLLECTIVE_TIMEOUT` seconds, or the default).
pub fn timeout() -> Result<Duration> {
    match std::env::var("ORZ_COLLECTIVE_TIMEOUT") {
        Ok(s) => {
            let secs: f64 = s.trim().parse().with_context(|| format!("ORZ_COLLECTIVE_TIMEOUT = {s:?}"))?;
            anyhow::ensure!(
                secs > 0.0 && secs.is_finite(),
                "ORZ_COLLECTIVE_TIMEOUT = {s:?} is not a positive number"
            );
            Ok(Duration::from_secs_f64(secs))
        }
        Err(_) => Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECONDS)),
    }
}

/// The address Gloo binds to (see the [module docs](self)); empty: the hostname's address.
pub fn gloo_host(env: &LaunchEnv) -> String {
    if let Ok(h) = std::env::var("ORZ_GLOO_HOST") {
        return h;
    }
    match env.master_addr.as_str() {
        "127.0.0.1" | "localhost" | "::1" => "127.0.0.1".to_string(),
        _ => String::new(),
    }
}

/// Joins the job's Gloo process group over libtorch's c10d (rank 0 serves the TCPStore at
/// `MASTER_ADDR:MASTER_PORT` unless torchrun's agent does).
#[cfg(feature = "c10d")]
pub fn join_tch(env: &LaunchEnv) -> Result<orz_tch::c10d::ProcessGroup> {
    join_tch_with(env, orz_tch::c10d::ProcessGroup::new)
}

/// [`join_tch`] with NCCL for the rank's CUDA tensors besides Gloo for host values.
#[cfg(feature = "nccl")]
pub fn join_tch_nccl(env: &LaunchEnv) -> Result<orz_tch::c10d::ProcessGroup> {
    join_tch_with(env, orz_tch::c10d::ProcessGroup::new_nccl)
}

/// Joins the job's TCPStore through `create` (a [`orz_tch::c10d::ProcessGroup`] constructor).
#[cfg(feature = "c10d")]
fn join_tch_with(
    env: &LaunchEnv,
    create: impl FnOnce(
        &orz_tch::c10d::Rendezvous,
        &str,
        usize,
        usize,
        std::time::Duration,
    ) -> orz_core::Result<orz_tch::c10d::ProcessGroup>,
) -> Result<orz_tch::c10d::ProcessGroup> {
    use orz_tch::c10d::Rendezvous;
    let store =
        Rendezvous::Tcp { host: env.master_addr.clone(), port: env.master_port, attach: env.agent_store };
    create(&store, &gloo_host(env), env.rank, env.world_size, timeout()?).with_context(|| {
        format!(
            "rank {} of {} joining the job at {}:{}",
            env.rank, env.world_size, env.master_addr, env.master_port
        )
    })
}

/// The port of candle's NCCL rendezvous (see the [module docs](self)), given `ORZ_NCCL_PORT`'s
/// value if it is set.
pub fn nccl_port(env: &LaunchEnv, var: Option<String>) -> Result<u16> {
    match var {
        Some(p) => p.trim().parse().with_context(|| format!("ORZ_NCCL_PORT = {p:?} is not a port number")),
        None if env.agent_store => env
            .master_port
            .checked_add(1)
            .with_context(|| format!("MASTER_PORT {} + 1 is not a port; set ORZ_NCCL_PORT", env.master_port)),
        None => Ok(env.master_port),
    }
}

/// Joins the job's NCCL group for candle on `backend`'s CUDA device (rank 0 hands out NCCL's
/// unique id at `MASTER_ADDR:`[`nccl_port`]).
#[cfg(feature = "candle-nccl")]
pub fn join_candle_nccl(
    env: &LaunchEnv,
    backend: &orz_candle::Candle,
) -> Result<orz_candle::nccl::NcclGroup> {
    let rendezvous = orz_candle::rendezvous::TcpRendezvous {
        host: env.master_addr.clone(),
        port: nccl_port(env, std::env::var("ORZ_NCCL_PORT").ok())?,
        timeout: timeout()?,
    };
    orz_candle::nccl::NcclGroup::join(backend, &rendezvous, env.rank, env.world_size).with_context(|| {
        format!(
            "rank {} of {} joining the NCCL group at {}:{}",
            env.rank, env.world_size, rendezvous.host, rendezvous.port
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nccl_port_is_master_port_unless_an_agent_holds_it() {
        let mut env = LaunchEnv::from_lookup(|k| match k {
            "RANK" => Some("1".into()),
            "WORLD_SIZE" => Some("2".into()),
            "MASTER_ADDR" => Some("10.0.0.1".into()),
            "MASTER_PORT" => Some("29400".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(nccl_port(&env, None).unwrap(), 29400);
        assert_eq!(nccl_port(&env, Some("31000".into())).unwrap(), 31000);
        assert!(nccl_port(&env, Some("x".into())).unwrap_err().to_string().contains("ORZ_NCCL_PORT"));
        env.agent_store = true;
        assert_eq!(nccl_port(&env, None).unwrap(), 29401);
    }
}
