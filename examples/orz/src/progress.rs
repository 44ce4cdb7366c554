//! Progress feedback on stderr: an [`indicatif`] bar over the training iterations (rate, ETA and
//! a compact message: reward, length, s/it) and counters for eval or generation (completions
//! done of total).
//!
//! Bars are drawn only when stderr is a terminal and the run is not `--quiet`; otherwise
//! [`Progress::update`] still writes one plain line per iteration ([`iteration_line`]) to stderr,
//! so logs of batch jobs show the run's course.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::IterationMetrics;

const ITERATION_TEMPLATE: &str =
    "{prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}";
const COUNTER_TEMPLATE: &str =
    "{prefix} {bar:30.green/blue} {pos}/{len} [{elapsed_precise} < {eta}] {per_sec}";

fn bars_visible(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

fn bar(total: u64, visible: bool, template: &str, prefix: String) -> ProgressBar {
    let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(total), target).with_style(style).with_prefix(prefix)
}

/// The bar's message after an iteration: `reward 0.412 | len 123 | reflect 5 | 12.3 s/it`
/// (`reflect`: matches of ORZ's reflection patterns in the iteration's responses; `s/it` from
/// the iteration's timings, else from `fallback_seconds`).
pub fn iteration_message(m: &IterationMetrics, fallback_seconds: f64) -> String {
    let seconds = m.seconds().unwrap_or(fallback_seconds);
    format!(
        "reward {:.3} | len {:.0} | reflect {} | {seconds:.1} s/it",
        m.rollout.mean_reward,
        m.rollout.response_length_mean,
        m.rollout.reflection.total()
    )
}

/// The plain stderr line of an iteration (1-based count of `total`), e.g. `iteration 3/100:
/// reward 0.412, pass@n 0.800, length 123 ± 40, stop 0.950, reflection 5, 12.3 s, eval math500
/// 0.314` (`reflection`: matches of ORZ's reflection patterns, `wait,`, `recheck`, ..., in the
/// iteration's responses, [`orz_core::train::ReflectionCounts`]).
pub fn iteration_line(m: &IterationMetrics, total: u64, fallback_seconds: f64) -> String {
    let seconds = m.seconds().unwrap_or(fallback_seconds);
    let mut line = format!(
        "iteration {}/{total}: reward {:.3}, pass@n {:.3}, length {:.0} ± {:.0}, stop {:.3}, reflection {}, \
         {seconds:.1} s",
        m.iteration + 1,
        m.rollout.mean_reward,
        m.rollout.pass_at_n,
        m.rollout.response_length_mean,
        m.rollout.response_length_std,
        m.rollout.stop_ratio,
        m.rollout.reflection.total(),
    );
    for (name, accuracy) in &m.eval {
        line.push_str(&format!(", eval {name} {accuracy:.3}"));
    }
    if !m.skipped_steps.is_empty() {
        line.push_str(&format!(", {} skipped steps", m.skipped_steps.len()));
    }
    line
}

/// Progress over the training iterations.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    visible: bool,
    /// Whether a hidden bar writes plain lines (not on the ranks other than 0).
    lines: bool,
    total: u64,
    last: Instant,
}

impl Progress {
    /// A bar over `total` iterations, drawn on stderr unless `quiet` or stderr is not a terminal.
    pub fn iterations(total: u64, quiet: bool) -> Progress {
        Progress::with_visibility(total, bars_visible(quiet))
    }

    /// Progress that shows nothing at all (a data-parallel rank other than 0: rank 0 reports).
    pub fn silent(total: u64) -> Progress {
        Progress { lines: false, ..Progress::with_visibility(total, false) }
    }

    fn with_visibility(total: u64, visible: bool) -> Progress {
        let bar = bar(total, visible, ITERATION_TEMPLATE, "train".to_string());
        Progress { bar, visible, lines: true, total, last: Instant::now() }
    }

    /// Starts the count at `done` iterations (a resumed run), with the rate measured from now.
    pub fn resume_at(self, done: u64) -> Progress {
        self.bar.set_position(done);
        self.bar.reset_eta();
        self.bar.reset_elapsed();
        self
    }

    /// Whether the bar is drawn (else plain lines are written).
    pub fn is_visible(&self) -> bool {
        self.visible
    }

