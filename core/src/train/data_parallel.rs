//! A data-parallel iteration over the ranks of a [`Collective`]: what each rank computes and
//! what the ranks exchange, so that W ranks train as one process would on the same prompts.
//!
//! Every rank receives the whole iteration's prompt list (the same on every rank) and:
//!
//! 1. **rollout**: samples the prompts it owns ([`owned`]: prompt `i` belongs to rank
//!    `i mod W`), each keyed by its index in the whole list
//!    ([`crate::generation::Request::seed_key`]), so a completion does not depend on the world
//!    size; the ranks then exchange their completions ([`Collective::all_gather_bytes`]) and
//!    each rank scores the ones it received with the same reward (rewards must be
//!    deterministic, as rule-based rewards are). Every rank thus holds every sample, in
//!    (prompt, sample) order;
//! 2. **experience**: packs all samples as one process would (same seed, same packs), reads
//!    the old log-probs and values of the packs it owns (pack `p` belongs to rank `p mod W`),
//!    and the ranks exchange them (a sum of zero-filled vectors, exact in f64);
//! 3. **advantages**: computed on every rank from the whole iteration: ORZ's whole-iteration
//!    whitening and every token-count normaliser see exactly the single-process numbers;
//! 4. **update**: each optimizer step's group of packs is split across the ranks
//!    (`group[j]` to rank `j mod W`) with the token weights of the whole group; a rank with
//!    fewer packs adds empty micro-batches so that every rank reduce-scatters the same number
//!    of times ([`crate::shard::ShardedOptimizer`]); step losses and clip counts are summed over
//!    the ranks.
//!
//! At W = 1 every exchange is the identity and the trainer keeps its single-process
//! optimizers: the same path gives today's results bit for bit.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::config::TrainConfig;
use super::rollout::{PromptItem, Rollout, Sample, truncate_prompt};
use crate::backend::Backend;
use crate::collective::{Collective, ReduceOp};
use crate::generation::{FinishReason, GenerationStats};
use crate::reward::{Reward, RewardInput};
use crate::{Error, Result};

/// The indices in `0..n` that `rank` of `world` owns: those equal to `rank` modulo `world`.
pub fn owned(n: usize, rank: usize, world: usize) -> Vec<usize> {
    (0..n).filter(|i| world > 0 && i % world == rank).collect()
}

/// Appends `x` as 8 little-endian bytes.
fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// Reads the records [`encode_samples`] wrote.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    rank: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            Error::invalid(
                "data-parallel rollout",
                format!(
                    "rank {}'s completions end early (byte {} of {})",
                    self.rank,
                    self.at,
                    self.bytes.len()
                ),
            )
        })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn usize(&mut self) -> Result<usize> {
        let x = self.u64()?;
        usize::try_from(x)
            .map_err(|_| Error::invalid("data-parallel rollout", format!("length {x} too large")))
    }
}

/// The completions of `samples` as bytes: per sample its prompt index, sample index, finish
/// reason, response tokens, text and sampling log-probs (scores are recomputed by the receiver).
pub fn encode_samples(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, samples.len() as u64);
    for s in samples {
        put_u64(&mut out, s.prompt as u64);
        put_u64(&mut out, s.sample as u64);
        out.push(u8::from(s.finish_reason == FinishReason::Length));
        put_u64(&mut out, s.response.len() as u64);
        for &t in &s.response {
            out.extend_from_slice(&t.to_le_bytes());
        }
        put_u64(&mut out, s.text.len() as u64);
        out.extend_from_slice(s.text.as_bytes());
        put_u64(&mut out, s.sampling_log_probs.len() as u64);
        for &lp in &s.sampling_log_probs {
            out.extend_from_slice(&lp.to_le_bytes());
        }
    }
    out
}

/// The samples rank `rank` sent ([`encode_samples`]), rebuilt against the iteration's
/// `prompts` (their truncation as in the rollout) and scored with `reward`.
pub fn decode_samples(
    bytes: &[u8],
    rank: usize,
    prompts: &[PromptItem],
    config: &TrainConfig,
    reward: &dyn Reward,
) -> Result<Vec<Sample>> {
    const OP: &str = "data-parallel rollout";
    let mut r = Reader { bytes, at: 0, rank };
    let n = r.usize()?;
    let mut out = Vec::with_capacity(n.min(bytes.len()));
    for _ in 0..n {
        let prompt = r.usize()?;
        let sample = r.usize()?;
        let finish_reason = if r.take(1)?[0] == 1 { FinishReason::Length } else { FinishReason::Stop };
        let len = r.usize()?;
        let response: Vec<u32> = r
            .take(len.saturating_mul(4))?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let text_len = r.usize()?;
        let text = String::from_utf8(r.take(text_len)?.to_vec()).map_err(|_| {
            Error::invalid(OP, format!("rank {rank} sent a completion whose text is not UTF-8"))
        })?;
        let n_lp = r.usize()?;
        let sampling_log_probs = r
            .take(n_lp.saturating_mul(8))?
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let p = prompts.get(prompt).ok_or_else(|| {
            Error::invalid(
                OP,
                format!("rank {rank} sent a completion of prompt {prompt} of {}", prompts.len()),
            )
        })?;
        let prompt_tokens =
            truncate_prompt(prompt, &p.tokens, config.prompt_max_len, config.prompt_overflow)?;
        let outcome = reward.score(&RewardInput::new(&p.text, &text, finish_reason, &p.reference));
        let score = super::overlong::scored(config, outcome.score, response.len());
        out.push(Sample {
            prompt,
            sample,
            prompt_tokens,
            response,
            text,
            finish_reason,
            score,
            label: outcome.label,
            sampling_log_probs,
        });
    }
    Ok(out)
}

