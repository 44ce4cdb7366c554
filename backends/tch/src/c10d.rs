//! libtorch's c10d process groups as an [`orz_core::collective::Collective`] (feature `c10d`):
//! [`ProcessGroup`] joins a job through a c10d store (a TCPStore, as `torch.distributed` and
//! torchrun use, or a FileStore in a shared folder) and runs Gloo collectives on CPU tensors
//! and, created with [`ProcessGroup::new_nccl`] (feature `nccl`), NCCL collectives on CUDA
//! tensors, through the C++ shim in `csrc/c10d_shim.cpp` (built by `build.rs` against the torch
//! wheel's headers, Debian's Gloo headers and, for NCCL, the CUDA and NCCL headers of the
//! venv's PyPI packages). Host-side values (loss sums, byte exchanges) always go through Gloo.
//!
//! A rank that dies makes Gloo's transport fail at once on the others ("connection closed by
//! peer"); a rank that hangs makes them fail after the group's timeout. Either way every other
//! rank gets [`orz_core::Error::Collective`] naming the collective and itself, never a silent
//! hang. A CUDA tensor in a group without NCCL is an error naming its device.
#![allow(unsafe_code)] // The FFI to the shim: every call is wrapped here, once.

use std::ffi::{CStr, CString, c_char, c_int, c_longlong, c_void};
use std::ptr::NonNull;
use std::time::Duration;

use orz_core::backend::Backend;
use orz_core::collective::{Collective, ReduceOp, all_gather_padded_bytes, gather_len, scatter_len};
use orz_core::{Error, Result};
use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use crate::{Tch, TchTensor, i64_of};

unsafe extern "C" {
    fn orz_c10d_new(
        store_kind: c_int,
        host: *const c_char,
        port: c_int,
        attach: c_int,
        prefix: *const c_char,
        device_host: *const c_char,
        rank: c_int,
        world: c_int,
        timeout_ms: c_longlong,
        nccl: c_int,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn orz_c10d_free(group: *mut c_void);
    fn orz_c10d_free_error(message: *mut c_char);
    fn orz_c10d_all_reduce(group: *mut c_void, t: *mut C_tensor, op: c_int) -> *mut c_char;
    fn orz_c10d_reduce_scatter(
        group: *mut c_void,
        out: *mut C_tensor,
        input: *mut C_tensor,
        op: c_int,
    ) -> *mut c_char;
    fn orz_c10d_all_gather(group: *mut c_void, out: *mut C_tensor, input: *mut C_tensor) -> *mut c_char;
    fn orz_c10d_broadcast(group: *mut c_void, t: *mut C_tensor, root: c_int) -> *mut c_char;
    fn orz_c10d_barrier(group: *mut c_void) -> *mut c_char;
}

/// Where the ranks of a job meet to exchange their addresses (a c10d store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendezvous {
    /// A TCPStore at `host:port` (torchrun's `MASTER_ADDR`, `MASTER_PORT`). Rank 0 serves it
    /// unless `attach`: then an agent already serves it (torchrun's
    /// `TORCHELASTIC_USE_AGENT_STORE`).
    Tcp {
        /// The store's host (rank 0's address).
        host: String,
        /// The store's port.
        port: u16,
        /// Whether the store is served by a launcher's agent rather than rank 0.
        attach: bool,
    },
    /// A FileStore: a file in a folder every rank sees (one machine, or a shared file system).
    File {
        /// The store's file; it must not hold a previous job's keys.
        path: String,
    },
}

/// One rank's membership of a Gloo (and optionally NCCL) process group (see the
/// [module docs](self)).
#[derive(Debug)]
pub struct ProcessGroup {
    raw: NonNull<c_void>,
    rank: usize,
    world: usize,
    timeout: Duration,
    nccl: bool,
}

/// A C string for the shim, naming `what` in the error.
fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid("c10d", format!("{what} {s:?} holds a NUL byte")))
}

/// A plain tensor handle the shim may read and write (shares `t`'s storage).
fn raw(t: &Tensor) -> (Tensor, *mut C_tensor) {
    let mut handle = t.shallow_clone();
    let ptr = handle.as_mut_ptr();
    (handle, ptr)
}

impl ProcessGroup {
    /// Joins the group as `rank` of `world` (every rank must call it; it returns once all have
    /// joined, or fails after `timeout`). Gloo binds to `device_host`, the address the other
    /// ranks reach this one at (`127.0.0.1` on one machine; empty: this machine's hostname as it
    /// resolves, Gloo's default device).
    pub fn new(
        rendezvous: &Rendezvous,
        device_host: &str,
        rank: usize,
        world: usize,
        timeout: Duration,
    ) -> Result<Self> {
        Self::join(rendezvous, device_host, rank, world, timeout, false)
    }

