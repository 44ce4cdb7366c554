//! # orz-bench
//!
//! Benchmarks of orz-rs: one generic function per workload ([`workloads`]), instantiated for
//! every backend and device compiled in ([`backends::for_each_backend`]; the reference at small
//! sizes only), timed by criterion (`cargo bench -p orz-bench`, add `--features tch` for
//! orz-tch), and the side-by-side run with PyTorch + Hugging Face transformers (the
//! `vs_pytorch` binary with `scripts/bench_vs_pytorch.py`, driven by
//! `scripts/bench-vs-pytorch.sh`). Every timed region ends with the backend's `sync`.
//! Results and how to reproduce them: `BENCHMARKS.md` at the repository root.

pub mod backends;
pub mod models;
pub mod workloads;

pub use backends::{BackendVisitor, Scale, for_each_backend};
