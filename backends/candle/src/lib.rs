//! # orz-candle
//!
//! The candle backend of orz-rs (candle-core 0.11; CPU by default, CUDA behind a `cuda` feature).
//!
//! Status: not implemented yet. It depends on the `Backend` trait, which does not exist yet;
//! this crate deliberately does not pull in candle until it implements something with it.
