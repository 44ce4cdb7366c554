//! The conformance matrix: every check × backend × device × dtype with the largest absolute
//! and relative errors and pass/fail, one row per check and dtype, and a summary line.

use std::fmt::Write as _;
use std::time::Instant;

use orz_core::backend::{Backend, DType};

use crate::registry::all_checks;
use crate::runner::{CheckOutcome, Level};

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct Row {
    /// The backend's name.
    pub backend: String,
    /// Its device, as `Debug` prints it.
    pub device: String,
    /// The check's level.
    pub level: Level,
    /// What the check found.
    pub outcome: CheckOutcome,
}

/// Runs every check on `backend` in each of `dtypes`, in registry order.
pub fn run_backend<B: Backend>(backend: &B, dtypes: &[DType]) -> Vec<Row> {
    let device = format!("{:?}", backend.device());
    let mut rows = Vec::new();
    for check in all_checks::<B>() {
        for &dtype in dtypes {
            let outcome = check.run(backend, dtype);
            rows.push(Row {
                backend: backend.name().to_string(),
                device: device.clone(),
                level: check.level,
                outcome,
            });
        }
    }
    rows
}

/// The matrix as text: a header, one row per check and dtype (failures followed by the first
/// line of their report; borderline comparisons a check skipped counted after the verdict), and
/// a summary line with the wall time `seconds`.
pub fn render(rows: &[Row], seconds: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<5} {:<24} {:<34} {:<6} {:<5} {:>9} {:>9}  result",
        "level", "check", "backend", "device", "dtype", "max abs", "max rel"
    );
    for row in rows {
        let o = &row.outcome;
        let mut verdict = if o.passed() { "pass" } else { "FAIL" }.to_string();
        if o.stats.skipped > 0 {
            let total = o.stats.skipped + o.stats.compared;
            let _ = write!(verdict, " ({} of {total} borderline, skipped)", o.stats.skipped);
        }
        let _ = writeln!(
            out,
            "{:<5} {:<24} {:<34} {:<6} {:<5} {:>9.1e} {:>9.1e}  {verdict}",
            row.level as u8,
            o.check,
            row.backend,
            row.device,
            o.dtype.name(),
            o.stats.max_abs,
            o.stats.max_rel
        );
        if let Some(note) = &o.note {
            let _ = writeln!(out, "      · note: {}", truncate(note, 160));
        }
        if let Some(failure) = &o.failure {
            let first = failure.lines().next().unwrap_or_default();
            let _ = writeln!(out, "      └ {}", truncate(first, 160));
        }
    }
    let failed = rows.iter().filter(|r| !r.outcome.passed()).count();
    let backends: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.backend.as_str()).collect();
    let _ = writeln!(
        out,
        "{} rows ({} backends), {} passed, {failed} failed, in {seconds:.1} s",
        rows.len(),
        backends.len(),
        rows.len() - failed
    );
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n).chain("…".chars()).collect() }
}

/// Runs `f` and returns its result with the elapsed seconds.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}
