//! # orz-tch
//!
//! The libtorch backend of orz-rs (tch 0.24, PyTorch 2.11.0): [`Tch`] implements
//! [`orz_core::backend::Backend`] on CPU and CUDA from one build, in f32, bf16 and f16, with
//! libtorch's autograd for gradients.
//!
//! - **Errors are values.** Every libtorch call goes through tch's fallible `f_*` functions, and
//!   every argument is first validated with [`orz_core::backend::shape`] (the same checks and
//!   messages as the reference), so that no libtorch abort (a CUDA device-side assert on a bad
//!   index, say) is reachable from bad input.
//! - **Functional autodiff.** [`Backend::param`](orz_core::backend::Backend::param) registers a
//!   leaf (weakly: a dropped parameter leaves the registry); `backward` asks libtorch's engine
//!   for the gradients of the live parameters the loss reaches (`torch.autograd.grad` semantics,
//!   nothing accumulates into `.grad`) and keeps the graph, so a loss can be differentiated twice.
//! - **Native overrides** (each checked by the conformance suite against the default body on this
//!   backend): `softmax`, `log_softmax`, `logsumexp`, `silu`, `selective_log_prob` (gather minus
//!   logsumexp: no full log-softmax is materialized), `attention` on
//!   `scaled_dot_product_attention` with an explicit mask, `causal_attention` with one
//!   `is_causal` SDPA per packed segment (fused kernels, memory linear in the sequence length;
//!   the explicit block-diagonal mask when segment ids are not contiguous runs), `adamw_update`
//!   on libtorch's fused AdamW kernel, and `clip_grad_norm` on `_foreach_norm` (both through the
//!   C++ shim in `csrc/optim_shim.cpp`, as tch 0.24 exposes neither).
//! - **Out of memory is an error**: an allocation failure is an `Error::Backend` whose message
//!   starts with [`OUT_OF_MEMORY`] ([`is_out_of_memory`]); no tch call that can panic on a
//!   libtorch error is used (see `scalar.rs`).
//! - **Checkpoints**: [`safetensors::load_tensors`] reads sharded Hugging Face safetensors one
//!   tensor at a time (no second copy of a shard in host memory) and checks names and shapes.
//!
//! Linking: see `build.rs` (`-Wl,--no-as-needed -ltorch`, so that `libtorch_cuda.so` stays a
//! dependency of every binary and CUDA is visible on a GPU machine; an rpath to libtorch) and
//! `scripts/setup-libtorch.sh`.

mod attention;
mod backend;
#[cfg(feature = "c10d")]
pub mod c10d;
mod composites;
mod convert;
mod fused;
pub mod safetensors;
mod scalar;
mod validate;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use orz_core::{Error, Result};
pub use tch;
use tch::{Device, TchError, Tensor};

/// The libtorch backend on one device (CPU or a CUDA ordinal).
#[derive(Debug)]
pub struct Tch {
    device: Device,
    grad_enabled: Cell<bool>,
    /// Every parameter created by [`orz_core::backend::Backend::param`] that is still alive.
    params: RefCell<Vec<Weak<Tensor>>>,
}

/// A tensor handle of [`Tch`]: a reference-counted libtorch tensor (clones share it, so an
/// in-place update through one handle is seen by all).
#[derive(Clone)]
pub struct TchTensor {
    t: Rc<Tensor>,
    param: bool,
}

impl TchTensor {
    fn new(t: Tensor) -> Self {
        TchTensor { t: Rc::new(t), param: false }
    }

    /// The underlying libtorch tensor (e.g. to hand it to other tch code).
    pub fn inner(&self) -> &Tensor {
        &self.t
    }

    /// Whether this handle is a parameter created by `param`.
    pub fn is_param(&self) -> bool {
        self.param
    }
}

impl fmt::Debug for TchTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.t.f_kind().map(|k| format!("{k:?}")).unwrap_or_else(|_| "?".into());
        write!(f, "TchTensor({:?}, {kind}, {:?}", self.t.size(), self.t.device())?;
        if self.param {
            f.write_str(", param")?;
        }
        f.write_str(")")
    }
}

/// The gradients of one [`orz_core::backend::Backend::backward`] call, keyed by parameter.
#[derive(Debug, Default)]
pub struct TchGrads {
    grads: Vec<(Rc<Tensor>, Tensor)>,
}

