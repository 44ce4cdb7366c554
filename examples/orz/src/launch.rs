//! `orz launch --nproc N -- ARGS`: starts N ranks of this program on this machine the way
//! torchrun does (each with `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`,
//! `MASTER_ADDR`, `MASTER_PORT`), waits for them, and stops every other rank as soon as one
//! fails, so that a failed job never leaves ranks waiting on a collective.

use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How often the launcher looks at its ranks.
const POLL: Duration = Duration::from_millis(50);

/// What became of a job's ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Every rank exited with status 0.
    Succeeded,
    /// Rank `rank` exited with `status` first; the launcher stopped the ranks still running.
    Failed {
        /// The first rank seen failing.
        rank: usize,
        /// How it exited.
        status: String,
        /// The ranks the launcher killed.
        stopped: Vec<usize>,
    },
}

/// A free TCP port on the loopback interface for the rendezvous store (the OS picks it).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `nproc` ranks, rank `r` being `command(r)` with the launcher's variables added, until
/// all exit or one fails (then the others are killed).
pub fn run_ranks(nproc: usize, port: u16, mut command: impl FnMut(usize) -> Command) -> Result<JobOutcome> {
    if nproc == 0 {
        bail!("--nproc must be at least 1");
    }
    let mut children: Vec<Option<Child>> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut cmd = command(rank);
        cmd.env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string());
        match cmd.spawn() {
            Ok(c) => children.push(Some(c)),
            Err(e) => {
                let stopped = stop_all(&mut children);
                return Err(e).with_context(|| format!("starting rank {rank} (stopped ranks {stopped:?})"));
            }
        }
    }
    loop {
        let mut running = 0;
        for rank in 0..nproc {
            let Some(child) = children[rank].as_mut() else { continue };
            match child.try_wait().with_context(|| format!("waiting for rank {rank}"))? {
                Some(status) if status.success() => children[rank] = None,
                Some(status) => {
                    children[rank] = None;
                    let stopped = stop_all(&mut children);
                    return Ok(JobOutcome::Failed { rank, status: describe(status), stopped });
                }
                None => running += 1,
            }
        }
        if running == 0 {
            return Ok(JobOutcome::Succeeded);
        }
        std::thread::sleep(POLL);
    }
}

/// Kills and reaps every rank still running; returns their ranks.
fn stop_all(children: &mut [Option<Child>]) -> Vec<usize> {
    let mut stopped = Vec::new();
    for (rank, slot) in children.iter_mut().enumerate() {
        if let Some(mut c) = slot.take() {
            let _ = c.kill();
            let _ = c.wait();
            stopped.push(rank);
        }
    }
    stopped
}

/// An exit status in words.
fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("{status} (killed by a signal)"),
    }
}

/// `orz launch`: this program with `args`, `nproc` times, on `port` (a free one when `None`).
pub fn launch(nproc: usize, port: Option<u16>, args: &[String]) -> Result<()> {
    let exe = std::env::current_exe().context("finding the orz program")?;
    let port = match port {
        Some(p) => p,
        None => free_port()?,
    };
    eprintln!("orz launch: {nproc} ranks, rendezvous at 127.0.0.1:{port}");
    match run_ranks(nproc, port, |_| {
        let mut c = Command::new(&exe);
        c.args(args);
        c
    })? {
        JobOutcome::Succeeded => Ok(()),
        JobOutcome::Failed { rank, status, stopped } => {
            bail!("rank {rank} failed ({status}); stopped the ranks still running: {stopped:?}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn ranks_see_the_launch_variables_and_all_succeed() {
        let dir = std::env::temp_dir().join(format!("orz-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.display().to_string();
        let outcome = run_ranks(3, 29999, |_| {
            sh(&format!("echo $RANK $WORLD_SIZE $LOCAL_RANK $MASTER_ADDR $MASTER_PORT > {out}/rank$RANK"))
        })
        .unwrap();
        assert_eq!(outcome, JobOutcome::Succeeded);
        for r in 0..3 {
            let line = std::fs::read_to_string(dir.join(format!("rank{r}"))).unwrap();
            assert_eq!(line.trim(), format!("{r} 3 {r} 127.0.0.1 29999"));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_failing_rank_stops_the_others() {
        let start = Instant::now();
        let outcome =
            run_ranks(3, 29998, |r| sh(if r == 1 { "sleep 0.2; exit 3" } else { "sleep 60" })).unwrap();
        assert_eq!(
            outcome,
            JobOutcome::Failed { rank: 1, status: "exit status 3".into(), stopped: vec![0, 2] }
        );
        assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
        assert!(run_ranks(0, 1, |_| sh("true")).is_err());
    }
}