    /// [`ProcessGroup::new`] with NCCL for CUDA tensors besides Gloo for CPU ones (ranks of a
    /// job on GPUs, one GPU each). Errors: a build without orz-tch's `nccl` feature, or a
    /// machine where libtorch sees no GPU.
    pub fn new_nccl(
        rendezvous: &Rendezvous,
        device_host: &str,
        rank: usize,
        world: usize,
        timeout: Duration,
    ) -> Result<Self> {
        Self::join(rendezvous, device_host, rank, world, timeout, true)
    }

    fn join(
        rendezvous: &Rendezvous,
        device_host: &str,
        rank: usize,
        world: usize,
        timeout: Duration,
        nccl: bool,
    ) -> Result<Self> {
        const OP: &str = "process group";
        if world == 0 || rank >= world {
            return Err(Error::invalid(OP, format!("rank {rank} is not in a world of {world}")));
        }
        let (kind, host, port, attach) = match rendezvous {
            Rendezvous::Tcp { host, port, attach } => {
                (0, host.as_str(), i32::from(*port), i32::from(*attach))
            }
            Rendezvous::File { path } => (1, path.as_str(), 0, 0),
        };
        let (host, prefix, device_host) = (
            c_string("store address", host)?,
            c_string("prefix", "orz")?,
            c_string("device host", device_host)?,
        );
        let rank_c = c_int::try_from(rank).map_err(|_| Error::invalid(OP, "rank too large"))?;
        let world_c = c_int::try_from(world).map_err(|_| Error::invalid(OP, "world size too large"))?;
        let ms = c_longlong::try_from(timeout.as_millis()).unwrap_or(c_longlong::MAX);
        let mut out = std::ptr::null_mut();
        // SAFETY: every pointer is a valid NUL-terminated string or the out slot, alive for the call.
        let err = unsafe {
            orz_c10d_new(
                kind,
                host.as_ptr(),
                port,
                attach,
                prefix.as_ptr(),
                device_host.as_ptr(),
                rank_c,
                world_c,
                ms,
                c_int::from(nccl),
                &mut out,
            )
        };
        check(err).map_err(|m| Error::Collective { op: "init_process_group", rank, world, message: m })?;
        let raw = NonNull::new(out).ok_or_else(|| Error::Collective {
            op: "init_process_group",
            rank,
            world,
            message: "the shim returned no group".into(),
        })?;
        Ok(ProcessGroup { raw, rank, world, timeout, nccl })
    }

    /// The timeout every collective waits at most.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Maps a shim error to [`Error::Collective`] naming `op` and this rank.
    fn run(&self, op: &'static str, err: *mut c_char) -> Result<()> {
        check(err).map_err(|m| Error::Collective {
            op,
            rank: self.rank,
            world: self.world,
            message: format!(
                "{m} (the group's timeout is {:.1} s; a rank died, hung or called another collective)",
                self.timeout.as_secs_f64()
            ),
        })
    }

    fn all_reduce_tensor(&self, t: &Tensor, op: ReduceOp) -> Result<Tensor> {
        let out = self.copy("all_reduce", t)?;
        let (_h, ptr) = raw(&out);
        // SAFETY: `ptr` is a live tensor handle owned by `_h`; the group is live.
        self.run("all_reduce", unsafe { orz_c10d_all_reduce(self.raw.as_ptr(), ptr, reduce_code(op)) })?;
        Ok(out)
    }

    fn empty(&self, op: &'static str, n: usize, kind: Kind, device: Device) -> Result<Tensor> {
        Tensor::f_empty([i64_of(n)], (kind, device)).map_err(|e| Error::Collective {
            op,
            rank: self.rank,
            world: self.world,
            message: e.to_string(),
        })
    }

    /// A new contiguous tensor holding `t`'s values (the collectives write into it).
    fn copy(&self, op: &'static str, t: &Tensor) -> Result<Tensor> {
        let t = self.contiguous(op, t)?;
        t.f_empty_like().and_then(|mut out| out.f_copy_(&t).map(|()| out)).map_err(|e| Error::Collective {
            op,
            rank: self.rank,
            world: self.world,
            message: e.to_string(),
        })
    }

    fn contiguous(&self, op: &'static str, t: &Tensor) -> Result<Tensor> {
        t.f_detach().and_then(|d| d.f_contiguous()).map_err(|e| Error::Collective {
            op,
            rank: self.rank,
            world: self.world,
            message: e.to_string(),
        })
    }

    fn host_tensor(&self, op: &'static str, values: &[f64]) -> Result<Tensor> {
        Tensor::f_from_slice(values).map_err(|e| Error::Collective {
            op,
            rank: self.rank,
            world: self.world,
            message: e.to_string(),
        })
    }

