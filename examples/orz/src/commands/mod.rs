//! The `orz` subcommands, one file each: [`train`](train::train) (and `orz` without a command),
//! [`eval`](eval::eval), [`generate`](generate::generate), [`pretrain`](pretrain::pretrain),
//! [`presets`](presets::presets), [`plot`](plot::plot), and the [`dry_run`] of `train` and
//! `eval`. Each checks its inputs first ([`crate::prepare`]), then runs the work on the chosen
//! backend ([`crate::backend::run_on`]).

pub mod dry_run;
pub mod eval;
pub mod generate;
pub mod plot;
pub mod presets;
pub mod pretrain;
pub mod train;

pub use eval::eval;
pub use generate::generate;
pub use plot::plot;
pub use presets::{presets, presets_table};
pub use pretrain::pretrain;
pub use train::train;
