//! NCCL process groups for candle ranks on CUDA (feature `nccl`): [`NcclGroup`] implements
//! [`Collective<Candle>`] over cudarc's NCCL `Comm`, created on candle's own CUDA stream of the
//! rank's device (`cuda:LOCAL_RANK`, one GPU per rank), so every collective is ordered with the
//! kernels around it. Rank 0 creates NCCL's 128-byte unique id and the others receive it through
//! [`TcpRendezvous`] (`MASTER_ADDR:MASTER_PORT`).
//!
//! - **Tensors** reach NCCL through a candle custom op ([`CustomOp1`]): the op reads the input's
//!   `CudaSlice` (made contiguous first), allocates the result on the same stream and runs the
//!   collective; results are new tensors that record no gradient. f32, f64, bf16, f16, i64 and
//!   u8 (Bool) are carried; any other dtype, or a CPU tensor, is an error naming it.
//! - **Host values** (the f64 statistics, byte exchanges) are copied to a device buffer, reduced
//!   or gathered in f64 (bytes as u8) and copied back.
//! - **Timeouts**: NCCL's blocking collectives never return when a rank dies, so after every
//!   collective this rank polls a CUDA event until the stream has passed it, for at most the
//!   group's timeout; then it fails with [`orz_core::Error::Collective`] naming the collective,
//!   the rank and the world (the process should exit: the communicator is aborted on drop).
//!   The cost is one host wait per collective (no CPU run-ahead past a collective).
//! - `Comm` is neither `Send` nor `Sync`, and neither is the group: one thread per rank.
//!
//! Built and linked without a GPU by `scripts/build-candle-cuda.sh --nccl`; the two-rank test
//! (`tests/nccl.rs`) runs only on a GPU machine:
//! `cargo test -p orz-candle --features nccl --test nccl -- --ignored` (see that file).

use std::ffi::c_char;
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use candle_core::cuda_backend::CudaDType;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use candle_core::cuda_backend::cudarc::nccl::result::{NcclError, NcclStatus};
use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, NcclType, ReduceOp as NcclReduce};
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp1, DType as CDType, Layout, Shape, Tensor};
use half::{bf16, f16};
use orz_core::collective::{Collective, ReduceOp, all_gather_padded_bytes, gather_len, scatter_len};
use orz_core::{Error, Result};

use crate::Candle;
use crate::rendezvous::TcpRendezvous;

/// The length of NCCL's unique id (`ncclUniqueId`).
pub const ID_BYTES: usize = 128;

/// One rank's NCCL communicator on its candle CUDA device (see the [module docs](self)).
pub struct NcclGroup {
    comm: Comm,
    device: CudaDevice,
    stream: Arc<CudaStream>,
    rank: usize,
    world: usize,
    timeout: Duration,
}

impl std::fmt::Debug for NcclGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcclGroup")
            .field("rank", &self.rank)
            .field("world", &self.world)
            .field("ordinal", &self.comm.ordinal())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// NCCL's name for a failed call.
fn nccl_error(call: &str, e: &NcclError) -> String {
    format!("{call} failed: {:?}", e.0)
}

/// NCCL's reduction for ours.
fn nccl_op(op: ReduceOp) -> NcclReduce {
    match op {
        ReduceOp::Sum => NcclReduce::Sum,
        ReduceOp::Max => NcclReduce::Max,
        ReduceOp::Avg => NcclReduce::Avg,
    }
}

impl NcclGroup {
    /// Joins the job as `rank` of `world` on `backend`'s CUDA device: shares NCCL's unique id
    /// through `rendezvous` and creates the communicator on candle's stream (returns once every
    /// rank has joined). `rendezvous.timeout` also bounds every later collective.
    pub fn join(backend: &Candle, rendezvous: &TcpRendezvous, rank: usize, world: usize) -> Result<Self> {
        let fail = |message: String| Error::Collective { op: "init_process_group", rank, world, message };
        let device = backend
            .candle_device()
            .as_cuda_device()
            .map_err(|e| fail(format!("NCCL needs a CUDA device ({e})")))?
            .clone();
        let blob = rendezvous.share(rank, world, || {
            let id = Id::new().map_err(|e| fail(nccl_error("ncclGetUniqueId", &e)))?;
            Ok(id.internal().iter().map(|&c| c as u8).collect())
        })?;
        let bytes: [u8; ID_BYTES] = blob
            .as_slice()
            .try_into()
            .map_err(|_| fail(format!("rank 0 sent an id of {} bytes, not {ID_BYTES}", blob.len())))?;
        let stream = device.cuda_stream();
        stream.context().bind_to_thread().map_err(|e| fail(format!("binding the CUDA context: {e:?}")))?;
        let id = Id::uninit(bytes.map(|b| b as c_char));
        let comm = Comm::from_rank(stream.clone(), rank, world, id)
            .map_err(|e| fail(nccl_error("ncclCommInitRank", &e)))?;
        Ok(NcclGroup { comm, device, stream, rank, world, timeout: rendezvous.timeout })
    }

