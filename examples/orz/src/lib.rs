//! The `orz` program's library: everything std-only around `orz-core` (command line, data
//! formats, tokenizer, checkpoints, metrics, plots, the tiny default task) that the `orz` binary
//! runs, kept as a library so that tests can drive each piece.

pub mod backend;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod data;
pub mod eval;
pub mod memory_plan;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod run;
pub mod settings;
pub mod task;
pub mod tiny;
pub mod tokenizer;
