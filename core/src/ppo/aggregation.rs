//! Reducing per-token losses to the scalar of one optimizer step, and the per-token weights
//! (`d aggregate / d token loss`) that let a backend apply the same reduction to its gradients.
//!
//! An optimizer step accumulates several packs (packed rows of samples); a micro-batch is any
//! subset of whole packs. [`StepTotals`] holds the step-wide counts, so that each micro-batch's
//! contribution ([`Aggregation::micro_batch_loss`]) adds up to the step's aggregate however the
//! packs are split.

use alloc::vec::Vec;
use num_traits::Float;

use crate::error::{Error, Result, check_len};
use crate::ppo::layout::{check_finite_valid, sample_ranges};
use crate::ppo::sum::{compensated_sum, count};

/// How per-token losses become the loss of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Aggregation {
    /// ORZ: the mean over each pack's valid (response) tokens, then the mean over the packs of
    /// the optimizer step (Open-Reasoner-Zero `orz/ppo`: `masked_mean` per packed row, gradient
    /// accumulation averaging the rows). Neither a token mean nor a sequence mean: a token's
    /// weight depends on how full its pack is. OpenRLHF (before its `batch_num_tokens` fix)
    /// averaged per-micro-batch means the same way.
    OrzPackMean,
    /// Global token mean over all valid tokens of the step (DAPO, veRL `token-mean`, OpenRLHF's
    /// `aggregate_loss` with `batch_num_tokens`).
    TokenMean,
    /// Mean over the samples of the step of each sample's token mean (veRL
    /// `seq-mean-token-mean`, GRPO's original form). Samples with no valid token are not counted
    /// (as OpenRLHF's `get_loss_batch_info`).
    SeqMeanTokenMean,
    /// Mean over the samples of the step of each sample's token *sum* divided by the constant
    /// `norm` (Dr. GRPO's "no length normalisation", Liu et al. 2025; veRL
    /// `seq-mean-token-sum-norm`): a token's weight does not depend on its sample's length.
    /// Dr. GRPO takes `norm` = the generation budget (`train.stop.max_new_tokens`). Samples with
    /// no valid token are not counted.
    SeqMeanTokenSumNorm {
        /// The constant every sample's token sum is divided by (at least 1).
        norm: usize,
    },
}

/// One pack's layout: which tokens are valid (response tokens) and how its tokens split into
/// samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackLayout<'a> {
    /// One flag per token of the pack: true for a token whose loss counts.
    pub mask: &'a [bool],
    /// Tokens per sample, in order; they sum to `mask.len()`.
    pub sample_lengths: &'a [usize],
}

/// Step-wide counts that fix every token's weight: packs, valid tokens, samples with a valid
/// token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTotals {
    /// Packs in the optimizer step.
    pub packs: usize,
    /// Valid tokens in the step.
    pub tokens: usize,
    /// Samples with at least one valid token in the step.
    pub samples: usize,
}

const OP: &str = "aggregation";

/// Valid-token counts of one pack: the pack's total, then one per sample.
fn pack_counts(pack: &PackLayout<'_>) -> Result<(usize, Vec<usize>)> {
    let ranges = sample_ranges(OP, pack.sample_lengths, ("mask", pack.mask.len()))?;
    let per_sample: Vec<usize> =
        ranges.into_iter().map(|r| pack.mask[r].iter().filter(|&&m| m).count()).collect();
    Ok((per_sample.iter().sum(), per_sample))
}

