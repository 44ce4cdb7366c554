//! Collective communication between the ranks of a data-parallel job: the [`Collective`]
//! interface the sharded optimizer ([`crate::shard`]) is written against, beside [`Backend`]
//! rather than inside it (a backend computes, a collective moves data between processes), and
//! [`Single`], the world of one process, which keeps the single-device path unchanged.
//!
//! Engines implement it over existing transports: orz-tch over libtorch's c10d process groups
//! (Gloo on CPU tensors). Semantics follow `torch.distributed`:
//!
//! - every rank calls the same collectives in the same order with tensors of the same shape
//!   and dtype; a rank that dies or hangs makes the others fail with [`Error::Collective`]
//!   within the engine's timeout, naming the collective and the reporting rank;
//! - [`Collective::reduce_scatter`] takes a 1-D tensor of `world · n` elements and gives this
//!   rank's `n`-element slice `[rank · n, (rank + 1) · n)` of the reduction;
//!   [`Collective::all_gather`] is its inverse (every rank's 1-D `n` elements, in rank order);
//! - results are new tensors (the inputs are never modified) and record no gradient;
//! - [`ReduceOp::Avg`] divides the sum by the world size (`torch.distributed.ReduceOp.AVG`);
//! - the host variants carry f64 statistics (token counts, sums for whitening, metrics)
//!   exactly, whatever dtypes the backend computes in.

pub mod launch;

use alloc::format;
use alloc::vec::Vec;

pub use launch::{LaunchEnv, Launcher};

use crate::backend::Backend;
use crate::{Error, Result};

/// How [`Collective::all_reduce`] and [`Collective::reduce_scatter`] combine the ranks' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum over the ranks.
    Sum,
    /// The element-wise maximum over the ranks.
    Max,
    /// The sum divided by the world size.
    Avg,
}

/// The collective operations of a group of `world_size()` processes, on one backend's tensors
/// (see the [module docs](self) for the contract every engine follows).
pub trait Collective<B: Backend>: core::fmt::Debug {
    /// This process's rank, in `0..world_size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world_size(&self) -> usize;
    /// The engine's name for reports, e.g. `"single"`, `"gloo"`.
    fn engine(&self) -> &'static str;
    /// The reduction of `t` over the ranks (any shape; every rank gets the result).
    fn all_reduce(&self, b: &B, t: &B::Tensor, op: ReduceOp) -> Result<B::Tensor>;
    /// This rank's slice of the reduction of the 1-D tensor `t` (`world · n` elements): `n`
    /// elements, those at `[rank · n, (rank + 1) · n)`.
    fn reduce_scatter(&self, b: &B, t: &B::Tensor, op: ReduceOp) -> Result<B::Tensor>;
    /// Every rank's 1-D tensor `t` (`n` elements each), concatenated in rank order.
    fn all_gather(&self, b: &B, t: &B::Tensor) -> Result<B::Tensor>;
    /// Rank `root`'s `t` (every rank passes a tensor of the same shape and dtype).
    fn broadcast(&self, b: &B, t: &B::Tensor, root: usize) -> Result<B::Tensor>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// The reduction of host values over the ranks, in f64 (statistics, counts, metrics).
    fn all_reduce_host(&self, values: &[f64], op: ReduceOp) -> Result<Vec<f64>>;
    /// Every rank's host values (the same count on every rank), concatenated in rank order.
    fn all_gather_host(&self, values: &[f64]) -> Result<Vec<f64>>;
    /// Every rank's bytes (any length per rank), in rank order: how ranks exchange records
    /// such as their completions ([`crate::train::data_parallel`]).
    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// The error a collective reports: names the collective, this rank and the world size.
    fn error(&self, op: &'static str, message: &str) -> Error {
        Error::Collective { op, rank: self.rank(), world: self.world_size(), message: message.into() }
    }
}

/// Checks the input of a [`Collective::reduce_scatter`]: a 1-D shape whose length the world
/// size divides. Returns the per-rank length `n`.
pub fn scatter_len(op: &'static str, shape: &[usize], world: usize) -> Result<usize> {
    match shape {
        [len] if world > 0 && len % world == 0 => Ok(len / world),
        _ => Err(Error::shape(
            op,
            format!(
                "needs a 1-D tensor whose length is a multiple of the world size {world}, got shape {shape:?}"
            ),
        )),
    }
}

/// Checks the input of a [`Collective::all_gather`]: a 1-D shape. Returns its length.
pub fn gather_len(op: &'static str, shape: &[usize]) -> Result<usize> {
    match shape {
        [len] => Ok(*len),
        _ => Err(Error::shape(op, format!("needs a 1-D tensor, got shape {shape:?}"))),
    }
}