    /// The timeout every collective waits at most.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The error of collective `op` on this rank.
    fn fail(&self, op: &'static str, message: &str) -> Error {
        <Self as Collective<Candle>>::error(self, op, message)
    }

    /// Waits until the stream has passed everything enqueued so far, for at most the timeout.
    fn wait(&self, op: &'static str) -> Result<()> {
        let event = self
            .stream
            .record_event(None)
            .map_err(|e| self.fail(op, &format!("recording an event: {e:?}")))?;
        let start = Instant::now();
        loop {
            match event.try_is_complete() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(self.fail(op, &format!("CUDA reported {e:?} while waiting"))),
            }
            let waited = start.elapsed();
            if waited >= self.timeout {
                return Err(self.fail(
                    op,
                    &format!(
                        "did not complete within {:.1} s (a rank died, hung or called another collective)",
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
            sleep(if waited < Duration::from_millis(10) {
                Duration::from_micros(20)
            } else {
                Duration::from_millis(1)
            });
        }
    }

    /// Runs `kind` on tensor `t`, giving a tensor of shape `out`.
    fn tensor_op(&self, op: &'static str, t: &Tensor, kind: Kind, out: Shape) -> Result<Tensor> {
        let dtype = t.dtype();
        if !matches!(dtype, CDType::F32 | CDType::F64 | CDType::BF16 | CDType::F16 | CDType::I64 | CDType::U8)
        {
            return Err(self.fail(
                op,
                &format!("NCCL collectives take f32, f64, bf16, f16, i64 or u8 tensors, not {dtype:?}"),
            ));
        }
        if !t.device().is_cuda() {
            return Err(self.fail(op, &format!("needs a CUDA tensor, got one on {:?}", t.device())));
        }
        let t = t.detach().contiguous().map_err(|e| self.fail(op, &e.to_string()))?;
        let result = if t.elem_count() == 0 || out.elem_count() == 0 {
            Tensor::zeros(out, dtype, t.device())
        } else {
            t.apply_op1_no_bwd(&NcclOp { comm: &self.comm, kind, dtype, out, name: op })
        };
        let result = result.map_err(|e| self.fail(op, &e.to_string()))?;
        self.wait(op)?;
        Ok(result)
    }

    /// Runs `run` on a device copy of `values` into a buffer of `out_len` elements, waits and
    /// copies the result back.
    fn host_op<T: NcclType + DeviceRepr + ValidAsZeroBits + Clone>(
        &self,
        op: &'static str,
        values: &[T],
        out_len: usize,
        run: impl FnOnce(&Comm, &CudaSlice<T>, &mut CudaSlice<T>) -> std::result::Result<NcclStatus, NcclError>,
    ) -> Result<Vec<T>> {
        if values.is_empty() || out_len == 0 {
            return Ok(Vec::new());
        }
        let cuda = |what: &str, e: &dyn std::fmt::Debug| self.fail(op, &format!("{what}: {e:?}"));
        let src = self.stream.clone_htod(values).map_err(|e| cuda("copying to the device", &e))?;
        let mut dst = self.stream.alloc_zeros::<T>(out_len).map_err(|e| cuda("allocating", &e))?;
        run(&self.comm, &src, &mut dst).map_err(|e| self.fail(op, &nccl_error("the NCCL call", &e)))?;
        self.wait(op)?;
        self.stream.clone_dtoh(&dst).map_err(|e| cuda("copying to the host", &e))
    }

    /// The CUDA device this rank's collectives run on.
    pub fn device(&self) -> &CudaDevice {
        &self.device
    }
}

/// Which collective an [`NcclOp`] runs.
#[derive(Debug, Clone, Copy)]
enum Kind {
    AllReduce(ReduceOp),
    ReduceScatter(ReduceOp),
    AllGather,
    Broadcast(i32),
}

/// A collective as a candle custom op: reads the input's device slice, writes a new one.
struct NcclOp<'a> {
    comm: &'a Comm,
    kind: Kind,
    dtype: CDType,
    out: Shape,
    name: &'static str,
}

impl NcclOp<'_> {
    fn run<T: NcclType + CudaDType + DeviceRepr + ValidAsZeroBits>(
        &self,
        s: &CudaStorage,
        start: usize,
        end: usize,
    ) -> candle_core::Result<CudaStorage> {
        let input = s.as_cuda_slice::<T>()?.slice(start..end);
        let mut out =
            self.comm.stream().alloc_zeros::<T>(self.out.elem_count()).map_err(candle_core::Error::wrap)?;
        let c = self.comm;
        match self.kind {
            Kind::AllReduce(op) => c.all_reduce(&input, &mut out, &nccl_op(op)),
            Kind::ReduceScatter(op) => c.reduce_scatter(&input, &mut out, &nccl_op(op)),
            Kind::AllGather => c.all_gather(&input, &mut out),
            Kind::Broadcast(root) => c.broadcast(Some(&input), &mut out, root),
        }
        .map_err(|e| candle_core::Error::msg(nccl_error(self.name, &e)))?;
        Ok(CudaStorage::wrap_cuda_slice(out, s.device.clone()))
    }
}

impl CustomOp1 for NcclOp<'_> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("NCCL collectives need CUDA tensors, got a CPU tensor")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("{}: the input is not contiguous", self.name)
        };
        let out = match self.dtype {
            CDType::F32 => self.run::<f32>(s, start, end)?,
            CDType::F64 => self.run::<f64>(s, start, end)?,
            CDType::BF16 => self.run::<bf16>(s, start, end)?,
            CDType::F16 => self.run::<f16>(s, start, end)?,
            CDType::I64 => self.run::<i64>(s, start, end)?,
            CDType::U8 => self.run::<u8>(s, start, end)?,
            d => candle_core::bail!("{}: NCCL collectives do not take {d:?} tensors", self.name),
        };
        Ok((out, self.out.clone()))
    }
}