impl StepTotals {
    /// Counts over all packs of one optimizer step (validating every layout).
    ///
    /// Errors: no pack, a bad layout, no valid token in the whole step.
    pub fn of(packs: &[PackLayout<'_>]) -> Result<Self> {
        if packs.is_empty() {
            return Err(Error::Empty { op: OP, what: "packs" });
        }
        let mut totals = StepTotals { packs: packs.len(), tokens: 0, samples: 0 };
        for pack in packs {
            let (tokens, per_sample) = pack_counts(pack)?;
            totals.tokens += tokens;
            totals.samples += per_sample.iter().filter(|&&n| n > 0).count();
        }
        if totals.tokens == 0 {
            return Err(Error::Empty { op: OP, what: "valid tokens of the step" });
        }
        Ok(totals)
    }
}

impl Aggregation {
    /// Every token's weight in the step's loss (0 at masked tokens), pack by pack, for the packs
    /// of a micro-batch of a step with the given totals.
    ///
    /// Errors: a bad layout; under `OrzPackMean`, a pack with no valid token (ORZ's
    /// `masked_mean` would divide 0 by 0).
    pub fn token_weights<F: Float>(
        &self,
        totals: &StepTotals,
        packs: &[PackLayout<'_>],
    ) -> Result<Vec<Vec<F>>> {
        packs
            .iter()
            .enumerate()
            .map(|(p, pack)| {
                let (tokens, per_sample) = pack_counts(pack)?;
                let mut weights = Vec::with_capacity(pack.mask.len());
                for (len, valid) in pack.sample_lengths.iter().zip(per_sample) {
                    let w = match self {
                        Aggregation::OrzPackMean if tokens == 0 => {
                            return Err(Error::invalid(OP, alloc::format!("pack {p} has no valid token")));
                        }
                        Aggregation::OrzPackMean => inverse::<F>(totals.packs * tokens),
                        Aggregation::TokenMean => inverse::<F>(totals.tokens),
                        Aggregation::SeqMeanTokenMean => inverse::<F>(totals.samples * valid.max(1)),
                        Aggregation::SeqMeanTokenSumNorm { norm: 0 } => {
                            return Err(Error::invalid(OP, "SeqMeanTokenSumNorm needs norm >= 1, got 0"));
                        }
                        Aggregation::SeqMeanTokenSumNorm { norm } => inverse::<F>(totals.samples * norm),
                    };
                    let start = weights.len();
                    weights
                        .extend(pack.mask[start..start + len].iter().map(|&m| if m { w } else { F::zero() }));
                }
                Ok(weights)
            })
            .collect()
    }

    /// The contribution of a micro-batch (some whole packs of a step with `totals`) to the step's
    /// loss: `Σ weight · loss` over its valid tokens. Contributions of any split of the step's
    /// packs add up to [`Aggregation::aggregate`]. Masked losses are never read.
    ///
    /// Errors: as [`Aggregation::token_weights`], a loss slice per pack of the wrong length, a
    /// non-finite valid loss.
    pub fn micro_batch_loss<F: Float>(
        &self,
        totals: &StepTotals,
        packs: &[PackLayout<'_>],
        losses: &[&[F]],
    ) -> Result<F> {
        check_len(OP, ("packs", packs.len()), ("losses", losses.len()))?;
        let weights = self.token_weights::<F>(totals, packs)?;
        let mut terms = Vec::new();
        for ((pack, w), loss) in packs.iter().zip(&weights).zip(losses) {
            check_len(OP, ("mask", pack.mask.len()), ("losses", loss.len()))?;
            check_finite_valid(OP, "losses", loss, Some(pack.mask))?;
            terms.extend(
                pack.mask.iter().zip(w).zip(loss.iter()).filter(|((m, _), _)| **m).map(|((_, &w), &l)| w * l),
            );
        }
        Ok(compensated_sum(terms))
    }

    /// The loss of a whole optimizer step: the per-token losses of its packs reduced by this
    /// aggregation.
    pub fn aggregate<F: Float>(&self, packs: &[PackLayout<'_>], losses: &[&[F]]) -> Result<F> {
        self.micro_batch_loss(&StepTotals::of(packs)?, packs, losses)
    }
}

fn inverse<F: Float>(n: usize) -> F {
    F::one() / count::<F>(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    // Two packs: pack 0 holds samples [2, 2] with masks [1 1 | 0 1]; pack 1 holds [3] with [1 1 1].
    const M0: [bool; 4] = [true, true, false, true];
    const M1: [bool; 3] = [true, true, true];
    const L0: [f64; 4] = [1.0, 3.0, f64::NAN, 5.0];
    const L1: [f64; 3] = [2.0, 4.0, 6.0];

    fn packs() -> [PackLayout<'static>; 2] {
        [PackLayout { mask: &M0, sample_lengths: &[2, 2] }, PackLayout { mask: &M1, sample_lengths: &[3] }]
    }

    #[test]
    fn hand_computed_aggregates() {
        let losses: [&[f64]; 2] = [&L0, &L1];
        let agg = |a: Aggregation| a.aggregate(&packs(), &losses).unwrap();
        // Pack means 3 and 4 → 3.5.
        assert!((agg(Aggregation::OrzPackMean) - 3.5).abs() < 1e-12);
        // 21 / 6 tokens.
        assert!((agg(Aggregation::TokenMean) - 3.5).abs() < 1e-12);
        // Sample means 2, 5, 4 → 11 / 3.
        assert!((agg(Aggregation::SeqMeanTokenMean) - 11.0 / 3.0).abs() < 1e-12);
        // Sample sums 4, 5, 12, each / 4, averaged over 3 samples → 21 / 12.
        assert!((agg(Aggregation::SeqMeanTokenSumNorm { norm: 4 }) - 21.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn weights_are_the_gradient_of_the_aggregate() {
        let totals = StepTotals::of(&packs()).unwrap();
        let w = Aggregation::OrzPackMean.token_weights::<f64>(&totals, &packs()).unwrap();
        let third = 1.0 / 6.0;
        assert_eq!(w, [vec![third, third, 0.0, third], vec![third; 3]]);
        let w = Aggregation::SeqMeanTokenMean.token_weights::<f64>(&totals, &packs()).unwrap();
        assert_eq!(w, [vec![1.0 / 6.0, 1.0 / 6.0, 0.0, 1.0 / 3.0], vec![1.0 / 9.0; 3]]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(StepTotals::of(&[]).is_err());
        let empty = [PackLayout { mask: &[false, false], sample_lengths: &[2] }];
        assert!(StepTotals::of(&empty).is_err());
        let bad = [PackLayout { mask: &M1, sample_lengths: &[2] }];
        assert!(StepTotals::of(&bad).is_err());
        let losses: [&[f64]; 1] = [&L1];
        assert!(Aggregation::TokenMean.aggregate(&packs(), &losses).is_err());
        let half_empty = [PackLayout { mask: &M1, sample_lengths: &[3] }, empty[0]];
        let totals = StepTotals::of(&half_empty).unwrap();
        assert!(Aggregation::OrzPackMean.token_weights::<f64>(&totals, &half_empty).is_err());
        let zero = Aggregation::SeqMeanTokenSumNorm { norm: 0 };
        assert!(zero.token_weights::<f64>(&StepTotals::of(&packs()).unwrap(), &packs()).is_err());
    }
}
