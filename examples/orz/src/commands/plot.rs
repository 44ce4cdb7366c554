//! `orz plot [METRICS] [--png FILE]`: the training curves of a metrics file as a PNG (with the
//! trained model's eval from `eval/final.json` beside it, when there is one).

use std::path::Path;

use anyhow::Result;

use crate::cli::Common;
use crate::metrics::{FinalEval, METRICS_FILE, read_metrics};
use crate::plot::{PLOT_FILE, plot_training};

/// `orz plot`.
pub fn plot(common: &Common, metrics: Option<&Path>, png: Option<&Path>) -> Result<()> {
    let metrics = metrics.map_or_else(|| common.out.join(METRICS_FILE), Path::to_path_buf);
    let png = png.map_or_else(
        || metrics.parent().unwrap_or_else(|| Path::new(".")).join(PLOT_FILE),
        Path::to_path_buf,
    );
    let history = read_metrics(&metrics)?;
    // The trained model's eval, when the run wrote one beside its metrics.
    let final_eval = FinalEval::read(metrics.parent().unwrap_or_else(|| Path::new(".")))?;
    plot_training(&history, final_eval.as_ref(), &png, &format!("orz ({})", metrics.display()))?;
    println!("{}", png.display());
    Ok(())
}
