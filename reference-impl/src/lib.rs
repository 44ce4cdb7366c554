//! # orz-reference
//!
//! The CPU reference backend of orz-rs: f64, plain loops and its own reverse-mode autodiff,
//! readable above all, the oracle of the conformance suite.
//!
//! Status: the `Backend` trait it implements is not written yet (it arrives with the
//! "Backend trait, reference backend and conformance kit" issue). Until then this crate holds no
//! backend; the host-side math oracle lives in `orz_core::ppo`.

pub use orz_core;
