//! # orz-tch
//!
//! The libtorch backend of orz-rs (tch 0.24, PyTorch 2.11.0; CPU and CUDA from one build).
//!
//! Status: not implemented yet. It depends on the `Backend` trait, which does not exist yet;
//! this crate deliberately does not link libtorch until it implements something with it.