/// [`Collective::all_gather_bytes`] for engines that gather equal-sized buffers: every rank's
/// length through `gather_lengths` (host f64 values, exact below 2^53), then every rank's bytes
/// padded to the longest through `gather_padded`, which returns `world · longest` bytes in rank
/// order; each rank's bytes are cut back to its length.
pub fn all_gather_padded_bytes(
    bytes: &[u8],
    world: usize,
    gather_lengths: impl FnOnce(&[f64]) -> Result<Vec<f64>>,
    gather_padded: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<Vec<u8>>> {
    let lens: Vec<usize> = gather_lengths(&[bytes.len() as f64])?.into_iter().map(|l| l as usize).collect();
    let longest = lens.iter().copied().max().unwrap_or(0);
    if longest == 0 {
        return Ok(alloc::vec![Vec::new(); world]);
    }
    let mut padded = bytes.to_vec();
    padded.resize(longest, 0);
    let all = gather_padded(&padded)?;
    if lens.len() != world || all.len() != longest * world {
        return Err(Error::shape(
            "all_gather_bytes",
            format!(
                "gathered {} lengths and {} bytes, expected {world} and {}",
                lens.len(),
                all.len(),
                longest * world
            ),
        ));
    }
    Ok(all.chunks(longest).zip(lens).map(|(chunk, len)| chunk[..len.min(longest)].to_vec()).collect())
}

/// The world of one process: every collective is the identity (a reduction over one rank is
/// its input; [`ReduceOp::Avg`] divides by 1). Training with it is today's single-device path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Single;

impl<B: Backend> Collective<B> for Single {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn engine(&self) -> &'static str {
        "single"
    }

    fn all_reduce(&self, _b: &B, t: &B::Tensor, _op: ReduceOp) -> Result<B::Tensor> {
        Ok(t.clone())
    }

    fn reduce_scatter(&self, b: &B, t: &B::Tensor, _op: ReduceOp) -> Result<B::Tensor> {
        scatter_len("reduce_scatter", &b.shape(t), 1)?;
        Ok(t.clone())
    }

    fn all_gather(&self, b: &B, t: &B::Tensor) -> Result<B::Tensor> {
        gather_len("all_gather", &b.shape(t))?;
        Ok(t.clone())
    }

    fn broadcast(&self, _b: &B, t: &B::Tensor, root: usize) -> Result<B::Tensor> {
        if root != 0 {
            return Err(<Single as Collective<B>>::error(
                self,
                "broadcast",
                &format!("root {root} is not a rank"),
            ));
        }
        Ok(t.clone())
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }

    fn all_reduce_host(&self, values: &[f64], _op: ReduceOp) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }

    fn all_gather_host(&self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }

    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(alloc::vec![bytes.to_vec()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn scatter_and_gather_lengths_are_checked() {
        assert_eq!(scatter_len("rs", &[12], 4), Ok(3));
        assert!(
            scatter_len("rs", &[10], 4).unwrap_err().to_string().contains("multiple of the world size 4")
        );
        assert!(scatter_len("rs", &[2, 6], 2).unwrap_err().to_string().contains("[2, 6]"));
        assert_eq!(gather_len("ag", &[5]), Ok(5));
        assert!(gather_len("ag", &[]).is_err());
    }

    #[test]
    fn padded_bytes_are_cut_back_to_each_ranks_length() {
        // Three ranks with 2, 0 and 3 bytes: this rank (rank 0) sees the others through the closures.
        let others: [&[u8]; 2] = [&[], &[7, 8, 9]];
        let got = all_gather_padded_bytes(
            &[1, 2],
            3,
            |mine| Ok([mine[0], 0.0, 3.0].to_vec()),
            |padded| {
                assert_eq!(padded, &[1, 2, 0]);
                let mut all = padded.to_vec();
                for o in others {
                    all.extend(o.iter().copied().chain(core::iter::repeat(0)).take(3));
                }
                Ok(all)
            },
        )
        .unwrap();
        assert_eq!(got, [alloc::vec![1, 2], Vec::new(), alloc::vec![7, 8, 9]]);
        let empty = all_gather_padded_bytes(&[], 2, |_| Ok(alloc::vec![0.0, 0.0]), |_| unreachable!());
        assert_eq!(empty.unwrap(), [Vec::<u8>::new(), Vec::new()]);
        let short = all_gather_padded_bytes(&[1], 2, |_| Ok(alloc::vec![1.0, 1.0]), |_| Ok(alloc::vec![1]));
        assert!(short.unwrap_err().to_string().contains("expected 2 and 2"));
    }

    #[test]
    fn collective_errors_name_the_op_and_the_rank() {
        let e = Error::Collective { op: "all_gather", rank: 3, world: 4, message: "timed out".into() };
        assert_eq!(e.to_string(), "all_gather on rank 3 of 4: timed out");
        assert_eq!(e.op(), "all_gather");
    }
}
