//! The Qwen2 model of orz-core on the f64 reference backend: packed = padded, KV-cache decode =
//! full forward, errors, initialization, value alignment, gradients against finite differences,
//! and one forward against an independent plain-loop implementation.

// `allow-unwrap-in-tests` covers `#[test]` functions only, not the shared helpers.
#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod backprop;
mod decode;
mod errors;
mod golden;
mod grads;
mod init;
mod packed;
mod support;
