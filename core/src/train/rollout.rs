//! Recipe steps 2 to 4: truncate the prompts, sample `n` completions of each, score them and
//! drop the empty ones.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::config::{PromptOverflow, TrainConfig};
use crate::backend::Backend;
use crate::generation::{Detokenize, GenerationStats, Generator, Request, SlotDecoder};
use crate::reward::{FinishReason, Reward, RewardInput, is_droppable, label};
use crate::rng::Rng;
use crate::{Error, Result};

/// One training prompt: its tokens (template applied, no special tokens added), its text (as
/// the reward sees it) and the task's reference answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PromptItem {
    /// The rendered prompt's token ids.
    pub tokens: Vec<u32>,
    /// The rendered prompt's text.
    pub text: String,
    /// The reference answer (see [`RewardInput::reference`]).
    pub reference: String,
}

/// One scored completion kept for training (the rollout phase's unit; what the later phases
/// compute for it lives in their own outputs, [`super::Experience`] and [`super::Advantages`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index of its prompt in the iteration's prompt list.
    pub prompt: usize,
    /// Index of this sample among its prompt's `n_samples_per_prompt`.
    pub sample: usize,
    /// The (truncated) prompt tokens it was sampled from.
    pub prompt_tokens: Vec<u32>,
    /// The sampled tokens (an EOS token, when sampled, included: orz-rs trains on the ids it
    /// sampled, a deviation from ORZ's re-tokenization of the text).
    pub response: Vec<u32>,
    /// The completion's text (stop string kept).
    pub text: String,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// The reward's score.
    pub score: f64,
    /// The reward's label (e.g. [`label::CORRECT`]).
    pub label: &'static str,
    /// Each response token's log-prob when it was sampled (empty unless
    /// [`TrainConfig::measure_mismatch`]).
    pub sampling_log_probs: Vec<f64>,
}

impl Sample {
    /// Whether the reward called it correct (its label is [`label::CORRECT`]).
    pub fn is_correct(&self) -> bool {
        self.label == label::CORRECT
    }

    /// Prompt plus response tokens: the sequence that is packed and trained on.
    pub fn sequence(&self) -> Vec<u32> {
        let mut s = self.prompt_tokens.clone();
        s.extend_from_slice(&self.response);
        s
    }

    /// Prompt plus response length in tokens.
    pub fn len(&self) -> usize {
        self.prompt_tokens.len() + self.response.len()
    }

    /// Whether the sequence holds no token (never for a sample built by [`rollout`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Recipe step 2: the tokens of `prompt` (index `i`) cut to `max_len` as `overflow` says.
/// Errors: an empty prompt; a longer one under [`PromptOverflow::Reject`].
pub fn truncate_prompt(
    i: usize,
    tokens: &[u32],
    max_len: usize,
    overflow: PromptOverflow,
) -> Result<Vec<u32>> {
    const OP: &str = "prompt truncation";
    if tokens.is_empty() {
        return Err(Error::invalid(OP, format!("prompt {i} has no token")));
    }
    match overflow {
        _ if tokens.len() <= max_len => Ok(tokens.to_vec()),
        PromptOverflow::KeepFirst => Ok(tokens[..max_len].to_vec()),
        PromptOverflow::Reject => Err(Error::invalid(
            OP,
            format!("prompt {i} has {} tokens, more than prompt_max_len = {max_len}", tokens.len()),
        )),
    }
}

/// What [`rollout`] gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Kept samples in (prompt, sample) order.
    pub samples: Vec<Sample>,
    /// Completions generated (kept and dropped).
    pub generated: usize,
    /// Completions dropped because their text was empty (recipe step 4).
    pub dropped_empty: usize,
    /// The engine's counters.
    pub stats: GenerationStats,
}

/// Recipe steps 2 to 4: truncates the prompts, samples `n_samples_per_prompt` completions of
/// each with `model` (sample `s` of prompt `r` draws from `rng.fork(r).fork(s)`), scores each
/// with `reward` on (prompt text, completion text, finish reason, reference) and drops those
/// whose text is empty ([`is_droppable`]). Errors: no prompt, a bad prompt, every completion
/// empty, and the engine's errors.
pub fn rollout<B: Backend, M: SlotDecoder<B>>(
    backend: &B,
    model: &M,
    config: &TrainConfig,
    prompts: &[PromptItem],
    reward: &dyn Reward,
    detok: &dyn Detokenize,
    rng: &Rng,
) -> Result<Rollout> {
    let all: Vec<usize> = (0..prompts.len()).collect();
    require_samples(rollout_of(backend, model, config, prompts, &all, reward, detok, rng)?)
}

