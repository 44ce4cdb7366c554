//! What an evaluation gives back: per-set figures ([`SetReport`]), the whole [`EvalReport`]
//! (serializable, printed as a table), and one JSONL line per completion ([`EvalLine`]).

use std::fmt;

use anyhow::{Result, bail, ensure};
use orz_core::reward::FinishReason;

/// The figures of one eval set.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetReport {
    /// The set's name (its file stem).
    pub name: String,
    /// Questions in the set.
    pub questions: usize,
    /// Samples per question.
    pub samples: usize,
    /// Mean over questions of the mean score over their samples (the paper's accuracy).
    pub accuracy: f64,
    /// Fraction of questions with at least one sample scoring 1 (pass@samples).
    pub pass_at_samples: f64,
    /// Mean generated tokens per completion.
    pub mean_response_tokens: f64,
    /// Fraction of completions that finished with `stop` (EOS or a stop string).
    pub stop_ratio: f64,
}

/// The figures of a whole evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// The sampling seed.
    pub seed: u64,
    /// Samples per question.
    pub samples: usize,
    /// The reward's name (e.g. `gate_on_stop(answer_correct)`).
    pub reward: String,
    /// One entry per set, in the order given.
    pub sets: Vec<SetReport>,
}

impl EvalReport {
    /// The set called `name`, if any.
    pub fn set(&self, name: &str) -> Option<&SetReport> {
        self.sets.iter().find(|s| s.name == name)
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.sets.iter().map(|s| s.name.len()).chain([3]).max().unwrap_or(3);
        writeln!(
            f,
            "{:<width$}  {:>9}  {:>7}  {:>8}  {:>8}  {:>10}  {:>6}",
            "set", "questions", "samples", "accuracy", "pass@n", "mean len", "stop"
        )?;
        for s in &self.sets {
            writeln!(
                f,
                "{:<width$}  {:>9}  {:>7}  {:>7.1}%  {:>7.1}%  {:>10.1}  {:>5.1}%",
                s.name,
                s.questions,
                s.samples,
                100.0 * s.accuracy,
                100.0 * s.pass_at_samples,
                s.mean_response_tokens,
                100.0 * s.stop_ratio
            )?;
        }
        write!(f, "(seed {}, {} samples per question, reward {})", self.seed, self.samples, self.reward)
    }
}

/// One completion, as written to the JSONL file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalLine {
    /// The set's name.
    pub file: String,
    /// The question's index in its set.
    pub index: usize,
    /// The sample's index among the question's.
    pub sample: usize,
    /// The question.
    pub question: String,
    /// The reference answer.
    pub reference: String,
    /// The completion's text (stop string kept).
    pub completion: String,
    /// `stop` or `length`.
    pub finish_reason: String,
    /// The answer the ORZ checker extracts (last `\boxed{}` of the first `<answer>` block; empty
    /// if none).
    pub extracted: String,
    /// The reward's score.
    pub score: f64,
    /// The reward's label (`correct`, `wrong`, `no_answer`, `truncated`, ...).
    pub label: String,
    /// Tokens generated.
    pub response_tokens: usize,
}

/// Sums of one set's completions, per question.
pub(super) struct SetAccumulator {
    name: String,
    samples: usize,
    score_sums: Vec<f64>,
    counts: Vec<usize>,
    best: Vec<f64>,
    tokens: usize,
    stops: usize,
}

impl SetAccumulator {
    /// An empty accumulator for `questions` questions of `samples` samples each.
    pub(super) fn new(name: &str, questions: usize, samples: usize) -> Self {
        SetAccumulator {
            name: name.to_string(),
            samples,
            score_sums: vec![0.0; questions],
            counts: vec![0; questions],
            best: vec![0.0; questions],
            tokens: 0,
            stops: 0,
        }
    }

    /// Adds one completion of question `q`.
    pub(super) fn add(&mut self, q: usize, score: f64, tokens: usize, finish: FinishReason) -> Result<()> {
        ensure!(
            score.is_finite(),
            "`{}` question {q}: the reward gave the non-finite score {score}",
            self.name
        );
        let Some(sum) = self.score_sums.get_mut(q) else {
            bail!("`{}`: question {q} is outside the set of {}", self.name, self.counts.len())
        };
        *sum += score;
        self.counts[q] += 1;
        self.best[q] = self.best[q].max(score);
        self.tokens += tokens;
        self.stops += usize::from(finish.is_stop());
        Ok(())
    }

    /// The set's figures; an error unless every question got exactly `samples` completions.
    pub(super) fn finish(self) -> Result<SetReport> {
        if let Some(q) = self.counts.iter().position(|&c| c != self.samples) {
            bail!("`{}` question {q}: {} completions, expected {}", self.name, self.counts[q], self.samples);
        }
        let questions = self.counts.len();
        ensure!(questions > 0, "`{}` has no question", self.name);
        let completions = (questions * self.samples) as f64;
        let per_question = self.score_sums.iter().map(|s| s / self.samples as f64);
        Ok(SetReport {
            accuracy: per_question.sum::<f64>() / questions as f64,
            pass_at_samples: self.best.iter().filter(|&&b| b >= 1.0).count() as f64 / questions as f64,
            mean_response_tokens: self.tokens as f64 / completions,
            stop_ratio: self.stops as f64 / completions,
            name: self.name,
            questions,
            samples: self.samples,
        })
    }
}
