//! Proptest strategies for the inputs of PPO math (`orz_core::ppo`): packed batches of samples
//! with their lengths, 0/1 scores on each sample's last token, values, log-probs with old
//! log-probs near them, masks and advantages.
//!
//! A user property test: with γ = λ = 1, GAE's return is each sample's score on every valid
//! token (write `#[test]` before the `fn` in a test file; here it is called from `main`).
//!
//! ```
//! use orz_conformance::strategies::packed_batch;
//! use orz_core::ppo::gae::gae_masked;
//! use proptest::prelude::*;
//!
//! proptest! {
//!     fn returns_are_the_score(batch in packed_batch(8, 32)) {
//!         let g = gae_masked(&batch.rewards, &batch.values, &batch.mask, &batch.lengths, 1.0, 1.0)
//!             .unwrap();
//!         for (range, score) in batch.sample_ranges().into_iter().zip(batch.scores()) {
//!             for t in range.filter(|&t| batch.mask[t]) {
//!                 prop_assert!((g.returns[t] - score).abs() < 1e-12);
//!             }
//!         }
//!     }
//! }
//!
//! fn main() {
//!     returns_are_the_score();
//! }
//! ```

use core::ops::Range;

use proptest::collection::vec;
use proptest::prelude::*;

/// Per-token inputs of one packed batch (or one pack), all of the same length: the samples'
/// tokens back to back, cut by `lengths`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedBatch {
    /// Tokens per sample (each ≥ 1).
    pub lengths: Vec<usize>,
    /// Rewards: the sample's 0/1 score on its last token, 0 elsewhere (ORZ).
    pub rewards: Vec<f64>,
    /// Critic values in `[-1, 2)`.
    pub values: Vec<f64>,
    /// New log-probs in `[-8, 0)`.
    pub logp: Vec<f64>,
    /// Old log-probs: `logp` plus a shift in `(-0.5, 0.5)`, so ratios fall on both sides of the
    /// clip range.
    pub logp_old: Vec<f64>,
    /// Valid tokens; each sample's last token is valid, so no sample is empty.
    pub mask: Vec<bool>,
    /// Advantages in `[-3, 3)`.
    pub advantages: Vec<f64>,
}

impl PackedBatch {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether the batch has no token (never, for batches from [`packed_batch`]).
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Each sample's token range.
    pub fn sample_ranges(&self) -> Vec<Range<usize>> {
        ranges(&self.lengths)
    }

    /// Each sample's score (its reward on its last token).
    pub fn scores(&self) -> Vec<f64> {
        self.sample_ranges().into_iter().map(|r| self.rewards[r.end - 1]).collect()
    }
}

/// Token ranges of consecutive samples of the given lengths.
pub fn ranges(lengths: &[usize]) -> Vec<Range<usize>> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            start += len;
            start - len..start
        })
        .collect()
}

/// Between 1 and `max_samples` sample lengths, each between 1 and `max_len`.
pub fn sample_lengths(max_samples: usize, max_len: usize) -> impl Strategy<Value = Vec<usize>> {
    vec(1..=max_len.max(1), 1..=max_samples.max(1))
}

/// `n` scores, each 0.0 or 1.0 (ORZ's rule-based reward).
pub fn binary_scores(n: usize) -> impl Strategy<Value = Vec<f64>> {
    vec(prop_oneof![Just(0.0), Just(1.0)], n)
}

/// Per-token rewards: each sample's score on its last token, 0 elsewhere.
pub fn rewards_on_last_token(lengths: &[usize], scores: &[f64]) -> Vec<f64> {
    let mut rewards = vec![0.0; lengths.iter().sum()];
    for (range, &score) in ranges(lengths).into_iter().zip(scores) {
        rewards[range.end - 1] = score;
    }
    rewards
}

/// `n` critic values in `[-1, 2)`.
pub fn values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    vec(-1.0..2.0, n)
}

/// `n` log-probs in `[-8, 0)`.
pub fn log_probs(n: usize) -> impl Strategy<Value = Vec<f64>> {
    vec(-8.0..0.0, n)
}

/// Old log-probs near `logp`: each shifted by a value in `(-spread, spread)`.
pub fn old_log_probs_near(logp: Vec<f64>, spread: f64) -> impl Strategy<Value = Vec<f64>> {
    let spread = spread.abs().max(f64::MIN_POSITIVE);
    vec(-spread..spread, logp.len()).prop_map(move |d| logp.iter().zip(d).map(|(l, d)| l + d).collect())
}

/// `n` advantages in `[-3, 3)`.
pub fn advantages(n: usize) -> impl Strategy<Value = Vec<f64>> {
    vec(-3.0..3.0, n)
}

/// A random mask over samples of the given lengths in which each sample's last token is valid.
pub fn mask(lengths: Vec<usize>) -> impl Strategy<Value = Vec<bool>> {
    let n: usize = lengths.iter().sum();
    vec(any::<bool>(), n).prop_map(move |mut m| {
        for r in ranges(&lengths) {
            m[r.end - 1] = true;
        }
        m
    })
}

/// A packed batch of 1 to `max_samples` samples of 1 to `max_len` tokens each.
pub fn packed_batch(max_samples: usize, max_len: usize) -> impl Strategy<Value = PackedBatch> {
    sample_lengths(max_samples, max_len).prop_flat_map(|lengths| {
        let n: usize = lengths.iter().sum();
        let logp_pair =
            log_probs(n).prop_flat_map(|logp| (Just(logp.clone()), old_log_probs_near(logp, 0.5)));
        (binary_scores(lengths.len()), values(n), logp_pair, mask(lengths.clone()), advantages(n)).prop_map(
            move |(scores, values, (logp, logp_old), mask, advantages)| PackedBatch {
                rewards: rewards_on_last_token(&lengths, &scores),
                lengths: lengths.clone(),
                values,
                logp,
                logp_old,
                mask,
                advantages,
            },
        )
    })
}

/// Between 1 and `max_packs` packs (the packs of one optimizer step), each a [`packed_batch`].
pub fn packs(
    max_packs: usize,
    max_samples: usize,
    max_len: usize,
) -> impl Strategy<Value = Vec<PackedBatch>> {
    vec(packed_batch(max_samples, max_len), 1..=max_packs.max(1))
}
