//! [`IterationReport`]: what one iteration did, for logs and metrics.

use alloc::string::String;
use alloc::vec::Vec;

use num_traits::Float;

use super::rollout::Sample;
use crate::generation::GenerationStats;
use crate::optimizer::StepReport;

/// ORZ's reflection patterns (`orz/ppo/utils.py`, `check_reflection_pattern`: the regexes
/// `wait,`, `recheck[,\s]`, `retry`, `alternatively,`, `however,`), in [`ReflectionCounts`]
/// order. A trailing `,` must follow literally; `recheck` must be followed by `,` or whitespace.
pub const REFLECTION_PATTERNS: [&str; 5] = ["wait,", "recheck", "retry", "alternatively,", "however,"];

/// Occurrences of ORZ's reflection patterns over the kept responses of an iteration: for each
/// pattern of [`REFLECTION_PATTERNS`], non-overlapping matches in the response text, matched
/// ASCII-case-insensitively (ORZ's regexes run on the raw text, case-sensitively: "Wait," at a
/// sentence start counts here, not in ORZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReflectionCounts {
    /// `wait,`
    pub wait: usize,
    /// `recheck` followed by `,` or whitespace.
    pub recheck: usize,
    /// `retry`
    pub retry: usize,
    /// `alternatively,`
    pub alternatively: usize,
    /// `however,`
    pub however: usize,
    /// Responses with at least one match.
    pub responses_with_any: usize,
}

impl ReflectionCounts {
    /// The counts of one response.
    pub fn of(text: &str) -> ReflectionCounts {
        let lower = text.to_ascii_lowercase();
        let count = |pattern: &str, needs_follower: bool| {
            lower
                .match_indices(pattern)
                .filter(|(i, m)| {
                    !needs_follower
                        || lower[i + m.len()..].chars().next().is_some_and(|c| c == ',' || c.is_whitespace())
                })
                .count()
        };
        let [wait, recheck, retry, alternatively, however] =
            REFLECTION_PATTERNS.map(|p| count(p, p == "recheck"));
        let any = wait + recheck + retry + alternatively + however > 0;
        ReflectionCounts {
            wait,
            recheck,
            retry,
            alternatively,
            however,
            responses_with_any: usize::from(any),
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ReflectionCounts) {
        self.wait += other.wait;
        self.recheck += other.recheck;
        self.retry += other.retry;
        self.alternatively += other.alternatively;
        self.however += other.however;
        self.responses_with_any += other.responses_with_any;
    }

    /// All matches of all patterns.
    pub fn total(&self) -> usize {
        self.wait + self.recheck + self.retry + self.alternatively + self.however
    }
}

/// Seconds spent in each phase of an iteration (when a clock was given).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PhaseTimes {
    /// Steps 2-4: truncation, sampling, scoring, dropping.
    pub rollout: f64,
    /// Steps 6-7: shuffling and packing, old log-probs and values.
    pub experience: f64,
    /// Steps 5 and 8: scores on the last tokens, GAE or GRPO, whitening.
    pub advantages: f64,
    /// Step 9: the critic's steps.
    pub critic_update: f64,
    /// Step 10: the policy's steps.
    pub policy_update: f64,
    /// The whole iteration.
    pub total: f64,
}

/// Which model an optimizer step belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ModelKind {
    /// The policy.
    Policy,
    /// The critic.
    Critic,
}

/// An optimizer step the NaN/Inf guard skipped.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SkippedStep {
    /// Whose step.
    pub model: ModelKind,
    /// Its index among this iteration's steps of that model.
    pub index: usize,
    /// The optimizer's reason.
    pub reason: String,
}

/// Statistics of the kept samples of one iteration.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RolloutMetrics {
    /// Prompts of the iteration.
    pub prompts: usize,
    /// Completions generated.
    pub generated: usize,
    /// Completions dropped for empty text (recipe step 4).
    pub dropped_empty: usize,
    /// Samples trained on (generated minus dropped).
    pub samples: usize,
    /// Mean score of the kept samples.
    pub mean_reward: f64,
    /// Fraction of prompts with at least one kept sample labelled correct (pass@n, n =
    /// `n_samples_per_prompt`).
    pub pass_at_n: f64,
    /// Fraction of kept samples labelled correct ([`crate::reward::label::CORRECT`]).
    pub correct_fraction: f64,
    /// Mean response length in tokens (kept samples).
    pub response_length_mean: f64,
    /// Population standard deviation of the response length in tokens.
    pub response_length_std: f64,
    /// Mean response length of the correct samples (`None` without one).
    pub correct_length_mean: Option<f64>,
    /// Mean response length of the other samples (`None` without one).
    pub incorrect_length_mean: Option<f64>,
    /// Fraction of kept samples that finished with `stop` (not `length`).
    pub stop_ratio: f64,
    /// ORZ's reflection-word counts over the kept responses.
    pub reflection: ReflectionCounts,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| sum / n as f64)
}

