//! # orz-conformance
//!
//! The backend test kit of orz-rs, and proptest strategies for PPO math.
//!
//! - [`checks`]: one ordinary generic function per property, `check_<name>(backend, dtype)`,
//!   grouped by the levels of DESIGN.md ([`Level`]); each draws seeded random inputs with
//!   proptest's runner, runs them on the backend and on the reference ([`orz_reference`]) and
//!   compares with the dtype's [`Tolerance`].
//! - [`registry`]: every check with its name and level, shared by [`conformance_tests!`] (one
//!   `#[test]` per check and dtype) and the report command.
//! - [`report`]: the conformance matrix (check × backend × device × dtype).
//! - [`broken`]: deliberately broken backends, to show that the suite can fail.
//! - [`strategies`]: proptest strategies for the inputs of `orz_core::ppo` (packed batches with
//!   sample lengths, rewards, values, log-probs, masks), for anyone property-testing PPO math.

pub mod broken;
pub mod checks;
pub mod harness;
mod macros;
pub mod registry;
pub mod report;
pub mod runner;
pub mod strategies;
pub mod tolerance;

pub use harness::{Harness, Input, Mode, TensorOp};
pub use registry::{Check, all_checks};
pub use runner::{CheckOutcome, Level};
pub use tolerance::{ErrorStats, Tolerance};

/// Paths the exported macros expand to.
#[doc(hidden)]
pub mod __private {
    pub use orz_core::backend::DType;
}