impl Collective<Candle> for NcclGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn engine(&self) -> &'static str {
        "nccl"
    }

    fn all_reduce(&self, _b: &Candle, t: &Tensor, op: ReduceOp) -> Result<Tensor> {
        self.tensor_op("all_reduce", t, Kind::AllReduce(op), t.shape().clone())
    }

    fn reduce_scatter(&self, _b: &Candle, t: &Tensor, op: ReduceOp) -> Result<Tensor> {
        const OP: &str = "reduce_scatter";
        let n = scatter_len(OP, t.dims(), self.world)?;
        self.tensor_op(OP, t, Kind::ReduceScatter(op), Shape::from(n))
    }

    fn all_gather(&self, _b: &Candle, t: &Tensor) -> Result<Tensor> {
        const OP: &str = "all_gather";
        let n = gather_len(OP, t.dims())?;
        self.tensor_op(OP, t, Kind::AllGather, Shape::from(n * self.world))
    }

    fn broadcast(&self, _b: &Candle, t: &Tensor, root: usize) -> Result<Tensor> {
        const OP: &str = "broadcast";
        let root_c = i32::try_from(root).ok().filter(|_| root < self.world);
        let root_c = root_c.ok_or_else(|| self.fail(OP, &format!("root {root} is not a rank")))?;
        self.tensor_op(OP, t, Kind::Broadcast(root_c), t.shape().clone())
    }

    fn barrier(&self) -> Result<()> {
        self.host_op("barrier", &[1f32][..], 1, |c, s, d| c.all_reduce(s, d, &NcclReduce::Sum)).map(drop)
    }

    fn all_reduce_host(&self, values: &[f64], op: ReduceOp) -> Result<Vec<f64>> {
        self.host_op("all_reduce", values, values.len(), |c, s, d| c.all_reduce(s, d, &nccl_op(op)))
    }

    fn all_gather_host(&self, values: &[f64]) -> Result<Vec<f64>> {
        self.host_op("all_gather", values, values.len() * self.world, |c, s, d| c.all_gather(s, d))
    }

    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        all_gather_padded_bytes(
            bytes,
            self.world,
            |lens| self.all_gather_host(lens),
            |padded| {
                self.host_op("all_gather_bytes", padded, padded.len() * self.world, |c, s, d| {
                    c.all_gather(s, d)
                })
            },
        )
    }
}
