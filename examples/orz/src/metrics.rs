//! Per-iteration metrics: [`IterationMetrics`] (one JSON line per training iteration, built from
//! `orz_core`'s [`IterationReport`]), [`MetricsWriter`] appending them to `DIR/metrics.jsonl`, and
//! [`read_metrics`] reading them back.
//!
//! Non-finite numbers (a NaN loss or gradient norm of a skipped step) are written as absent
//! (`None`, JSON `null`), never as invalid JSON; the reason is in
//! [`IterationMetrics::skipped_steps`].
//!
//! TensorBoard event files are not written: the only Rust crate for them, `tensorboard-rs`, is
//! unmaintained since 2022 (its repository says "not active") and pulls protobuf 2 and a second
//! `image` version. The JSON lines load in one line of pandas (`pd.read_json(path, lines=True)`),
//! and [`crate::plot`] draws the main curves.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use orz_core::optimizer::StepReport;
use orz_core::train::{DynamicSamplingStats, IterationReport, PhaseTimes, RolloutMetrics, SkippedStep};
use serde::{Deserialize, Serialize};

/// The file name [`MetricsWriter`] writes in its directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// What one training iteration measured: one line of `metrics.jsonl`.
///
/// The rollout's statistics are core's [`RolloutMetrics`], flattened into the line (`prompts`,
/// `generated`, `dropped_empty`, `samples`, `mean_reward`, `pass_at_n`, `correct_fraction`,
/// `response_length_mean`/`_std`, `correct_length_mean`, `incorrect_length_mean`, `stop_ratio`,
/// `reflection`); rewards, lengths and ratios are over the iteration's kept samples
/// (completions with empty text are dropped, ORZ_RECIPE.md step 4). The other fields summarize
/// the rest of core's [`IterationReport`]: its per-step vectors become means and the last
/// learning rate, its non-finite losses become absent values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationMetrics {
    /// The iteration's index (0 for the first).
    pub iteration: u64,
    /// Rewards, pass@n, lengths, stop ratio and reflection words of the kept samples.
    #[serde(flatten)]
    pub rollout: RolloutMetrics,
    /// Fraction of the policy steps' response tokens where the PPO clip bound (OpenRLHF, TRL).
    pub clip_fraction: f64,
    /// Fraction of the policy steps' response tokens whose ratio lay outside `[1 − ε, 1 + ε]`
    /// (ORZ's `clip_ratio`; absent in metrics written before it was logged).
    #[serde(default)]
    pub clip_ratio: f64,
    /// The rollout/train mismatch: the largest, and the mean, `|log-prob at sampling − old
    /// log-prob at training|` over the response tokens, and the k3 KL estimate between them
    /// (absent when not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logp_mismatch_max: Option<f64>,
    /// See [`IterationMetrics::logp_mismatch_max`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logp_mismatch_mean: Option<f64>,
    /// See [`IterationMetrics::logp_mismatch_max`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logp_mismatch_kl: Option<f64>,
    /// Mean per-token KL of the sampling policy to the frozen reference (absent without a KL
    /// option; see `orz_core::train::reference` for the estimator and the peers' definitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Mean per-token KL-loss term over the policy steps (veRL's `actor/kl_loss`; absent unless
    /// `use_kl_loss`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_loss: Option<f64>,
    /// Mean `logp_old − logp` over the policy steps' tokens, the k1 KL of the updated policy from
    /// the sampling one (veRL's `actor/ppo_kl`; 0 at ORZ's single step; absent when not finite).
    #[serde(default)]
    pub ppo_kl: Option<f64>,
    /// Mean full-vocabulary entropy of the policy over the policy steps' tokens (absent unless
    /// `entropy_coef > 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f64>,
    /// DAPO's dynamic sampling: generation rounds, dropped, kept and generated prompt groups
    /// (absent when off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_sampling: Option<DynamicSamplingStats>,
    /// Mean policy loss over the policy steps (absent when not finite).
    pub policy_loss: Option<f64>,
    /// Mean value loss over the critic steps (absent without critic or when not finite).
    pub value_loss: Option<f64>,
    /// Mean pre-clip gradient norm over the policy's applied steps with a finite norm (ORZ: one).
    pub policy_grad_norm: Option<f64>,
    /// Mean pre-clip gradient norm over the critic's applied steps with a finite norm.
    pub critic_grad_norm: Option<f64>,
    /// Largest pre-clip gradient norm over the critic's applied steps with a finite norm.
    pub critic_grad_norm_max: Option<f64>,
    /// Learning rate of the policy's last step.
    pub policy_lr: Option<f64>,
    /// Learning rate of the critic's last step.
    pub critic_lr: Option<f64>,
    /// Optimizer steps of the policy this iteration (applied or skipped).
    pub policy_steps: usize,
    /// Optimizer steps of the critic this iteration (applied or skipped).
    pub critic_steps: usize,
    /// Packs the samples were packed into.
    pub packs: usize,
    /// Tokens generated (all completions, dropped ones included).
    pub tokens_generated: usize,
    /// Prompt plus response tokens of the samples (what the updates ran over).
    pub training_tokens: usize,
    /// [`Self::tokens_generated`] per second of the rollout phase (sampling, detokenizing and
    /// scoring); absent without timings.
    pub generation_tokens_per_s: Option<f64>,
    /// [`Self::training_tokens`] per second of the training phases (experience, advantages,
    /// critic and policy updates); absent without timings.
    pub training_tokens_per_s: Option<f64>,
    /// Mean rows per batched decode call of the generation engine.
    pub decode_batch_mean: f64,
    /// Seconds per phase (absent without a clock).
    pub phase_seconds: Option<PhaseTimes>,
    /// Optimizer steps the NaN/Inf guard skipped, with their reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_steps: Vec<SkippedStep>,
    /// Accuracy per eval file (name to fraction correct) of the policy that sampled this
    /// iteration, i.e. measured before its update; empty when no eval ran at this iteration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub eval: BTreeMap<String, f64>,
    /// Seconds since the run started, at the end of this iteration (and its eval).
    pub wall_seconds: Option<f64>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn finite_norms(steps: &[StepReport]) -> Vec<f64> {
    steps.iter().filter(|s| s.applied && s.grad_norm.is_finite()).map(|s| s.grad_norm).collect()
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn per_second(count: usize, seconds: f64) -> Option<f64> {
    (seconds > 0.0 && seconds.is_finite()).then(|| count as f64 / seconds)
}

impl IterationMetrics {
    /// The metrics of `report`, with no eval results and no wall time (set
    /// [`Self::eval`] and [`Self::wall_seconds`] after).
    pub fn from_report(report: &IterationReport) -> IterationMetrics {
        let policy_norms = finite_norms(&report.policy_steps);
        let critic_norms = finite_norms(&report.critic_steps);
        let times = report.phase_seconds;
        let training_seconds = times.map(|t| t.experience + t.advantages + t.critic_update + t.policy_update);
        IterationMetrics {
            iteration: report.iteration,
            rollout: report.rollout.clone(),
            clip_fraction: report.clip_fraction,
            clip_ratio: report.clip_ratio,
            logp_mismatch_max: report.mismatch.map(|m| m.max_abs),
            logp_mismatch_mean: report.mismatch.map(|m| m.mean_abs),
            logp_mismatch_kl: report.mismatch.map(|m| m.kl),
            kl: report.kl.and_then(finite),
            kl_loss: report.kl_loss.and_then(finite),
            ppo_kl: finite(report.ppo_kl),
            entropy: report.entropy.and_then(finite),
            dynamic_sampling: report.dynamic_sampling,
            policy_loss: finite(report.policy_loss),
            value_loss: report.value_loss.and_then(finite),
            policy_grad_norm: mean(&policy_norms),
            critic_grad_norm: mean(&critic_norms),
            critic_grad_norm_max: critic_norms.iter().copied().reduce(f64::max),
            policy_lr: report.policy_steps.last().map(|s| s.lr),
            critic_lr: report.critic_steps.last().map(|s| s.lr),
            policy_steps: report.policy_steps.len(),
            critic_steps: report.critic_steps.len(),
            packs: report.packs,
            tokens_generated: report.tokens_generated,
            training_tokens: report.training_tokens,
            generation_tokens_per_s: times.and_then(|t| per_second(report.tokens_generated, t.rollout)),
            training_tokens_per_s: training_seconds.and_then(|s| per_second(report.training_tokens, s)),
            decode_batch_mean: report.generation.mean_batch_size(),
            phase_seconds: times,
            skipped_steps: report.skipped_steps.clone(),
            eval: BTreeMap::new(),
            wall_seconds: None,
        }
    }

    /// Seconds of the whole iteration, when timed.
    pub fn seconds(&self) -> Option<f64> {
        self.phase_seconds.map(|t| t.total)
    }
}

/// Appends [`IterationMetrics`] as JSON lines to `DIR/metrics.jsonl`, one flushed line each.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
}

