//! # orz-candle
//!
//! The candle backend of orz-rs: [`Candle`] implements [`orz_core::backend::Backend`] on
//! candle-core 0.11, on the CPU by default and on CUDA behind the `cuda` feature
//! (`Candle::cuda`).
//!
//! - **Tensors** are candle [`candle_core::Tensor`]s. F32, BF16, F16 and I64 map to candle's
//!   dtypes of the same name; Bool is candle's `U8` holding 0 and 1 (reported as
//!   [`DType::Bool`]; this backend never creates any other `U8` tensor).
//! - **Validation first**: every shape, dtype and index is checked with
//!   [`orz_core::backend::shape`] (and, for index tensors, on the host) before candle is called,
//!   so bad input gives the same errors as the reference and never reaches a candle panic; what
//!   candle itself reports becomes [`orz_core::Error::Backend`] naming the op.
//! - **Autodiff** is candle's: [`Backend::param`] copies the value into a candle `Var`
//!   (its own contiguous storage), [`Backend::backward`] returns candle's `GradStore`,
//!   [`Backend::grad`] looks the parameter up by tensor id. [`Backend::assign_param`] writes the
//!   new value into the variable's storage (`Var::set`), so every clone sees it. Unlike the
//!   reference, a graph built *before* an assignment reads the new values if it is
//!   differentiated afterwards (candle records storage, not snapshots): call `backward` before
//!   the optimizer step, as every training loop does. With recording off
//!   ([`Backend::set_grad_enabled`]) every result is detached (`Tensor::detach` shares storage,
//!   so it is free).
//! - **Gradient conventions** at kinks follow the trait: `maximum`/`minimum` (candle's own
//!   backward splits ties half and half), `clamp` (composed with `where_` so the bounds are
//!   inclusive), the `max` reduction (composed so tied maxima share the gradient evenly; candle
//!   alone gives each the full gradient).
//! - **Fused kernels** that record no backward (candle-nn's `softmax_last_dim`, `rms_norm`) are
//!   used only when nothing is recorded (recording off, or no input requires a gradient):
//!   sampling and rollout values. Everything that trains goes through differentiable
//!   compositions. See [`ops::fused`] for the overrides.
//! - **Causal attention** over packed rows runs a blockwise (FlashAttention-2 style) op with
//!   its own backward ([`ops::causal`]): memory linear in the pack length, forward and backward.
//! - **Checkpoints**: [`load_safetensors`] memory-maps (sharded) Hugging Face safetensors.
//! - **Data-parallel ranks on CUDA** (feature `nccl`): `nccl::NcclGroup` implements
//!   [`orz_core::collective::Collective`] over NCCL through cudarc; its ranks share NCCL's
//!   unique id through [`rendezvous`] (plain TCP, built and tested without a GPU).

use std::cell::Cell;

use candle_core::{DType as CDType, Device, Tensor};
#[cfg(doc)]
use orz_core::backend::Backend;
use orz_core::backend::DType;
use orz_core::{Error, Result};

mod backend;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod ops;
pub mod rendezvous;
mod safetensors;

pub use candle_core;
pub use safetensors::load_safetensors;

/// The candle backend: a device and the graph-recording switch.
#[derive(Debug, Clone)]
pub struct Candle {
    device: Device,
    grad_enabled: Cell<bool>,
    attention_block: usize,
}

/// The default tile size of the blockwise causal attention ([`ops::causal`]): rows per query
/// block and keys per key block.
pub const DEFAULT_ATTENTION_BLOCK: usize = 64;

impl Candle {
    /// A backend on the host CPU, with graph recording on.
    pub fn cpu() -> Self {
        Candle {
            device: Device::Cpu,
            grad_enabled: Cell::new(true),
            attention_block: DEFAULT_ATTENTION_BLOCK,
        }
    }

    /// A backend on CUDA device `ordinal`. Errors (never panics) when the driver, the CUDA
    /// libraries or the device are missing, naming what candle reported.
    #[cfg(feature = "cuda")]
    pub fn cuda(ordinal: usize) -> Result<Self> {
        let device = std::panic::catch_unwind(|| Device::new_cuda(ordinal))
            .map_err(|_| {
                Error::backend("cuda", format!("initializing CUDA device {ordinal} panicked (no driver?)"))
            })?
            .map_err(|e| Error::backend("cuda", format!("no CUDA device {ordinal}: {e}")))?;
        Ok(Candle { device, grad_enabled: Cell::new(true), attention_block: DEFAULT_ATTENTION_BLOCK })
    }

    /// A backend on an existing candle device.
    pub fn on(device: Device) -> Self {
        Candle { device, grad_enabled: Cell::new(true), attention_block: DEFAULT_ATTENTION_BLOCK }
    }

    /// This backend with tile size `block` (at least 1) for the blockwise causal attention
    /// (the default is [`DEFAULT_ATTENTION_BLOCK`]; small tiles let tests exercise the
    /// multi-block paths on short rows).
    pub fn with_attention_block(mut self, block: usize) -> Self {
        self.attention_block = block.max(1);
        self
    }

    /// The tile size of the blockwise causal attention.
    pub fn attention_block(&self) -> usize {
        self.attention_block
    }

    /// The candle device.
    pub fn candle_device(&self) -> &Device {
        &self.device
    }

    /// Whether operations are being recorded now.
    pub(crate) fn recording(&self) -> bool {
        self.grad_enabled.get()
    }

    /// Whether an op on `inputs` would be recorded (recording on and some input requires a
    /// gradient): the fused no-backward kernels are used only when this is false.
    pub(crate) fn records(&self, inputs: &[&Tensor]) -> bool {
        self.recording() && inputs.iter().any(|t| t.track_op())
    }

    /// The result of an op: detached when recording is off or when it is not a float tensor.
    pub(crate) fn out(&self, t: Tensor) -> Tensor {
        if self.recording() && t.dtype().is_float() { t } else { t.detach() }
    }
}

impl Default for Candle {
    fn default() -> Self {
        Candle::cpu()
    }
}

/// Maps candle errors to [`Error::Backend`] naming the op.
pub(crate) trait OrBackend<T> {
    /// The value, or the candle error as [`Error::Backend`] for `op`.
    fn or_backend(self, op: &'static str) -> Result<T>;
}

impl<T> OrBackend<T> for candle_core::Result<T> {
    fn or_backend(self, op: &'static str) -> Result<T> {
        self.map_err(|e| Error::backend(op, e.to_string()))
    }
}

/// The candle dtype that stores an orz dtype (Bool is `U8`).
pub fn candle_dtype(dtype: DType) -> CDType {
    match dtype {
        DType::F32 => CDType::F32,
        DType::BF16 => CDType::BF16,
        DType::F16 => CDType::F16,
        DType::I64 => CDType::I64,
        DType::Bool => CDType::U8,
    }
}

/// The orz dtype of a candle dtype (`U8` is Bool; the dtypes this backend never creates map to
/// their nearest orz dtype: F64 to F32, the other integers to I64).
pub fn orz_dtype(dtype: CDType) -> DType {
    match dtype {
        CDType::BF16 => DType::BF16,
        CDType::F16 => DType::F16,
        CDType::U8 => DType::Bool,
        d if d.is_int() => DType::I64,
        _ => DType::F32,
    }
}
