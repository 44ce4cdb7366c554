//! `orz pretrain`: builds the task's base model into `--out` (the tiny task's embedded one was
//! made this way with `--seed 0`).

use anyhow::{Context, Result};

use crate::cli::Common;
use crate::prepare::check_writable;

/// `orz pretrain`.
pub fn pretrain(common: &Common) -> Result<()> {
    let task = common.task();
    check_writable(&common.out)?;
    task.pretrain(&common.out, common.seed)
        .with_context(|| format!("pretraining the {task} base model into {}", common.out.display()))?;
    println!("{task} base model written to {}", common.out.display());
    Ok(())
}
