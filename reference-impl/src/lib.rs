//! # orz-reference
//!
//! The CPU reference backend of orz-rs: it implements [`orz_core::backend::Backend`] with plain
//! loops over f64 values and its own reverse-mode autodiff. Readable above all: it is the oracle
//! the conformance suite compares every backend against, and it is itself checked against
//! central finite differences and golden values (see the tests in `src/tests/`).
//!
//! - [`Tensor`]: an `Rc`-shared graph node with its values, shape, dtype and provenance
//!   (constant, parameter, or the result of an operation with its backward closure).
//! - [`Grads`]: the gradients of one `backward` call.
//! - [`Reference`]: the backend. It computes every dtype in f64 and never rounds (not on
//!   creation, not on `cast`): the conformance tolerance of each dtype absorbs the difference
//!   from a backend that really computes in bf16. It records the dtype each tensor was asked
//!   for, so dtype rules (no implicit promotion, float-only arithmetic) are enforced exactly.
//!
//! Autodiff: each operation whose inputs include a tensor that requires a gradient (and with
//! recording on) stores its parents and a closure computing its vector-Jacobian product from
//! snapshots of the values it read; `backward` walks the graph in reverse topological order
//! (module `autograd`). Parameter updates (`assign_param`) and cache writes (`write_slice`) replace
//! values copy-on-write, so recorded snapshots stay valid.

mod autograd;
mod backend;
mod ops;
mod tensor;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::rc::Rc;

pub use autograd::Grads;
use orz_core::backend::DType;
pub use orz_core::{self, backend::Backend};
pub use tensor::Tensor;

use tensor::Kind;

/// The device of the reference backend: the host CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cpu;

/// The CPU reference backend (f64, plain loops, its own autodiff).
#[derive(Debug)]
pub struct Reference {
    grad_enabled: Cell<bool>,
}

impl Default for Reference {
    fn default() -> Self {
        Reference::new()
    }
}

impl Reference {
    /// A reference backend with graph recording on.
    pub fn new() -> Self {
        Reference { grad_enabled: Cell::new(true) }
    }

    /// The result of an operation: recorded in the graph (with `parents` and their
    /// vector-Jacobian product `backward`) when recording is on, the dtype is a float dtype and
    /// a parent requires a gradient; a constant otherwise.
    pub(crate) fn record(
        &self,
        shape: Vec<usize>,
        dtype: DType,
        data: impl Into<Rc<Vec<f64>>>,
        parents: Vec<Tensor>,
        backward: impl Fn(&[f64]) -> Vec<Option<Vec<f64>>> + 'static,
    ) -> Tensor {
        let tracked =
            self.grad_enabled.get() && dtype.is_float() && parents.iter().any(Tensor::requires_grad);
        let kind = if tracked { Kind::Op { parents, backward: Box::new(backward) } } else { Kind::Constant };
        Tensor::new(shape, dtype, data.into(), kind)
    }
}
