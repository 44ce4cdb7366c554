//! The `orz` program's library: everything std-only around `orz-core` (command line, data
//! formats, tokenizer, metrics, plots, the tasks with the tiny default and its embedded base
//! model) that the `orz` binary runs, kept as a library so that tests and the example programs
//! next to it can drive each piece. Trainer checkpoints are a library capability of
//! [`orz_hf::trainer_checkpoint`].
//!
//! - [`commands`]: one module per subcommand (`train`, `eval`, `generate`, `pretrain`,
//!   `presets`, `plot`, and the dry run).
//! - [`prepare`]: the inputs every command checks first.
//! - [`task`]: what is trained and how it is scored (math, Countdown, tiny).

pub mod backend;
pub mod cli;
pub mod commands;
pub mod data;
pub mod distributed;
pub mod eval;
pub mod launch;
pub mod memory_plan;
pub mod metrics;
pub mod plot;
pub mod prepare;
pub mod progress;
pub mod settings;
pub mod task;
pub mod testing;
pub mod tokenizer;