/// Step 1's exchange: every rank's kept samples (this rank's `local` ones as they are, the
/// others' rebuilt and scored with `reward`) in (prompt, sample) order, with the generation
/// counters summed over the ranks. Every rank must call it.
pub fn gather_rollout<B: Backend>(
    collective: &dyn Collective<B>,
    prompts: &[PromptItem],
    config: &TrainConfig,
    reward: &dyn Reward,
    local: Rollout,
) -> Result<Rollout> {
    let rank = collective.rank();
    let all = collective.all_gather_bytes(&encode_samples(&local.samples))?;
    let mut samples = Vec::new();
    let mut local_samples = Some(local.samples);
    for (r, bytes) in all.iter().enumerate() {
        if r == rank {
            samples.extend(local_samples.take().unwrap_or_default());
        } else {
            samples.extend(decode_samples(bytes, r, prompts, config, reward)?);
        }
    }
    samples.sort_by_key(|s| (s.prompt, s.sample));
    let s = local.stats;
    let counts = [
        local.generated,
        local.dropped_empty,
        s.slots,
        s.prefills,
        s.slot_copies,
        s.decode_steps,
        s.decode_rows,
        s.tokens_generated,
    ]
    .map(|c| c as f64);
    let sums: Vec<usize> =
        collective.all_reduce_host(&counts, ReduceOp::Sum)?.into_iter().map(|c| c as usize).collect();
    let stats = GenerationStats {
        slots: sums[2],
        prefills: sums[3],
        slot_copies: sums[4],
        decode_steps: sums[5],
        decode_rows: sums[6],
        tokens_generated: sums[7],
    };
    Ok(Rollout { samples, generated: sums[0], dropped_empty: sums[1], stats })
}

/// Step 2's exchange: `per_sample` (one vector per sample, this rank's entries filled for the
/// samples whose flag in `mine` is set, empty for the others) completed with every rank's
/// entries. `lengths` gives each sample's entry count. Every rank must call it.
pub fn share_per_sample<B: Backend>(
    collective: &dyn Collective<B>,
    per_sample: Vec<Vec<f64>>,
    lengths: &[usize],
    mine: &[bool],
) -> Result<Vec<Vec<f64>>> {
    if collective.world_size() == 1 {
        return Ok(per_sample);
    }
    let total: usize = lengths.iter().sum();
    let mut flat = vec![0.0; total];
    let mut at = 0;
    for ((values, &len), &own) in per_sample.iter().zip(lengths).zip(mine) {
        if own {
            crate::error::check_len("data-parallel experience", ("entries", values.len()), ("tokens", len))?;
            flat[at..at + len].copy_from_slice(values);
        }
        at += len;
    }
    let flat = collective.all_reduce_host(&flat, ReduceOp::Sum)?;
    let mut at = 0;
    Ok(lengths
        .iter()
        .map(|&len| {
            let v = flat[at..at + len].to_vec();
            at += len;
            v
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::label;
    use alloc::string::ToString;

    struct Len;
    impl Reward for Len {
        fn name(&self) -> &str {
            "len"
        }
        fn score(&self, input: &RewardInput<'_>) -> crate::reward::RewardOutcome {
            crate::reward::RewardOutcome::new(input.completion.len() as f64, label::CORRECT)
        }
    }

    #[test]
    fn owned_indices_are_strided_and_cover_each_index_once() {
        assert_eq!(owned(7, 1, 3), [1, 4]);
        let mut all: Vec<usize> = (0..4).flat_map(|r| owned(10, r, 4)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert!(owned(2, 3, 4).is_empty());
    }

    #[test]
    fn samples_round_trip_and_are_rescored() {
        let prompts = vec![PromptItem { tokens: vec![1, 2, 3], text: "p".into(), reference: "r".into() }; 2];
        let config = TrainConfig { prompt_max_len: 2, ..TrainConfig::tiny() };
        let s = Sample {
            prompt: 1,
            sample: 3,
            prompt_tokens: vec![1, 2],
            response: vec![7, 70_000, 9],
            text: "héllo".into(),
            finish_reason: FinishReason::Length,
            score: 0.0,
            label: label::WRONG,
            sampling_log_probs: vec![-0.5, -1.25, -3.0],
        };
        let back =
            decode_samples(&encode_samples(core::slice::from_ref(&s)), 2, &prompts, &config, &Len).unwrap();
        assert_eq!(back, [Sample { score: 6.0, label: label::CORRECT, ..s }]);
        let err = decode_samples(
            &encode_samples(&[Sample { prompt: 5, ..back[0].clone() }]),
            2,
            &prompts,
            &config,
            &Len,
        );
        assert!(err.unwrap_err().to_string().contains("prompt 5 of 2"));
        let bytes = encode_samples(&back);
        let err = decode_samples(&bytes[..bytes.len() - 1], 3, &prompts, &config, &Len).unwrap_err();
        assert!(err.to_string().contains("rank 3's completions end early"), "{err}");
    }
}