/// [`rollout`] of the prompts at indices `mine` only (a rank's share of a data-parallel
/// iteration, [`super::data_parallel`]), each keyed by its index in `prompts`; every prompt is
/// still checked and truncated, so that every rank reports the same errors. Unlike
/// [`rollout`], it may return no sample.
#[allow(clippy::too_many_arguments, reason = "rollout's arguments plus the share")]
pub fn rollout_of<B: Backend, M: SlotDecoder<B>>(
    backend: &B,
    model: &M,
    config: &TrainConfig,
    prompts: &[PromptItem],
    mine: &[usize],
    reward: &dyn Reward,
    detok: &dyn Detokenize,
    rng: &Rng,
) -> Result<Rollout> {
    if prompts.is_empty() {
        return Err(Error::invalid("rollout", "the prompt list is empty: there is nothing to train on"));
    }
    let truncated = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| truncate_prompt(i, &p.tokens, config.prompt_max_len, config.prompt_overflow))
        .collect::<Result<Vec<_>>>()?;
    if mine.is_empty() {
        return Ok(Rollout {
            samples: Vec::new(),
            generated: 0,
            dropped_empty: 0,
            stats: GenerationStats::default(),
        });
    }
    let requests: Vec<Request> = mine
        .iter()
        .map(|&i| Request::new(truncated[i].clone(), config.n_samples_per_prompt).with_seed_key(i as u64))
        .collect();
    let engine = Generator::new(config.sampling, config.stop.clone(), config.engine)?
        .recording_log_probs(config.measure_mismatch);
    let decode = |tokens: &[u32]| detok.decode(tokens);
    let out = engine.generate(backend, model, &requests, &decode, rng)?;
    let generated = out.completions.len();
    let mut samples = Vec::with_capacity(generated);
    for c in out.completions {
        if is_droppable(&c.text) {
            continue;
        }
        let prompt = mine[c.request];
        let p = &prompts[prompt];
        let outcome = reward.score(&RewardInput::new(&p.text, &c.text, c.finish_reason, &p.reference));
        if !outcome.score.is_finite() {
            return Err(Error::invalid(
                "reward",
                format!(
                    "`{}` gave the non-finite score {} to sample {} of prompt {prompt}",
                    reward.name(),
                    outcome.score,
                    c.sample,
                ),
            ));
        }
        let response_tokens = c.tokens.len();
        samples.push(Sample {
            prompt,
            sample: c.sample,
            prompt_tokens: truncated[prompt].clone(),
            response: c.tokens,
            text: c.text,
            finish_reason: c.finish_reason,
            score: super::overlong::scored(config, outcome.score, response_tokens),
            label: outcome.label,
            sampling_log_probs: c.log_probs,
        });
    }
    let dropped_empty = generated - samples.len();
    Ok(Rollout { samples, generated, dropped_empty, stats: out.stats })
}

/// The rollout, unless it kept no sample (every completion's text was empty): then an error.
pub fn require_samples(rollout: Rollout) -> Result<Rollout> {
    if rollout.samples.is_empty() {
        return Err(Error::invalid(
            "rollout",
            format!(
                "all {} completions have empty text (dropped, recipe step 4): nothing to train on",
                rollout.generated
            ),
        ));
    }
    Ok(rollout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn truncation_keeps_the_first_tokens_or_rejects() {
        let t = [1, 2, 3, 4, 5];
        assert_eq!(truncate_prompt(0, &t, 3, PromptOverflow::KeepFirst).unwrap(), [1, 2, 3]);
        assert_eq!(truncate_prompt(0, &t, 5, PromptOverflow::Reject).unwrap(), t);
        let err = truncate_prompt(2, &t, 3, PromptOverflow::Reject).unwrap_err().to_string();
        assert!(err.contains("prompt 2 has 5 tokens"), "{err}");
        assert!(
            truncate_prompt(1, &[], 3, PromptOverflow::KeepFirst)
                .unwrap_err()
                .to_string()
                .contains("prompt 1")
        );
    }
}