    /// Iterations done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Records an iteration's metrics: moves the bar to `m.iteration + 1` with a compact
    /// message, or writes [`iteration_line`] to stderr when the bar is hidden.
    pub fn update(&mut self, m: &IterationMetrics) {
        let elapsed = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        self.bar.set_message(iteration_message(m, elapsed));
        self.bar.set_position(m.iteration + 1);
        if !self.visible && self.lines {
            eprintln!("{}", iteration_line(m, self.total, elapsed));
        }
    }

    /// Writes a line to stderr above the bar (or plainly when hidden).
    pub fn println(&self, line: &str) {
        if self.visible {
            self.bar.println(line);
        } else if self.lines {
            eprintln!("{line}");
        }
    }

    /// Leaves the finished bar on screen.
    pub fn finish(&self) {
        self.bar.finish();
    }

    /// A progress callback `(done, total)` for eval or generation, labelled `label`: a bar on
    /// stderr (unless `quiet` or stderr is not a terminal) that finishes when `done` reaches
    /// `total`; when hidden and not `quiet`, one plain line at the end (`label: 500/500 in 12.3
    /// s`). `total` here is the initial length; each call's `total` replaces it.
    pub fn counter(label: &str, total: usize, quiet: bool) -> impl Fn(usize, usize) + Send + Sync + 'static {
        counter_callback(label, total, bars_visible(quiet), !quiet).1
    }
}

fn counter_callback(
    label: &str,
    total: usize,
    visible: bool,
    plain: bool,
) -> (ProgressBar, impl Fn(usize, usize) + Send + Sync + 'static) {
    let bar = bar(total as u64, visible, COUNTER_TEMPLATE, label.to_string());
    let (label, start, finished) = (label.to_string(), Instant::now(), AtomicBool::new(false));
    let handle = bar.clone();
    let callback = move |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done.min(total) as u64);
        if done >= total && !finished.swap(true, Ordering::SeqCst) {
            bar.finish();
            if !visible && plain {
                eprintln!("{label}: {done}/{total} in {:.1} s", start.elapsed().as_secs_f64());
            }
        }
    };
    (handle, callback)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orz_core::train::{ModelKind, SkippedStep};

    use super::*;
    use crate::metrics::tests::simple as metrics;

    #[test]
    fn lines_and_messages() {
        let mut m = metrics(2, Some(12.34));
        m.rollout.reflection.wait = 4;
        m.rollout.reflection.recheck = 1;
        assert_eq!(iteration_message(&m, 99.0), "reward 0.412 | len 123 | reflect 5 | 12.3 s/it");
        assert_eq!(
            iteration_line(&m, 100, 99.0),
            "iteration 3/100: reward 0.412, pass@n 0.750, length 123 ± 40, stop 0.938, reflection 5, 12.3 s"
        );
        m.eval = BTreeMap::from([("math500".to_string(), 0.314), ("aime".to_string(), 0.1)]);
        m.skipped_steps.push(SkippedStep { model: ModelKind::Critic, index: 3, reason: "nan".to_string() });
        let line = iteration_line(&m, 100, 99.0);
        assert!(line.ends_with("12.3 s, eval aime 0.100, eval math500 0.314, 1 skipped steps"), "{line}");
        // Untimed metrics fall back to the measured seconds.
        assert!(iteration_message(&metrics(0, None), 2.5).ends_with("2.5 s/it"));
    }

    #[test]
    fn iterations_bar_follows_the_metrics() {
        let mut p = Progress::with_visibility(10, false);
        assert!(!p.is_visible());
        p.update(&metrics(0, Some(1.0)));
        p.update(&metrics(1, Some(1.0)));
        assert_eq!(p.position(), 2);
        assert_eq!(p.bar.message(), "reward 0.412 | len 123 | reflect 0 | 1.0 s/it");
        p.finish();
        assert!(p.bar.is_finished());
        let resumed = Progress::with_visibility(10, false).resume_at(7);
        assert_eq!(resumed.position(), 7);
        // Quiet never draws.
        assert!(!Progress::iterations(5, true).is_visible());
    }

    #[test]
    fn counter_tracks_done_and_total() {
        let (bar, callback) = counter_callback("eval math500", 8, false, false);
        callback(3, 8);
        assert_eq!((bar.position(), bar.length()), (3, Some(8)));
        assert!(!bar.is_finished());
        callback(10, 10);
        assert_eq!((bar.position(), bar.length()), (10, Some(10)));
        assert!(bar.is_finished());
        // Usable where a `&dyn Fn(usize, usize)` is expected.
        let f = Progress::counter("generate", 2, true);
        let as_dyn: &dyn Fn(usize, usize) = &f;
        as_dyn(2, 2);
    }
}