impl MetricsWriter {
    /// Opens `dir/metrics.jsonl` for appending (a resumed run continues the file), creating
    /// `dir` and the file when missing. Errors name the path.
    pub fn create(dir: &Path) -> Result<MetricsWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the metrics directory {}", dir.display()))?;
        let path = dir.join(METRICS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the metrics file {}", path.display()))?;
        Ok(MetricsWriter { path, file })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `metrics` as one line and flushes it.
    pub fn write(&mut self, metrics: &IterationMetrics) -> Result<()> {
        let mut line = serde_json::to_string(metrics).with_context(|| {
            format!("serializing the metrics of iteration {} for {}", metrics.iteration, self.path.display())
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing iteration {} to {}", metrics.iteration, self.path.display()))
    }
}

/// Reads every line of a metrics file (blank lines skipped). Errors name the file and, for a
/// line that is not valid [`IterationMetrics`] JSON, its 1-based line number.
pub fn read_metrics(path: &Path) -> Result<Vec<IterationMetrics>> {
    let file = File::open(path).with_context(|| format!("opening the metrics file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {} line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let m = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not an iteration's metrics", path.display(), i + 1))?;
        out.push(m);
    }
    Ok(out)
}

/// The eval of the trained model, after the last iteration: `DIR/eval/final.json` (a metrics
/// line holds the eval of the policy that sampled that iteration, so this one has no line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalEval {
    /// The iteration count the trained model reached (the x of its point on the plot).
    pub iteration: u64,
    /// Accuracy per eval file.
    pub accuracy: BTreeMap<String, f64>,
}

impl FinalEval {
    /// Where a run writing metrics into `dir` keeps its final eval.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("eval").join("final.json")
    }

    /// Writes `dir/eval/final.json` (the `eval` directory must exist). Errors name the path.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = FinalEval::path(dir);
        let json = serde_json::to_string(self)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads `dir/eval/final.json`; `None` when there is none (a run stopped early, or an eval-less
    /// one). Errors name the path.
    pub fn read(dir: &Path) -> Result<Option<FinalEval>> {
        let path = FinalEval::path(dir);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let eval = serde_json::from_str(&text).with_context(|| {
            format!("{}: not a final eval ({{\"iteration\", \"accuracy\"}})", path.display())
        })?;
        Ok(Some(eval))
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
pub(crate) mod tests;
