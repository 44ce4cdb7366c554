//! The error type of orz-core: every fallible call returns [`Error`], whose message names the
//! operation and the input at fault.

use alloc::string::String;
use core::fmt;

/// Result alias used throughout orz-core.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What went wrong, with enough context (operation, input name, index, lengths) to find the culprit.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Two inputs that must agree in length do not.
    LengthMismatch {
        /// Operation that detected the mismatch, e.g. `"gae"`.
        op: &'static str,
        /// Name and length of the first input.
        left: (&'static str, usize),
        /// Name and length of the second input.
        right: (&'static str, usize),
    },
    /// An input that must be non-empty is empty.
    Empty {
        /// Operation that detected it.
        op: &'static str,
        /// Name of the empty input.
        what: &'static str,
    },
    /// A NaN or infinity where a finite number is required.
    NonFinite {
        /// Operation that detected it.
        op: &'static str,
        /// Name of the input holding the value.
        what: &'static str,
        /// Index of the first non-finite element.
        index: usize,
    },
    /// Any other invalid argument, with a human-readable reason.
    InvalidArgument {
        /// Operation that rejected the argument.
        op: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// Tensor shapes that an operation cannot accept (they do not broadcast, a dimension is out
    /// of range, element counts differ); the message names the shapes.
    Shape {
        /// Operation that rejected the shapes, e.g. `"matmul"`.
        op: &'static str,
        /// What is wrong, naming the shapes, e.g. `"shapes [2, 3] and [4, 5] are incompatible"`.
        message: String,
    },
    /// A tensor dtype that an operation cannot accept (an integer tensor where a float one is
    /// required, two operands of different dtypes).
    DType {
        /// Operation that rejected the dtype.
        op: &'static str,
        /// What is wrong, naming the dtypes.
        message: String,
    },
    /// An index (token id, gather index, slice start) outside the dimension it indexes.
    IndexOutOfRange {
        /// Operation that found the index.
        op: &'static str,
        /// The offending index.
        index: i64,
        /// The size of the indexed dimension.
        size: usize,
        /// Which input and dimension, with shapes, e.g. `"dimension 0 of shape [5, 3]"`.
        context: String,
    },
    /// A failure inside a backend (device error, framework error) with the backend's message.
    Backend {
        /// Operation during which it failed.
        op: &'static str,
        /// The backend's own message.
        message: String,
    },
    /// A collective operation failed or timed out (a rank died, hung or disagreed on shapes).
    Collective {
        /// The collective, e.g. `"all_reduce"`.
        op: &'static str,
        /// The rank that reports it.
        rank: usize,
        /// The world size.
        world: usize,
        /// What went wrong (the engine's own message, or the disagreement).
        message: String,
    },
    /// The device ran out of memory during a training phase ([`Error::in_phase`] turns a
    /// backend's out-of-memory error into this).
    OutOfMemory {
        /// The phase, e.g. `"policy step"`.
        phase: &'static str,
        /// The longest pack the phase works on (tokens).
        pack_len: usize,
        /// The knob to turn, e.g. `"lower packing_max_len"`.
        knob: &'static str,
        /// The backend's own message.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { op, reason: reason.into() }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Error::Shape { op, message: message.into() }
    }

    /// Shorthand for [`Error::DType`].
    pub fn dtype(op: &'static str, message: impl Into<String>) -> Self {
        Error::DType { op, message: message.into() }
    }

    /// Shorthand for [`Error::Backend`].
    pub fn backend(op: &'static str, message: impl Into<String>) -> Self {
        Error::Backend { op, message: message.into() }
    }

    /// The operation that reported the error.
    pub fn op(&self) -> &'static str {
        match self {
            Error::LengthMismatch { op, .. }
            | Error::Empty { op, .. }
            | Error::NonFinite { op, .. }
            | Error::InvalidArgument { op, .. }
            | Error::Shape { op, .. }
            | Error::DType { op, .. }
            | Error::IndexOutOfRange { op, .. }
            | Error::Backend { op, .. }
            | Error::Collective { op, .. } => op,
            Error::OutOfMemory { phase, .. } => phase,
        }
    }

    /// Whether this is a device's out-of-memory error: [`Error::OutOfMemory`], or a backend
    /// error whose message says so (libtorch: "CUDA out of memory", "DefaultCPUAllocator: can't
    /// allocate memory"; CUDA driver: `CUDA_ERROR_OUT_OF_MEMORY`).
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            Error::OutOfMemory { .. } => true,
            Error::Backend { message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("out of memory")
                    || m.contains("out_of_memory")
                    || m.contains("can't allocate memory")
            }
            _ => false,
        }
    }

    /// This error, unless it is an out-of-memory error: then an [`Error::OutOfMemory`] naming
    /// `phase`, the pack length and the knob to lower.
    pub fn in_phase(self, phase: &'static str, pack_len: usize, knob: &'static str) -> Self {
        match self {
            Error::Backend { message, .. } if self.is_out_of_memory() => {
                Error::OutOfMemory { phase, pack_len, knob, message }
            }
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LengthMismatch { op, left, right } => write!(
                f,
                "{op}: length mismatch: `{}` has {} elements but `{}` has {}",
                left.0, left.1, right.0, right.1
            ),
            Error::Empty { op, what } => write!(f, "{op}: `{what}` is empty"),
            Error::NonFinite { op, what, index } => {
                write!(f, "{op}: `{what}` holds a non-finite value (NaN or infinity) at index {index}")
            }
            Error::InvalidArgument { op, reason } => write!(f, "{op}: {reason}"),
            Error::Shape { op, message } | Error::DType { op, message } | Error::Backend { op, message } => {
                write!(f, "{op}: {message}")
            }
            Error::IndexOutOfRange { op, index, size, context } => {
                write!(f, "{op}: index {index} is out of range for size {size} ({context})")
            }
            Error::Collective { op, rank, world, message } => {
                write!(f, "{op} on rank {rank} of {world}: {message}")
            }
            Error::OutOfMemory { phase, pack_len, knob, message } => write!(
                f,
                "out of device memory in the {phase} (packs of up to {pack_len} tokens): {knob}; the backend said: {message}"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// Checks that two lengths agree, naming both inputs in the error.
pub(crate) fn check_len(
    op: &'static str,
    left: (&'static str, usize),
    right: (&'static str, usize),
) -> Result<()> {
    if left.1 == right.1 { Ok(()) } else { Err(Error::LengthMismatch { op, left, right }) }
}

/// Checks that every value is finite, reporting the first offender's index.
pub(crate) fn check_finite<F: num_traits::Float>(
    op: &'static str,
    what: &'static str,
    xs: &[F],
) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite { op, what, index }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn out_of_memory_is_named_with_its_phase_and_knob() {
        let oom = Error::backend("matmul", "CUDA out of memory. Tried to allocate 2.00 GiB");
        assert!(oom.is_out_of_memory());
        let e = oom.in_phase("policy step", 10_048, "lower packing_max_len");
        let text = e.to_string();
        assert!(matches!(e, Error::OutOfMemory { pack_len: 10_048, .. }), "{text}");
        assert!(
            text.contains("policy step") && text.contains("10048") && text.contains("lower packing_max_len")
        );
        assert!(text.contains("Tried to allocate"), "{text}");
        let cuda = Error::backend("alloc", "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")");
        assert!(cuda.is_out_of_memory());
        // Other errors pass through unchanged.
        let other = Error::backend("matmul", "device-side assert triggered");
        assert_eq!(other.clone().in_phase("policy step", 1, "x"), other);
        assert!(!Error::invalid("x", "out of memory talk").is_out_of_memory());
    }
}