impl RolloutMetrics {
    /// The metrics of `samples` (the kept ones, non-empty) from `prompts` prompts and
    /// `generated` completions.
    pub fn of(prompts: usize, generated: usize, samples: &[Sample]) -> RolloutMetrics {
        let n = samples.len().max(1) as f64;
        let len = |s: &Sample| s.response.len() as f64;
        let length_mean = mean(samples.iter().map(len)).unwrap_or(0.0);
        let var =
            mean(samples.iter().map(|s| (len(s) - length_mean) * (len(s) - length_mean))).unwrap_or(0.0);
        let mut passed = alloc::vec![false; prompts];
        let mut reflection = ReflectionCounts::default();
        for s in samples {
            if s.is_correct()
                && let Some(p) = passed.get_mut(s.prompt)
            {
                *p = true;
            }
            reflection.add(&ReflectionCounts::of(&s.text));
        }
        let correct = samples.iter().filter(|s| s.is_correct()).count();
        RolloutMetrics {
            prompts,
            generated,
            dropped_empty: generated - samples.len(),
            samples: samples.len(),
            mean_reward: samples.iter().map(|s| s.score).sum::<f64>() / n,
            pass_at_n: passed.iter().filter(|&&p| p).count() as f64 / prompts.max(1) as f64,
            correct_fraction: correct as f64 / n,
            response_length_mean: length_mean,
            response_length_std: Float::sqrt(var),
            correct_length_mean: mean(samples.iter().filter(|s| s.is_correct()).map(len)),
            incorrect_length_mean: mean(samples.iter().filter(|s| !s.is_correct()).map(len)),
            stop_ratio: samples.iter().filter(|s| s.finish_reason.is_stop()).count() as f64 / n,
            reflection,
        }
    }
}

/// What one iteration did (see [`super::Trainer::iteration`]).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IterationReport {
    /// The iteration's index (0 for the first).
    pub iteration: u64,
    /// Rewards, pass@n, lengths, stop ratio, reflection words.
    pub rollout: RolloutMetrics,
    /// Packs the samples were packed into (recipe step 6).
    pub packs: usize,
    /// Tokens generated by the engine (all completions, dropped ones included).
    pub tokens_generated: usize,
    /// Prompt plus response tokens of the kept samples (what the updates run over).
    pub training_tokens: usize,
    /// The generation engine's counters.
    pub generation: GenerationStats,
    /// Fraction of response tokens over the policy steps whose clipped surrogate was strictly
    /// the smaller (their gradient is 0; always 0 at ORZ's single step, where the ratio is 1).
    pub clip_fraction: f64,
    /// Fraction of response tokens over the policy steps whose ratio lay outside
    /// `[1 − ε, 1 + ε]` (ORZ's `clip_ratio` metric; at least [`Self::clip_fraction`]; 0 at
    /// ORZ's single step).
    #[cfg_attr(feature = "serde", serde(default))]
    pub clip_ratio: f64,
    /// The rollout/train mismatch of the iteration's response tokens (`None` unless
    /// [`super::TrainConfig::measure_mismatch`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub mismatch: Option<super::Mismatch>,
    /// Mean per-token KL of the sampling policy to the frozen reference over the iteration's
    /// response tokens (`None` without a KL option; [`super::reference`] names the estimator
    /// and the peers' definitions).
    #[cfg_attr(feature = "serde", serde(default))]
    pub kl: Option<f64>,
    /// Mean per-token KL-loss term over the policy steps' tokens, before its coefficient
    /// (veRL's `actor/kl_loss`; `None` unless `use_kl_loss`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub kl_loss: Option<f64>,
    /// Mean `logp_old − logp` over the policy steps' tokens: the k1 KL of the updated policy
    /// from the sampling one (veRL's `actor/ppo_kl`; 0 at ORZ's single step).
    #[cfg_attr(feature = "serde", serde(default))]
    pub ppo_kl: f64,
    /// Mean full-vocabulary entropy of the policy over the policy steps' tokens (`None` unless
    /// `entropy_coef > 0`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub entropy: Option<f64>,
    /// What DAPO's dynamic sampling did (`None` when off).
    #[cfg_attr(feature = "serde", serde(default))]
    pub dynamic_sampling: Option<super::dynamic_sampling::DynamicSamplingStats>,
    /// Mean over the policy steps of each step's aggregated policy loss.
    pub policy_loss: f64,
    /// Mean over the critic steps of each step's aggregated value loss (`None` without critic).
    pub value_loss: Option<f64>,
    /// The policy's optimizer steps.
    pub policy_steps: Vec<StepReport>,
    /// The critic's optimizer steps (empty without critic).
    pub critic_steps: Vec<StepReport>,
    /// Steps the NaN/Inf guard skipped, with the reasons.
    pub skipped_steps: Vec<SkippedStep>,
    /// Seconds per phase, when the iteration was given a clock.
    pub phase_seconds: Option<PhaseTimes>,
}

impl IterationReport {
    /// Gradient norm (before clipping) and learning rate of the policy's last step.
    pub fn policy_last_step(&self) -> Option<(f64, f64)> {
        self.policy_steps.last().map(|s| (s.grad_norm, s.lr))
    }

    /// Gradient norm (before clipping) and learning rate of the critic's last step.
    pub fn critic_last_step(&self) -> Option<(f64, f64)> {
        self.critic_steps.last().map(|s| (s.grad_norm, s.lr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_patterns_as_orz_with_case_folded() {
        let c =
            ReflectionCounts::of("Wait, no. wait, HOWEVER, however retry; retry Recheck. recheck, recheck x");
        assert_eq!((c.wait, c.however, c.retry, c.recheck), (2, 1, 2, 2));
        assert_eq!((c.alternatively, c.responses_with_any, c.total()), (0, 1, 7));
        assert_eq!(ReflectionCounts::of("rechecked waits").total(), 0);
    }
}
