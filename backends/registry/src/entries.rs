//! The table of backends: one entry each. This is the only place a backend is registered; the
//! `orz` program, the benches and the conformance report read it through [`BackendKind`].
//!
//! An entry is the enum variant (with its doc comment), then:
//! - `feature`: `[]` when always compiled in, `["name"]` for the cargo feature of this crate that
//!   compiles it in (declare it in `Cargo.toml` with the optional dependency on the backend's
//!   crate; the callers forward their own feature of the same name to it);
//! - `open`: a function `fn(DeviceSpec) -> Result<YourBackend, Error>` (behind the same feature),
//!   called only for a device [`BackendKind::runs_on`] accepts;
//! - the fields of [`Entry`](crate::Entry): name, about, setup, cuda, oracle, memory.

use crate::{AttentionKernel, Cuda, DeviceSpec, Error, MemoryFacts};

registry! {
    /// The f64 reference backend (slow; for checking): plain loops, its own autodiff, CPU only.
    Reference {
        feature: [],
        open: open_reference,
        name: "reference",
        about: "the f64 reference (slow; for checking)",
        setup: "",
        cuda: Cuda::Never,
        oracle: true,
        // Dense attention, 8-byte activations, node gradients kept. (It also copies where other
        // backends take views, which the plan does not model: it measures at 2.3-3.8 times its
        // plan, BENCHMARKS.md; it is an oracle, not a backend to train on.)
        memory: MemoryFacts {
            attention: AttentionKernel::Dense,
            element_bytes: Some(8),
            keeps_node_grads: true,
            head_buffers: (2, 4),
            fused_head_cpu_f32: None,
        },
    }
    /// candle: CPU, and CUDA when built with the `candle-cuda` feature.
    Candle {
        feature: ["candle"],
        open: open_candle,
        name: "candle",
        about: "candle (CPU; CUDA with the candle-cuda feature)",
        setup: "",
        cuda: Cuda::WithFeature {
            feature: "candle-cuda",
            compiled: cfg!(feature = "candle-cuda"),
            setup: "the CUDA toolkit: see scripts/build-candle-cuda.sh",
        },
        oracle: false,
        // Fused attention, activations in the compute dtype, node gradients kept. The head: on the
        // CPU in f32 its fused selective log-prob keeps the logits for its backward and their
        // gradient stays in the `GradStore` (2, 0); elsewhere core's composition (2, 4).
        memory: MemoryFacts {
            attention: AttentionKernel::Fused,
            element_bytes: None,
            keeps_node_grads: true,
            head_buffers: (2, 4),
            fused_head_cpu_f32: Some((2, 0)),
        },
    }
    /// libtorch through tch: CPU and CUDA.
    Tch {
        feature: ["tch"],
        open: open_tch,
        name: "tch",
        about: "libtorch through tch (CPU and CUDA)",
        setup: "libtorch: `eval \"$(./scripts/setup-libtorch.sh)\"` first",
        cuda: Cuda::Always,
        oracle: false,
        // Fused attention, activations in the compute dtype, gradients freed as they are used. The
        // head: `log_softmax` + `gather` in the logits' dtype keeps the log-softmax and, in the
        // backward, its gradient (2, 0; calibrated on the CPU f32 rows of BENCHMARKS.md).
        memory: MemoryFacts {
            attention: AttentionKernel::Fused,
            element_bytes: None,
            keeps_node_grads: false,
            head_buffers: (2, 0),
            fused_head_cpu_f32: None,
        },
    }
    /// The example backend (examples/plain-backend): plain-Rust f32 kernels on the CPU, autodiff
    /// from core's `Tape`; what a new backend's author writes, certified like the others.
    Plain {
        feature: ["plain"],
        open: open_plain,
        name: "plain",
        about: "the plain-Rust example backend (CPU; forward kernels only, core's Tape for autodiff)",
        setup: "",
        cuda: Cuda::Never,
        oracle: false,
        // Dense attention (the default composition), f32 storage for every float dtype, every
        // node's gradient kept until the tape's walk passes it.
        memory: MemoryFacts {
            attention: AttentionKernel::Dense,
            element_bytes: Some(4),
            keeps_node_grads: true,
            head_buffers: (2, 4),
            fused_head_cpu_f32: None,
        },
    }
}

/// The reference on the CPU (the only device it accepts).
fn open_reference(_device: DeviceSpec) -> Result<orz_reference::Reference, Error> {
    Ok(orz_reference::Reference::new())
}

/// candle on the CPU, or on CUDA device N (built with `candle-cuda`).
#[cfg(feature = "candle")]
fn open_candle(device: DeviceSpec) -> Result<orz_candle::Candle, Error> {
    match device {
        DeviceSpec::Cpu => Ok(orz_candle::Candle::cpu()),
        #[cfg(feature = "candle-cuda")]
        DeviceSpec::Cuda(n) => {
            orz_candle::Candle::cuda(n).map_err(|e| Error::open(BackendKind::Candle, device, e))
        }
        #[cfg(not(feature = "candle-cuda"))]
        DeviceSpec::Cuda(_) => Err(Error::NoCuda { kind: BackendKind::Candle, device }),
    }
}

/// tch on the CPU, or on CUDA device N (an error when libtorch sees no such device).
#[cfg(feature = "tch")]
fn open_tch(device: DeviceSpec) -> Result<orz_tch::Tch, Error> {
    match device {
        DeviceSpec::Cpu => Ok(orz_tch::Tch::cpu()),
        DeviceSpec::Cuda(n) => orz_tch::Tch::cuda(n).map_err(|e| Error::open(BackendKind::Tch, device, e)),
    }
}

/// The example backend on the CPU (the only device it accepts).
#[cfg(feature = "plain")]
fn open_plain(_device: DeviceSpec) -> Result<orz_plain_backend::Plain, Error> {
    Ok(orz_plain_backend::Plain::default())
}
