//! What the `orz` program's memory planner needs to know about a backend ([`MemoryFacts`]).

use orz_core::backend::DType;

use crate::DeviceSpec;

/// How a backend computes attention, which decides whether a pack's attention memory is
/// quadratic or linear in its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// Fused (flash-style) attention: only the output and one log-sum-exp per row and head are
    /// kept for the backward pass (orz-tch, orz-candle).
    Fused,
    /// The default composition: `heads × T × T` scores and probabilities are kept (the
    /// reference, and any backend without an override).
    Dense,
}

/// What the memory plan needs to know about the backend: its attention, the bytes of an
/// activation element (the reference computes in f64 whatever the dtype), and whether its
/// backward keeps the gradient of every node of the graph until it returns (candle's `GradStore`
/// does, so a plain backward holds about twice the forward's activations; libtorch frees them as
/// it goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryFacts {
    /// Its attention kernel.
    pub attention: AttentionKernel,
    /// Bytes per activation element, when it differs from the dtype's (the reference: 8).
    pub element_bytes: Option<u64>,
    /// Whether a backward keeps every intermediate gradient until it returns.
    pub keeps_node_grads: bool,
    /// Per logit of a head chunk: `(buffers in the activation dtype, f32 buffers)` alive at
    /// the chunk's peak where the backend composes the selective log-prob (core's default
    /// composition keeps the log-softmax's pieces; libtorch's `log_softmax` + `gather` keeps
    /// fewer).
    pub head_buffers: (u64, u64),
    /// The same where a fused selective log-prob runs instead, which this build runs on the CPU
    /// in f32 only (candle's custom op); `None` for a backend without one. [`MemoryFacts::on`]
    /// picks between the two.
    pub fused_head_cpu_f32: Option<(u64, u64)>,
}

impl MemoryFacts {
    /// The facts of a run on `device` in `dtype`: `head_buffers` are the fused head's where it
    /// runs there.
    pub fn on(self, device: DeviceSpec, dtype: DType) -> MemoryFacts {
        match (self.fused_head_cpu_f32, device, dtype) {
            (Some(fused), DeviceSpec::Cpu, DType::F32) => MemoryFacts { head_buffers: fused, ..self },
            _ => self,
        }
    }
}