    fn host_values(&self, op: &'static str, t: &Tensor) -> Result<Vec<f64>> {
        Vec::<f64>::try_from(t).map_err(|e| Error::Collective {
            op,
            rank: self.rank,
            world: self.world,
            message: e.to_string(),
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from orz_c10d_new and is freed once, here.
        unsafe { orz_c10d_free(self.raw.as_ptr()) }
    }
}

/// The shim's code for a reduction.
fn reduce_code(op: ReduceOp) -> c_int {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Max => 1,
        ReduceOp::Avg => 2,
    }
}

/// `Ok` for a null error, else the shim's message (freed here).
fn check(err: *mut c_char) -> std::result::Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error is a NUL-terminated string malloc'd by the shim, freed once here.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    // SAFETY: as above.
    unsafe { orz_c10d_free_error(err) };
    Err(message)
}

impl Collective<Tch> for ProcessGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn engine(&self) -> &'static str {
        if self.nccl { "nccl+gloo" } else { "gloo" }
    }

    fn all_reduce(&self, _b: &Tch, t: &TchTensor, op: ReduceOp) -> Result<TchTensor> {
        self.all_reduce_tensor(t.inner(), op).map(TchTensor::new)
    }

    fn reduce_scatter(&self, b: &Tch, t: &TchTensor, op: ReduceOp) -> Result<TchTensor> {
        const OP: &str = "reduce_scatter";
        let n = scatter_len(OP, &b.shape(t), self.world)?;
        let input = self.contiguous(OP, t.inner())?;
        let out = self.empty(OP, n, input.kind(), input.device())?;
        let ((_hi, pi), (_ho, po)) = (raw(&input), raw(&out));
        // SAFETY: both handles are live tensors of the checked sizes; the group is live.
        self.run(OP, unsafe { orz_c10d_reduce_scatter(self.raw.as_ptr(), po, pi, reduce_code(op)) })?;
        Ok(TchTensor::new(out))
    }

    fn all_gather(&self, b: &Tch, t: &TchTensor) -> Result<TchTensor> {
        const OP: &str = "all_gather";
        let n = gather_len(OP, &b.shape(t))?;
        let input = self.contiguous(OP, t.inner())?;
        let out = self.empty(OP, n * self.world, input.kind(), input.device())?;
        let ((_hi, pi), (_ho, po)) = (raw(&input), raw(&out));
        // SAFETY: both handles are live tensors of the checked sizes; the group is live.
        self.run(OP, unsafe { orz_c10d_all_gather(self.raw.as_ptr(), po, pi) })?;
        Ok(TchTensor::new(out))
    }

    fn broadcast(&self, _b: &Tch, t: &TchTensor, root: usize) -> Result<TchTensor> {
        const OP: &str = "broadcast";
        if root >= self.world {
            return Err(<Self as Collective<Tch>>::error(self, OP, &format!("root {root} is not a rank")));
        }
        let out = self.copy(OP, t.inner())?;
        let (_h, ptr) = raw(&out);
        let root = c_int::try_from(root).unwrap_or(c_int::MAX);
        // SAFETY: `ptr` is a live tensor handle; the group is live.
        self.run(OP, unsafe { orz_c10d_broadcast(self.raw.as_ptr(), ptr, root) })?;
        Ok(TchTensor::new(out))
    }

    fn barrier(&self) -> Result<()> {
        // SAFETY: the group is live.
        self.run("barrier", unsafe { orz_c10d_barrier(self.raw.as_ptr()) })
    }

    fn all_reduce_host(&self, values: &[f64], op: ReduceOp) -> Result<Vec<f64>> {
        const OP: &str = "all_reduce";
        let t = self.all_reduce_tensor(&self.host_tensor(OP, values)?, op)?;
        self.host_values(OP, &t)
    }

    fn all_gather_host(&self, values: &[f64]) -> Result<Vec<f64>> {
        const OP: &str = "all_gather";
        let input = self.host_tensor(OP, values)?;
        let out = self.empty(OP, values.len() * self.world, Kind::Double, Device::Cpu)?;
        let ((_hi, pi), (_ho, po)) = (raw(&input), raw(&out));
        // SAFETY: both handles are live CPU tensors of the checked sizes; the group is live.
        self.run(OP, unsafe { orz_c10d_all_gather(self.raw.as_ptr(), po, pi) })?;
        self.host_values(OP, &out)
    }

    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        const OP: &str = "all_gather_bytes";
        let fail = |e: tch::TchError| Error::Collective {
            op: OP,
            rank: self.rank,
            world: self.world,
            message: e.to_string(),
        };
        all_gather_padded_bytes(
            bytes,
            self.world,
            |lens| self.all_gather_host(lens),
            |padded| {
                let input = Tensor::f_from_slice(padded).map_err(fail)?;
                let out = self.empty(OP, padded.len() * self.world, Kind::Uint8, Device::Cpu)?;
                let ((_hi, pi), (_ho, po)) = (raw(&input), raw(&out));
                // SAFETY: both handles are live CPU tensors of the checked sizes; the group is live.
                self.run(OP, unsafe { orz_c10d_all_gather(self.raw.as_ptr(), po, pi) })?;
                Vec::<u8>::try_from(&out).map_err(fail)
            },
        )
    }
}
