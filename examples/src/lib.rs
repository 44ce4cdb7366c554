//! The `orz` program's library: everything std-only around `orz-core` (command line, data
//! formats, tokenizer, checkpoints, metrics, plots, the tiny default task) that the `orz` binary
//! runs, kept as a library so that tests can drive each piece.

pub mod data;
pub mod tiny;
pub mod tokenizer;
