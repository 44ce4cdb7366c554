//! # orz-conformance
//!
//! The backend test kit of orz-rs, and proptest strategies for PPO math.
//!
//! - [`strategies`]: proptest strategies for the inputs of `orz_core::ppo` (packed batches with
//!   sample lengths, rewards, values, log-probs, masks), for anyone property-testing PPO math.
//!
//! The backend checks (levels 1-6 of DESIGN.md) arrive with the `Backend` trait.

pub mod strategies;
