//! Recipe steps 5 to 8: packs (step 6), old log-probs and values (step 7), and advantages and
//! returns from the scores placed on the last response tokens (steps 5 and 8).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::config::{AdvantageEstimator, TrainConfig};
use super::grouping::{greedy_packs, shuffled_order};
use super::rollout::Sample;
use crate::backend::Backend;
use crate::backend::ops::no_grad;
use crate::model::{Critic, PackedBatch, Policy, response_positions};
use crate::ppo::aggregation::PackLayout;
use crate::ppo::gae::gae;
use crate::ppo::grpo::{grpo_advantages, spread_to_tokens};
use crate::ppo::whitening::{WhiteningConvention, whiten};
use crate::reward::placement::place_on_last_tokens;
use crate::{Error, Result};

/// One pack (ORZ: one packed row of at most `packing_max_len` tokens, a micro-batch of its own):
/// the samples it holds, back to back, and which positions carry the log-probs and values of
/// response tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    /// The one-row packed batch (no padding: its length is the sum of its samples' lengths).
    pub batch: PackedBatch,
    /// Indices of its samples in the iteration's sample list, in row order.
    pub samples: Vec<usize>,
    /// Per position: true where the position holds a response token's log-prob and value (the
    /// position before the token, [`response_positions`]).
    pub response_mask: Vec<bool>,
    /// Tokens of each sample, in row order.
    pub sample_lengths: Vec<usize>,
}

impl Pack {
    /// A pack of `members` (indices into `samples`), in that order.
    pub fn new(samples: &[Sample], members: Vec<usize>) -> Result<Pack> {
        let seqs: Vec<Vec<u32>> = members.iter().map(|&i| samples[i].sequence()).collect();
        let batch = PackedBatch::pack(&[seqs])?;
        let mut response_mask = vec![false; batch.seq_len()];
        for (span, &i) in batch.samples().iter().zip(&members) {
            let s = &samples[i];
            response_mask[response_positions(span.start, s.prompt_tokens.len(), s.response.len())?]
                .fill(true);
        }
        let sample_lengths = batch.samples().iter().map(|s| s.len).collect();
        Ok(Pack { batch, samples: members, response_mask, sample_lengths })
    }

    /// The layout [`crate::ppo::aggregation`] weighs tokens by.
    pub fn layout(&self) -> PackLayout<'_> {
        PackLayout { mask: &self.response_mask, sample_lengths: &self.sample_lengths }
    }

    /// Response tokens in the pack.
    pub fn response_tokens(&self) -> usize {
        self.response_mask.iter().filter(|&&m| m).count()
    }

    /// A per-position array of the pack: each sample's per-response-token `field` at the
    /// positions of its response tokens' log-probs, 0 elsewhere. Errors if a field does not hold
    /// one entry per response token.
    pub fn scatter(&self, samples: &[Sample], field: impl Fn(&Sample) -> &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![0.0; self.batch.seq_len()];
        for (span, &i) in self.batch.samples().iter().zip(&self.samples) {
            let s = &samples[i];
            let values = field(s);
            if values.len() != s.response.len() {
                return Err(Error::invalid(
                    "pack scatter",
                    format!(
                        "sample {i} has {} entries for {} response tokens",
                        values.len(),
                        s.response.len()
                    ),
                ));
            }
            out[response_positions(span.start, s.prompt_tokens.len(), s.response.len())?]
                .copy_from_slice(values);
        }
        Ok(out)
    }
}

/// Recipe step 6: the samples in a fixed-seed shuffled order ([`shuffled_order`]), packed
/// greedily into packs of at most `packing_max_len` tokens ([`greedy_packs`]).
pub fn build_packs(samples: &[Sample], packing_max_len: usize, seed: u64) -> Result<Vec<Pack>> {
    let lengths: Vec<usize> = samples.iter().map(Sample::len).collect();
    let order = shuffled_order(samples.len(), seed);
    greedy_packs(&lengths, &order, packing_max_len)?.into_iter().map(|m| Pack::new(samples, m)).collect()
}

/// Recipe step 7: the old log-probs (policy) and, with a critic, the values of every response
/// token, pack by pack, without recording gradients. ORZ's alignment: both are read at the
/// position before each response token ([`PackedBatch::response_entries`]).
pub fn old_log_probs_and_values<B: Backend>(
    policy: &Policy<B>,
    critic: Option<&Critic<B>>,
    packs: &[Pack],
    samples: &mut [Sample],
) -> Result<()> {
    let b = policy.model().backend();
    no_grad(b, || {
        for pack in packs {
            let logp = b.to_host_f64(&policy.next_token_log_probs(&pack.batch)?)?;
            let values = critic.map(|c| b.to_host_f64(&c.values(&pack.batch)?)).transpose()?;
            for (k, &i) in pack.samples.iter().enumerate() {
                let prompt_len = samples[i].prompt_tokens.len();
                samples[i].logp_old = pack.batch.response_entries(&logp, k, prompt_len)?;
                if let Some(v) = &values {
                    samples[i].values = pack.batch.response_entries(v, k, prompt_len)?;
                }
            }
        }
        Ok(())
    })
}

/// Recipe steps 5 and 8: each sample's score on its last response token, GAE per sample on the
/// host in f64 (or GRPO group advantages spread over the tokens), then, when
/// `advantage_normalize`, whitening over every response token of the iteration with ORZ's
/// biased convention ([`WhiteningConvention::OrzBiased`]). Returns are not whitened. Fills
/// `advantages` (and `returns` under GAE) of every sample. `samples` must be in (prompt,
/// sample) order for GRPO's groups.
pub fn compute_advantages(samples: &mut [Sample], config: &TrainConfig) -> Result<()> {
    let lens: Vec<usize> = samples.iter().map(|s| s.response.len()).collect();
    let scores: Vec<f64> = samples.iter().map(|s| s.score).collect();
    let (advantages, returns) = match config.estimator {
        AdvantageEstimator::Gae => {
            let rewards = place_on_last_tokens(&scores, &lens)?;
            let values: Vec<f64> = samples.iter().flat_map(|s| s.values.iter().copied()).collect();
            let g = gae(&rewards, &values, &lens, config.gamma, config.lambda)?;
            (g.advantages, Some(g.returns))
        }
        AdvantageEstimator::Grpo(std) => {
            // Prompt groups: runs of consecutive samples of one prompt (the kept samples of
            // each prompt; a prompt whose samples were all dropped has no group).
            if samples.windows(2).any(|w| w[0].prompt > w[1].prompt) {
                return Err(Error::invalid("grpo", "samples are not in prompt order"));
            }
            let mut groups: Vec<usize> = Vec::new();
            for (k, s) in samples.iter().enumerate() {
                match groups.last_mut() {
                    Some(n) if samples[k - 1].prompt == s.prompt => *n += 1,
                    _ => groups.push(1),
                }
            }
            (spread_to_tokens(&grpo_advantages(&scores, &groups, std)?, &lens)?, None)
        }
    };
    let advantages = if config.advantage_normalize {
        whiten(&advantages, WhiteningConvention::OrzBiased, true)?
    } else {
        advantages
    };
    let mut start = 0;
    for (s, &len) in samples.iter_mut().zip(&lens) {
        s.advantages = advantages[start..start + len].to_vec();
        s.returns = returns.as_ref().map_or_else(Vec::new, |r| r[start..start + len].to_vec());
        start += len;
    }
    Ok(())
}
