//! [`LaunchEnv`]: this process's place in a job, read the way cluster launchers publish it:
//! torchrun (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`, and
//! `TORCHELASTIC_USE_AGENT_STORE` when its agent serves the store) or Slurm's `srun`
//! (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, with `MASTER_ADDR` and `MASTER_PORT` set by
//! the batch script). Core reads no environment itself: the caller passes a lookup
//! (`|k| std::env::var(k).ok()`).

use alloc::format;
use alloc::string::{String, ToString};

use crate::{Error, Result};

/// torchrun's default rendezvous port (`MASTER_PORT` when unset under Slurm).
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// Which launcher described the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// torchrun, `torch.distributed.launch`, or `orz launch` (the same variables).
    Torchrun,
    /// Slurm's `srun`.
    Slurm,
}

/// One rank's view of the job it was launched into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// Who launched it.
    pub launcher: Launcher,
    /// This process's global rank, in `0..world_size`.
    pub rank: usize,
    /// The number of ranks in the job.
    pub world_size: usize,
    /// This process's rank on its machine (its GPU ordinal).
    pub local_rank: usize,
    /// The rendezvous store's host (rank 0's machine).
    pub master_addr: String,
    /// The rendezvous store's port.
    pub master_port: u16,
    /// Whether the launcher's agent already serves the store (torchrun's elastic agent), so
    /// rank 0 joins it rather than serving it.
    pub agent_store: bool,
}

impl LaunchEnv {
    /// The job described by the variables `get` returns, or `None` when no launcher set them
    /// (a plain single-process run). Errors name the variable that is missing or malformed.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<LaunchEnv>> {
        let (launcher, rank_var, world_var, local_var) =
            if get("RANK").is_some() || get("WORLD_SIZE").is_some() {
                (Launcher::Torchrun, "RANK", "WORLD_SIZE", "LOCAL_RANK")
            } else if get("SLURM_PROCID").is_some() && get("SLURM_NTASKS").is_some() {
                (Launcher::Slurm, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
            } else {
                return Ok(None);
            };
        let number = |var: &str, default: Option<usize>| -> Result<usize> {
            match (get(var), default) {
                (Some(v), _) => v.trim().parse().map_err(|_| {
                    Error::invalid(
                        "launch environment",
                        format!("`{var}` = {v:?} is not a non-negative integer"),
                    )
                }),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(Error::invalid(
                    "launch environment",
                    format!("`{var}` is not set (launched by {launcher:?})"),
                )),
            }
        };
        let rank = number(rank_var, None)?;
        let world_size = number(world_var, None)?;
        let local_rank = number(local_var, Some(0))?;
        if world_size == 0 || rank >= world_size {
            return Err(Error::invalid(
                "launch environment",
                format!("`{rank_var}` = {rank} is not a rank of `{world_var}` = {world_size}"),
            ));
        }
        let master_addr = match (get("MASTER_ADDR"), world_size) {
            (Some(a), _) if !a.trim().is_empty() => a.trim().to_string(),
            (_, 1) => "127.0.0.1".to_string(),
            _ => {
                return Err(Error::invalid(
                    "launch environment",
                    format!(
                        "`MASTER_ADDR` is not set: a job of {world_size} ranks needs rank 0's address (under \
                         Slurm, export it in the batch script)"
                    ),
                ));
            }
        };
        let master_port = match get("MASTER_PORT") {
            None => DEFAULT_MASTER_PORT,
            Some(p) => p.trim().parse().map_err(|_| {
                Error::invalid("launch environment", format!("`MASTER_PORT` = {p:?} is not a port number"))
            })?,
        };
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Some(LaunchEnv { launcher, rank, world_size, local_rank, master_addr, master_port, agent_store }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn torchrun_and_slurm_variables_are_read() {
        let t = env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "3"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29400"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ]);
        let e = LaunchEnv::from_lookup(t).unwrap().unwrap();
        assert_eq!((e.launcher, e.rank, e.world_size, e.local_rank), (Launcher::Torchrun, 3, 8, 3));
        assert_eq!((e.master_addr.as_str(), e.master_port, e.agent_store), ("10.0.0.1", 29400, true));
        let s = env(&[
            ("SLURM_PROCID", "9"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("MASTER_ADDR", "n1"),
        ]);
        let e = LaunchEnv::from_lookup(s).unwrap().unwrap();
        assert_eq!((e.launcher, e.rank, e.world_size, e.local_rank), (Launcher::Slurm, 9, 16, 1));
        assert_eq!((e.master_port, e.agent_store), (DEFAULT_MASTER_PORT, false));
        assert_eq!(LaunchEnv::from_lookup(env(&[("HOME", "/root")])).unwrap(), None);
    }

    #[test]
    fn bad_variables_are_named() {
        for (pairs, want) in [
            (&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "a")][..], "`RANK` = 2 is not a rank"),
            (&[("RANK", "x"), ("WORLD_SIZE", "2")][..], "`RANK` = \"x\""),
            (&[("WORLD_SIZE", "2")][..], "`RANK` is not set"),
            (&[("RANK", "0"), ("WORLD_SIZE", "2")][..], "`MASTER_ADDR` is not set"),
            (
                &[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "99999")][..],
                "MASTER_PORT",
            ),
        ] {
            let err = LaunchEnv::from_lookup(env(pairs)).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
