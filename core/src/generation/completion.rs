//! What the engine takes ([`Request`]) and gives back ([`Completion`], [`GenerationStats`]).

use alloc::vec::Vec;

use alloc::string::String;

use super::finish::FinishReason;

/// One prompt to sample `n` completions of.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Request {
    /// The prompt's token ids (non-empty, shorter than `max_total_len`).
    pub prompt: Vec<u32>,
    /// How many completions to sample (ORZ `n_samples_per_prompt`), at least 1.
    pub n: usize,
    /// The key of its random streams (sample `s` draws from `rng.fork(key).fork(s)`); `None`:
    /// its index in the request list. A data-parallel rollout keys each request by its prompt's
    /// index in the whole iteration, so that samples do not depend on the world size.
    pub seed_key: Option<u64>,
}

impl Request {
    /// A request for `n` completions of `prompt`.
    pub fn new(prompt: Vec<u32>, n: usize) -> Self {
        Request { prompt, n, seed_key: None }
    }

    /// The same request drawing from the streams keyed `key` (see [`Request::seed_key`]).
    pub fn with_seed_key(self, key: u64) -> Self {
        Request { seed_key: Some(key), ..self }
    }
}

/// One sampled completion.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Completion {
    /// Index of its request in the request list.
    pub request: usize,
    /// Index of this sample among its request's `n`.
    pub sample: usize,
    /// The generated token ids (an EOS token, or the token that completed a stop string, last).
    pub tokens: Vec<u32>,
    /// The generated text, cut right after a stop string (which it keeps); no EOS text.
    pub text: String,
    /// Why it ended: `stop` (EOS or stop string) or `length`.
    pub finish_reason: FinishReason,
    /// Each token's log-prob when it was sampled ([`super::Generator::recording_log_probs`];
    /// empty when not recorded).
    #[cfg_attr(feature = "serde", serde(default))]
    pub log_probs: Vec<f64>,
}

/// Counters of one generation run, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GenerationStats {
    /// Slots in the batched KV cache.
    pub slots: usize,
    /// Prompt prefills run (one per request when at least 2 slots exist).
    pub prefills: usize,
    /// Slot copies made for shared prefills.
    pub slot_copies: usize,
    /// Batched decode calls.
    pub decode_steps: usize,
    /// Rows over all decode calls (the sum of the batch sizes).
    pub decode_rows: usize,
    /// Tokens generated, over all completions.
    pub tokens_generated: usize,
}

impl GenerationStats {
    /// Mean rows per decode call (0 without decode calls).
    pub fn mean_batch_size(&self) -> f64 {
        if self.decode_steps == 0 { 0.0 } else { self.decode_rows as f64 / self.decode_steps as f64 }
    }

    /// Mean fraction of the slots decoding per decode call, in `[0, 1]` (0 without decode calls).
    pub fn mean_occupancy(&self) -> f64 {
        if self.slots == 0 { 0.0 } else { self.mean_batch_size() / self.slots as f64 }
    }
}

/// The completions of one run, in (request, sample) order, and its counters.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationOutput {
    /// Every completion, ordered by request, then sample.
    pub completions: Vec<Completion>,
    /// Counters for metrics.
    pub stats: GenerationStats,
}