impl TchGrads {
    /// How many parameters received a gradient.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether no parameter received a gradient.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

impl Tch {
    /// The backend on the CPU.
    pub fn cpu() -> Self {
        Tch::on(Device::Cpu)
    }

    /// The backend on CUDA device `ordinal`; an error when libtorch sees no CUDA device (a CPU
    /// machine, a binary that lost `libtorch_cuda.so`, a missing driver) or fewer devices.
    pub fn cuda(ordinal: usize) -> Result<Self> {
        if !tch::Cuda::is_available() {
            return Err(Error::backend(
                "Tch::cuda",
                "CUDA is not available to libtorch (no GPU or driver on this machine, or the binary was linked \
                 without libtorch_cuda: see orz-tch's build.rs)",
            ));
        }
        let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        if ordinal >= count {
            return Err(Error::backend(
                "Tch::cuda",
                format!("CUDA device {ordinal} requested but libtorch sees {count} device(s)"),
            ));
        }
        Ok(Tch::on(Device::Cuda(ordinal)))
    }

    /// The backend on any tch device (no availability check).
    pub fn on(device: Device) -> Self {
        Tch { device, grad_enabled: Cell::new(true), params: RefCell::new(Vec::new()) }
    }

    /// Whether libtorch sees a CUDA device (in this binary: false if libtorch_cuda was dropped at
    /// link time, even on a GPU machine).
    pub fn cuda_is_available() -> bool {
        tch::Cuda::is_available()
    }

    /// Runs a libtorch computation with graph recording as this backend's flag says, turning a
    /// libtorch error into [`Error::Backend`] naming `op`.
    fn run(
        &self,
        op: &'static str,
        f: impl FnOnce() -> std::result::Result<Tensor, TchError>,
    ) -> Result<TchTensor> {
        let _guard = (!self.grad_enabled.get()).then(tch::no_grad_guard);
        f().map(TchTensor::new).map_err(|e| tch_err(op, e))
    }

    /// As [`Tch::run`] for computations that give something else than one tensor.
    fn run_any<R>(
        &self,
        op: &'static str,
        f: impl FnOnce() -> std::result::Result<R, TchError>,
    ) -> Result<R> {
        let _guard = (!self.grad_enabled.get()).then(tch::no_grad_guard);
        f().map_err(|e| tch_err(op, e))
    }
}

/// A libtorch error as an orz error naming the operation; an allocation failure (CUDA's
/// `c10::OutOfMemoryError`, the CPU allocator's "not enough memory") gets a message that starts
/// with [`OUT_OF_MEMORY`] (see [`is_out_of_memory`]) and keeps only libtorch's first line (the
/// CPU allocator's error carries a C++ backtrace of dozens of frames).
pub(crate) fn tch_err(op: &'static str, e: TchError) -> Error {
    let message = e.to_string();
    if is_oom_message(&message) {
        return out_of_memory(op, message.lines().next().unwrap_or_default());
    }
    Error::backend(op, message)
}

/// The prefix of the message of an [`Error::Backend`] that reports an allocation failure.
pub const OUT_OF_MEMORY: &str = "out of memory: ";

/// Whether `e` is an allocation failure of this backend (device or host memory): an
/// [`Error::Backend`] whose message starts with [`OUT_OF_MEMORY`]. A caller can then retry with
/// smaller batches instead of failing the run.
pub fn is_out_of_memory(e: &Error) -> bool {
    matches!(e, Error::Backend { message, .. } if message.starts_with(OUT_OF_MEMORY))
}

/// An [`Error::Backend`] for an allocation failure during `op`, with `detail` after the prefix.
pub(crate) fn out_of_memory(op: &'static str, detail: &str) -> Error {
    Error::backend(op, format!("{OUT_OF_MEMORY}{detail}"))
}

/// Whether a libtorch message reports an allocation failure: "CUDA out of memory" (CUDA's
/// caching allocator), "not enough memory" (`DefaultCPUAllocator`), or the exception's type name.
fn is_oom_message(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "out of memory",
        "not enough memory",
        "can't allocate memory",
        "cannot allocate memory",
        "outofmemoryerror",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

/// A dimension or size as libtorch's `i64`.
pub(crate) fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A shape as libtorch's `i64` sizes.
pub(crate) fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| i64_of(d)).collect()
}
