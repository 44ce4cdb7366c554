//! # orz-bench
//!
//! Criterion benchmarks of orz-rs, one generic function per workload, instantiated for every
//! backend the machine has. Run with `cargo bench -p orz-bench`; results go to `BENCHMARKS.md`.
