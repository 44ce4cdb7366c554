//! The ORZ trainer (`orz_core::train`) on the f64 reference backend with a tiny random Qwen2, a
//! toy tokenizer (token → letter) and toy rewards: one iteration end to end, warmup, determinism,
//! the step grouping, the policy step against a hand-assembled loss for every aggregation, the
//! GAE/whitening wiring, and a toy task whose reward rises.

// `allow-unwrap-in-tests` covers `#[test]` functions only, not the shared helpers.
#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod iteration;
mod kl;
mod learning;
mod manual;
mod phases;
mod resume;
mod support;
